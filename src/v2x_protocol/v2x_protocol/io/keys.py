"""Loading keys (the I/O edge of v2x_protocol.keys): key files, their permissions, the
trust store file, the environment ($V2X_KEY), and a gateway's whole key set.

Everything here reads the file system or the environment and hands bytes and text to the
pure parsers of v2x_protocol.keys. The key types those return are re-exported, so a shell
needs this one import (`from v2x_protocol.io import keys`).
"""

from dataclasses import dataclass
import os
from pathlib import Path
import stat

from v2x_protocol.keys import (
    MAKE_SECRET_HELP,
    Ed25519Signer,
    Ed25519Verifier,
    HeartbeatKey,
    HmacKey,
    KeyConfigError,
    Keyring,
    key_id_of,
    parse_secret,
    parse_trust_store,
    signer_from_pem,
    trust_entry,
)

__all__ = [
    'ENV_KEY', 'StationKeys', 'check_private_file', 'hmac_from_sources', 'is_pem_private_key',
    'load_private_key', 'load_station_keys', 'load_trust_store', 'make_keyring',
    'make_signer', 'read_heartbeat_key', 'read_private_lines', 'read_secret_file',
    # re-exported from v2x_protocol.keys (what the loaders return and raise)
    'MAKE_SECRET_HELP', 'Ed25519Signer', 'Ed25519Verifier', 'HeartbeatKey', 'HmacKey',
    'KeyConfigError', 'Keyring', 'key_id_of', 'trust_entry',
]

#: the environment variable holding an HMAC secret (labs and the demo)
ENV_KEY = 'V2X_KEY'


def check_private_file(path: str | Path, what: str = 'key file') -> None:
    """Refuse a secret file that group or others may read or write (as ssh does), saying
    the chmod that fixes it. Raises KeyConfigError (also when it cannot be stat'ed)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise KeyConfigError(f'cannot read {what} {path}: {exc.strerror}') from None
    if mode & 0o077:
        raise KeyConfigError(f'{what} {path} is accessible by group or others (mode '
                             f'{stat.S_IMODE(mode):04o}); run: chmod 600 {path}')


def read_private_lines(path: str | Path, what: str = 'secret file') -> list[bytes]:
    """The lines of a secret file only its owner may read (tokens, passwords); raises
    KeyConfigError naming the file (refused mode, or unreadable)."""
    check_private_file(path, what)
    try:
        return Path(path).read_bytes().splitlines()
    except OSError as exc:
        raise KeyConfigError(f'cannot read {what} {path}: {exc.strerror}') from None


def _read_private(path: str | Path) -> bytes:
    check_private_file(path)
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyConfigError(f'cannot read key file {path}: {exc.strerror}') from None


def read_secret_file(path: str | Path) -> bytes:
    """An HMAC secret from a file: its bytes less one trailing LF or CRLF (nothing else is
    trimmed). Refuses a file group/others can read, a short secret, and a PEM key."""
    return parse_secret(_read_private(path), f'key file {path}')


def read_heartbeat_key(path: str | Path) -> HeartbeatKey:
    """The fleet heartbeat key from its file (the format of an HMAC secret file)."""
    try:
        return HeartbeatKey(read_secret_file(path), f'heartbeat key file {path}')
    except KeyConfigError as exc:
        raise KeyConfigError(str(exc), 'heartbeat_key_file') from None


def load_private_key(path: str | Path) -> Ed25519Signer:
    """An Ed25519 private key from an unencrypted PEM PKCS#8 file (v2x_keygen writes one)."""
    return signer_from_pem(_read_private(path), str(path))


def is_pem_private_key(path: str | Path) -> bool:
    """True when the file looks like a PEM private key (not an HMAC secret)."""
    try:
        head = Path(path).read_bytes()[:64]
    except OSError:
        return False
    return head.startswith(b'-----BEGIN') and b'PRIVATE KEY' in head


def load_trust_store(path: str | Path) -> list[Ed25519Verifier]:
    """Trusted keys from a trust store file (keys.parse_trust_store says the format)."""
    try:
        text = Path(path).read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, 'strerror', None) or 'not UTF-8 text'
        raise KeyConfigError(f'cannot read trust store {path}: {why}', 'trust_store') from None
    try:
        return parse_trust_store(text, f'trust store {path}')
    except KeyConfigError as exc:
        raise KeyConfigError(str(exc), 'trust_store') from None


def hmac_from_sources(key: str | None = None, key_file: str | None = None,
                      env=os.environ) -> HmacKey | None:
    """The HMAC key from a literal, a file, or $V2X_KEY, in that order; None when none."""
    if key:
        return HmacKey(key.encode('utf-8'), 'the --hmac-key secret')
    if key_file:
        return HmacKey(read_secret_file(key_file), f'key file {key_file}')
    if env.get(ENV_KEY):
        return HmacKey(env[ENV_KEY].encode('utf-8'), f'${ENV_KEY}')
    return None


def make_signer(auth_mode: str, key_file: str = '', hmac_key: str = '', env=os.environ):
    """The sending key for auth_mode; None for 'none'. Raises KeyConfigError saying how."""
    if auth_mode == 'none':
        return None
    if auth_mode == 'hmac':
        key = hmac_from_sources(hmac_key, key_file, env)
        if key is None:
            raise KeyConfigError(f'no HMAC key: give --hmac-key / key_file, or set {ENV_KEY}; '
                                 'or run insecure (auth none) on purpose')
        return key
    if auth_mode == 'ed25519':
        if not key_file:
            raise KeyConfigError('ed25519 needs a private key file (make one with v2x_keygen)')
        return load_private_key(key_file)
    raise KeyConfigError(f'unknown auth mode {auth_mode!r}; expected hmac, ed25519 or none')


