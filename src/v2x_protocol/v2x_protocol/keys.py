"""Keys: HMAC secrets, Ed25519 key files, the trust store, and the receiver's keyring.

HMAC (protocol v2): the MAC key and the on-air key id are derived from the secret with
HKDF-SHA256 under separate labels, so the key id is no fingerprint of the secret; a secret
must be at least MIN_SECRET_BYTES long (`v2x_keygen --hmac` makes one). Ed25519 key ids
are the first 8 bytes of SHA-256 of the raw public key. Key files must not be readable by
group or others (check_private_file). Secrets never appear in repr() or messages.

The fleet's key model (docs/protocol.md "Keys"): RSUs sign with their own Ed25519 keys,
bound by the trust store to the source ids they speak for; vehicles sign their heartbeats
with the fleet-wide heartbeat key (HeartbeatKey: an HMAC secret under its own HKDF labels),
which every receiver refuses for alerts and for any heartbeat but a vehicle's. A source id
bound to an Ed25519 key is spoken for by that key only.
"""

import base64
from dataclasses import dataclass
import hashlib
import hmac
import os
from pathlib import Path
import stat

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from v2x_protocol.wire import (
    AUTH_ED25519,
    AUTH_HMAC,
    AUTH_NONE,
    KEY_ID_LEN,
    Unauthenticated,
    UnknownKey,
)

ENV_KEY = 'V2X_KEY'
MIN_SECRET_BYTES = 16
#: HKDF-SHA256 labels (info) of protocol v2; no salt
LABEL_MAC = b'v2x v2 hmac-sha256 key'
LABEL_KEY_ID = b'v2x v2 key id'
#: the fleet heartbeat key's labels: the same secret never gives an alert key or its id
LABEL_HEARTBEAT_MAC = b'v2x v2 heartbeat hmac-sha256 key'
LABEL_HEARTBEAT_KEY_ID = b'v2x v2 heartbeat key id'
MAKE_SECRET_HELP = ('make one with `v2x_keygen --hmac --out-dir DIR` (32 random bytes as '
                    '64 hex digits, file mode 0600) and give the file as --key-file / '
                    'key_file, or its content as $V2X_KEY')


class KeyConfigError(ValueError):
    """A key or trust store that cannot be used (local configuration problem). param names
    the setting at fault (key_file, trust_store, heartbeat_key_file, insecure, ...)."""

    def __init__(self, message: str, param: str = 'key_file'):
        super().__init__(message)
        self.param = param


def key_id_of(material: bytes) -> bytes:
    """The 8-byte key id of an Ed25519 public key: SHA-256(raw public key)[:8]."""
    return hashlib.sha256(material).digest()[:KEY_ID_LEN]


def hkdf(secret: bytes, label: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869) of secret with no salt and info=label."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label).derive(secret)


def check_secret(secret: bytes, where: str = 'HMAC key') -> None:
    """Refuse a secret that is too short or is a PEM key file's text."""
    if secret.lstrip().startswith(b'-----BEGIN'):
        raise KeyConfigError(f'{where} is a PEM key (Ed25519?), not an HMAC secret: use '
                             'auth_mode ed25519 for it, or ' + MAKE_SECRET_HELP)
    if len(secret) < MIN_SECRET_BYTES:
        raise KeyConfigError(f'{where} is {len(secret)} bytes; an HMAC secret needs at least '
                             f'{MIN_SECRET_BYTES}: ' + MAKE_SECRET_HELP)


class HmacKey:
    """An HMAC-SHA256 secret: signs and verifies with its HKDF-derived MAC key."""

    auth = AUTH_HMAC
    signs_alerts = True
    _labels = (LABEL_MAC, LABEL_KEY_ID)

    def __init__(self, secret: bytes, where: str = 'HMAC key'):
        check_secret(bytes(secret), where)
        mac_label, id_label = self._labels
        self._secret = hkdf(bytes(secret), mac_label, 32)
        self.key_id = hkdf(bytes(secret), id_label, KEY_ID_LEN)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(key_id={self.key_id.hex()})'

    def sign(self, data: bytes) -> bytes:
        """32-byte HMAC-SHA256 tag."""
        return hmac.digest(self._secret, data, 'sha256')

    def verify(self, data: bytes, tag: bytes) -> bool:
        """Constant-time comparison of the tag."""
        return hmac.compare_digest(hmac.digest(self._secret, data, 'sha256'), tag)


