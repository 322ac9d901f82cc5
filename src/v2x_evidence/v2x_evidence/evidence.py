"""Signed and chained evidence: the records of the evidence log and their checks.

Pure Python: no files, no clock, no key loading; the signing and verifying functions come
in as arguments (the idea of ONVIF Media Signing: the recording station signs what it
recorded, so that anyone holding its public key can tell a changed recording later).

A *signed record* is one line of bytes: the record's canonical JSON (keys sorted, no
spaces, ASCII only), a TAB, the base64 Ed25519 signature of exactly those JSON bytes
(empty when the station has no evidence key), LF. The evidence log (``evidence.log`` in the
archive) is such records, indexed 0, 1, 2, ... without a hole, each carrying ``prev``: the
SHA-256 (hex) of the JSON bytes of the record before it (``GENESIS_PREV`` for index 0). The
head (``evidence.head``) is one signed record ``{"index", "hash", "time", ...}`` naming
the last record, rewritten each time the log grows. A clip's sidecar is signed as a file:
``accident_<T0>_<id>.sig`` holds the 64 raw signature bytes over the sidecar file's bytes
(what ``openssl pkeyutl -verify -rawin`` checks).

What the checks find (each a Finding naming what and where): a clip whose bytes changed,
a sidecar whose bytes changed, a bad signature, a record missing or out of order, a chain
broken at record N, a log cut short against a head the verifier was given, a clip deleted
without a log record, a clip the log does not know (unsigned).
"""

import base64
import binascii
from dataclasses import dataclass, field
import hashlib
import json
from typing import Callable, Iterable, Sequence

LOG_FILE = 'evidence.log'
HEAD_FILE = 'evidence.head'
PUBLIC_KEY_FILE = 'evidence_public_key.pem'
SIG_SUFFIX = '.sig'
GENESIS_PREV = '0' * 64
LOG_VERSION = 1

# Record types of the log.
OPEN = 'open'          # the first record: the station and its key
CLIP = 'clip'          # a clip and its sidecar were archived
DELETE = 'delete'      # retention deleted a clip (what, why)
HOLD = 'hold'          # an operator put a legal hold on a clip (who, when, why)
RELEASE = 'release'    # an operator released it
TYPES = (OPEN, CLIP, DELETE, HOLD, RELEASE)

# What a Finding reports (the words v2x_verify_evidence prints).
CLIP_CHANGED = 'clip changed'
SIDECAR_CHANGED = 'sidecar changed'
SIGNATURE_BAD = 'signature bad'
ENTRY_MISSING = 'entry missing'
CHAIN_BROKEN = 'chain broken'
CUT_SHORT = 'log cut short'
CLIP_MISSING = 'clip missing'
ENTRY_UNREADABLE = 'entry unreadable'
UNSIGNED = 'unsigned'
NOT_IN_LOG = 'not in the evidence log'
#: Findings that mean "changed or removed"; the others mean "cannot be vouched for".
TAMPERING = frozenset({CLIP_CHANGED, SIDECAR_CHANGED, SIGNATURE_BAD, ENTRY_MISSING,
                       CHAIN_BROKEN, CUT_SHORT, CLIP_MISSING, ENTRY_UNREADABLE})

Sign = Callable[[bytes], bytes]
Verify = Callable[[bytes, bytes], bool]


class BadRecord(ValueError):
    """A line of the log or head that is no signed record (torn or edited)."""


@dataclass(frozen=True)
class Finding:
    """One thing that does not hold: what (the words above), where, and detail."""

    what: str
    where: str
    detail: str = ''

    def __str__(self) -> str:
        sep = ' ' if self.where.startswith('at ') else ': '
        return f'{self.what}{sep}{self.where}' + (f' ({self.detail})' if self.detail else '')

    @property
    def is_tampering(self) -> bool:
        return self.what in TAMPERING


# --- records ------------------------------------------------------------------------------

