"""Keys: HMAC secrets, Ed25519 key files, the trust store, and the receiver's keyring.

Key ids are derived from the keys (first 8 bytes of SHA-256 of the HMAC secret, or of the
raw 32-byte Ed25519 public key), so `--hmac-key mysecret` gives the same id everywhere.
Secrets never appear in repr() or messages.
"""

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from v2x_protocol.wire import (
    AUTH_ED25519,
    AUTH_HMAC,
    AUTH_NONE,
    KEY_ID_LEN,
    Unauthenticated,
    UnknownKey,
)

ENV_KEY = 'V2X_KEY'


class KeyConfigError(ValueError):
    """A key or trust store that cannot be used (local configuration problem)."""


def key_id_of(material: bytes) -> bytes:
    """The 8-byte key id: SHA-256(material)[:8]."""
    return hashlib.sha256(material).digest()[:KEY_ID_LEN]


class HmacKey:
    """An HMAC-SHA256 secret: signs and verifies."""

    auth = AUTH_HMAC

    def __init__(self, secret: bytes):
        if not secret:
            raise KeyConfigError('empty HMAC key')
        self._secret = bytes(secret)
        self.key_id = key_id_of(self._secret)

    def __repr__(self) -> str:
        return f'HmacKey(key_id={self.key_id.hex()})'

    def sign(self, data: bytes) -> bytes:
        """32-byte HMAC-SHA256 tag."""
        return hmac.digest(self._secret, data, 'sha256')

    def verify(self, data: bytes, tag: bytes) -> bool:
        """Constant-time comparison of the tag."""
        return hmac.compare_digest(hmac.digest(self._secret, data, 'sha256'), tag)


class Ed25519Signer:
    """A station's Ed25519 private key."""

    auth = AUTH_ED25519

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


class Ed25519Verifier:
    """A trusted Ed25519 public key (one trust-store entry)."""

    auth = AUTH_ED25519

    def __init__(self, public_raw: bytes, name: str = ''):
        if len(public_raw) != 32:
            raise KeyConfigError(f'Ed25519 public key must be 32 bytes, got {len(public_raw)}')
        self._key = Ed25519PublicKey.from_public_bytes(public_raw)
        self.public_raw = public_raw
        self.name = name
        self.key_id = key_id_of(public_raw)

    def verify(self, data: bytes, tag: bytes) -> bool:
        """True when tag is a valid signature of data."""
        try:
            self._key.verify(tag, data)
        except InvalidSignature:
            return False
        return True


class _NoAuth:
    def verify(self, data: bytes, tag: bytes) -> bool:
        return True


class Keyring:
    """What a receiver accepts: HMAC keys, trusted Ed25519 keys, and optionally 'none'."""

    def __init__(self, hmac_keys=(), ed25519_keys=(), allow_none: bool = False):
        self._by_id = {}
        for k in hmac_keys:
            self._by_id[(AUTH_HMAC, k.key_id)] = k
        for k in ed25519_keys:
            self._by_id[(AUTH_ED25519, k.key_id)] = k
        self.allow_none = allow_none

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

def read_secret_file(path: str | Path) -> bytes:
    """An HMAC secret from a file (trailing newline stripped)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyConfigError(f'cannot read key file {path}: {exc.strerror}') from None
    data = data.rstrip(b'\r\n')
    if not data:
        raise KeyConfigError(f'key file {path} is empty')
    return data


def load_private_key(path: str | Path) -> Ed25519Signer:
    """An Ed25519 private key from a PEM (PKCS#8) file written by v2x_keygen."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyConfigError(f'cannot read key file {path}: {exc.strerror}') from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        raise KeyConfigError(f'{path} is not a PEM private key') from None
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


def trust_entry(name: str, public_raw: bytes) -> str:
    """One trust-store line: '<name> ed25519 <base64 public key>'."""
    if not name or any(c.isspace() for c in name):
        raise KeyConfigError(f'trust-store name {name!r} must be one word')
    return f'{name} ed25519 {base64.b64encode(public_raw).decode()}'


def load_trust_store(path: str | Path) -> list[Ed25519Verifier]:
    """Trusted keys from a text file of '<name> ed25519 <base64>' lines ('#' comments)."""
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
        if len(parts) != 3 or parts[1] != 'ed25519':
            raise KeyConfigError(f'{path}:{lineno}: expected "<name> ed25519 <base64 key>"')
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except ValueError:
            raise KeyConfigError(f'{path}:{lineno}: key is not base64') from None
        keys.append(Ed25519Verifier(raw, parts[0]))
    if not keys:
        raise KeyConfigError(f'trust store {path} holds no keys')
    return keys


def hmac_from_sources(key: str | None = None, key_file: str | None = None,
                      env=os.environ) -> HmacKey | None:
    """The HMAC key from a literal, a file, or $V2X_KEY, in that order; None when none."""
    if key:
        return HmacKey(key.encode('utf-8'))
    if key_file:
        return HmacKey(read_secret_file(key_file))
    if env.get(ENV_KEY):
        return HmacKey(env[ENV_KEY].encode('utf-8'))
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
                 env=os.environ) -> Keyring:
    """What a receiver accepts. hmac: the key plus accept_key_files (rotation); ed25519:
    the trust store (plus HMAC keys if given); none: only unsigned, with insecure set."""
    if auth_mode == 'none':
        if not insecure:
            raise KeyConfigError("auth mode 'none' needs the insecure flag set explicitly")
        return Keyring(allow_none=True)
    hmac_keys = []
    if auth_mode == 'hmac' or hmac_key:
        first = hmac_from_sources(hmac_key, key_file if auth_mode == 'hmac' else '', env)
        if first is not None:
            hmac_keys.append(first)
    hmac_keys += [HmacKey(read_secret_file(p)) for p in accept_key_files if p]
    ed_keys = []
    if auth_mode == 'ed25519':
        if not trust_store:
            raise KeyConfigError('ed25519 receiving needs a trust store file (v2x_keygen '
                                 'prints its entries)')
        ed_keys = load_trust_store(trust_store)
    elif auth_mode != 'hmac':
        raise KeyConfigError(f'unknown auth mode {auth_mode!r}; expected hmac, ed25519 or none')
    if not hmac_keys and not ed_keys:
        raise KeyConfigError(f'no HMAC key: give --hmac-key / key_file, or set {ENV_KEY}; '
                             'or run insecure (auth none) on purpose')
    return Keyring(hmac_keys, ed_keys, allow_none=insecure)
