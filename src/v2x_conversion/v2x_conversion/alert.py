"""v2x_msgs/Alert <-> v2x_protocol's AlertData (and the CLIs' alert flags -> AlertData).

The one conversion of the alert, used by every node and tool: alert_gateway,
speed_policy, denm_gateway, v2x_console, v2x_inject, v2x_alert_server,
v2x_alert_client and v2x_denm. Every field is mapped, both ways (test_alert.py
checks the message's field list against AlertData's, so a new field cannot be left
out). Rules about what a field means (who is trusted, what a zero fills) are not
here: they live in the cores that apply them (policy.py's trust rule, sender.py's
fill_identity).
"""

from argparse import Namespace

from v2x_conversion.times import checked_time_ns, ns_to_time, time_to_ns
from v2x_msgs.msg import Alert
from v2x_protocol.sender import check_validity
from v2x_protocol.wire import AlertData

#: AlertData's fields that say how this station got the alert (not on the wire).
PROVENANCE = ('authenticated', 'path')
_WIRE_AUTHENTICATED = AlertData.__dataclass_fields__['authenticated'].default
_WIRE_PATH = AlertData.__dataclass_fields__['path'].default


def alert_from_msg(msg: Alert, strict: bool = False, provenance: bool = True) -> AlertData:
    """An Alert message as the cores see it (zeros kept: fill_identity fills them).

    strict (for alerts taken in to be sent): raise sender.InvalidTiming for fields the time
    arithmetic cannot take -- a validity_s that is not finite, negative or beyond
    sender.MAX_VALIDITY_S; a negative stamp or detection_time, or nanosec >= 10^9.

    provenance False leaves ``authenticated`` and ``path`` at AlertData's defaults: the
    alert as the wire carries it (what a gateway signs, or compares with what it
    published, keeping how it got each alert apart).
    """
    if strict:
        check_validity(msg.validity_s)
        stamp_ns = checked_time_ns(msg.header.stamp, 'header.stamp')
        detection_ns = checked_time_ns(msg.detection_time, 'detection_time')
    else:
        stamp_ns, detection_ns = time_to_ns(msg.header.stamp), time_to_ns(msg.detection_time)
    if provenance:
        authenticated, path = msg.authenticated, msg.path
    else:
        authenticated, path = _WIRE_AUTHENTICATED, _WIRE_PATH
    # The message's fields are typed already (rosidl checks every assignment): no casts.
    return AlertData(
        source_id=msg.source_id, sequence=msg.sequence, kind=msg.kind,
        severity=msg.severity, suggest=msg.suggest, stamp_ns=stamp_ns,
        detection_time_ns=detection_ns, validity_s=msg.validity_s,
        cancelled=msg.cancelled, latitude=msg.latitude, longitude=msg.longitude,
        road=msg.road, distance_m=msg.distance_m, confidence=msg.confidence,
        clip_requested=msg.clip_requested, clip_id=msg.clip_id,
        authenticated=authenticated, path=path, origin=msg.origin)


def alert_to_msg(a: AlertData, frame_id: str = 'map', path: int | None = None,
                 authenticated: bool | None = None) -> Alert:
    """AlertData -> Alert message (every field, how this station got it included; path and
    authenticated, when given, say it instead of the value's own)."""
    msg = Alert()
    msg.header.stamp = ns_to_time(a.stamp_ns)
    msg.header.frame_id = frame_id
    msg.source_id = a.source_id
    msg.sequence = a.sequence
    msg.kind = a.kind
    msg.severity = a.severity
    msg.suggest = a.suggest
    msg.detection_time = ns_to_time(a.detection_time_ns)
    msg.validity_s = float(a.validity_s)
    msg.cancelled = a.cancelled
    msg.latitude = float(a.latitude)
    msg.longitude = float(a.longitude)
    msg.road = a.road
    msg.distance_m = float(a.distance_m)
    msg.confidence = float(a.confidence)
    msg.clip_requested = a.clip_requested
    msg.clip_id = a.clip_id
    if a.origin:
        msg.origin = a.origin
    path = a.path if path is None else path
    authenticated = a.authenticated if authenticated is None else authenticated
    if path:  # a fresh message holds 0 / False: each set costs microseconds in rosidl
        msg.path = path
    if authenticated:
        msg.authenticated = True
    return msg


def alert_from_flags(args: Namespace, stamp_ns: int = 0,
                     detection_time_ns: int = 0) -> AlertData:
    """The alert v2x_common.alert_flags' flags (and --source-id) describe: produced here
    (path local, authenticated), times 0 (the gateway's to fill) unless given. Not
    checked: the caller runs the range table."""
    return AlertData(
        source_id=args.source_id, sequence=args.sequence, kind=args.kind,
        severity=args.severity, suggest=args.suggest, stamp_ns=stamp_ns,
        detection_time_ns=detection_time_ns, validity_s=float(args.ttl_s),
        cancelled=args.cancel, latitude=args.lat, longitude=args.lon, road=args.road,
        distance_m=args.distance_m, confidence=args.confidence,
        clip_requested=args.clip)
