"""A DENM heard on the vehicle's DENM face reaches speed_policy as an unauthenticated alert:
a blockage 100 m ahead slows the vehicle down instead of stopping it, unless the operator
allows unauthenticated stops; its cancellation ends the action."""

import socket
import time

import pytest
from rclpy.parameter import Parameter

from v2x_common import qos
from v2x_denm import codec, link
from v2x_denm.denm_gateway import DenmGateway
from v2x_msgs.msg import PolicyState
from v2x_policy.speed_policy import SpeedPolicy
from v2x_protocol.wire import AlertData
from v2x_testing import RosHarness

FAR = codec.Station(4242, source_id='rsu_far')


def _denm(stamp_ns: int, cancelled: bool = False) -> bytes:
    a = AlertData(source_id='rsu_far', sequence=8, kind=3, severity=3, suggest=0,
                  stamp_ns=stamp_ns, detection_time_ns=stamp_ns, validity_s=60.0,
                  cancelled=cancelled, distance_m=100.0)
    return link.btp_b(codec.encode_alert(a, FAR))


@pytest.fixture(scope='module')
def ros():
    harness = RosHarness()
    yield harness
    harness.close()


@pytest.mark.parametrize('allow, action, rule', [
    (False, PolicyState.ACTION_SLOW_DOWN, 'stop_blockage+unauthenticated'),
    (True, PolicyState.ACTION_STOP, 'stop_blockage'),
])
def test_denm_blockage_slows_unless_allowed(ros, allow, action, rule):
    """denm_gateway (UDP accepted) -> v2x/alert -> speed_policy: the decision and its rule;
    the DENM's termination ends it."""
    ns = f'/denm_policy_{int(allow)}'
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ros.add(DenmGateway(context=ros.context, namespace=ns, parameter_overrides=[
        Parameter('udp_listen', value=f'127.0.0.1:{port}'), Parameter('udp_accept', value=True),
        Parameter('station_id', value=1)]))
    ros.add(SpeedPolicy(context=ros.context, namespace=ns, parameter_overrides=[
        Parameter('allow_unauthenticated_stop', value=allow),
        Parameter('hold_time_s', value=0.0)]))
    states = []
    ros.node(f'observer_{int(allow)}', namespace=ns).create_subscription(
        PolicyState, 'v2x/policy_state', states.append, qos.POLICY_STATE)
    t0 = time.time_ns() // 10**6 * 10**6
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        def acting():
            tx.sendto(_denm(t0), ('127.0.0.1', port))  # repeated, as DENMs are
            return bool(states) and states[-1].action == action
        assert ros.spin_until(acting, 20), states[-1:] or 'no policy state'
        assert (states[-1].rule, states[-1].source_id) == (rule, 'denm:4242')

        def ended():
            tx.sendto(_denm(t0 + 10**6, cancelled=True), ('127.0.0.1', port))
            return states[-1].action == PolicyState.ACTION_NONE
        assert ros.spin_until(ended, 20)
