"""A vehicle stack (gateway + speed_policy, in-process, real DDS, loopback multicast)
under the attacks of issue 13, at a scale CI affords; behaviour is checked, never timing.

* A burst of signed alerts over UDP with a real stop in the middle: every alert the
  gateway delivers reaches the policy (none overwritten in a queue) and it stops.
* A forged cancel on /v2x/alert (someone on the ROS graph, newer stamp): the gateway
  sees a change it did not cause and re-publishes its own version as newer, so the
  policy holds the live alert again and stays stopped.
"""

import time

import pytest
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
from v2x_testing import RosHarness, random_group

SECRET = 'attack-test-secret'
WAIT = 30.0
BURST = 2000


@pytest.fixture(scope='module')
def stack(tmp_path_factory):
    """Vehicle gateway and speed_policy in one harness; an RSU's sender on the link."""
    mp = pytest.MonkeyPatch()
    mp.setenv('V2X_KEY', SECRET)
    ros = RosHarness()
    group, port = random_group()
    gateway = ros.add(AlertGateway(context=ros.context, namespace='veh', parameter_overrides=[
        Parameter(k, value=v) for k, v in dict(
            role='vehicle', group=group, port=port, iface='127.0.0.1',
            heartbeat_period_s=3600.0,
            state_dir=str(tmp_path_factory.mktemp('state'))).items()]))
    policy = ros.add(SpeedPolicy(context=ros.context, namespace='veh'))
    tx = net.open_sender(group, port, '127.0.0.1')
    yield {'ros': ros, 'gateway': gateway, 'policy': policy, 'tx': tx,
           'rsu': Sender(keys.HmacKey(SECRET.encode()))}
    tx.close()
    ros.close()
    mp.undo()


def _alert(source, sequence, distance):
    now = time.time_ns()
    return AlertData(source, sequence, Alert.KIND_BLOCKAGE, Alert.SEVERITY_HIGH,
                     Alert.SUGGEST_NONE, now, now, 120.0, distance_m=distance)


def _stopped_by(policy, key):
    entry = policy.state.alerts.get(key)
    return (entry is not None and not entry.alert.cancelled
            and policy.state.held.action == ACTION_STOP)


def test_stop_inside_a_burst_over_the_link(stack):
    """2,000 signed alerts with a real stop in the middle: all reach the policy, it stops."""
    ros, gateway, policy, tx, rsu = (stack[k] for k in ('ros', 'gateway', 'policy', 'tx',
                                                        'rsu'))
    received = policy.counts['alerts_received']
    for seq in range(1, BURST + 1):
        real = seq == BURST // 2
        source = 'rsu_real' if real else f'far_away_{seq % 4}'  # within per-source quotas
        tx.send(rsu.datagram(_alert(source, seq, 40.0 if real else 5000.0), time.time_ns()))
        if seq % 200 == 0:
            ros.spin_for(0.02)  # about the rate the receive buffer absorbs here
    delivered = gateway.counters()['delivered']
    assert ros.spin_until(lambda: gateway.counters()['delivered'] == BURST
                          and policy.counts['alerts_received'] - received == BURST, WAIT), \
        (gateway.counters(), policy.counts, delivered)
    assert ros.spin_until(lambda: _stopped_by(policy, ('rsu_real', BURST // 2)), WAIT)
    assert gateway.counters()['kernel_drops'] == 0


def test_forged_cancel_on_the_graph_is_undone(stack):
    """Forged cancel (newer stamp) on /v2x/alert -> the gateway re-asserts, the stop holds."""
    ros, gateway, policy, tx, rsu = (stack[k] for k in ('ros', 'gateway', 'policy', 'tx',
                                                        'rsu'))
    forger = ros.node('forger').create_publisher(Alert, '/veh/v2x/alert', qos.ALERT)
    real = _alert('rsu_forged_at', 3, 50.0)
    key = real.key
    deadline = time.monotonic() + WAIT
    while not _stopped_by(policy, key) and time.monotonic() < deadline:
        tx.send(rsu.datagram(real, time.time_ns()))  # the RSU repeats until heard
        ros.spin_for(0.2)
    assert _stopped_by(policy, key), 'the real stop did not reach the policy'
    cancelled, reasserted = policy.counts['alerts_cancelled'], gateway.counters()['reasserted']
    delivered = gateway.counters()['delivered']

    forged = Alert()
    fill_stamp(forged.header.stamp, real.stamp_ns / 1e9 + 10.0)
    forged.source_id, forged.sequence, forged.cancelled = real.source_id, real.sequence, True
    fill_stamp(forged.detection_time, real.detection_time_ns / 1e9)
    forged.validity_s, forged.kind = 120.0, Alert.KIND_BLOCKAGE
    forged.latitude = forged.longitude = forged.distance_m = float('nan')
    forger.publish(forged)
    assert ros.spin_until(lambda: policy.counts['alerts_cancelled'] > cancelled, WAIT), \
        'the forged cancel never reached the policy'
    assert ros.spin_until(lambda: gateway.counters()['reasserted'] > reasserted, WAIT)
    assert ros.spin_until(lambda: _stopped_by(policy, key), WAIT), \
        'the forged cancel released the stop for good'
    assert policy.state.alerts[key].alert.stamp > forged.header.stamp.sec
    assert gateway.counters()['delivered'] == delivered  # nothing new went to CSV or markers
    assert gateway.counters()['reasserted'] == reasserted + 1  # its own echo is no change
