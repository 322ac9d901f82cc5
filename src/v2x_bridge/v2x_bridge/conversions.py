"""v2x_msgs <-> the core dataclasses, and the rviz markers of live alerts. Nothing else."""

import math

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from v2x_common.geo import EARTH_RADIUS_M
from v2x_common.mappings import kind_to_str
from v2x_common.timeutil import NS_PER_S, to_ns
from v2x_msgs.msg import Alert, Heartbeat, PeerArray, PeerStatus
from v2x_protocol.peers import PeerInfo
from v2x_protocol.sender import InvalidTiming, check_validity
from v2x_protocol.wire import AlertData, HeartbeatData


def time_to_ns(t: Time) -> int:
    """builtin_interfaces/Time -> integer ns."""
    return to_ns(t)


def ns_to_time(ns: int) -> Time:
    """Integer ns -> builtin_interfaces/Time (negative clamps to 0)."""
    ns = max(0, int(ns))
    return Time(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def _checked_time_ns(t: Time, field: str) -> int:
    if t.sec < 0 or not 0 <= t.nanosec < NS_PER_S:
        raise InvalidTiming(f'{field} {t.sec} s {t.nanosec} ns is not a time after 1970 '
                            '(nanosec must be < 10^9)')
    return time_to_ns(t)


def alert_from_msg(msg: Alert, strict: bool = False) -> AlertData:
    """An Alert message as the core sees it (zeros kept: fill_identity fills them).

    strict (for alerts taken in to be sent): raise sender.InvalidTiming for fields the time
    arithmetic cannot take -- a validity_s that is not finite, negative or beyond
    sender.MAX_VALIDITY_S; a negative stamp or detection_time, or nanosec >= 10^9.
    """
    if strict:
        check_validity(msg.validity_s)
        stamp_ns = _checked_time_ns(msg.header.stamp, 'header.stamp')
        detection_ns = _checked_time_ns(msg.detection_time, 'detection_time')
    else:
        stamp_ns, detection_ns = time_to_ns(msg.header.stamp), time_to_ns(msg.detection_time)
    return AlertData(
        source_id=msg.source_id, sequence=msg.sequence, kind=msg.kind,
        severity=msg.severity, suggest=msg.suggest, stamp_ns=stamp_ns,
        detection_time_ns=detection_ns, validity_s=msg.validity_s,
        cancelled=msg.cancelled, latitude=msg.latitude, longitude=msg.longitude,
        road=msg.road, distance_m=msg.distance_m, confidence=msg.confidence,
        clip_requested=msg.clip_requested, clip_id=msg.clip_id)


def alert_to_msg(a: AlertData, frame_id: str = 'map') -> Alert:
    """AlertData -> Alert message."""
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
    return msg


def heartbeat_to_msg(h: HeartbeatData, send_time_ns: int) -> Heartbeat:
    """HeartbeatData + the datagram's send time -> Heartbeat message."""
    msg = Heartbeat()
    msg.header.stamp = ns_to_time(send_time_ns)
    msg.source_id = h.source_id
    msg.role = h.role
    msg.status = h.status
    msg.status_message = h.status_message
    msg.active_alerts = min(h.active_alerts, 0xFFFF)
    msg.uptime_s = float(h.uptime_s)
    return msg


def peers_to_msg(peers: list[PeerInfo]) -> PeerArray:
    """The peer table -> PeerArray."""
    out = PeerArray()
    out.peers = [PeerStatus(source_id=p.source_id, role=p.role,
                            last_heard=ns_to_time(p.last_heard_ns), stale=p.stale,
                            active_alerts=min(p.active_alerts, 0xFFFF),
                            clock_offset_s=float(p.clock_offset_s), status=p.status,
                            status_message=p.status_message) for p in peers]
    return out


def enu(lat: float, lon: float, lat0: float, lon0: float) -> tuple[float, float]:
    """East/north metres of (lat, lon) from the origin (equirectangular; fine for km)."""
    x = math.radians(lon - lon0) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
    y = math.radians(lat - lat0) * EARTH_RADIUS_M
    return x, y


_COLOURS = {1: (1.0, 0.9, 0.0), 2: (1.0, 0.5, 0.0), 3: (1.0, 0.0, 0.0)}
MAX_LABELS = 10  # Marker() is slow to build in Python: one sphere list, a few labels


def markers_from_alerts(alerts: list[AlertData], origin: tuple[float, float],
                        stamp: Time) -> MarkerArray:
    """DELETEALL, then one SPHERE_LIST of every live, located alert (coloured by severity)
    and text labels for the newest MAX_LABELS of them; frame 'map', ENU from origin."""
    clear = Marker(action=Marker.DELETEALL)
    clear.header.frame_id = 'map'
    located = [a for a in alerts if not a.cancelled
               and math.isfinite(a.latitude) and math.isfinite(a.longitude)]
    if not located:
        return MarkerArray(markers=[clear])
    spheres = _marker(Marker.SPHERE_LIST, 0, stamp)
    spheres.scale.x = spheres.scale.y = spheres.scale.z = 10.0
    spheres.color.a = 0.8
    xy = [enu(a.latitude, a.longitude, *origin) for a in located]
    spheres.points = [Point(x=x, y=y, z=1.0) for x, y in xy]
    spheres.colors = [ColorRGBA(r=r, g=g, b=b, a=0.8) for r, g, b in
                      (_COLOURS.get(a.severity, (0.5, 0.5, 0.5)) for a in located)]
    out = [clear, spheres]
    for i, (a, (x, y)) in enumerate(list(zip(located, xy, strict=True))[-MAX_LABELS:], 1):
        label = _marker(Marker.TEXT_VIEW_FACING, i, stamp)
        label.pose.position.x, label.pose.position.y, label.pose.position.z = x, y, 8.0
        label.scale.z = 4.0
        label.color.r = label.color.g = label.color.b = label.color.a = 1.0
        label.text = f'{kind_to_str(a.kind)} {a.source_id}#{a.sequence}'
        out.append(label)
    return MarkerArray(markers=out)


def _marker(shape: int, marker_id: int, stamp: Time) -> Marker:
    m = Marker()
    m.header.frame_id = 'map'
    m.header.stamp = stamp
    m.ns = 'v2x_alerts'
    m.id = marker_id
    m.type = shape
    m.action = Marker.ADD
    m.pose.orientation.w = 1.0
    return m
