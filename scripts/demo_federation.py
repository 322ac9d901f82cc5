"""The demo's federation part (issue 15): a second vehicle reached only through a broker.

scripts/demo.py calls this when mosquitto is installed (``--no-broker`` skips it): a
mosquitto on 127.0.0.1 (a plain, anonymous lab broker: the gateways warn about it; the
alerts stay signed end to end), the RSU stack publishing to it, and a second vehicle
stack on its own ROS domain and another multicast group, so the RSU's radio cannot reach
it: only the broker can. The timeline then shows which path delivered the alert to each
vehicle (Alert.path) and that the second vehicle slowed down too.
"""

from __future__ import annotations

from pathlib import Path
import shutil
import subprocess
import time

from geometry_msgs.msg import Twist

from v2x_common import qos
from v2x_msgs.msg import Alert

PATHS = {Alert.PATH_LOCAL: 'local', Alert.PATH_RADIO: 'radio', Alert.PATH_BROKER: 'broker',
         Alert.PATH_DENM: 'denm'}


def available() -> bool:
    """mosquitto is installed (make setup installs it)."""
    return bool(shutil.which('mosquitto') or Path('/usr/sbin/mosquitto').exists())


class Broker:
    """`mosquitto -c FILE` in the foreground on a free port, anonymous, loopback only."""

    def __init__(self, work: Path):
        import socket
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            self.port = s.getsockname()[1]
        conf = work / 'mosquitto.conf'
        conf.write_text(f'listener {self.port} 127.0.0.1\nallow_anonymous true\n'
                        'log_dest stdout\n')
        self.url = f'mqtt://127.0.0.1:{self.port}'
        self.log = open(work / 'logs/mosquitto.log', 'w')  # noqa: SIM115 (closed in stop())
        exe = shutil.which('mosquitto') or '/usr/sbin/mosquitto'
        self.proc = subprocess.Popen([exe, '-c', str(conf)], stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class FarVehicle:
    """The second vehicle's stack (broker only) and what the observer sees of it."""

    def __init__(self, stack_cls, observer, work: Path, common: dict, domain: int,
                 group: str, port: int, broker: Broker):
        self.domain = domain
        self.stack = stack_cls('vehicle2', 'vehicle.launch.xml', domain, {
            **common, 'group': group, 'port': str(port), 'station_id': 'vehicle_02',
            'state_dir': str(work / 'vehicle2_state'), 'csv_log': str(work / 'alerts2.csv'),
            'broker_url': broker.url}, work / 'logs/vehicle2.log')
        self.alerts: list[tuple[float, Alert]] = []
        self.cmd: list[tuple[float, Twist]] = []
        node = observer._node(domain, 'demo_observer_vehicle2')
        node.create_subscription(Alert, '/v2x/alert',
                                 lambda m: self.alerts.append((time.monotonic(), m)), qos.ALERT)
        node.create_subscription(Twist, '/cmd_vel',
                                 lambda m: self.cmd.append((time.monotonic(), m)), qos.CMD_VEL)
        teleop = node.create_publisher(Twist, '/cmd_vel_in', qos.CMD_VEL)
        drive = Twist()
        drive.linear.x, drive.angular.z = 2.0, 0.2
        node.create_timer(0.1, lambda: teleop.publish(drive))
        # the observer's spin threads started before this node: spin it here
        import threading
        ex = observer.executors[-1]
        threading.Thread(target=observer._spin, args=(ex,), daemon=True).start()


def check(tl, ob, far: FarVehicle, sent: Alert, t_sent: float, wait_for, stacks,
          speed: float) -> str | None:
    """Timeline steps of the federation part; the failed step's name, or None."""
    mine = [(t, a) for t, a in ob.alerts
            if (a.source_id, a.sequence) == (sent.source_id, sent.sequence)]
    if mine:
        tl.say(f'vehicle 1 (on the RSU multicast group) got seq={sent.sequence} via '
               f'{PATHS.get(mine[0][1].path, "?")}', at=mine[0][0])

    def got():
        return [(t, a) for t, a in far.alerts
                if (a.source_id, a.sequence) == (sent.source_id, sent.sequence)]
    if not wait_for(lambda: bool(got()), 30, stacks):
        return 'vehicle 2 (other multicast group) gets the alert through the broker'
    t_got, a = got()[0]
    tl.step('broker', f'vehicle 2 (another multicast group: no radio from this RSU) got '
            f'seq={a.sequence} via {PATHS.get(a.path, "?")}, '
            f'{(t_got - t_sent) * 1000:.1f} ms after the broadcast was seen', at=t_got)

    def slowed():
        return [(t, m) for t, m in far.cmd if t >= t_sent and m.linear.x < speed - 1e-3]
    if not wait_for(lambda: bool(slowed()), 20, stacks):
        return 'vehicle 2 slows down (/cmd_vel on its domain)'
    t_slow, m = slowed()[0]
    tl.step('broker_act', f'vehicle 2 /cmd_vel {m.linear.x:.2f} m/s: it slowed down too',
            at=t_slow)
    return None
