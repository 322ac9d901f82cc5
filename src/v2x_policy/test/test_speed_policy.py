"""speed_policy with real rclpy and DDS: a helper node plays gateway, teleop, GPS and observer."""

import math
import os
from pathlib import Path
import subprocess

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist, TwistStamped
import pytest
from rclpy.exceptions import ParameterException
from rclpy.parameter import Parameter
from sensor_msgs.msg import NavSatFix, NavSatStatus
from std_srvs.srv import SetBool
import yaml

from v2x_common import qos
from v2x_common.params import ParameterError
from v2x_common.timeutil import fill_stamp
from v2x_msgs.msg import Alert, Heartbeat, PeerArray, PeerStatus, PolicyState
from v2x_policy.speed_policy import SpeedPolicy
from v2x_testing import random_domain_id

CONFIG = Path(__file__).resolve().parents[3] / 'launch' / 'config' / 'speed_policy.yaml'
DEG_M = math.radians(1.0) * 6_371_008.8
EVENT_LAT, EVENT_LON = 48.137, 11.575
WAIT = 15.0  # generous: the CPU is shared


class Rig:
    """The policy under test plus a helper node: teleop at 20 Hz, alerts, fixes, observers."""

    def __init__(self, ros, stamped=False, teleop_hz=20.0, start_policy=True, **params):
        self.ros = ros
        self.params = {'hold_time_s': 0.5, **params, 'stamped': stamped}
        self.stamped = stamped
        self.source = f'rsu_test_{os.getpid()}_{id(self) % 10000}'  # unique per test
        # A namespace of its own: a test sharing our random domain id cannot cross-talk.
        self.ns = f'/{self.source}'
        self.twist_type = TwistStamped if stamped else Twist
        self.helper = ros.node('policy_test_helper', namespace=self.ns)
        h = self.helper
        self.alert_pub = h.create_publisher(Alert, 'v2x/alert', qos.ALERT)
        self.cmd_pub = h.create_publisher(self.twist_type, 'cmd_vel_in', qos.CMD_VEL)
        self.fix_pub = h.create_publisher(NavSatFix, 'fix', qos.SENSOR_DATA)
        self.peers_pub = h.create_publisher(PeerArray, 'v2x/peers', qos.PEERS)
        self.out, self.states, self.sent = [], [], 0
        h.create_subscription(self.twist_type, 'cmd_vel', self.out.append, qos.CMD_VEL)
        h.create_subscription(PolicyState, 'v2x/policy_state', self.states.append,
                              qos.POLICY_STATE)
        self.cmd = (1.0, 0.4)  # what the teleop sends: linear.x, angular.z
        self.fix_at = None  # (lat, lon) the GPS reports at 10 Hz, None: silent
        if teleop_hz:
            h.create_timer(1.0 / teleop_hz, self.send_cmd)
        h.create_timer(0.1, self._send_fix)
        self.policy = self.start_policy() if start_policy else None

    def start_policy(self):
        overrides = [Parameter(k, value=v) for k, v in self.params.items()]
        self.policy = self.ros.add(SpeedPolicy(context=self.ros.context, namespace=self.ns,
                                               parameter_overrides=overrides))
        return self.policy

    def now(self) -> float:
        return self.helper.get_clock().now().nanoseconds / 1e9

    def send_cmd(self, vx=None, wz=None):
        msg = self.twist_type()
        twist = msg.twist if self.stamped else msg
        twist.linear.x = self.cmd[0] if vx is None else vx
        twist.angular.z = self.cmd[1] if wz is None else wz
        if self.stamped:
            msg.header.frame_id = 'base_link'
            msg.header.stamp = self.helper.get_clock().now().to_msg()
        self.cmd_pub.publish(msg)
        self.sent += 1

    def _send_fix(self):
        if self.fix_at is not None:
            fix = NavSatFix()
            fix.status.status = NavSatStatus.STATUS_FIX
            fix.latitude, fix.longitude = self.fix_at
            self.fix_pub.publish(fix)

    def alert(self, seq, kind=Alert.KIND_COLLISION, distance=300.0, validity=15.0,
              cancelled=False, stamp=None, lat=math.nan, lon=math.nan,
              suggest=Alert.SUGGEST_NONE, detection=None, source=None):
        msg = Alert()
        now = self.now()
        fill_stamp(msg.header.stamp, now if stamp is None else stamp)
        msg.source_id, msg.sequence = source or self.source, seq
        msg.kind, msg.severity, msg.suggest = kind, Alert.SEVERITY_HIGH, suggest
        fill_stamp(msg.detection_time, now if detection is None else detection)
        msg.validity_s = validity
        msg.cancelled = cancelled
        msg.latitude, msg.longitude, msg.distance_m = lat, lon, distance
        self.alert_pub.publish(msg)
        return msg

    def cancel(self, msg: Alert):
        """Publish a cancellation of msg (a newer version)."""
        msg.cancelled = True
        fill_stamp(msg.header.stamp, self.now())
        self.alert_pub.publish(msg)

    def linear_x(self):
        if not self.out:
            return None
        last = self.out[-1]
        return (last.twist if self.stamped else last).linear.x

    def wait_output(self, vx, timeout=WAIT) -> bool:
        """Spin until the latest cmd_vel has linear.x == vx."""
        return self.ros.spin_until(
            lambda: self.linear_x() is not None and abs(self.linear_x() - vx) < 1e-6, timeout)

    def wait_action(self, action, timeout=WAIT) -> bool:
        return self.ros.spin_until(lambda: self.states and self.states[-1].action == action,
                                   timeout)

    def wait_known(self, seq, timeout=WAIT) -> bool:
        """Spin until the policy holds the alert (source, seq) in its table."""
        return self.ros.spin_until(lambda: (self.source, seq) in self.policy.state.alerts,
                                   timeout)

    def wait_fresh_outputs(self, n=3, timeout=WAIT) -> bool:
        """Spin until n more cmd_vel arrive (each answering a newer input)."""
        target = len(self.out) + n
        return self.ros.spin_until(lambda: len(self.out) >= target, timeout)