def make_keyring(auth_mode: str, *, key_file: str = '', hmac_key: str = '',
                 accept_key_files=(), trust_store: str = '', insecure: bool = False,
                 env=os.environ, heartbeat_keys=()) -> Keyring:
    """What a receiver accepts. hmac: the key plus accept_key_files (rotation); ed25519:
    the trust store (plus HMAC keys if given); none: only unsigned, with insecure set."""
    if auth_mode == 'none':
        if not insecure:
            raise KeyConfigError("auth mode 'none' needs the insecure flag set explicitly",
                                 'insecure')
        if hmac_key or key_file or accept_key_files or trust_store:
            raise KeyConfigError('insecure (auth none) together with a key: a receiver '
                                 'either checks signatures or runs insecure, not both')
        return Keyring(allow_none=True)
    if insecure:
        raise KeyConfigError(f'insecure together with auth mode {auth_mode!r}: a receiver '
                             'either checks signatures or runs insecure, not both', 'insecure')
    hmac_keys = []
    if auth_mode == 'hmac' or hmac_key:
        first = hmac_from_sources(hmac_key, key_file if auth_mode == 'hmac' else '', env)
        if first is not None:
            hmac_keys.append(first)
    hmac_keys += [HmacKey(read_secret_file(p), f'key file {p}') for p in accept_key_files
                  if p]
    ed_keys = []
    if auth_mode == 'ed25519':
        if not trust_store:
            raise KeyConfigError('ed25519 receiving needs a trust store file (v2x_keygen '
                                 'prints its entries)', 'trust_store')
        ed_keys = load_trust_store(trust_store)
    elif auth_mode != 'hmac':
        raise KeyConfigError(f'unknown auth mode {auth_mode!r}; expected hmac, ed25519 or none',
                             'auth_mode')
    if not hmac_keys and not ed_keys:
        raise KeyConfigError(f'no HMAC key: give --hmac-key / key_file, or set {ENV_KEY}; '
                             'or run insecure (auth none) on purpose')
    return Keyring(hmac_keys, ed_keys, heartbeat_keys=heartbeat_keys)


@dataclass(frozen=True)
class StationKeys:
    """A gateway's keys. signer: signs this station's alerts (an RSU's own key), and its
    heartbeats unless heartbeat_signer is set (a vehicle's fleet heartbeat key); keyring:
    what it accepts. None signers: this station signs nothing of that kind."""

    signer: object | None
    heartbeat_signer: object | None
    keyring: Keyring

    @property
    def can_send(self) -> bool:
        """True when this station signs anything (alerts or heartbeats)."""
        return self.signer is not None or self.heartbeat_signer is not None


def load_station_keys(role: str, auth_mode: str, *, key_file: str = '',
                      accept_key_files=(), trust_store: str = '',
                      heartbeat_key_file: str = '', insecure: bool = False,
                      env=os.environ) -> StationKeys:
    """A gateway's keys from its settings (KeyConfigError naming the setting at fault).

    The recommended deployment (docs/protocol.md "Keys"): an RSU runs auth_mode ed25519
    with its private key_file (its alerts and heartbeats) and the fleet heartbeat key
    (to hear vehicles); a vehicle runs auth_mode ed25519 with the trust store of the RSUs'
    keys and the fleet heartbeat key (its heartbeats), and holds no key that signs an
    alert. HMAC (a shared key_file or $V2X_KEY) stays for labs and the demo.
    """
    if insecure and auth_mode != 'none':
        raise KeyConfigError(f'true together with auth_mode {auth_mode}: a gateway either '
                             'signs and checks, or runs insecure (auth_mode none), not both',
                             'insecure')
    if auth_mode == 'none' and heartbeat_key_file:
        raise KeyConfigError('a heartbeat key with auth_mode none: an insecure gateway '
                             'signs nothing', 'heartbeat_key_file')
    heartbeat = read_heartbeat_key(heartbeat_key_file) if heartbeat_key_file else None
    signer = None
    env_key = auth_mode == 'hmac' and env.get(ENV_KEY)
    if auth_mode != 'none' and (role == 'rsu' or key_file or env_key):
        signer = make_signer(auth_mode, key_file, env=env)
    if auth_mode == 'ed25519' and signer is not None and not trust_store:
        # an RSU without a trust store hears only stations sharing its own key
        keyring = Keyring(ed25519_keys=[Ed25519Verifier(signer.public_raw)],
                          heartbeat_keys=[heartbeat] if heartbeat else ())
    else:
        keyring = make_keyring(auth_mode, key_file=key_file if auth_mode == 'hmac' else '',
                               accept_key_files=accept_key_files, trust_store=trust_store,
                               insecure=insecure, env=env,
                               heartbeat_keys=[heartbeat] if heartbeat else ())
    if heartbeat is not None and keyring.signs_alerts_with(heartbeat.alert_key_id):
        raise KeyConfigError(f'heartbeat key file {heartbeat_key_file} holds the same '
                             'secret as an alert key: every vehicle holds the heartbeat key, '
                             'so it must be a secret of its own (v2x_keygen --heartbeat)',
                             'heartbeat_key_file')
    hb_signer = heartbeat if role != 'rsu' else None  # an RSU's heartbeats: its own key
    return StationKeys(signer, hb_signer, keyring)