class HeartbeatKey(HmacKey):
    """The fleet-wide heartbeat key: an HMAC secret under the heartbeat HKDF labels.

    Every vehicle holds it and signs its heartbeats with it (one key for all, so it links
    no pseudonyms); receivers refuse it for an alert and for any heartbeat but a vehicle's.
    """

    signs_alerts = False
    _labels = (LABEL_HEARTBEAT_MAC, LABEL_HEARTBEAT_KEY_ID)

    def __init__(self, secret: bytes, where: str = 'heartbeat key'):
        super().__init__(secret, where)
        #: the key id the same secret would have as an alert key (to refuse that mix-up)
        self.alert_key_id = hkdf(bytes(secret), LABEL_KEY_ID, KEY_ID_LEN)


class Ed25519Signer:
    """A station's Ed25519 private key."""

    auth = AUTH_ED25519
    signs_alerts = True

    def __init__(self, private_key: Ed25519PrivateKey):
        self._key = private_key
        self.public_raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = key_id_of(self.public_raw)

    def __repr__(self) -> str:
        return f'Ed25519Signer(key_id={self.key_id.hex()})'

    def sign(self, data: bytes) -> bytes:
        """64-byte Ed25519 signature."""
        return self._key.sign(data)


_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _edwards_add(a, b):
    (x1, y1), (x2, y2) = a, b
    t = _D * x1 * x2 * y1 * y2 % _P
    return ((x1 * y2 + y1 * x2) * pow(1 + t, _P - 2, _P) % _P,
            (y1 * y2 + x1 * x2) * pow(1 - t, _P - 2, _P) % _P)


def public_key_problem(raw: bytes) -> str:
    """Why an Ed25519 public key must not be trusted ('' when it is fine): not 32 bytes,
    a non-canonical encoding, not a curve point, or a point of small order (with which
    anyone could forge a signature that verifies)."""
    if len(raw) != 32:
        return f'{len(raw)} bytes, not 32'
    n = int.from_bytes(raw, 'little')
    y, sign = n & ((1 << 255) - 1), n >> 255
    if y >= _P:
        return 'non-canonical encoding (y >= p)'
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    if v * x * x % _P != u:
        x = x * _SQRT_M1 % _P
        if v * x * x % _P != u:
            return 'not a point on the curve'
    if x == 0 and sign:
        return 'non-canonical encoding (x = 0 with the sign bit set)'
    if x & 1 != sign:
        x = _P - x
    point = (x, y)
    for _ in range(3):
        point = _edwards_add(point, point)
    if point == (0, 1):
        return 'a point of small order (anyone could forge signatures for it)'
    return ''


class Ed25519Verifier:
    """A trusted Ed25519 public key (one trust-store entry) and the source ids it may
    speak for (its name and the ids listed after the key; empty = any, for tests)."""

    auth = AUTH_ED25519
    signs_alerts = True

    def __init__(self, public_raw: bytes, name: str = '', source_ids=()):
        problem = public_key_problem(public_raw)
        if problem:
            raise KeyConfigError(f'Ed25519 public key {name or ""} refused: {problem}')
        self._key = Ed25519PublicKey.from_public_bytes(public_raw)
        self.public_raw = public_raw
        self.name = name
        self.source_ids = frozenset(([name] if name else []) + list(source_ids))
        self.key_id = key_id_of(public_raw)

    def may_speak_for(self, source_id: str) -> bool:
        """True when this signer may sign datagrams of source_id."""
        return not self.source_ids or source_id in self.source_ids

    def verify(self, data: bytes, tag: bytes) -> bool:
        """True when tag is a valid signature of data."""
        try:
            self._key.verify(tag, data)
        except InvalidSignature:
            return False
        return True


class _NoAuth:
    signs_alerts = True
    name = 'none'

    def verify(self, data: bytes, tag: bytes) -> bool:
        return True