# -- default rules at their thresholds ---------------------------------------------------

@pytest.mark.parametrize('kind, distance, vx, action', [
    (Alert.KIND_COLLISION, 499.0, 0.5, PolicyState.ACTION_SLOW_DOWN),
    (Alert.KIND_COLLISION, 501.0, 1.0, PolicyState.ACTION_NONE),
    (Alert.KIND_BLOCKAGE, 199.0, 0.0, PolicyState.ACTION_STOP),
    (Alert.KIND_BLOCKAGE, 201.0, 1.0, PolicyState.ACTION_NONE),
])
def test_default_rules_at_thresholds(ros, kind, distance, vx, action):
    """Collision within 500 m halves cmd_vel, blockage within 200 m stops it; beyond, nothing."""
    rig = Rig(ros)
    assert rig.wait_output(1.0)
    rig.alert(1, kind=kind, distance=distance)
    assert rig.wait_known(1)
    assert rig.wait_output(vx)
    assert rig.wait_fresh_outputs(3) and rig.linear_x() == pytest.approx(vx)
    assert rig.wait_action(action)
    state = rig.states[-1]
    if action == PolicyState.ACTION_NONE:
        assert state.rule == '' and math.isnan(state.speed_limit)
    else:
        assert (state.source_id, state.sequence) == (rig.source, 1)
        assert state.distance_m == pytest.approx(distance)
        assert state.rule == ('slow_hazard' if kind == Alert.KIND_COLLISION else 'stop_blockage')
        assert state.speed_limit == pytest.approx(0.0 if vx == 0.0 else 1.0)
    if vx == 0.5:
        angular = rig.out[-1].angular.z
        assert angular == pytest.approx(0.2)  # angular scaled by the ratio too


# -- lifecycle ---------------------------------------------------------------------------

def test_expiry_releases_after_hold_time(ros):
    """An alert stops the vehicle until detection_time + validity_s, then hold_time_s more."""
    rig = Rig(ros, hold_time_s=1.0)
    assert rig.wait_output(1.0)
    detected = rig.now()
    rig.alert(1, kind=Alert.KIND_BLOCKAGE, distance=100.0, validity=2.0, detection=detected)
    assert rig.wait_output(0.0)
    assert rig.wait_action(PolicyState.ACTION_STOP)
    assert rig.wait_action(PolicyState.ACTION_NONE, timeout=WAIT)
    released = rig.now()
    assert released >= detected + 2.0 + 1.0 - 0.05
    assert rig.wait_output(1.0)


