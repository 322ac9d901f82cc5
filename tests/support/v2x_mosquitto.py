"""A real mosquitto for tests and the bench (tests/support, beside v2x_testing).

CA and certificates made with openssl, a password file made with mosquitto_passwd, the
ACL of deploy/mosquitto, and `mosquitto -c FILE` in the foreground on a free port.
Mosquitto.from_examples loads deploy/mosquitto/mosquitto.conf.example (and
bridge.conf.example) as shipped, with only the paths, the port and the bridge's address
and password substituted. No mocks: the Debian broker."""

import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import time

MOSQUITTO = shutil.which('mosquitto') or '/usr/sbin/mosquitto'
#: deploy/mosquitto: the shipped examples the tests load as they are (paths substituted)
EXAMPLES = Path(__file__).resolve().parents[2] / 'deploy' / 'mosquitto'


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
    """deploy/mosquitto/acl.example as shipped (every user reads the alert and status
    trees; rsu_server_01 and rsu_server_02 write under their ids), and after it a section
    of the same form for each further publisher (RSU, bridge): it writes only under its
    own station id. The example's prefix is v2x."""
    if prefix != 'v2x':
        raise ValueError('acl.example is written for the prefix v2x')
    lines = [EXAMPLES.joinpath('acl.example').read_text(), '']
    for name in publishers:
        lines += [f'user {name}', f'topic write {prefix}/alert/{name}/#',
                  f'topic write {prefix}/status/{name}/#', '']
    Path(path).write_text('\n'.join(lines))
    return Path(path)


def substitute(example: str, values: dict[str, str]) -> str:
    """A shipped config example with the values of some keys replaced (paths, the port,
    the bridge's address and password): only the value's own characters, the rest of the
    line stays as shipped (mosquitto would read an inline comment as part of the value,
    and so it does here). Every key named must be in the example once, so a changed
    example fails here rather than silently testing something else."""
    out, seen = [], set()
    for line in EXAMPLES.joinpath(example).read_text().splitlines():
        key, _, rest = line.partition(' ')
        if key in values and not line.startswith('#'):
            if key in seen:
                raise ValueError(f'{example}: {key} appears twice')
            seen.add(key)
            value = rest.lstrip(' ').split(' ', 1)[0]
            start = len(line) - len(rest.lstrip(' '))  # where the value begins
            line = f'{key} {values[key]}{line[start + len(value):]}'
        out.append(line)
    missing = set(values) - seen
    if missing:
        raise ValueError(f'{example} has no {sorted(missing)}')
    return '\n'.join(out) + '\n'


def _run_as() -> str:
    """As root, stay root: mosquitto would drop to user mosquitto, who cannot read our
    mode-600 files (a deployment installs them owned by mosquitto instead)."""
    return 'user root\n' if os.geteuid() == 0 else ''


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
                 persistence=False, extra='', port=None, text=None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.dir / 'mosquitto.conf'
        self.log = self.dir / 'mosquitto.log'
        self.proc = None
        if text is not None:  # a whole configuration (from_examples)
            self.conf.write_text(text + _run_as())
            return
        lines = ['per_listener_settings false', f'listener {self.port} 127.0.0.1']
        lines.append(_run_as())
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

    @classmethod
    def from_examples(cls, directory: Path, *, tls, passwords, acl, bridge_to=None,
                      bridge_password: str = '') -> 'Mosquitto':
        """A broker configured by deploy/mosquitto/mosquitto.conf.example as shipped (TLS
        listener, passwords, ACL, persistence, max_packet_size), on a free port of
        127.0.0.1; with bridge_to (a Mosquitto), bridge.conf.example as shipped after it,
        pointed at that broker."""
        directory = Path(directory)
        port = free_port()
        text = substitute('mosquitto.conf.example', {
            'listener': f'{port} 127.0.0.1', 'cafile': str(tls['ca']),
            'certfile': str(tls['cert']), 'keyfile': str(tls['key']),
            'password_file': str(passwords), 'acl_file': str(acl),
            'persistence_location': f'{directory}/'})
        if bridge_to is not None:
            text += substitute('bridge.conf.example', {
                'address': f'127.0.0.1:{bridge_to.port}', 'bridge_cafile': str(tls['ca']),
                'remote_password': bridge_password})
        return cls(directory, port=port, text=text)

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