class Keyring:
    """What a receiver accepts: HMAC keys, trusted Ed25519 keys, heartbeat-only keys, and
    optionally 'none'. bound_ids: the source ids the trust store binds to an Ed25519 key;
    no other key may speak for them."""

    def __init__(self, hmac_keys=(), ed25519_keys=(), allow_none: bool = False,
                 heartbeat_keys=()):
        self._by_id = {}
        for k in list(hmac_keys) + list(heartbeat_keys):
            self._by_id[(AUTH_HMAC, k.key_id)] = k
        bound = set()
        for k in ed25519_keys:
            self._by_id[(AUTH_ED25519, k.key_id)] = k
            bound |= k.source_ids
        self.bound_ids = frozenset(bound)
        self.allow_none = allow_none

    def signs_alerts_with(self, hmac_key_id: bytes) -> bool:
        """True when an alert-capable HMAC key of this id is held."""
        key = self._by_id.get((AUTH_HMAC, hmac_key_id))
        return key is not None and key.signs_alerts

    def may_speak_for(self, verifier, source_id: str) -> bool:
        """True when verifier may sign datagrams of source_id: an Ed25519 key for the ids
        its trust-store line lists; any other key for any id no Ed25519 key is bound to."""
        own = getattr(verifier, 'source_ids', None)
        if own:
            return source_id in own
        return source_id not in self.bound_ids

    def __len__(self) -> int:
        return len(self._by_id)

    def verifier(self, auth: int, key_id: bytes):
        """The verifier for a datagram's (auth, key id); raises Unauthenticated/UnknownKey."""
        if auth == AUTH_NONE:
            if not self.allow_none:
                raise Unauthenticated('unsigned datagram and insecure mode is off')
            return _NoAuth()
        try:
            return self._by_id[(auth, key_id)]
        except KeyError:
            raise UnknownKey(f'no key with id {key_id.hex()} for auth {auth}') from None


# --- files ------------------------------------------------------------------------------

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


def read_secret_file(path: str | Path) -> bytes:
    """An HMAC secret from a file: its bytes less one trailing LF or CRLF (nothing else is
    trimmed). Refuses a file group/others can read, a short secret, and a PEM key."""
    check_private_file(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyConfigError(f'cannot read key file {path}: {exc.strerror}') from None
    if data.endswith(b'\r\n'):
        data = data[:-2]
    elif data.endswith(b'\n'):
        data = data[:-1]
    check_secret(data, f'key file {path}')
    return data


def load_private_key(path: str | Path) -> Ed25519Signer:
    """An Ed25519 private key from an unencrypted PEM PKCS#8 file (v2x_keygen writes one)."""
    check_private_file(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyConfigError(f'cannot read key file {path}: {exc.strerror}') from None
    if not data.lstrip().startswith(b'-----BEGIN'):
        raise KeyConfigError(f'{path} is not a PEM private key (an HMAC secret? use '
                             'auth_mode hmac for it)')
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyConfigError(f'{path} is not an unencrypted PEM private key') from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigError(f'{path} is not an Ed25519 private key')
    return Ed25519Signer(key)


def is_pem_private_key(path: str | Path) -> bool:
    """True when the file looks like a PEM private key (not an HMAC secret)."""
    try:
        head = Path(path).read_bytes()[:64]
    except OSError:
        return False
    return head.startswith(b'-----BEGIN') and b'PRIVATE KEY' in head


def trust_entry(name: str, public_raw: bytes, speaks_for=()) -> str:
    """One trust-store line: '<name> ed25519 <base64 public key> [<source_id> ...]'."""
    for word in (name, *speaks_for):
        if not word or any(c.isspace() or c == '#' for c in word):
            raise KeyConfigError(f'trust-store name/source id {word!r} must be one word')
    extra = ''.join(f' {w}' for w in speaks_for if w != name)
    return f'{name} ed25519 {base64.b64encode(public_raw).decode()}{extra}'


def load_trust_store(path: str | Path) -> list[Ed25519Verifier]:
    """Trusted keys from a text file of '<name> ed25519 <base64> [<source_id> ...]' lines
    ('#' comments). The key may sign for its name and the source ids listed after it."""
    try:
        text = Path(path).read_text(encoding='utf-8')
    except OSError as exc:
        raise KeyConfigError(f'cannot read trust store {path}: {exc.strerror}') from None
    keys = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 3 or parts[1] != 'ed25519':
            raise KeyConfigError(f'{path}:{lineno}: expected "<name> ed25519 <base64 key> '
                                 '[<source_id> ...]"')
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except ValueError:
            raise KeyConfigError(f'{path}:{lineno}: key is not base64') from None
        try:
            keys.append(Ed25519Verifier(raw, parts[0], parts[3:]))
        except KeyConfigError as exc:
            raise KeyConfigError(f'{path}:{lineno}: {exc}') from None
    if not keys:
        raise KeyConfigError(f'trust store {path} holds no keys')
    return keys


def read_heartbeat_key(path: str | Path) -> HeartbeatKey:
    """The fleet heartbeat key from its file (the format of an HMAC secret file)."""
    try:
        return HeartbeatKey(read_secret_file(path), f'heartbeat key file {path}')
    except KeyConfigError as exc:
        raise KeyConfigError(str(exc), 'heartbeat_key_file') from None


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
        try:
            ed_keys = load_trust_store(trust_store)
        except KeyConfigError as exc:
            raise KeyConfigError(str(exc), 'trust_store') from None
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