def test_cancellation_releases_after_hold_time(ros):
    """A cancellation releases the stop only after hold_time_s."""
    rig = Rig(ros, hold_time_s=1.0)
    msg = rig.alert(1, kind=Alert.KIND_BLOCKAGE, distance=100.0)
    assert rig.wait_output(0.0)
    assert rig.wait_action(PolicyState.ACTION_STOP)
    cancelled_at = rig.now()
    rig.cancel(msg)
    assert rig.wait_action(PolicyState.ACTION_NONE)
    assert rig.now() - cancelled_at >= 1.0 - 0.05
    assert rig.wait_output(1.0)
    assert rig.policy.counts['alerts_cancelled'] == 1


def test_update_replaces_the_alert(ros):
    """An update (newer stamp) replaces the event: slow -> stop at once, then release on hold."""
    rig = Rig(ros)
    t = rig.now()
    rig.alert(7, kind=Alert.KIND_COLLISION, distance=400.0, stamp=t)
    assert rig.wait_output(0.5)
    rig.alert(7, kind=Alert.KIND_BLOCKAGE, distance=150.0, stamp=t + 0.5)
    assert rig.wait_output(0.0)
    assert rig.wait_action(PolicyState.ACTION_STOP)
    assert rig.states[-1].distance_m == pytest.approx(150.0)
    rig.alert(7, kind=Alert.KIND_BLOCKAGE, distance=300.0, stamp=t + 1.0)
    assert rig.wait_output(1.0)
    counts = rig.policy.counts
    assert counts['alerts_new'] == 1 and counts['alerts_updated'] == 2
    assert rig.policy.state.active_alerts() == 1


def test_two_overlapping_alerts_most_restrictive_wins(ros):
    """A stop and a slow down overlap: stop; cancel the stop: slow down; cancel both: free."""
    rig = Rig(ros)
    slow = rig.alert(1, kind=Alert.KIND_FIRE, distance=300.0)
    stop = rig.alert(2, kind=Alert.KIND_BLOCKAGE, distance=100.0)
    assert rig.wait_output(0.0)
    assert rig.wait_action(PolicyState.ACTION_STOP) and rig.states[-1].sequence == 2
    rig.cancel(stop)
    assert rig.wait_output(0.5)
    assert rig.wait_action(PolicyState.ACTION_SLOW_DOWN) and rig.states[-1].sequence == 1
    rig.cancel(slow)
    assert rig.wait_output(1.0)


def test_fix_movement_crosses_the_500_m_line(ros):
    """With /fix and an alert position, the distance follows the vehicle across 500 m."""
    rig = Rig(ros)
    rig.fix_at = (EVENT_LAT - 600.0 / DEG_M, EVENT_LON)
    assert rig.ros.spin_until(lambda: rig.policy.state.fix is not None, WAIT)
    rig.alert(1, kind=Alert.KIND_COLLISION, distance=math.nan, lat=EVENT_LAT, lon=EVENT_LON)
    assert rig.wait_known(1)
    assert rig.wait_fresh_outputs(3) and rig.linear_x() == pytest.approx(1.0)
    rig.fix_at = (EVENT_LAT - 450.0 / DEG_M, EVENT_LON)
    assert rig.wait_output(0.5)
    assert rig.wait_action(PolicyState.ACTION_SLOW_DOWN)
    assert rig.states[-1].distance_m == pytest.approx(450.0, abs=0.5)
    rig.fix_at = (EVENT_LAT - 700.0 / DEG_M, EVENT_LON)
    assert rig.wait_output(1.0)


def test_late_started_policy_picks_up_live_alert(ros):
    """A policy started after the alert was published still acts on it; an expired one not."""
    rig = Rig(ros, start_policy=False)
    rig.alert(1, kind=Alert.KIND_COLLISION, distance=300.0, validity=60.0)
    rig.alert(2, kind=Alert.KIND_BLOCKAGE, distance=50.0, validity=15.0,
              detection=rig.now() - 30.0)  # expired 15 s ago: must not stop us
    ros.spin_for(0.3)
    rig.start_policy()
    assert rig.wait_output(0.5)
    assert rig.wait_action(PolicyState.ACTION_SLOW_DOWN)
    assert rig.ros.spin_until(lambda: rig.policy.counts['alerts_expired'] >= 1, WAIT)
    assert rig.wait_fresh_outputs(3) and rig.linear_x() == pytest.approx(0.5)


