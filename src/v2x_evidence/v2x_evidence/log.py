"""The evidence log on disk: appends under a lock, the signed head, sidecar signatures.

File I/O only (no rclpy); the records and their checks are evidence.py's. Several writers
share one archive (event_clipper, ``v2x_make_clip --direct``, ``v2x_hold_evidence``): each
append takes an exclusive flock on the log, reads what the others appended since, writes
one record with the next index and the hash of the last one, fsyncs it and then replaces
the signed head atomically. A crash between the two leaves the head one record behind
(the verifier accepts a head behind the log, never one ahead of it).

The station's evidence key (``evidence_key_file``) is an Ed25519 PEM private key loaded
and permission-checked by the alert keys' own loader (v2x_protocol.io.keys.load_private_key:
a key file group or others may read is refused with the chmod that fixes it). Without a
key the log is still written and chained, with empty signatures (the verifier says
``unsigned``).
"""

import fcntl
import json
import os
import threading
import time
from typing import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from v2x_common.files import write_atomic
from v2x_evidence import evidence
from v2x_evidence.evidence import (
    CLIP,
    HEAD_FILE,
    LOG_FILE,
    OPEN,
    PUBLIC_KEY_FILE,
    SIG_SUFFIX,
    BadRecord,
    LogState,
)
from v2x_protocol.io import keys

KeyConfigError = keys.KeyConfigError


def load_evidence_key(path: str) -> keys.Ed25519Signer:
    """The station's evidence key (PEM Ed25519, mode 0600); raises KeyConfigError."""
    return keys.load_private_key(path)


