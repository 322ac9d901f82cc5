"""IntakeEvent -> v2x_msgs/Alert (conversions only)."""

import math

from v2x_common.timeutil import fill_stamp
from v2x_intake.schema import IntakeEvent
from v2x_msgs.msg import Alert


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


def event_to_alert(event: IntakeEvent, stamp_s: float) -> Alert:
    """An Alert with sequence 0 and source_id '' (the RSU gateway assigns both)."""
    alert = Alert()
    fill_stamp(alert.header.stamp, stamp_s)
    alert.source_id = ''
    alert.sequence = 0
    alert.kind = event.kind
    alert.severity = event.severity
    alert.suggest = event.suggest
    fill_stamp(alert.detection_time, event.ts)
    alert.validity_s = float(event.validity_s)
    alert.cancelled = False
    alert.latitude = _nan_if_none(event.latitude)
    alert.longitude = _nan_if_none(event.longitude)
    alert.road = event.road
    alert.distance_m = _nan_if_none(event.distance_m)
    alert.confidence = float(event.confidence)
    alert.clip_requested = bool(event.clip_requested)
    alert.clip_id = ''
    return alert
