"""v2x_msgs <-> the recorder's core values (Alert -> ClipRequest, ClipResult -> Clip)."""

import math

from v2x_common.mappings import kind_to_str, severity_to_str, suggest_to_str
from v2x_common.timeutil import fill_stamp, is_zero, iso, to_seconds
from v2x_msgs.msg import Clip
from v2x_recorder.clips import ClipRequest, ClipResult, make_request


def _finite_or_none(value: float):
    return float(value) if math.isfinite(value) else None


def alert_to_dict(msg) -> dict:
    """The alert as plain JSON values for the sidecar (seed strings for kind etc.)."""
    detection = to_seconds(msg.detection_time)
    return {
        'source_id': msg.source_id,
        'sequence': int(msg.sequence),
        'origin': f'{int(msg.origin):016x}' if msg.origin else '',
        'kind': kind_to_str(msg.kind),
        'severity': severity_to_str(msg.severity),
        'suggest': suggest_to_str(msg.suggest),
        'detection_time': detection,
        'detection_time_iso': iso(detection) if detection > 0 else '',
        'stamp': to_seconds(msg.header.stamp),
        'validity_s': float(msg.validity_s),
        'cancelled': bool(msg.cancelled),
        'latitude': _finite_or_none(msg.latitude),
        'longitude': _finite_or_none(msg.longitude),
        'road': msg.road,
        'distance_m': _finite_or_none(msg.distance_m),
        'confidence': float(msg.confidence),
        'clip_requested': bool(msg.clip_requested),
        'clip_id': msg.clip_id,
    }


def alert_t0(msg, now: float) -> float:
    """The event time of an alert: detection_time, else its header stamp, else now."""
    if not is_zero(msg.detection_time):
        return to_seconds(msg.detection_time)
    if not is_zero(msg.header.stamp):
        return to_seconds(msg.header.stamp)
    return now


def alert_clip_id(msg) -> str:
    """The gateway's clip_id, or '<source_id>-<sequence>' when it left it empty."""
    return msg.clip_id or f'{msg.source_id or "local"}-{msg.sequence}'


def request_from_alert(msg, pre_s: float, post_s: float, now: float) -> ClipRequest:
    """The clip request an alert asks for; raises BadClipRequest on unusable times."""
    return make_request(alert_clip_id(msg), alert_t0(msg, now), pre_s, post_s,
                        alert=alert_to_dict(msg), requested_at=now, origin='alert')


def request_from_service(req, default_pre_s: float, default_post_s: float,
                         now: float) -> ClipRequest:
    """The clip request of a RequestClip call (0 pre/post = the node's defaults)."""
    return make_request(req.clip_id, to_seconds(req.t0), float(req.pre_s), float(req.post_s),
                        default_pre_s=default_pre_s, default_post_s=default_post_s,
                        requested_at=now, origin='service')


def clip_to_msg(result: ClipResult) -> Clip:
    """The Clip message of a result: the same values its sidecar records."""
    msg = Clip()
    msg.clip_id = result.clip_id
    fill_stamp(msg.t0, result.t0)
    msg.path = result.path
    msg.sha256 = result.sha256
    msg.duration_s = float(result.duration_s)
    msg.gaps = list(result.gaps)
    msg.error = result.error
    return msg
