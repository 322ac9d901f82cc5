"""IntakeEvent -> v2x_msgs/Alert (conversions only; the message is v2x_conversion's)."""

import math

from v2x_conversion.alert import alert_to_msg
from v2x_conversion.times import seconds_to_ns
from v2x_intake.schema import IntakeEvent
from v2x_msgs.msg import Alert
from v2x_protocol.wire import AlertData


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


def event_alert(event: IntakeEvent, stamp_s: float) -> AlertData:
    """The event as the protocol's alert: sequence 0 and source_id '' (the RSU gateway
    assigns both)."""
    return AlertData(
        source_id='', sequence=0, kind=event.kind, severity=event.severity,
        suggest=event.suggest, stamp_ns=seconds_to_ns(stamp_s),
        detection_time_ns=seconds_to_ns(event.ts), validity_s=float(event.validity_s),
        latitude=_nan_if_none(event.latitude), longitude=_nan_if_none(event.longitude),
        road=event.road, distance_m=_nan_if_none(event.distance_m),
        confidence=float(event.confidence), clip_requested=bool(event.clip_requested))


def event_to_alert(event: IntakeEvent, stamp_s: float) -> Alert:
    """The Alert message of the event (v2x_conversion's, as every node's)."""
    return alert_to_msg(event_alert(event, stamp_s), frame_id='')
