from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

from v2x_common import qos
from v2x_common.diagnostics import ERROR, OK, WARN, Diagnostics


def test_qos_profiles_follow_the_contract():
    """Depth, reliability and durability of each profile are those of ARCHITECTURE.md."""
    table = {
        'ALERT_OUT': (50, DurabilityPolicy.VOLATILE),
        'ALERT_SENT': (50, DurabilityPolicy.VOLATILE),
        'ALERT': (1000, DurabilityPolicy.TRANSIENT_LOCAL),
        'ALERT_READER': (10_000, DurabilityPolicy.TRANSIENT_LOCAL),
        'HEARTBEAT': (10, DurabilityPolicy.VOLATILE),
        'PEERS': (1, DurabilityPolicy.VOLATILE),
        'MARKERS': (1, DurabilityPolicy.TRANSIENT_LOCAL),
        'CLIP': (20, DurabilityPolicy.TRANSIENT_LOCAL),
        'POLICY_STATE': (1, DurabilityPolicy.TRANSIENT_LOCAL),
        'CMD_VEL': (1, DurabilityPolicy.VOLATILE),
    }
    for name, (depth, durability) in table.items():
        profile = getattr(qos, name)
        assert profile.depth == depth, name
        assert profile.durability == durability, name
        assert profile.reliability == ReliabilityPolicy.RELIABLE, name
    assert qos.SENSOR_DATA.reliability == ReliabilityPolicy.BEST_EFFORT


def test_diagnostics_published_from_status_fn(ros):
    """A status function's level, message and values arrive on /diagnostics at 1 Hz."""
    counter = {'n': 0}

    def health():
        counter['n'] += 1
        return WARN, 'ffmpeg restarted', {'restarts': counter['n'], 'ok': True, 'rate': 0.5}

    node = ros.node('diag_under_test')
    Diagnostics(node, status_fn=health, period_s=0.2)
    got = []
    listener = ros.node('diag_listener')
    listener.create_subscription(DiagnosticArray, '/diagnostics', got.append, qos.DIAGNOSTICS)
    assert ros.spin_until(lambda: len(got) >= 2, timeout=10)
    status = got[-1].status[0]
    assert status.name == 'diag_under_test'
    assert status.level == bytes([WARN])
    assert status.message == 'ffmpeg restarted'
    values = {kv.key: kv.value for kv in status.values}
    assert values['ok'] == 'true' and values['rate'] == '0.5'
    assert int(values['restarts']) >= 2  # called again at each tick


def test_diagnostics_push_style(ros):
    """set() replaces level and message and merges values."""
    node = ros.node('diag_push')
    diag = Diagnostics(node, period_s=10.0)
    diag.set(OK, 'fine', a=1)
    diag.set(ERROR, 'no camera', b='x')
    array = diag.publish()
    status = array.status[0]
    assert status.level == bytes([ERROR]) and status.message == 'no camera'
    assert {kv.key: kv.value for kv in status.values} == {'a': '1', 'b': 'x'}