def test_stop_inside_a_burst_acts_and_nothing_is_dropped(ros):
    """3,000 far alerts published at once with a real stop in the middle: every one reaches
    the policy (none overwritten in a queue) and the vehicle stops for that one."""
    rig = Rig(ros)
    assert rig.wait_output(1.0)
    burst = 3000
    for seq in range(1, burst + 1):
        if seq == burst // 2:
            rig.alert(seq, kind=Alert.KIND_BLOCKAGE, distance=50.0, validity=60.0,
                      source='rsu_real')
        else:
            rig.alert(seq, kind=Alert.KIND_BLOCKAGE, distance=5000.0, validity=60.0)
    assert rig.ros.spin_until(lambda: rig.policy.counts['alerts_received'] == burst, 60.0), \
        rig.policy.counts
    assert rig.wait_action(PolicyState.ACTION_STOP)
    assert (rig.states[-1].source_id, rig.states[-1].sequence) == ('rsu_real', burst // 2)
    assert rig.wait_output(0.0)
    assert rig.policy.counts['alerts_new'] == burst and rig.policy.state.active_alerts() == burst


# -- inputs and outputs ------------------------------------------------------------------

def test_stale_input_gets_one_zero_and_nothing_faster(ros):
    """When cmd_vel_in goes silent exactly one zero command follows; one output per input."""
    rig = Rig(ros, teleop_hz=0, cmd_timeout_s=0.3)
    assert rig.ros.spin_until(lambda: rig.out or rig.send_cmd(), WAIT)  # connected
    assert rig.ros.spin_until(lambda: rig.linear_x() == 0.0, WAIT)  # the stale zero
    assert rig.policy.counts['stale_zero_sent'] == 1
    before = len(rig.out)
    ros.spin_for(1.0)  # silence stays silent: no second zero, no repeats
    assert len(rig.out) == before
    for i in range(3):
        rig.send_cmd(vx=0.1 * (i + 1))
        assert rig.ros.spin_until(lambda i=i: len(rig.out) == before + i + 1, WAIT)
    assert [m.linear.x for m in rig.out[before:]] == pytest.approx([0.1, 0.2, 0.3])
    assert rig.ros.spin_until(lambda: len(rig.out) == before + 4, WAIT)
    assert rig.linear_x() == 0.0 and rig.out[-1].angular.z == 0.0
    assert rig.policy.counts['stale_zero_sent'] == 2
    ros.spin_for(0.5)
    assert len(rig.out) == before + 4


def test_stricter_decision_resends_the_last_command_at_once(ros):
    """An alert that tightens the decision re-sends the last command filtered, not waiting."""
    rig = Rig(ros, teleop_hz=0, cmd_timeout_s=60.0)
    assert rig.ros.spin_until(lambda: rig.out or rig.send_cmd(), WAIT)
    sent = rig.sent
    rig.alert(1, kind=Alert.KIND_BLOCKAGE, distance=100.0)
    assert rig.wait_output(0.0)
    assert rig.sent == sent  # no new input: the policy re-sent the last one
    assert rig.policy.counts['stale_zero_sent'] == 0


def test_twist_stamped_mode(ros):
    """With stamped:=true TwistStamped is filtered and its header kept."""
    rig = Rig(ros, stamped=True)
    rig.alert(1, kind=Alert.KIND_COLLISION, distance=100.0)
    assert rig.wait_output(0.5)
    last = rig.out[-1]
    assert last.header.frame_id == 'base_link' and last.header.stamp.sec > 0
    assert last.twist.angular.z == pytest.approx(0.2)


def test_disabled_passes_through_and_reenabling_restores(ros):
    """~/set_enabled false passes commands unfiltered and says so; true filters again."""
    rig = Rig(ros)
    rig.alert(1, kind=Alert.KIND_BLOCKAGE, distance=100.0)
    assert rig.wait_output(0.0)
    client = rig.helper.create_client(SetBool, 'speed_policy/set_enabled')
    assert client.wait_for_service(timeout_sec=WAIT)

    def call(flag):
        future = client.call_async(SetBool.Request(data=flag))
        assert rig.ros.spin_until(future.done, WAIT)
        return future.result()

    reply = call(False)
    assert reply.success and 'unfiltered' in reply.message
    assert rig.wait_output(1.0)
    assert rig.ros.spin_until(lambda: not rig.states[-1].enabled, WAIT)
    assert rig.states[-1].action == PolicyState.ACTION_NONE
    assert rig.out[-1].angular.z == pytest.approx(0.4)
    assert call(True).success
    assert rig.wait_output(0.0)
    assert rig.ros.spin_until(lambda: rig.states[-1].enabled, WAIT)
    assert rig.states[-1].action == PolicyState.ACTION_STOP


def test_policy_state_repeats_at_1hz(ros):
    """PolicyState is published again every second even when nothing changes."""
    rig = Rig(ros, teleop_hz=0)
    assert rig.ros.spin_until(lambda: len(rig.states) >= 3, WAIT)
    stamps = [s.header.stamp.sec + s.header.stamp.nanosec * 1e-9 for s in rig.states[-3:]]
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert all(0.5 < g < 2.0 for g in gaps), gaps
    assert all(s.enabled and s.action == PolicyState.ACTION_NONE for s in rig.states)


def test_stale_rsu_keeps_acting_or_stops_by_parameter(ros):
    """rsu_stale_action:=stop turns a slow down into a stop while an RSU is stale."""
    rig = Rig(ros, rsu_stale_action='stop')
    rig.alert(1, kind=Alert.KIND_COLLISION, distance=300.0)
    assert rig.wait_output(0.5)
    peers = PeerArray(peers=[PeerStatus(source_id=rig.source, role=Heartbeat.ROLE_RSU,
                                        stale=True)])

    def publish_and_check():
        rig.peers_pub.publish(peers)
        return rig.linear_x() == 0.0

    assert rig.ros.spin_until(publish_and_check, WAIT)
    assert rig.wait_action(PolicyState.ACTION_STOP)
    assert rig.states[-1].rule == 'slow_hazard+rsu_stale'


def test_rsu_camera_fault_stops_by_parameter(ros):
    """rsu_camera_action:=stop: an RSU's ERROR of another kind changes nothing; its heartbeat
    saying 'rsu degraded: camera frozen' turns a slow down into a stop."""
    rig = Rig(ros, rsu_camera_action='stop')
    rig.alert(1, kind=Alert.KIND_COLLISION, distance=300.0)
    assert rig.wait_output(0.5)

    def peers(message):  # (a stale RSU beside: shows the message was taken; stale: keep)
        return PeerArray(peers=[PeerStatus(source_id=rig.source, role=Heartbeat.ROLE_RSU,
                                           status=Heartbeat.STATUS_ERROR,
                                           status_message=message),
                                PeerStatus(source_id='rsu_gone', role=Heartbeat.ROLE_RSU,
                                           stale=True)])
    rig.peers_pub.publish(peers('two stations use one station id'))
    assert rig.ros.spin_until(lambda: rig.policy.state.stale_rsus == {'rsu_gone'}, WAIT)
    assert rig.policy.state.camera_degraded_rsus == frozenset() and rig.linear_x() != 0.0

    def publish_and_check():
        rig.peers_pub.publish(peers('rsu degraded: camera frozen'))
        return rig.linear_x() == 0.0

    assert rig.ros.spin_until(publish_and_check, WAIT)
    assert rig.wait_action(PolicyState.ACTION_STOP)
    assert rig.states[-1].rule == 'slow_hazard+rsu_camera'


def test_hostile_inputs_are_dropped_and_counted(ros):
    """NaN commands and alerts with unusable times (NaN validity, a detection_time before
    1970) are dropped, counted, and nothing crashes."""
    rig = Rig(ros, teleop_hz=0)
    diagnostics = []
    rig.helper.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append,
                                   qos.DIAGNOSTICS)
    assert rig.ros.spin_until(lambda: rig.helper.count_subscribers('cmd_vel_in') > 0, WAIT)
    rig.alert(1, kind=Alert.KIND_BLOCKAGE, distance=10.0, validity=math.nan)
    rig.alert(2, kind=Alert.KIND_BLOCKAGE, distance=10.0, detection=-5.0)
    rig.send_cmd(vx=math.nan)
    assert rig.ros.spin_until(
        lambda: rig.policy.counts['cmd_dropped_nonfinite'] == 1
        and rig.policy.counts['alerts_invalid'] == 2, WAIT)
    rig.send_cmd(vx=0.7)
    assert rig.wait_output(0.7)  # still alive, and the bad alert does not stop us
    assert rig.ros.spin_until(lambda: any(
        kv.key == 'alerts_invalid' and kv.value == '2'
        for d in diagnostics for s in d.status if s.name == f'{rig.ns[1:]}/speed_policy'
        for kv in s.values), WAIT)


