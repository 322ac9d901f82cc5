"""v2x_msgs / diagnostic_msgs -> the console core's inputs, and InjectRequest -> Alert."""

from v2x_common.timeutil import to_seconds
from v2x_console.actions import InjectRequest
from v2x_console.core import (
    AlertInput,
    ClipInput,
    DiagnosticInput,
    PeerInput,
    PolicyInput,
)
from v2x_msgs.msg import Alert


def alert_input(m) -> AlertInput:
    """An Alert message."""
    return AlertInput(
        source_id=m.source_id, sequence=m.sequence, kind=m.kind, severity=m.severity,
        suggest=m.suggest, stamp=to_seconds(m.header.stamp),
        detection_time=to_seconds(m.detection_time), validity_s=float(m.validity_s),
        cancelled=m.cancelled, latitude=m.latitude, longitude=m.longitude, road=m.road,
        distance_m=float(m.distance_m), confidence=float(m.confidence),
        clip_requested=m.clip_requested, clip_id=m.clip_id, path=m.path,
        authenticated=m.authenticated)


def peer_inputs(m) -> list[PeerInput]:
    """A PeerArray message."""
    return [PeerInput(source_id=p.source_id, role=p.role, last_heard=to_seconds(p.last_heard),
                      stale=p.stale, active_alerts=p.active_alerts,
                      clock_offset_s=float(p.clock_offset_s), path=p.path,
                      authenticated=p.authenticated, status=p.status,
                      status_message=p.status_message) for p in m.peers]


def policy_input(m) -> PolicyInput:
    """A PolicyState message."""
    return PolicyInput(stamp=to_seconds(m.header.stamp), action=m.action,
                       speed_limit=float(m.speed_limit), rule=m.rule, source_id=m.source_id,
                       sequence=m.sequence, distance_m=float(m.distance_m), enabled=m.enabled)


def _level(level) -> int:
    # DiagnosticStatus.level is a byte field (b'\x01') in the generated Python.
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)


def diagnostic_inputs(m) -> list[DiagnosticInput]:
    """A DiagnosticArray message."""
    return [DiagnosticInput(name=s.name, level=_level(s.level), message=s.message,
                            values={kv.key: kv.value for kv in s.values}) for s in m.status]


def clip_input(m) -> ClipInput:
    """A Clip message."""
    return ClipInput(clip_id=m.clip_id, t0=to_seconds(m.t0), path=m.path, sha256=m.sha256,
                     duration_s=float(m.duration_s), gaps=tuple(m.gaps), error=m.error)


def inject_to_msg(r: InjectRequest) -> Alert:
    """The Alert v2x_inject would publish for the same flags (identity left to the gateway)."""
    m = Alert()
    m.kind, m.severity, m.suggest = r.kind, r.severity, r.suggest
    m.validity_s = r.validity_s
    m.latitude, m.longitude = r.latitude, r.longitude
    m.road = r.road
    m.distance_m = r.distance_m
    m.confidence = r.confidence
    m.clip_requested = r.clip_requested
    return m


def cancel_to_msg(a: AlertInput) -> Alert:
    """The cancellation of an alert this station sent (same identity, cancelled)."""
    m = Alert()
    m.source_id, m.sequence = a.source_id, a.sequence
    m.kind, m.severity, m.suggest = a.kind, a.severity, a.suggest
    m.cancelled = True
    m.latitude, m.longitude = a.latitude, a.longitude
    m.road = a.road
    m.distance_m = a.distance_m
    m.confidence = a.confidence
    return m
