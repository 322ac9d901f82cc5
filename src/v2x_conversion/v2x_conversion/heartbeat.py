"""v2x_msgs/Heartbeat <-> v2x_protocol's HeartbeatData. Nothing else."""

from v2x_conversion.times import ns_to_time, time_to_ns
from v2x_msgs.msg import Heartbeat
from v2x_protocol.wire import HeartbeatData

#: Heartbeat.active_alerts is a uint16: more are reported as this.
MAX_ACTIVE_ALERTS = 0xFFFF


def heartbeat_to_msg(h: HeartbeatData, send_time_ns: int) -> Heartbeat:
    """HeartbeatData + the datagram's send time -> Heartbeat message (period_s is the
    datagram's, not the message's)."""
    msg = Heartbeat()
    msg.header.stamp = ns_to_time(send_time_ns)
    msg.source_id = h.source_id
    msg.role = h.role
    msg.status = h.status
    msg.status_message = h.status_message
    msg.active_alerts = min(h.active_alerts, MAX_ACTIVE_ALERTS)
    msg.uptime_s = float(h.uptime_s)
    return msg


def heartbeat_from_msg(msg: Heartbeat) -> tuple[HeartbeatData, int]:
    """A Heartbeat message -> (HeartbeatData, send time in ns); period_s its default."""
    return (HeartbeatData(source_id=msg.source_id, role=int(msg.role),
                          status=int(msg.status), status_message=msg.status_message,
                          active_alerts=int(msg.active_alerts),
                          uptime_s=float(msg.uptime_s)),
            time_to_ns(msg.header.stamp))