# -- parameters --------------------------------------------------------------------------

def _flatten(tree, prefix=''):
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            yield from _flatten(value, name + '.')
        else:
            yield name, value


def test_every_config_key_is_a_declared_parameter(ros):
    """Each key of launch/config/speed_policy.yaml is declared by the node, with that value."""
    params = yaml.safe_load(CONFIG.read_text())['/**']['ros__parameters']
    keys = dict(_flatten(params))
    node = ros.add(SpeedPolicy(context=ros.context,
                               cli_args=['--ros-args', '--params-file', str(CONFIG)]))
    for key, value in keys.items():
        assert node.has_parameter(key), f'{key} in {CONFIG.name} is not declared'
        assert node.get_parameter(key).value == value, key
    assert len(keys) >= 25


@pytest.mark.parametrize('overrides, entry', [
    # a rule listed without its fields
    ({'rules': ['slow_hazard', 'my_rule']}, 'my_rule.kinds'),
    # an unknown action
    ({'stop_blockage.action': 'honk'}, 'stop_blockage.action'),
    # an unknown kind
    ({'slow_hazard.kinds': ['collision', 'meteor']}, 'slow_hazard.kinds'),
    # a negative distance
    ({'slow_hazard.max_distance_m': -5.0}, 'slow_hazard.max_distance_m'),
    # a custom rule given all but its action
    ({'rules': ['near'], 'near.kinds': ['fire'], 'near.max_distance_m': 20}, 'near.action'),
    # a ratio above 1 would speed the vehicle up
    ({'slowdown_ratio': 2.0}, 'slowdown_ratio'),
    # an unknown stale-RSU action
    ({'rsu_stale_action': 'panic'}, 'rsu_stale_action'),
])
def test_bad_parameters_stop_the_node_naming_the_entry(ros, overrides, entry):
    """A bad rule or setting refuses to start with an error naming the parameter."""
    params = [Parameter(k, value=v) for k, v in overrides.items()]
    with pytest.raises((ParameterError, ParameterException)) as info:
        SpeedPolicy(context=ros.context, parameter_overrides=params)
    assert entry in str(info.value)


