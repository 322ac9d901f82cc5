import os
from pathlib import Path
import re
import subprocess
import sys
import time

import pytest
from rclpy.parameter import Parameter

from v2x_bridge.alert_gateway import AlertGateway
from v2x_bridge.v2x_inject import set_fields
from v2x_common import qos
from v2x_msgs.msg import Alert
from v2x_protocol.io import keys

STRONG = 'test-key-0123456789abcdef'  # >= 16 bytes: short secrets are refused
RECV = re.compile(r'^\[RECV\] \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z seq=(\d+) '
                  r'src=rsu_server_01 type=collision sev=high dist=500\.0m suggest=slow_down$')


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != 'V2X_KEY'}
    env.update(extra)
    return env


def _tool(name, *args, env=None, **kw):
    """Run a console script as a real process (the module, so no PATH dependence)."""
    return [sys.executable, '-m', f'v2x_bridge.{name}', *args]


def _link(mcast):
    return ['--group', mcast['group'], '--port', str(mcast['port']), '--iface', mcast['iface']]


def _start_client(mcast, *args, env):
    proc = subprocess.Popen(_tool('v2x_alert_client', *_link(mcast), *args), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert first.startswith('[LISTEN]'), first + proc.stderr.read()
    return proc


def _server(mcast, tmp_path, *args, env, timeout=60):
    return subprocess.run(_tool('v2x_alert_server', *_link(mcast), '--state-dir',
                                str(tmp_path / 'state'), '--lat', '37.12345', '--lon',
                                '127.12345', *args),
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_server_client_pair_prints_seed_line(mcast, tmp_path):
    """Three sends of one alert print exactly one seed-shaped [RECV] line; CSV written."""
    env = _env(V2X_KEY=STRONG)
    client = _start_client(mcast, '--log', str(tmp_path / 'alerts.csv'), '--timeout-s', '30',
                           '--count', '2', env=env)
    sent = _server(mcast, tmp_path, '--count', '3', '--interval', '0.2', env=env)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.count('[SEND]') == 3
    second = _server(mcast, tmp_path, '--count', '1', env=env)  # next persisted sequence
    assert second.returncode == 0
    out, err = client.communicate(timeout=40)
    lines = [ln for ln in out.splitlines() if ln.startswith('[RECV]')]
    assert [RECV.match(ln).group(1) for ln in lines] == ['1', '2'], out + err
    assert '[STATS] delivered=2 repeats=2 rejected=0' in out
    assert (tmp_path / 'alerts.csv').read_text().count('rsu_server_01') == 2


def test_wrong_key_delivers_nothing(mcast, tmp_path):
    """A client with another key prints no [RECV] for them and counts the rejections."""
    client = _start_client(mcast, '--hmac-key', 'right-secret-0123456789', '--count', '1',
                           '--timeout-s', '120', env=_env())
    try:
        sent = _server(mcast, tmp_path, '--count', '3', '--interval', '0.1',
                       env=_env(V2X_KEY='wrong-secret-0123456789'))
        assert sent.returncode == 0, sent.stderr
        # A marker alert with the right key, sent after the server exited: the client
        # reads its socket in order, so once it has the marker (--count 1: it then exits
        # and prints its counters) it has judged all three wrong-key datagrams, however
        # slowly it was scheduled. No timeout or signal races the count.
        marker = _server(mcast, tmp_path, '--count', '1', '--sequence', '77', '--hmac-key',
                         'right-secret-0123456789', env=_env())
        assert marker.returncode == 0, marker.stderr
        out, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
    recv = [RECV.match(ln) for ln in out.splitlines() if ln.startswith('[RECV]')]
    assert [m.group(1) for m in recv if m] == ['77'] and len(recv) == 1, out + err
    assert '[STATS] delivered=1 repeats=0 rejected=3 (unknown_key=3)' in out, out + err


@pytest.mark.parametrize('flag, value', [('--ttl-s', 'nan'), ('--ttl-s', 'inf'),
                                         ('--ttl-s', '-inf'), ('--ttl-s', '0'),
                                         ('--ttl-s', '1e300'), ('--interval', 'nan'),
                                         ('--interval', 'inf'), ('--count', '0')])
def test_server_refuses_non_finite_or_out_of_range_flags(mcast, tmp_path, flag, value):
    """nan / inf / out-of-range --ttl-s, --interval, --count: exit 2 with an argparse-style
    message naming the flag, no traceback, nothing sent."""
    proc = _server(mcast, tmp_path, '--repeat', flag, value, env=_env(V2X_KEY=STRONG))
    assert proc.returncode == 2, proc.stderr
    assert f'error: argument {flag}' in proc.stderr and 'Traceback' not in proc.stderr
    assert '[SEND]' not in proc.stdout


def test_repeat_runs_until_ttl_then_exits_zero(mcast, tmp_path):
    """--repeat resends every interval until --ttl-s ends, then exits 0."""
    start = time.monotonic()
    sent = _server(mcast, tmp_path, '--repeat', '--ttl-s', '1.0', '--interval', '0.3',
                   env=_env(V2X_KEY=STRONG))
    assert sent.returncode == 0
    assert 3 <= sent.stdout.count('[SEND]') <= 5
    assert time.monotonic() - start >= 0.9


@pytest.mark.parametrize('tool', ['v2x_alert_server', 'v2x_alert_client'])
def test_no_key_exits_with_how_to(tool, mcast):
    """Without a key and without --insecure both tools exit 2 and say how to give one."""
    proc = subprocess.run(_tool(tool, *_link(mcast), '--timeout-s' if 'client' in tool
                                else '--count', '1'), env=_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert '--hmac-key' in proc.stderr and 'V2X_KEY' in proc.stderr and '--insecure' in \
        proc.stderr


def test_ed25519_keygen_server_client(mcast, tmp_path):
    """v2x_keygen's key signs, its trust-store entry verifies; another store rejects."""
    store = tmp_path / 'trust'
    gen = subprocess.run(_tool('v2x_keygen', '--out-dir', str(tmp_path), '--trust-store',
                               str(store)), capture_output=True, text=True, timeout=60)
    assert gen.returncode == 0, gen.stderr
    key = tmp_path / 'rsu_server_01.key'
    assert oct(key.stat().st_mode & 0o777) == '0o600'
    assert store.read_text() == (tmp_path / 'rsu_server_01.pub').read_text()
    again = subprocess.run(_tool('v2x_keygen', '--out-dir', str(tmp_path)),
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1  # never overwrites a key silently
    client = _start_client(mcast, '--trust-store', str(store), '--count', '1',
                           '--timeout-s', '30', env=_env())
    sent = _server(mcast, tmp_path, '--key-file', str(key), env=_env())
    assert sent.returncode == 0, sent.stderr
    out, _ = client.communicate(timeout=40)
    assert RECV.match(next(ln for ln in out.splitlines() if ln.startswith('[RECV]')))
    assert keys.load_private_key(key).key_id.hex() in gen.stdout


def test_insecure_pair(mcast, tmp_path):
    """--insecure on both sides works without keys."""
    client = _start_client(mcast, '--insecure', '--count', '1', '--timeout-s', '30',
                           env=_env())
    assert _server(mcast, tmp_path, '--insecure', env=_env()).returncode == 0
    out, _ = client.communicate(timeout=40)
    assert '[STATS] delivered=1' in out


def test_client_ros2_publishes_alert(ros, mcast, tmp_path):
    """v2x_alert_client --ros2 publishes each delivered alert on /v2x/alert."""
    got = []
    probe = ros.node('probe')
    probe.create_subscription(Alert, '/v2x/alert', got.append, qos.ALERT)
    env = _env(V2X_KEY=STRONG)
    client = _start_client(mcast, '--ros2', '--timeout-s', '90', env=env)
    assert ros.spin_until(lambda: probe.count_publishers('/v2x/alert') > 0, 30)
    assert _server(mcast, tmp_path, '--count', '1', '--sequence', '5', env=env).returncode == 0
    assert ros.spin_until(lambda: got, 30)
    client.terminate()  # SIGTERM: the client ends quietly and prints its summary
    out, _ = client.communicate(timeout=40)
    assert client.returncode == 0 and '[STATS] delivered=1' in out
    assert (got[0].source_id, got[0].sequence) == ('rsu_server_01', 5)


def test_inject_flags_through_gateway_to_client(ros, mcast, tmp_path, monkeypatch):
    """v2x_inject -> RSU gateway -> multicast -> v2x_alert_client prints the seed line."""
    monkeypatch.setenv('V2X_KEY', STRONG)
    ros.add(AlertGateway(context=ros.context, parameter_overrides=[
        Parameter('group', value=mcast['group']), Parameter('port', value=mcast['port']),
        Parameter('iface', value=mcast['iface']),
        Parameter('state_dir', value=str(tmp_path)),
        Parameter('station_id', value='rsu_server_01')]))
    client = _start_client(mcast, '--count', '1', '--timeout-s', '60', env=dict(os.environ))
    inject = subprocess.Popen(_tool('v2x_inject', '--type', 'collision', '--severity', 'high',
                                    '--distance-m', '500', '--suggest', 'slow_down', '--road',
                                    'segment_A', '--clip', '--wait-s', '30'),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert ros.spin_until(lambda: inject.poll() is not None, 60)
    out, err = inject.communicate(timeout=10)
    assert inject.returncode == 0, err
    assert out.startswith('[INJECT] /v2x/alert_out seq=0 src= type=collision sev=high')
    assert ros.spin_until(lambda: client.poll() is not None, 30)
    cout, _ = client.communicate(timeout=10)
    assert any(RECV.match(ln) for ln in cout.splitlines()), cout


def test_inject_yaml_and_no_subscriber(ros):
    """--yaml sets fields as ros2 topic pub would; with no subscriber it exits 3."""
    got = []
    ros.node('probe').create_subscription(Alert, '/test/alert_out', got.append, qos.ALERT_OUT)
    proc = subprocess.Popen(_tool('v2x_inject', '--topic', '/test/alert_out', '--yaml',
                                  '{kind: fire, severity: 2, source_id: cam_01, sequence: 9,'
                                  ' detection_time: {sec: 1700000000}, road: B}'),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert ros.spin_until(lambda: got and proc.poll() is not None, 60)
    assert proc.returncode == 0, proc.stderr.read()
    m = got[0]
    assert (m.kind, m.severity, m.source_id, m.sequence, m.detection_time.sec, m.road) == (
        Alert.KIND_FIRE, Alert.SEVERITY_MEDIUM, 'cam_01', 9, 1700000000, 'B')
    none = subprocess.run(_tool('v2x_inject', '--topic', '/nobody/listens', '--wait-s', '0.5'),
                          capture_output=True, text=True, timeout=60)
    assert none.returncode == 6 and 'no subscriber' in none.stderr


@pytest.mark.parametrize('values,match', [
    ({'nonsense': 1}, 'no such field'),
    ({'kind': 'meteor'}, 'unknown type'),
    ({'sequence': -1}, 'sequence'),
    ({'header': 5}, 'expected a mapping'),
])
def test_set_fields_rejects_bad_yaml(values, match):
    """Bad YAML fields are reported with the field name, not a traceback."""
    with pytest.raises(ValueError, match=match):
        set_fields(Alert(), values)


def test_console_scripts_installed():
    """Every CLI tool is on PATH by name after `source scripts/env.sh`."""
    for name in ('v2x_alert_server', 'v2x_alert_client', 'v2x_inject', 'v2x_keygen',
                 'alert_gateway'):
        found = [p for p in os.environ['PATH'].split(os.pathsep) if (Path(p) / name).exists()]
        assert found, name
