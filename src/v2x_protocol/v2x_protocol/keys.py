"""Keys (pure): HMAC secrets, Ed25519 keys, the trust store's text, and the keyring.

No file, environment or permission is read here: v2x_protocol.io.keys loads keys from
files and the environment and hands the bytes and text to the parsers below.

HMAC (protocol v2): the MAC key and the on-air key id are derived from the secret with
HKDF-SHA256 under separate labels, so the key id is no fingerprint of the secret; a secret
must be at least MIN_SECRET_BYTES long (`v2x_keygen --hmac` makes one). Ed25519 key ids
are the first 8 bytes of SHA-256 of the raw public key. Key files must not be readable by
group or others (io.keys.check_private_file). Secrets never appear in repr() or messages.

The fleet's key model (docs/protocol.md "Keys"): RSUs sign with their own Ed25519 keys,
bound by the trust store to the source ids they speak for; vehicles sign their heartbeats
with the fleet-wide heartbeat key (HeartbeatKey: an HMAC secret under its own HKDF labels),
which every receiver refuses for alerts and for any heartbeat but a vehicle's. A source id
bound to an Ed25519 key is spoken for by that key only.
"""

import base64
import binascii
import hashlib
import hmac

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

__all__ = [
    'MIN_SECRET_BYTES', 'LABEL_MAC', 'LABEL_KEY_ID', 'LABEL_HEARTBEAT_MAC',
    'LABEL_HEARTBEAT_KEY_ID', 'MAKE_SECRET_HELP', 'KeyConfigError', 'key_id_of', 'hkdf',
    'check_secret', 'HmacKey', 'HeartbeatKey', 'Ed25519Signer', 'public_key_problem',
    'Ed25519Verifier', 'Keyring', 'parse_secret', 'signer_from_pem', 'trust_entry',
    'parse_trust_store',
]

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
    """Refuse a secret that is too short or is a PEM key file's text (it starts, after
    any ASCII whitespace, with '-----BEGIN')."""
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




def parse_secret(data: bytes, where: str = 'key file') -> bytes:
    """An HMAC secret from a key file's bytes: less exactly one trailing LF or CRLF
    (nothing else is trimmed); refuses a short secret and a PEM key."""
    if data.endswith(b'\r\n'):
        data = data[:-2]
    elif data.endswith(b'\n'):
        data = data[:-1]
    check_secret(data, where)
    return data


def signer_from_pem(data: bytes, where: str = 'key file') -> Ed25519Signer:
    """An Ed25519 private key from an unencrypted PEM PKCS#8 file's bytes."""
    if not data.lstrip().startswith(b'-----BEGIN'):
        raise KeyConfigError(f'{where} is not a PEM private key (an HMAC secret? use '
                             'auth_mode hmac for it)')
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyConfigError(f'{where} is not an unencrypted PEM private key') from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigError(f'{where} is not an Ed25519 private key')
    return Ed25519Signer(key)


def _is_word(word: str) -> bool:
    return bool(word) and not word.startswith('#') and not any(c.isspace() for c in word)


def trust_entry(name: str, public_raw: bytes, speaks_for=()) -> str:
    """One trust-store line: '<name> ed25519 <base64 public key> [<source_id> ...]'."""
    for word in (name, *speaks_for):
        if not _is_word(word):
            raise KeyConfigError(f'trust-store name/source id {word!r} must be one word, not '
                                 "starting with '#'")
    extra = ''.join(f' {w}' for w in speaks_for if w != name)
    return f'{name} ed25519 {base64.b64encode(public_raw).decode()}{extra}'


def _strip_comment(line: str) -> str:
    """The line without its comment: from a '#' that starts a word (at the start of the
    line or after whitespace) to the end; a '#' inside a word (det/cam#1) is text."""
    for i, c in enumerate(line):
        if c == '#' and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def parse_trust_store(text: str, where: str = 'trust store') -> list[Ed25519Verifier]:
    """Trusted keys from a trust store's text: lines '<name> ed25519 <base64 public key>
    [<source_id> ...]', '#' comments. The whole store is refused (KeyConfigError naming
    where:line) on any bad line: not that shape, base64 that is not the canonical 44
    characters of a 32-byte key, a key refused by public_key_problem, or a key listed twice.
    A source id may be listed under several keys (an RSU rolling its key over)."""
    keys, seen = [], {}
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = _strip_comment(line).split()
        if not parts:
            continue
        if len(parts) < 3 or parts[1] != 'ed25519':
            raise KeyConfigError(f'{where}:{lineno}: expected "<name> ed25519 <base64 key> '
                                 '[<source_id> ...]"')
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except (ValueError, binascii.Error):
            raise KeyConfigError(f'{where}:{lineno}: key is not base64') from None
        if base64.b64encode(raw).decode() != parts[2]:
            raise KeyConfigError(f'{where}:{lineno}: key is not canonical base64 (44 '
                                 'characters ending in one "=", as v2x_keygen writes it)')
        if raw in seen:
            raise KeyConfigError(f'{where}:{lineno}: the same key as line {seen[raw]}: list '
                                 'a key once, with every source id it speaks for')
        seen[raw] = lineno
        try:
            keys.append(Ed25519Verifier(raw, parts[0], parts[3:]))
        except KeyConfigError as exc:
            raise KeyConfigError(f'{where}:{lineno}: {exc}') from None
    if not keys:
        raise KeyConfigError(f'{where} holds no keys')
    return keys
