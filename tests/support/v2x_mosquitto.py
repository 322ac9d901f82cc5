"""A real mosquitto for tests and the bench (tests/support, beside v2x_testing).

CA and certificates made with openssl, a password file made with mosquitto_passwd, the
ACL of deploy/mosquitto, and `mosquitto -c FILE` in the foreground on a free port.
No mocks: the Debian broker."""

import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import time

MOSQUITTO = shutil.which('mosquitto') or '/usr/sbin/mosquitto'


def missing_tools() -> str:
    """'' when mosquitto, mosquitto_passwd and openssl are here, else what is missing."""
    need = {'mosquitto': MOSQUITTO, 'mosquitto_passwd': shutil.which('mosquitto_passwd'),
            'openssl': shutil.which('openssl')}
    missing = [name for name, path in need.items() if not path or not Path(path).exists()]
    return ', '.join(missing)


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(*cmd, cwd=None) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path) -> dict[str, Path]:
    """A test CA and a server certificate for 127.0.0.1/localhost (openssl)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _run('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
         '-subj', '/CN=v2x test CA', '-keyout', 'ca.key', '-out', 'ca.pem', cwd=d)
    _run('openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
         '-keyout', 'server.key', '-out', 'server.csr', cwd=d)
    (d / 'san.ext').write_text('subjectAltName=IP:127.0.0.1,DNS:localhost\n')
    _run('openssl', 'x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
         '-CAcreateserial', '-days', '2', '-extfile', 'san.ext', '-out', 'server.pem', cwd=d)
    return {'ca': d / 'ca.pem', 'cert': d / 'server.pem', 'key': d / 'server.key'}


def make_passwords(path: Path, users: dict[str, str]) -> Path:
    """A mosquitto password file (hashed by mosquitto_passwd) for users {name: password}."""
    path = Path(path)
    path.write_text(''.join(f'{u}:{p}\n' for u, p in users.items()))
    _run('mosquitto_passwd', '-U', str(path))
    path.chmod(0o600)
    return path


def make_acl(path: Path, prefix: str, publishers: list[str]) -> Path:
    """The ACL of deploy/mosquitto/acl.example: every user reads <prefix>/#; each
    publisher (RSU, bridge) writes only under its own station id."""
    lines = [f'pattern read {prefix}/#', '']
    for name in publishers:
        lines += [f'user {name}', f'topic write {prefix}/alert/{name}/#',
                  f'topic write {prefix}/status/{name}/#', '']
    Path(path).write_text('\n'.join(lines))
    return Path(path)


def credentials_file(path: Path, username: str, password: str) -> Path:
    """A broker_credentials_file for a station (mode 600)."""
    path = Path(path)
    path.write_text(f'username={username}\npassword={password}\n')
    path.chmod(0o600)
    return path


class Mosquitto:
    """One broker process: `mosquitto -c <dir>/mosquitto.conf` in the foreground.

    tls: dict from make_ca (listener on 127.0.0.1:port with TLS) or None (plain).
    passwords / acl: files (None = anonymous allowed). persistence: retained messages and
    sessions kept across restart() in <dir>. extra: more config lines (e.g. a bridge).
    """

    def __init__(self, directory: Path, *, tls=None, passwords=None, acl=None,
                 persistence=False, extra='', port=None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.dir / 'mosquitto.conf'
        lines = ['per_listener_settings false', f'listener {self.port} 127.0.0.1']
        if os.geteuid() == 0:  # else mosquitto drops to user mosquitto: our files are 600
            lines.append('user root')
        if tls:
            lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}",
                      f"keyfile {tls['key']}", 'tls_version tlsv1.2']
        if passwords:
            lines += ['allow_anonymous false', f'password_file {passwords}']
        else:
            lines += ['allow_anonymous true']
        if acl:
            lines += [f'acl_file {acl}']
        if persistence:
            lines += ['persistence true', f'persistence_location {self.dir}/',
                      'autosave_interval 1']
        lines += ['log_dest stdout', 'log_type error', 'log_type warning',
                  'log_type notice', 'max_queued_messages 100000',
                  'max_inflight_messages 1000', extra]
        self.conf.write_text('\n'.join(lines) + '\n')
        self.log = self.dir / 'mosquitto.log'
        self.proc = None

    @property
    def url(self) -> str:
        """Where clients connect (mqtts when TLS is on)."""
        scheme = 'mqtts' if 'certfile' in self.conf.read_text() else 'mqtt'
        return f'{scheme}://127.0.0.1:{self.port}'

    def start(self, timeout: float = 10.0) -> 'Mosquitto':
        """Start and wait until the port accepts connections."""
        with open(self.log, 'a') as out:
            self.proc = subprocess.Popen([MOSQUITTO, '-c', str(self.conf)], stdout=out,
                                         stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f'mosquitto exited: {self.log.read_text()[-2000:]}')
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f'mosquitto did not listen on {self.port}')

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file), then wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()
