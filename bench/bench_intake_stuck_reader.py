"""Bench event_intake with a reader that stops acknowledging (a hung gateway: its process
SIGSTOPped while still matched): how long N dropped files take to be published.

Beside it, in the same run, the same N files with the reader running (the baseline).
Measured on 2 loaded cores (this script; the old figures with the code before the
change): with the pacing wait inside the publish, before the `published` mark, the
baseline took 15.0 s (13 files/s, 5 two-second timeouts: Fast DDS acknowledges on its
heartbeat period) and the stopped reader 20.0 s (9 timeouts); now 2.9 s (68 files/s,
1 timeout) and 3.6 s. Every alert reached the running reader in both versions; a reader
stopped for the whole burst gets the last 50 (ALERT_OUT's depth) once it resumes.

Usage (inside scripts/env.sh):  python bench/bench_intake_stuck_reader.py [--files 200]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import _path  # noqa: F401  (tests/support: the test harness)
from rclpy.duration import Duration
from rclpy.parameter import Parameter

from v2x_intake.event_intake import EventIntake
from v2x_testing import RosHarness

READER = """
import rclpy, time
from v2x_common import qos
from v2x_msgs.msg import Alert
rclpy.init()
node = rclpy.create_node("bench_reader")
got = set()
node.create_subscription(Alert, "v2x/alert_out", lambda m: got.add(m.road), qos.ALERT_OUT)
print("ready", flush=True)
try:
    rclpy.spin(node)
except KeyboardInterrupt:
    print(len(got), flush=True)
"""


def run(harness: RosHarness, files: int, stop_reader: bool) -> tuple[float, int, int]:
    """Seconds until every file is in processed/, the node's ack timeouts, and how many
    alerts the reader got (after SIGCONT, for the stopped one: reliable resends)."""
    reader = subprocess.Popen([sys.executable, '-c', READER], stdout=subprocess.PIPE, text=True)
    reader.stdout.readline()
    tmp = tempfile.mkdtemp(prefix='bench_stuck_')
    node = EventIntake(context=harness.context, parameter_overrides=[
        Parameter('events_dir', value=os.path.join(tmp, 'events')),
        Parameter('http_enabled', value=False)])
    harness.add(node)
    try:
        assert harness.spin_until(lambda: node._pub.get_subscription_count() > 0, 30)
        if stop_reader:
            os.kill(reader.pid, signal.SIGSTOP)
        start = time.monotonic()
        for i in range(files):
            with open(os.path.join(tmp, 'events', f'e{i}.json'), 'w') as f:
                f.write(json.dumps({'type': 'fire', 'road': str(i)}))
        processed = os.path.join(tmp, 'processed')
        harness.spin_until(lambda: len(os.listdir(processed)) >= files, 300)
        seconds = time.monotonic() - start
        if stop_reader:
            os.kill(reader.pid, signal.SIGCONT)
        node._pub.wait_for_all_acked(Duration(seconds=20))
        reader.send_signal(signal.SIGINT)
        got = int(reader.communicate(timeout=30)[0].split()[-1])
        return seconds, node.intake.stats['ack_timeouts'], got
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
        harness.remove(node)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--files', type=int, default=200)
    opts = parser.parse_args()
    harness = RosHarness()
    os.environ['ROS_DOMAIN_ID'] = str(harness.domain_id)
    try:
        print(f'event_intake, {opts.files} dropped files; {os.cpu_count()} CPUs')
        for label, stop in (('reader running (baseline)', False), ('reader stopped', True)):
            seconds, timeouts, got = run(harness, opts.files, stop)
            print(f'{label:28} {seconds:6.2f} s  {opts.files / seconds:6.0f} files/s  '
                  f'ack timeouts {timeouts}  reader got {got}/{opts.files}')
    finally:
        harness.close()


if __name__ == '__main__':
    main()