def canonical(record: dict) -> bytes:
    """The bytes a record is signed and hashed as."""
    return json.dumps(record, sort_keys=True, separators=(',', ':'),
                      ensure_ascii=True, allow_nan=False).encode('ascii')


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of data, hex."""
    return hashlib.sha256(data).hexdigest()


def signed_line(record: dict, sign: Sign | None) -> tuple[bytes, bytes]:
    """(the line to write, the record's JSON bytes) of record, signed when sign is given."""
    body = canonical(record)
    sig = base64.b64encode(sign(body)) if sign is not None else b''
    return body + b'\t' + sig + b'\n', body


def parse_line(line: bytes) -> tuple[bytes, dict, bytes]:
    """(JSON bytes, record, signature) of one line (without its LF); raises BadRecord."""
    body, tab, sig_b64 = line.partition(b'\t')
    if not tab:
        raise BadRecord('no TAB between record and signature (a torn write?)')
    try:
        record = json.loads(body.decode('ascii'))
        sig = base64.b64decode(sig_b64, validate=True)
    except (UnicodeDecodeError, ValueError, binascii.Error) as exc:
        raise BadRecord(f'not a signed record: {exc}') from None
    if not isinstance(record, dict):
        raise BadRecord('the record is not a JSON object')
    if canonical(record) != body:
        raise BadRecord('the record is not in canonical form (edited by hand?)')
    return body, record, sig


def event_key(event: dict | None) -> str:
    """The event a clip belongs to, '<source_id>|<origin>|<sequence>' ('' for none).

    A station that lost its state restarts its sequences under a new origin: its new
    events have new keys, so their clips are never taken for clips already made.
    """
    if not event or not event.get('source_id') and not event.get('sequence'):
        return ''
    return f"{event.get('source_id', '')}|{event.get('origin', '')}|{event.get('sequence', 0)}"


def head_record(index: int, record_hash: str, time: float, key_id: str) -> dict:
    """The head: the last record's index and hash, when, and by which key."""
    return {'head': LOG_VERSION, 'index': index, 'hash': record_hash, 'time': time,
            'key_id': key_id}


# --- the state a log describes -------------------------------------------------------------

@dataclass
class ClipState:
    """What the log says about one clip (by stem)."""

    stem: str
    entry: dict | None = None         # the last clip record
    index: int = -1                   # its index
    deleted: dict | None = None       # the delete record after it, if any
    hold: dict | None = None          # the hold record in force, if any

    @property
    def held(self) -> bool:
        return self.hold is not None


@dataclass
class LogState:
    """The state a log's records describe, applied in order."""

    next_index: int = 0
    last_hash: str = GENESIS_PREV
    clips: dict[str, ClipState] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)  # event key -> stem
    key_id: str = ''
    station: str = ''

    def apply(self, record: dict, record_hash: str) -> None:
        """Take one record (already checked) into the state."""
        self.next_index = int(record.get('index', self.next_index)) + 1
        self.last_hash = record_hash
        kind = record.get('type')
        if kind == OPEN:
            self.key_id, self.station = record.get('key_id', ''), record.get('station', '')
            return
        stem = record.get('stem')
        if not isinstance(stem, str) or not stem:
            return
        clip = self.clips.setdefault(stem, ClipState(stem))
        if kind == CLIP:
            clip.entry, clip.index, clip.deleted = record, int(record['index']), None
            key = event_key(record.get('event'))
            if key:
                self.events[key] = stem
        elif kind == DELETE:
            clip.deleted = record
        elif kind == HOLD:
            clip.hold = record
        elif kind == RELEASE:
            clip.hold = None

    @property
    def held(self) -> set[str]:
        """Stems under a legal hold."""
        return {stem for stem, c in self.clips.items() if c.held}


def check_chain(lines: Sequence[bytes], verify: Verify | None,
                first_index: int = 0, first_prev: str | None = GENESIS_PREV
                ) -> tuple[LogState, list[Finding], list[str]]:
    """Check a log's lines in order: (state, findings, hashes by position).

    Each record must have the next index, name the hash of the one before (the first one
    first_prev, unless None: an excerpt starting mid-log) and carry a good signature (when
    verify is given; an empty signature is a finding 'unsigned'). A line that is no record
    is reported and the chain goes on from the line after it, so one bad line does not
    hide the rest.
    """
    state = LogState(next_index=first_index, last_hash=first_prev or GENESIS_PREV)
    findings: list[Finding] = []
    hashes: list[str] = []
    expected_prev = first_prev
    later = [_index_of(line) for line in lines]
    for pos, line in enumerate(lines):
        where = f'entry {state.next_index}'
        try:
            body, record, sig = parse_line(line)
        except BadRecord as exc:
            findings.append(Finding(ENTRY_UNREADABLE, f'line {pos + 1} of the log', str(exc)))
            hashes.append('')
            expected_prev = None  # cannot tell what the next should name
            state.next_index += 1
            continue
        record_hash = sha256_hex(body)
        hashes.append(record_hash)
        index = record.get('index')
        if not isinstance(index, int) or index != state.next_index:
            if isinstance(index, int) and index > state.next_index \
                    and state.next_index not in later[pos:]:
                findings.append(Finding(ENTRY_MISSING, f'entry {state.next_index}',
                                        f'line {pos + 1} holds entry {index}'))
            else:  # out of order, or a copy: the chain breaks where it should have been
                findings.append(Finding(CHAIN_BROKEN, f'at {state.next_index}',
                                        f'line {pos + 1} holds entry {index!r}'))
        elif expected_prev is not None and record.get('prev') != expected_prev:
            findings.append(Finding(CHAIN_BROKEN, f'at {index}', 'it does not name the '
                                    'hash of the entry before it'))
        if verify is not None:
            if not sig:
                findings.append(Finding(UNSIGNED, f'entry {record.get("index")}'))
            elif not verify(body, sig):
                findings.append(Finding(SIGNATURE_BAD, f'entry {record.get("index")}'))
        if record.get('type') not in TYPES:
            findings.append(Finding(CHAIN_BROKEN, where, f'unknown type {record.get("type")!r}'))
        state.apply(record, record_hash)
        if isinstance(index, int):
            state.next_index = index + 1
        expected_prev = record_hash
    return state, findings, hashes


