"""The event_intake executable as a real process: start-up checks, cross-process alerts, SIGINT."""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import httpx
import pytest
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from v2x_msgs.msg import Alert

EXE = shutil.which('event_intake')
pytestmark = pytest.mark.skipif(EXE is None, reason='event_intake not on PATH (make build)')
KEEP_ALL = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def run_intake(tmp_path, *params, env=None, **kwargs):
    args = [EXE, '--ros-args', '-p', f'events_dir:={tmp_path / "events"}',
            '-p', f'state_dir:={tmp_path / "state"}', '-p', 'http_port:=0']
    for p in params:
        args += ['-p', p]
    environ = {k: v for k, v in os.environ.items() if k != 'V2X_INTAKE_TOKEN'}
    environ.update(env or {})
    return subprocess.Popen(args, env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.parametrize('param, words', [
    ('default_validity_s:=-1.0', 'default_validity_s'),
    ('http_port:=70000', 'http_port'),
    ('settle_s:=0.0', 'settle_s'),
    ('max_clock_skew_s:=soon', 'max_clock_skew_s'),   # not a number
    ('http_enabled:=3', 'http_enabled'),               # wrong type
])
def test_bad_parameter_exits_naming_it(ros, tmp_path, param, words):
    """A bad value stops the node at start-up with a non-zero code naming the parameter."""
    proc = run_intake(tmp_path, param, env={'V2X_INTAKE_TOKEN': 'intake-test-token-0123'})
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert words in out and 'Traceback' not in out


def test_no_token_exits_with_a_hint(ros, tmp_path):
    """HTTP on without a token: exit 2 saying how to give one; the secret is never printed."""
    proc = run_intake(tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert 'token_file' in out and 'V2X_INTAKE_TOKEN' in out



def test_token_is_used_but_never_printed(ros, tmp_path):
    """HTTP on with the token from the environment: it is loaded and enforced, and appears
    nowhere in the output, also not when requests carry it or a wrong one."""
    secret = 'do-not-print-me-123'
    proc = run_intake(tmp_path, env={'V2X_INTAKE_TOKEN': secret})  # http_port:=0: HTTP on
    seen = []
    try:
        line = _wait_for_line(proc, 'watching', seen=seen)
        match = re.search(r'HTTP on 127\.0\.0\.1:(\d+)', line)
        assert match and 'WITHOUT a token' not in line, ''.join(seen)
        base = f'http://127.0.0.1:{match.group(1)}'
        assert ros.spin_until(lambda: _healthy(base), 30)
        doc = {'ts': time.time(), 'type': 'blockage', 'severity': 'medium', 'lat': 1.0,
               'lon': 2.0, 'road': 'secret-test', 'distance_m': 10, 'clip_hint': False}
        wrong = httpx.post(f'{base}/events', json=doc, timeout=10,
                           headers={'Authorization': f'Bearer {secret}x'})
        assert wrong.status_code == 401  # the token from the environment is enforced
        right = httpx.post(f'{base}/events', json=doc, timeout=10,
                           headers={'Authorization': f'Bearer {secret}'})
        assert right.status_code == 202, right.text
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, ''.join(seen) + out
    assert secret not in ''.join(seen) + out


def _wait_for_line(proc, word, timeout=30.0, seen=None):
    """Read the process's output until a line contains word; returns that line or ''.
    Every line read is appended to seen (when given)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if seen is not None:
            seen.append(line)
        if not line:
            return ''
        if word in line:
            return line
    return ''


def test_real_process_publishes_and_stops_cleanly(ros, tmp_path):
    """The executable publishes a POST and a file across processes and exits 0 on SIGINT;
    each accepted event is logged at info, each of 9 rejected files with its reason."""
    alerts = []
    listener = ros.node('process_listener')
    listener.create_subscription(Alert, 'v2x/alert_out', alerts.append, KEEP_ALL)
    token = 'process-test-token'
    proc = run_intake(tmp_path, env={'V2X_INTAKE_TOKEN': token})
    try:
        seen = []
        line = _wait_for_line(proc, 'watching', seen=seen)
        port = int(re.search(r'127\.0\.0\.1:(\d+)', line).group(1))
        # the directories it made are said, not made silently
        assert any(f'created {tmp_path / "events"}' in x for x in seen), ''.join(seen)
        base = f'http://127.0.0.1:{port}'
        assert ros.spin_until(lambda: _healthy(base), 30)
        doc = {'ts': time.time(), 'type': 'blockage', 'severity': 'medium', 'lat': 1.0,
               'lon': 2.0, 'road': 'proc-http', 'distance_m': 10, 'clip_hint': False}
        answer = httpx.post(f'{base}/events', json=doc,
                            headers={'Authorization': f'Bearer {token}'}, timeout=10)
        assert answer.status_code == 202
        bad = [f'bad{i}.json' for i in range(9)]  # was: at most one rejection a second logged
        for name in bad:
            (tmp_path / 'events' / name).write_text('[]')
        (tmp_path / 'events' / 'f.json').write_text(json.dumps({**doc, 'road': 'proc-file'}))
        assert ros.spin_until(lambda: len(alerts) >= 2, 30)
        assert ros.spin_until(lambda: len(os.listdir(tmp_path / 'failed')) == 18, 30)
        assert sorted(a.road for a in alerts) == ['proc-file', 'proc-http']
        assert all(a.kind == Alert.KIND_BLOCKAGE for a in alerts)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        assert time.monotonic() - started < 10
        assert 'Traceback' not in out
        for name in bad:  # every rejection logged with its reason
            assert f'{name} -> failed/ (invalid_field)' in out, out
        # accepted at info: published at once, or held until the listener matched
        assert 'f.json: accepted ' in out and 'HTTP from 127.0.0.1: accepted ' in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f'{base}/healthz', timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