def test_custom_rule_from_parameters_acts(ros):
    """A rule defined only by parameters (Nav2 style) filters commands."""
    rig = Rig(ros, rules=['fire_near'], **{
        'fire_near.kinds': ['fire'], 'fire_near.max_distance_m': 50,
        'fire_near.action': 'stop'})
    rig.alert(1, kind=Alert.KIND_FIRE, distance=60.0)
    assert rig.wait_known(1)
    assert rig.wait_fresh_outputs(3) and rig.linear_x() == 1.0
    rig.alert(2, kind=Alert.KIND_FIRE, distance=40.0)
    assert rig.wait_output(0.0)
    assert rig.wait_action(PolicyState.ACTION_STOP) and rig.states[-1].rule == 'fire_near'


def test_executable_with_the_config_filters_commands(ros):
    """The installed speed_policy, run with launch/config/speed_policy.yaml, slows on an alert."""
    rig = Rig(ros, start_policy=False)
    proc = subprocess.Popen(
        ['speed_policy', '--ros-args', '--params-file', str(CONFIG), '-r', f'__ns:={rig.ns}'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert rig.wait_output(1.0, timeout=30.0)
        rig.alert(1, kind=Alert.KIND_COLLISION, distance=500.0, validity=15.0)
        assert rig.wait_output(0.5)
        assert rig.wait_action(PolicyState.ACTION_SLOW_DOWN)
        assert rig.states[-1].rule == 'slow_hazard'
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert 'slow_down by rule slow_hazard' in output


def test_executable_exits_nonzero_naming_the_entry():
    """The installed speed_policy exits 2 with a message naming a rule listed without fields."""
    proc = subprocess.run(
        ['speed_policy', '--ros-args', '-p', 'rules:=[slow_hazard, ghost]'],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, 'ROS_DOMAIN_ID': str(random_domain_id())})
    assert proc.returncode == 2, proc.stderr
    assert 'ghost.kinds' in proc.stderr + proc.stdout

