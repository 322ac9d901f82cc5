"""Broker settings from the node parameters (pure: reads only the credentials file).

broker_url               '' (off) | mqtts://host[:8883] | mqtt://host[:1883] (plain: lab only)
broker_credentials_file  lines `username=NAME` and `password=SECRET` ('#' comments); never argv;
                         mode 600 (a file group/others may read is refused, as key files are)
broker_ca_file           PEM CA bundle for mqtts ('' = the system's CAs)
broker_topic_prefix      first topic level(s), e.g. v2x
broker_zoom              quadkey zoom of published topics / subscribed tiles
"""

from dataclasses import dataclass, field
import os
from urllib.parse import urlsplit

from v2x_common.params import ParameterError
from v2x_federation import quadkey as qk
from v2x_federation import topics
from v2x_protocol.io.keys import KeyConfigError, check_private_file

DEFAULT_PORTS = {'mqtt': 1883, 'mqtts': 8883}


@dataclass(frozen=True)
class BrokerConfig:
    """Where and how to connect. password is never printed (repr hides it)."""

    host: str
    port: int
    tls: bool
    ca_file: str
    username: str
    password: str = field(repr=False)
    prefix: str
    zoom: int
    area: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        """The URL without credentials (for logs)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def read_credentials(path: str) -> tuple[str, str]:
    """(username, password) from a credentials file; raises ParameterError."""
    name = 'broker_credentials_file'
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(name, f'cannot read {path}: {exc}') from None
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        key, sep, value = line.partition('=')
        if not sep or key.strip() not in ('username', 'password'):
            raise ParameterError(name, f'{path}: lines must be username=... or '
                                            'password=...')
        values[key.strip()] = value.strip()
    if not values.get('username') or 'password' not in values:
        raise ParameterError(name, f'{path}: needs username= and password= lines')
    return values['username'], values['password']


def make_config(url: str, credentials_file: str, ca_file: str, prefix: str, zoom: int,
                area: str = '') -> BrokerConfig | None:
    """Validate the broker_* parameters; None when broker_url is empty (federation off)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ('', '/') \
            or parts.query or parts.username or parts.password:
        raise ParameterError('broker_url', f'{url!r} is not mqtts://host[:port] or '
                                  'mqtt://host[:port] (credentials go in '
                                  'broker_credentials_file)')
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise ParameterError('broker_url', f'{url!r}: {exc}') from None
    tls = parts.scheme == 'mqtts'
    warnings = []
    if not tls:
        warnings.append(f'broker_url {url} is plain MQTT (no TLS): lab use only; alerts '
                        'stay signed end to end, but credentials and traffic are readable')
    if ca_file and not os.path.isfile(ca_file):
        raise ParameterError('broker_ca_file', f'{ca_file} is not a file')
    if ca_file and not tls:
        raise ParameterError('broker_ca_file', 'given, but broker_url is not mqtts://')
    username = password = ''
    if credentials_file:
        try:  # a password others may read is refused, as key files are (and as ssh does)
            check_private_file(credentials_file, 'broker credentials file')
        except KeyConfigError as exc:
            raise ParameterError('broker_credentials_file', str(exc)) from None
        username, password = read_credentials(credentials_file)
    else:
        warnings.append('no broker_credentials_file: connecting anonymously')
    try:
        topics.check_prefix(prefix)
    except topics.InvalidTopic as exc:
        raise ParameterError('broker_topic_prefix', str(exc)) from None
    try:
        qk.check_zoom(zoom)
    except qk.InvalidPosition as exc:
        raise ParameterError('broker_zoom', str(exc)) from None
    keys = tuple(k.strip() for k in area.split(',') if k.strip())
    for key in keys:
        try:
            qk.tile_of_quadkey(key)
        except qk.InvalidPosition as exc:
            raise ParameterError('broker_area', str(exc)) from None
    return BrokerConfig(parts.hostname, port, tls, ca_file, username, password, prefix, zoom,
                        keys, tuple(warnings))
