"""vehicle_stack: alert_gateway and speed_policy composed in one process, for real.

Started as launch/vehicle.launch.xml with compose:=true builds it (both nodes' parameter
files, the launch values, the remaps), it shows both nodes under their own names, a
signed alert from a real RSU gateway slows the commands it filters, and Ctrl-C ends it
with status 0.
"""

import os
from pathlib import Path
import signal
import subprocess
import sys

from geometry_msgs.msg import Twist
from rclpy.parameter import Parameter

from v2x_bridge.alert_gateway import AlertGateway
from v2x_common import qos
from v2x_msgs.msg import Alert

WS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(WS / 'scripts'))
import v2x_launch  # noqa: E402


def test_composed_vehicle_stack_filters_and_stops_cleanly(ros, mcast, tmp_path, monkeypatch):
    """One process holds both nodes; an RSU alert (blockage near, stop) zeroes cmd_vel."""
    monkeypatch.setenv('V2X_KEY', 'stack-key-0123456789abcdef')  # >= 16 bytes
    specs = v2x_launch.Launcher({
        'compose': 'true', 'namespace': 'car', 'iface': '127.0.0.1', 'group': mcast['group'],
        'port': str(mcast['port']), 'state_dir': str(tmp_path), 'csv_log': '',
        'key_file': '', 'profile': str(WS / 'launch/config/demo.yaml')}).load(
            WS / 'launch/vehicle.launch.xml')
    assert [s.exec for s in specs] == ['vehicle_stack']
    argv = v2x_launch.build_argv(specs[0], tmp_path)
    proc = subprocess.Popen(argv, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        rsu = AlertGateway(context=ros.context, parameter_overrides=[
            Parameter('iface', value='127.0.0.1'), Parameter('group', value=mcast['group']),
            Parameter('port', value=mcast['port']), Parameter('state_dir', value=str(tmp_path)),
            Parameter('loopback', value=True)])
        ros.add(rsu)
        node = ros.node('stack_probe')
        outs = []
        node.create_subscription(Twist, '/car/cmd_vel', outs.append, qos.CMD_VEL)
        cmd = node.create_publisher(Twist, '/car/cmd_vel_in', qos.CMD_VEL)
        alert_out = node.create_publisher(Alert, 'v2x/alert_out', qos.ALERT_OUT)

        def names():
            return {(ns, n) for n, ns in node.get_node_names_and_namespaces()}

        def send():
            msg = Twist()
            msg.linear.x = 1.0
            cmd.publish(msg)
            return bool(outs)
        assert ros.spin_until(lambda: {('/car', 'alert_gateway'), ('/car', 'speed_policy')}
                              <= names(), timeout=60), proc.stdout.read() if \
            proc.poll() is not None else 'nodes missing'
        assert ros.spin_until(send, timeout=30)
        alert = Alert(kind=Alert.KIND_BLOCKAGE, severity=Alert.SEVERITY_HIGH,
                      suggest=Alert.SUGGEST_STOP, distance_m=50.0, validity_s=60.0)
        alert_out.publish(alert)
        assert ros.spin_until(lambda: send() and outs[-1].linear.x == 0.0, timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out[-3000:]
    assert 'Traceback' not in out
