"""The v2x_console executable: bad parameters stop it naming them; secrets never printed."""

import os
import shutil
import signal
import socket
import subprocess

import pytest

from v2x_testing import free_tcp_port

EXE = shutil.which('v2x_console')
pytestmark = pytest.mark.skipif(EXE is None, reason='v2x_console not on PATH (make build)')


def run(*params, domain):
    argv = [EXE, '--ros-args']
    for p in params:
        argv += ['-p', p]
    return subprocess.Popen(argv, env=dict(os.environ, ROS_DOMAIN_ID=str(domain)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize('param, name', [
    ('console_port:=70000', 'console_port'),          # outside 0..65535
    ('role:=car', 'role'),                            # not rsu/vehicle
    ('site_lat:=95.0', 'site_lat'),                   # outside WGS84
    ('console_token_file:=/nonexistent/token', 'console_token_file'),
    ('archive_scan_s:=soon', 'archive_scan_s'),       # not a number
])
def test_bad_parameter_exits_naming_it(ros, param, name):
    """A bad value stops the console at start-up with status 2 and the parameter's name."""
    proc = run(param, f'console_port:={free_tcp_port()}' if 'port' not in param else param,
               domain=ros.domain_id)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert name in out and 'Traceback' not in out


def test_taken_port_and_secret_never_printed(ros, tmp_path):
    """A port already in use exits 2 naming console_port; the token is never printed."""
    secret = 'never-print-this-token-0123'
    (tmp_path / 'token').write_text(secret + '\n')
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = run(f'console_port:={port}', f'console_token_file:={tmp_path / "token"}',
                   domain=ros.domain_id)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and 'console_port' in out, out
    assert secret not in out
    proc = run(f'console_port:={free_tcp_port()}',
               f'console_token_file:={tmp_path / "token"}', domain=ros.domain_id)
    try:
        line = proc.stdout.readline()
        while line and 'console (rsu) on' not in line:
            line = proc.stdout.readline()
        assert 'actions need bearer token' in line, line
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    assert secret not in line + rest
