"""A forged cancel on the vehicle's /v2x/alert cannot release a live stop for good.

A vehicle gateway and speed_policy (in-process, real DDS, loopback multicast): a real
signed stop arrives over UDP, then someone on the ROS graph publishes a cancel of it
with a newer stamp. The gateway sees a change it did not cause and re-publishes its own
version as newer, so the policy holds the live alert again and stays stopped.
"""

import time

from rclpy.parameter import Parameter

from v2x_bridge import net
from v2x_bridge.alert_gateway import AlertGateway
from v2x_common import qos
from v2x_common.timeutil import fill_stamp
from v2x_msgs.msg import Alert
from v2x_policy.rules import ACTION_STOP
from v2x_policy.speed_policy import SpeedPolicy
from v2x_protocol import keys
from v2x_protocol.sender import Sender
from v2x_protocol.wire import AlertData

SECRET = 'forged-test-secret'
WAIT = 20.0


def test_forged_cancel_on_the_graph_is_undone(ros, mcast, tmp_path, monkeypatch):
    """Forged cancel (newer stamp) on /v2x/alert -> the gateway re-asserts, the stop holds."""
    monkeypatch.setenv('V2X_KEY', SECRET)
    gateway = ros.add(AlertGateway(context=ros.context, namespace='veh', parameter_overrides=[
        Parameter(k, value=v) for k, v in dict(
            role='vehicle', group=mcast['group'], port=mcast['port'], iface=mcast['iface'],
            heartbeat_period_s=3600.0, state_dir=str(tmp_path)).items()]))
    policy = ros.add(SpeedPolicy(context=ros.context, namespace='veh'))
    forger = ros.node('forger').create_publisher(Alert, '/veh/v2x/alert', qos.ALERT)
    tx = net.open_sender(mcast['group'], mcast['port'], mcast['iface'])
    rsu = Sender(keys.HmacKey(SECRET.encode()))
    now = time.time_ns()
    real = AlertData('rsu_real', 3, Alert.KIND_BLOCKAGE, Alert.SEVERITY_HIGH,
                     Alert.SUGGEST_STOP, now, now, 120.0, distance_m=50.0)
    key = real.key
    try:
        def stopped():
            entry = policy.state.alerts.get(key)
            return (entry is not None and not entry.alert.cancelled
                    and policy.state.held.action == ACTION_STOP)

        deadline = time.monotonic() + WAIT
        while not stopped() and time.monotonic() < deadline:
            tx.send(rsu.datagram(real, time.time_ns()))  # the RSU repeats until heard
            ros.spin_for(0.2)
        assert stopped(), 'the real stop did not reach the policy'

        forged = Alert()
        fill_stamp(forged.header.stamp, real.stamp_ns / 1e9 + 10.0)
        forged.source_id, forged.sequence, forged.cancelled = real.source_id, real.sequence, True
        fill_stamp(forged.detection_time, real.detection_time_ns / 1e9)
        forged.validity_s, forged.kind = 120.0, Alert.KIND_BLOCKAGE
        forged.latitude = forged.longitude = forged.distance_m = float('nan')
        forger.publish(forged)
        assert ros.spin_until(lambda: policy.counts['alerts_cancelled'] >= 1, WAIT), \
            'the forged cancel never reached the policy'
        assert ros.spin_until(lambda: gateway.counters()['reasserted'] >= 1, WAIT)
        assert ros.spin_until(stopped, WAIT), 'the forged cancel released the stop for good'
        assert policy.state.alerts[key].alert.stamp > forged.header.stamp.sec
        assert gateway.counters()['delivered'] == 1  # nothing new went to CSV or markers
    finally:
        tx.close()
