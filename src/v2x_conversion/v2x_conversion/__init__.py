"""v2x_conversion: v2x_msgs <-> v2x_protocol's values, one module per message.

alert (Alert <-> AlertData; the CLIs' alert flags -> AlertData), heartbeat (Heartbeat
<-> HeartbeatData), peers (PeerArray <-> PeerInfo), times (Time <-> ns). Pure
functions, nothing else: the rules live in the cores. The names below are the
package's surface (``import v2x_conversion as conversions``).
"""

from v2x_conversion.alert import alert_from_flags, alert_from_msg, alert_to_msg
from v2x_conversion.heartbeat import heartbeat_from_msg, heartbeat_to_msg
from v2x_conversion.peers import peers_from_msg, peers_to_msg
from v2x_conversion.times import ns_to_time, time_to_ns

__all__ = ['alert_from_flags', 'alert_from_msg', 'alert_to_msg', 'heartbeat_from_msg',
           'heartbeat_to_msg', 'ns_to_time', 'peers_from_msg', 'peers_to_msg', 'time_to_ns']
