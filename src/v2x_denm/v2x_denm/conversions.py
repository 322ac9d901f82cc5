"""v2x_msgs/Alert <-> the DENM core's AlertData. Nothing else."""

import dataclasses

from v2x_conversion.alert import alert_from_msg, alert_to_msg
from v2x_denm.codec import MAX_SEQUENCE
from v2x_msgs.msg import Alert
from v2x_protocol.wire import AlertData


def sent_alert(msg: Alert) -> AlertData:
    """An alert our RSU sent, as the DENM face sends it: the sequence wraps to the 16 bits
    of actionID.sequenceNumber (docs/denm.md: lossy)."""
    a = alert_from_msg(msg, provenance=False)
    return dataclasses.replace(a, sequence=a.sequence % (MAX_SEQUENCE + 1))


def received_msg(a: AlertData) -> Alert:
    """A received DENM's alert as published: path DENM, never authenticated."""
    return alert_to_msg(a, path=Alert.PATH_DENM, authenticated=False)
