"""docs/event_intake.md's crash table, for real: SIGKILL the event_intake process at each
step (after the ledger insert, after the publish, after the `published` mark, between
link and unlink), restart it, and count the alerts a subscriber in another process got.

The four crash points run side by side (one directory tree and one road name each), so
the whole table costs two start-ups of the node, not eight.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from v2x_msgs.msg import Alert

EXE = shutil.which('event_intake')
pytestmark = pytest.mark.skipif(EXE is None, reason='event_intake not on PATH (make build)')
KEEP_ALL = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)

# The node's own main(), with one step wrapped so that the process SIGKILLs itself right
# after it (no hook in the product: the test patches the real functions it calls).
DRIVER = r"""
import os, signal, sys
from v2x_intake import event_intake, ledger

def die_after(owner, name):
    real = getattr(owner, name)
    def wrapped(*args, **kwargs):
        result = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(owner, name, wrapped)

point = os.environ.get('CRASH_AT', '')
if point == 'after_insert':
    die_after(ledger.Ledger, 'add')
elif point == 'after_publish':
    die_after(event_intake.EventIntake, '_publish')
elif point == 'after_mark':
    die_after(ledger.Ledger, 'mark')
elif point == 'after_link':
    die_after(os, 'link')
event_intake.main(sys.argv[1:])
"""

# crash point -> how many alerts the subscriber may count in the end (the table's rows)
EXPECTED = {
    'after_insert': {1},     # the pending row is published at restart
    'after_publish': {1, 2},  # the one duplicate window: published again at restart
    'after_mark': {1},       # published row, file still there: only moved
    'after_link': {1},       # same inode in processed/: only unlinked
}


def _start(tmp_path, point, crash):
    root = tmp_path / point
    args = [sys.executable, '-c', DRIVER, '--ros-args',
            '-p', f'events_dir:={root / "events"}', '-p', 'http_enabled:=false']
    env = dict(os.environ, CRASH_AT=point if crash else '')
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _wait_for_line(proc, word, timeout=60.0):
    end = time.monotonic() + timeout
    seen = []
    while time.monotonic() < end:
        line = proc.stdout.readline()
        seen.append(line)
        if not line or word in line:
            return ''.join(seen)
    return ''.join(seen)


def test_crash_table(ros, tmp_path):
    """Killed at each step and restarted, every event is published once (twice at most when
    killed between the publish and its `published` mark), and its file ends in processed/."""
    alerts = []
    listener = ros.node('crash_table_listener')
    listener.create_subscription(Alert, 'v2x/alert_out', alerts.append, KEEP_ALL)
    procs = {point: _start(tmp_path, point, crash=True) for point in EXPECTED}
    try:
        for proc in procs.values():
            out = _wait_for_line(proc, 'watching')
            assert 'watching' in out, out
        # held until our subscriber is matched: then each process publishes, and dies
        for point in EXPECTED:
            doc = {'ts': time.time(), 'type': 'collision', 'severity': 'high', 'lat': 1.0,
                   'lon': 2.0, 'road': point, 'distance_m': 10, 'clip_hint': False,
                   'event_id': f'crash-{point}'}
            (tmp_path / point / 'events' / 'e.json').write_text(json.dumps(doc))
        for point, proc in procs.items():
            ros.spin_until(lambda p=proc: p.poll() is not None, 60)
            out, _ = proc.communicate(timeout=10)
            assert proc.returncode == -signal.SIGKILL, f'{point}: {out}'
        procs = {point: _start(tmp_path, point, crash=False) for point in EXPECTED}
        for proc in procs.values():
            assert 'watching' in _wait_for_line(proc, 'watching')

        def settled():
            return all((tmp_path / p / 'processed' / 'e.json').exists()
                       and not (tmp_path / p / 'events' / 'e.json').exists()
                       and any(a.road == p for a in alerts) for p in EXPECTED)

        assert ros.spin_until(settled, 60), [a.road for a in alerts]
        for proc in procs.values():
            proc.send_signal(signal.SIGINT)  # waits for our acknowledgements, then exits
        for point, proc in procs.items():
            out, _ = proc.communicate(timeout=30)
            assert proc.returncode == 0, f'{point}: {out}'
        ros.spin_until(lambda: False, 1.0)  # take whatever was acknowledged but not taken
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    counts = {point: sum(a.road == point for a in alerts) for point in EXPECTED}
    assert all(counts[p] in EXPECTED[p] for p in EXPECTED), counts
    for point in EXPECTED:
        assert os.listdir(tmp_path / point / 'processed') == ['e.json']
        assert os.listdir(tmp_path / point / 'events') == []
        assert os.listdir(tmp_path / point / 'failed') == []