def public_pem(public_raw: bytes) -> bytes:
    """The PEM (SubjectPublicKeyInfo) of a raw Ed25519 public key, as openssl reads it."""
    return Ed25519PublicKey.from_public_bytes(public_raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(path: str) -> tuple[Callable[[bytes, bytes], bool], str]:
    """(verify(data, sig), key id hex) of a PEM Ed25519 public key file.

    Raises KeyConfigError when the file is unreadable or holds no Ed25519 public key.
    """
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as exc:
        raise KeyConfigError(f'cannot read public key {path}: {exc.strerror}') from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise KeyConfigError(f'{path} is not a PEM public key') from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyConfigError(f'{path} is not an Ed25519 public key')
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def verify(message: bytes, sig: bytes) -> bool:
        try:
            key.verify(sig, message)
        except InvalidSignature:
            return False
        return True

    return verify, keys.key_id_of(raw).hex()


#: In the archive: which key file signs its log (a path, never the key) and the station,
#: for the other writers on this machine (the console's legal holds).
SIGNER_FILE = 'evidence_signer.json'


def write_signer_file(archive_dir: str, key_file: str, station: str) -> None:
    """Name the evidence key file (its path) and the station for the archive's writers."""
    write_atomic(os.path.join(archive_dir, SIGNER_FILE), json.dumps(
        {'evidence_key_file': os.path.abspath(key_file) if key_file else '',
         'station_id': station}, sort_keys=True) + '\n')


def open_archive_log(archive_dir: str) -> 'EvidenceLog':
    """The archive's log, signing with the key its signer file names (unsigned without
    one). Raises KeyConfigError when that key cannot be used."""
    try:
        with open(os.path.join(archive_dir, SIGNER_FILE), encoding='utf-8') as f:
            info = json.load(f)
    except (OSError, ValueError):
        info = {}
    info = info if isinstance(info, dict) else {}
    key_file = str(info.get('evidence_key_file') or '')
    signer = load_evidence_key(key_file) if key_file else None
    return EvidenceLog(archive_dir, signer, str(info.get('station_id') or ''))


def sig_path(archive_dir: str, stem: str) -> str:
    """Where the signature of a clip's sidecar is."""
    return os.path.join(archive_dir, stem + SIG_SUFFIX)


class EvidenceLog:
    """The archive's evidence log, as one writer sees it (thread-safe)."""

    def __init__(self, archive_dir: str, signer: keys.Ed25519Signer | None = None,
                 station: str = '', clock: Callable[[], float] = time.time):
        self.archive_dir = archive_dir
        self.path = os.path.join(archive_dir, LOG_FILE)
        self.head_path = os.path.join(archive_dir, HEAD_FILE)
        self.signer = signer
        self.station = station
        self.clock = clock
        self.key_id = signer.key_id.hex() if signer is not None else ''
        self.state = LogState()
        self.unreadable = 0   # lines of the log that are no record (see the verifier)
        self._offset = 0
        self._lock = threading.Lock()
        if signer is not None:  # a reader (no key) creates nothing
            os.makedirs(archive_dir, exist_ok=True)
            self._write_public_key()
        self.refresh()

    def _write_public_key(self) -> None:
        path = os.path.join(self.archive_dir, PUBLIC_KEY_FILE)
        pem = public_pem(self.signer.public_raw)
        try:
            with open(path, 'rb') as f:
                if f.read() == pem:
                    return
        except FileNotFoundError:
            pass
        write_atomic(path, pem)

    def sign(self, data: bytes) -> bytes | None:
        return self.signer.sign(data) if self.signer is not None else None

    # --- reading -------------------------------------------------------------------------

    def refresh(self) -> LogState:
        """Take in what was appended since the last look (by anyone); the state."""
        with self._lock:
            try:
                with open(self.path, 'rb') as f:
                    fcntl.flock(f, fcntl.LOCK_SH)
                    self._read_new(f)
            except FileNotFoundError:
                pass
            return self.state

    def _read_new(self, f) -> None:
        f.seek(self._offset)
        data = f.read()
        end = data.rfind(b'\n')
        if end < 0:
            return
        for line in data[:end].split(b'\n'):
            try:
                body, record, _ = evidence.parse_line(line)
            except BadRecord:
                self.unreadable += 1
                continue
            self.state.apply(record, evidence.sha256_hex(body))
        self._offset += end + 1

    # --- writing -------------------------------------------------------------------------

    def append(self, kind: str, **fields) -> dict:
        """Append one record of kind with fields (index, prev, time added); the record.

        Raises OSError when the log cannot be written (the caller reports it).
        """
        with self._lock:
            os.makedirs(self.archive_dir, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                         0o644)
            with os.fdopen(fd, 'r+b') as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                self._read_new(f)
                f.seek(0, os.SEEK_END)
                if f.tell() > self._offset:  # a torn last line: never glue onto it
                    f.write(b'\n')
                    self.unreadable += 1
                if self.state.next_index == 0 or (self.key_id and
                                                  self.state.key_id != self.key_id):
                    self._write(f, {'type': OPEN, 'station': self.station,
                                    'key_id': self.key_id,
                                    'public_key': self.signer.public_raw.hex()
                                    if self.signer is not None else ''})
                record = self._write(f, {'type': kind, **fields})
                f.flush()
                os.fsync(f.fileno())
                self._offset = f.tell()
                head = evidence.head_record(record['index'], self.state.last_hash,
                                            record['time'], self.key_id)
                line, _ = evidence.signed_line(head, self.sign if self.signer else None)
                write_atomic(self.head_path, line)
            return record

    def _write(self, f, fields: dict) -> dict:
        record = {**fields, 'index': self.state.next_index, 'prev': self.state.last_hash,
                  'time': round(self.clock(), 6)}
        line, body = evidence.signed_line(record, self.sign if self.signer else None)
        f.write(line)
        self.state.apply(record, evidence.sha256_hex(body))
        return record

    def record_clip(self, stem: str, sidecar_bytes: bytes, sidecar: dict) -> dict:
        """Sign a clip's sidecar (its .sig file) and append its clip record."""
        sig = self.sign(sidecar_bytes)
        if sig is not None:
            write_atomic(sig_path(self.archive_dir, stem), sig)
        return self.append(
            CLIP, stem=stem, station=self.station, key_id=self.key_id,
            event=sidecar.get('event') or {}, video=os.path.basename(sidecar.get('path', '')),
            clip_sha256=sidecar.get('sha256', ''),
            sidecar_sha256=evidence.sha256_hex(sidecar_bytes))


SIGNATURE_VERIFIED = 'verified'
SIGNATURE_BAD = 'bad'
SIGNATURE_UNSIGNED = 'unsigned'


def signature_status(archive_dir: str, stem: str,
                     verify: Callable[[bytes, bytes], bool] | None) -> str:
    """'verified', 'bad' or 'unsigned': a clip's sidecar checked against its signature file
    (cheap: the video is not hashed again). verify: of the station's public key (see
    load_public_key; None when there is none: unsigned)."""
    try:
        with open(os.path.join(archive_dir, stem + '.json'), 'rb') as f:
            sidecar = f.read()
        with open(sig_path(archive_dir, stem), 'rb') as f:
            sig = f.read()
    except FileNotFoundError:
        return SIGNATURE_UNSIGNED
    if verify is None:
        return SIGNATURE_UNSIGNED
    return SIGNATURE_VERIFIED if verify(sidecar, sig) else SIGNATURE_BAD