def _index_of(line: bytes):
    try:
        return parse_line(line)[1].get('index')
    except BadRecord:
        return None


def check_head(head_line: bytes | None, state: LogState, hashes: Sequence[str],
               first_index: int, verify: Verify | None,
               given: Iterable[tuple[int, str]] = ()) -> tuple[int, list[Finding]]:
    """Check the archive's signed head and the heads the verifier was given against the log.

    Returns (the head index to report, findings). A log shorter than a head, or whose
    record at the head's index has another hash, was cut short or rewritten.
    """
    findings: list[Finding] = []
    last = first_index + len(hashes) - 1

    def hash_at(index: int) -> str | None:
        pos = index - first_index
        return hashes[pos] if 0 <= pos < len(hashes) else None

    heads: list[tuple[int, str, str]] = []
    reported = last
    if head_line is not None:
        try:
            body, record, sig = parse_line(head_line.rstrip(b'\n'))
        except BadRecord as exc:
            findings.append(Finding(ENTRY_UNREADABLE, 'the head', str(exc)))
        else:
            if verify is not None and not (sig and verify(body, sig)):
                findings.append(Finding(SIGNATURE_BAD if sig else UNSIGNED, 'the head'))
            heads.append((int(record.get('index', -1)), str(record.get('hash', '')),
                          "the archive's head"))
    for index, digest in given:
        heads.append((index, digest, f'the given head {index}'))
    for index, digest, name in heads:
        if index > last:
            findings.append(Finding(CUT_SHORT, f'{name} is entry {index}, the log ends at '
                                    f'{last}'))
        elif index >= first_index and hash_at(index) != digest:
            findings.append(Finding(CHAIN_BROKEN, f'at {index}', f'{name} names another '
                                    'entry (the log was rewritten)'))
    return reported, findings


def check_clip(clip: ClipState, sidecar: bytes | None, sig: bytes | None,
               video_sha256: str | None, verify: Verify | None) -> list[Finding]:
    """Check one clip the log lists against its files.

    sidecar / sig: the file bytes (None when missing); video_sha256: the SHA-256 of the
    video file (None when missing). A clip the log deleted must be gone; one not deleted
    must be there, unchanged, with a good signature.
    """
    stem, entry = clip.stem, clip.entry or {}
    if clip.deleted is not None:
        return []
    findings = []
    if sidecar is None:
        return [Finding(CLIP_MISSING, stem, 'its sidecar is gone and the log records no '
                        'deletion')]
    if sha256_hex(sidecar) != entry.get('sidecar_sha256'):
        findings.append(Finding(SIDECAR_CHANGED, stem))
    if verify is not None:
        if not sig:
            findings.append(Finding(UNSIGNED, stem, 'no signature file'))
        elif not verify(sidecar, sig):
            findings.append(Finding(SIGNATURE_BAD, stem))
    try:
        recorded = json.loads(sidecar).get('sha256', '')
    except (ValueError, AttributeError):
        recorded = None
    want = entry.get('clip_sha256', '')
    if want:
        if video_sha256 is None:
            findings.append(Finding(CLIP_MISSING, stem, 'its video is gone and the log '
                                    'records no deletion'))
        elif video_sha256 != want or (recorded is not None and recorded != want):
            findings.append(Finding(CLIP_CHANGED, stem))
    return findings
