"""The rviz markers of the live alerts (alert_gateway's v2x/markers). Nothing else.

The alert's own conversions (Alert <-> AlertData) are v2x_conversion's.
"""

import math

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from v2x_common.geo import EARTH_RADIUS_M
from v2x_common.mappings import kind_to_str
from v2x_protocol.wire import AlertData


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
