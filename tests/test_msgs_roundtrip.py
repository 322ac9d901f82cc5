import math
import os
import subprocess
import sys
import textwrap

from v2x_common import qos
from v2x_msgs.msg import Alert
from v2x_testing import _TEST_DOMAINS

PUBLISHER = textwrap.dedent("""
    import time, rclpy
    from v2x_common import qos
    from v2x_msgs.msg import Alert
    rclpy.init()
    node = rclpy.create_node('roundtrip_pub')
    pub = node.create_publisher(Alert, '/v2x/alert', qos.ALERT)
    m = Alert()
    m.header.stamp.sec, m.header.stamp.nanosec = 1737930000, 123456789
    m.header.frame_id = 'map'
    m.source_id = 'rsu_server_01'
    m.sequence = 4294967295
    m.kind = Alert.KIND_FIRE
    m.severity = Alert.SEVERITY_HIGH
    m.suggest = Alert.SUGGEST_STOP
    m.detection_time.sec, m.detection_time.nanosec = 1737929990, 5
    m.validity_s = 15.5
    m.cancelled = True
    m.latitude = 37.12345678901
    m.longitude = float('nan')
    m.road = 'segment_A/\u00fcberholspur'
    m.distance_m = 499.75
    m.confidence = 0.875
    m.clip_requested = True
    m.clip_id = 'rsu_server_01-4294967295'
    pub.publish(m)
    # transient-local: the late subscriber still gets it; stay alive long enough.
    deadline = time.time() + 20
    while time.time() < deadline and pub.get_subscription_count() == 0:
        time.sleep(0.05)
    time.sleep(1.0)
    node.destroy_node(); rclpy.shutdown()
""")


def test_alert_round_trip_between_processes(ros):
    """An Alert published in another process arrives field-for-field through real DDS."""
    proc = subprocess.Popen([sys.executable, '-c', PUBLISHER], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    got = []
    node = ros.node('roundtrip_sub')
    node.create_subscription(Alert, '/v2x/alert', got.append, qos.ALERT)
    try:
        assert ros.spin_until(lambda: got, timeout=30), 'no Alert arrived'
    finally:
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    m = got[0]
    assert (m.header.stamp.sec, m.header.stamp.nanosec) == (1737930000, 123456789)
    assert m.header.frame_id == 'map'
    assert m.source_id == 'rsu_server_01'
    assert m.sequence == 4294967295
    assert m.kind == Alert.KIND_FIRE
    assert m.severity == Alert.SEVERITY_HIGH
    assert m.suggest == Alert.SUGGEST_STOP
    assert (m.detection_time.sec, m.detection_time.nanosec) == (1737929990, 5)
    assert m.validity_s == 15.5 and m.cancelled is True
    assert m.latitude == 37.12345678901 and math.isnan(m.longitude)
    assert m.road == 'segment_A/\u00fcberholspur'
    assert m.distance_m == 499.75 and m.confidence == 0.875
    assert m.clip_requested is True and m.clip_id == 'rsu_server_01-4294967295'


def test_other_domain_does_not_see_it(ros):
    """A publisher on another ROS_DOMAIN_ID is invisible: the per-test domains isolate tests."""
    other = next(d for d in _TEST_DOMAINS if d != ros.domain_id)
    result_holder = []
    code = PUBLISHER.replace('deadline = time.time() + 20', 'deadline = time.time() + 4')
    env = dict(os.environ, ROS_DOMAIN_ID=str(other))
    proc = subprocess.Popen([sys.executable, '-c', code], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = ros.node('roundtrip_other')
    node.create_subscription(Alert, '/v2x/alert', result_holder.append, qos.ALERT)
    ros.spin_for(5.0)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out  # the publisher really ran and published
    assert result_holder == []
