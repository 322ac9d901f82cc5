"""The V2X datagram: a sans-IO codec (bytes in, dataclasses out; no sockets, no rclpy).

Layout (big-endian; docs/protocol.md is the normative description with test vectors)::

    header (48 bytes)  magic 'VX' | version 2 | type | auth | reserved | body_len
                       | key_id (8) | origin (u64) | session (u64) | counter (u64)
                       | send_time_ns (i64)
    body               alert or heartbeat fields
    tag                0 (none), 32 (HMAC-SHA256) or 64 (Ed25519) bytes over header+body

Errors are typed: WireError subclasses are the remote peer's fault (garbage, bad
signature, replay); InvalidMessage is local misuse (a field that cannot be encoded).
"""

import dataclasses
from dataclasses import dataclass
import math
import struct

from v2x_protocol import ranges

__all__ = [
    'MAGIC', 'VERSION', 'MAX_DATAGRAM', 'HEADER_LEN', 'KEY_ID_LEN', 'TAG_LEN', 'TYPE_ALERT',
    'TYPE_HEARTBEAT', 'AUTH_NONE', 'AUTH_HMAC', 'AUTH_ED25519', 'AUTH_NAMES', 'FLAG_CANCELLED',
    'FLAG_CLIP_REQUESTED', 'MAX_TEXT', 'MAX_TIME_NS', 'WireError', 'MalformedDatagram',
    'OversizedDatagram', 'UnsupportedVersion', 'Unauthenticated', 'UnknownKey', 'BadSignature',
    'HeartbeatKeyMisuse', 'ForgedSource', 'OutOfRange', 'ControlChars', 'FutureDated',
    'TooOld', 'Expired', 'Replayed', 'CounterJump', 'InternalError', 'InvalidMessage',
    'AlertData', 'HeartbeatData', 'Envelope', 'Datagram', 'encode', 'encode_alert_body',
    'encode_heartbeat_body', 'parse_header', 'decode', 'decode_alert_body',
    'decode_heartbeat_body', 'f32',
]

MAGIC = b'VX'
VERSION = 2
MAX_DATAGRAM = 1200

TYPE_ALERT = 1
TYPE_HEARTBEAT = 2

AUTH_NONE = 0
AUTH_HMAC = 1
AUTH_ED25519 = 2
TAG_LEN = {AUTH_NONE: 0, AUTH_HMAC: 32, AUTH_ED25519: 64}
AUTH_NAMES = {'none': AUTH_NONE, 'hmac': AUTH_HMAC, 'ed25519': AUTH_ED25519}

FLAG_CANCELLED = 0x01
FLAG_CLIP_REQUESTED = 0x02
_KNOWN_FLAGS = FLAG_CANCELLED | FLAG_CLIP_REQUESTED

KEY_ID_LEN = 8
MAX_TEXT = ranges.MAX_TEXT_BYTES
MAX_TIME_NS = ranges.MAX_TIME_NS  # builtin_interfaces/Time.sec is an int32
FLT_MAX = 3.4028234663852886e38

_HEADER = struct.Struct('>2sBBBBH8sQQQq')
HEADER_LEN = _HEADER.size  # 48
_ALERT_FIXED = struct.Struct('>IBBBBqqfddff')
_HEARTBEAT_FIXED = struct.Struct('>BBHff')
_F32 = struct.Struct('>f')


# --- errors -----------------------------------------------------------------------------

class WireError(Exception):
    """A datagram that the receiver must drop; the remote peer's fault. `reason` names it."""

    reason = 'invalid'


class MalformedDatagram(WireError):
    """Truncated, inconsistent lengths, bad magic, bad UTF-8, unknown type or flags."""

    reason = 'malformed'


class OversizedDatagram(WireError):
    """Longer than MAX_DATAGRAM bytes."""

    reason = 'oversized'


class UnsupportedVersion(WireError):
    """A version this implementation does not speak."""

    reason = 'unknown_version'


class Unauthenticated(WireError):
    """auth 'none' while the receiver is not in insecure mode."""

    reason = 'unsigned'


class UnknownKey(WireError):
    """Signed with a key id the receiver does not hold (or a mode it does not accept)."""

    reason = 'unknown_key'


class BadSignature(WireError):
    """The tag does not verify: wrong key, or the bytes were changed."""

    reason = 'bad_signature'


class FutureDated(WireError):
    """Generation time further ahead of the receiver's clock than the skew window."""

    reason = 'future_dated'


class TooOld(WireError):
    """Generation time further behind the receiver's clock than the skew window."""

    reason = 'too_old'


class Expired(WireError):
    """The alert's detection_time + validity_s has passed."""

    reason = 'expired'


class Replayed(WireError):
    """A (session, counter) the receiver has already accepted, or one 64 or more behind the
    highest counter of its session (the window cannot tell)."""

    reason = 'replayed'


class CounterJump(WireError):
    """A counter more than MAX_COUNTER_JUMP above the highest of its session."""

    reason = 'counter_jump'


class OutOfRange(WireError):
    """A field outside the range table (ranges.py), e.g. latitude 137."""

    reason = 'out_of_range'


class ControlChars(OutOfRange):
    """A text field holding a control character (C0, C1, DEL: NUL, ESC, CR, LF...)."""

    reason = 'control_chars'


class ForgedSource(WireError):
    """An Ed25519 signer speaking for a source_id its trust-store line does not list."""

    reason = 'forged_source'


class HeartbeatKeyMisuse(WireError):
    """A datagram signed with a heartbeat-only key (the fleet's heartbeat key) that is not
    a vehicle's heartbeat: such a key never signs an alert nor speaks as an RSU."""

    reason = 'heartbeat_key'


class InternalError(WireError):
    """An unexpected exception while handling a datagram (a bug): counted, never raised."""

    reason = 'internal_error'


class InvalidMessage(ValueError):
    """Local misuse: a field that cannot be put on the wire (text too long, bad value)."""


# --- data -------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlertData:
    """One version of a road hazard event (v2x_msgs/Alert without ROS types; times in ns)."""

    source_id: str
    sequence: int
    kind: int
    severity: int
    suggest: int
    stamp_ns: int
    detection_time_ns: int
    validity_s: float
    cancelled: bool = False
    latitude: float = math.nan
    longitude: float = math.nan
    road: str = ''
    distance_m: float = math.nan
    confidence: float = 1.0
    clip_requested: bool = False
    clip_id: str = ''
    # Not on the wire (encode ignores them, decode leaves the defaults): how this station
    # got the alert, as v2x_msgs/Alert says. authenticated: signature verified or produced
    # here; False for DENM and unsigned radio. path: Alert.PATH_* (not part of equality).
    authenticated: bool = True
    path: int = dataclasses.field(default=0, compare=False)
    # origin: the sending station instance (the datagram header's origin, or this
    # station's own for what it sends); with source_id and sequence it names the event
    # (evidence clips). Not in the body, not part of equality; 0 = unknown.
    origin: int = dataclasses.field(default=0, compare=False)

    @property
    def key(self) -> tuple:
        """The event's identity (DENM actionID): (source_id, sequence).

        An unauthenticated alert lives in its own event-id space, (source_id, sequence,
        'unauthenticated'), so it can never update or cancel an authenticated one.
        """
        if self.authenticated:
            return (self.source_id, self.sequence)
        return (self.source_id, self.sequence, 'unauthenticated')

    @property
    def expires_ns(self) -> int:
        """detection_time + validity_s in ns: validity_s * 1e9 as a double, truncated."""
        return self.detection_time_ns + int(self.validity_s * 1e9)


@dataclass(frozen=True)
class HeartbeatData:
    """What a gateway says about itself every heartbeat period (send time is the envelope's)."""

    source_id: str
    role: int
    status: int = 0
    status_message: str = ''
    active_alerts: int = 0
    uptime_s: float = 0.0
    period_s: float = 10.0


@dataclass(frozen=True)
class Envelope:
    """The header fields of a verified datagram.

    origin: the sending station instance (random, persisted with its sequence store); an
    event is (source_id, origin, sequence). session: random per sender start.
    """

    msg_type: int
    auth: int
    key_id: bytes
    session: int
    counter: int
    send_time_ns: int
    origin: int = 0


@dataclass(frozen=True)
class Datagram:
    """A verified, decoded datagram: its envelope, its payload, and the key that verified
    it (the keyring's verifier; None for auth none)."""

    envelope: Envelope
    payload: AlertData | HeartbeatData
    verifier: object = dataclasses.field(default=None, compare=False, repr=False)


# --- encoding ---------------------------------------------------------------------------

def _text(value: str, field: str) -> bytes:
    try:
        ranges.check_text(field, value)
        raw = value.encode('utf-8')
    except (ranges.FieldError, UnicodeEncodeError) as exc:
        raise InvalidMessage(str(exc)) from None
    return bytes([len(raw)]) + raw


def _check_f32(value: float, field: str) -> None:
    if math.isfinite(value) and abs(value) > FLT_MAX:
        raise InvalidMessage(f'{field}={value!r} does not fit a float32')


def encode_alert_body(a: AlertData) -> bytes:
    """The alert body bytes (no header, no tag)."""
    if not a.source_id:
        raise InvalidMessage('source_id must not be empty')
    if not 0 <= a.sequence <= 0xFFFFFFFF:
        raise InvalidMessage(f'sequence {a.sequence} outside 0..2^32-1')
    for name in ('kind', 'severity', 'suggest'):
        if not 0 <= getattr(a, name) <= 255:
            raise InvalidMessage(f'{name} {getattr(a, name)} outside 0..255')
    for name in ('validity_s', 'distance_m', 'confidence'):
        _check_f32(getattr(a, name), name)
    flags = (FLAG_CANCELLED if a.cancelled else 0) | (
        FLAG_CLIP_REQUESTED if a.clip_requested else 0)
    try:
        fixed = _ALERT_FIXED.pack(a.sequence, a.kind, a.severity, a.suggest, flags,
                                  a.stamp_ns, a.detection_time_ns, a.validity_s,
                                  a.latitude, a.longitude, a.distance_m, a.confidence)
    except struct.error as exc:
        raise InvalidMessage(f'alert does not fit the wire: {exc}') from None
    return (_text(a.source_id, 'source_id') + fixed + _text(a.road, 'road')
            + _text(a.clip_id, 'clip_id'))


def encode_heartbeat_body(h: HeartbeatData) -> bytes:
    """The heartbeat body bytes (no header, no tag)."""
    if not h.source_id:
        raise InvalidMessage('source_id must not be empty')
    try:
        fixed = _HEARTBEAT_FIXED.pack(h.role, h.status, min(h.active_alerts, 0xFFFF),
                                      h.uptime_s, h.period_s)
    except struct.error as exc:
        raise InvalidMessage(f'heartbeat does not fit the wire: {exc}') from None
    return _text(h.source_id, 'source_id') + fixed + _text(h.status_message, 'status_message')


def encode(payload: AlertData | HeartbeatData, *, signer, session: int, counter: int,
           send_time_ns: int, origin: int = 0) -> bytes:
    """A whole datagram. signer: None for auth 'none', else an object with auth, key_id, sign().

    The payload must be inside the range table (ranges.py): a sender never puts on the air
    what a receiver drops (InvalidMessage names the field).
    """
    try:
        if isinstance(payload, AlertData):
            ranges.check_alert_fields(payload)
        elif isinstance(payload, HeartbeatData):
            ranges.check_heartbeat_fields(payload)
    except ranges.FieldError as exc:
        raise InvalidMessage(str(exc)) from None
    if isinstance(payload, AlertData):
        msg_type, body = TYPE_ALERT, encode_alert_body(payload)
    elif isinstance(payload, HeartbeatData):
        msg_type, body = TYPE_HEARTBEAT, encode_heartbeat_body(payload)
    else:
        raise InvalidMessage(f'cannot encode {type(payload).__name__}')
    if counter < 1:
        raise InvalidMessage(f'counter {counter}: counters start at 1')
    auth = AUTH_NONE if signer is None else signer.auth
    key_id = bytes(KEY_ID_LEN) if signer is None else signer.key_id
    header = _HEADER.pack(MAGIC, VERSION, msg_type, auth, 0, len(body), key_id,
                          origin, session, counter, send_time_ns)
    signed = header + body
    tag = b'' if signer is None else signer.sign(signed)
    datagram = signed + tag
    if len(datagram) > MAX_DATAGRAM:
        raise InvalidMessage(f'datagram of {len(datagram)} bytes exceeds {MAX_DATAGRAM}')
    return datagram


# --- decoding ---------------------------------------------------------------------------

def parse_header(data: bytes) -> tuple[Envelope, int]:
    """Step 1 (size/version): check the frame; returns the envelope and the body length."""
    if len(data) > MAX_DATAGRAM:
        raise OversizedDatagram(f'{len(data)} bytes > {MAX_DATAGRAM}')
    if len(data) < HEADER_LEN:
        raise MalformedDatagram(f'{len(data)} bytes is shorter than the header')
    (magic, version, msg_type, auth, reserved, body_len, key_id, origin, session, counter,
     send_time_ns) = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise MalformedDatagram(f'bad magic {magic!r}')
    if version != VERSION:
        raise UnsupportedVersion(f'version {version}, this receiver speaks {VERSION}')
    if msg_type not in (TYPE_ALERT, TYPE_HEARTBEAT):
        raise MalformedDatagram(f'unknown message type {msg_type}')
    if auth not in TAG_LEN:
        raise MalformedDatagram(f'unknown auth mode {auth}')
    if reserved != 0:
        raise MalformedDatagram('reserved byte is not 0')
    if auth == AUTH_NONE and key_id != bytes(KEY_ID_LEN):
        raise MalformedDatagram('auth 0 (none) with a non-zero key id')
    if counter == 0:
        raise MalformedDatagram('counter 0 (counters start at 1)')
    expected = HEADER_LEN + body_len + TAG_LEN[auth]
    if len(data) != expected:
        raise MalformedDatagram(f'length {len(data)} != header {HEADER_LEN} + body {body_len}'
                                f' + tag {TAG_LEN[auth]}')
    return Envelope(msg_type, auth, key_id, session, counter, send_time_ns,
                    origin), body_len


def _read_text(body: bytes, offset: int, field: str) -> tuple[str, int]:
    if offset >= len(body):
        raise MalformedDatagram(f'{field}: body ends early')
    n = body[offset]
    end = offset + 1 + n
    if end > len(body):
        raise MalformedDatagram(f'{field}: length {n} runs past the body')
    try:
        return body[offset + 1:end].decode('utf-8'), end
    except UnicodeDecodeError:
        raise MalformedDatagram(f'{field}: invalid UTF-8') from None


def _read_body(body: bytes, fixed: struct.Struct, texts: tuple[str, ...], what: str):
    """source_id, the fixed fields, then the trailing texts; nothing may follow."""
    source_id, off = _read_text(body, 0, 'source_id')
    if not source_id:
        raise MalformedDatagram('empty source_id')
    if off + fixed.size > len(body):
        raise MalformedDatagram(f'{what} body truncated')
    values = fixed.unpack_from(body, off)
    off += fixed.size
    strings = []
    for name in texts:
        text, off = _read_text(body, off, name)
        strings.append(text)
    if off != len(body):
        raise MalformedDatagram(f'{len(body) - off} trailing bytes in the {what} body')
    return source_id, values, strings


def decode_alert_body(body: bytes) -> AlertData:
    """Alert body bytes -> AlertData; raises MalformedDatagram."""
    source_id, values, (road, clip_id) = _read_body(body, _ALERT_FIXED, ('road', 'clip_id'),
                                                    'alert')
    (sequence, kind, severity, suggest, flags, stamp_ns, detection_ns, validity_s,
     lat, lon, distance_m, confidence) = values
    if flags & ~_KNOWN_FLAGS:
        raise MalformedDatagram(f'unknown flags 0x{flags:02x}')
    alert = AlertData(source_id, sequence, kind, severity, suggest, stamp_ns, detection_ns,
                      validity_s, bool(flags & FLAG_CANCELLED), lat, lon, road, distance_m,
                      confidence, bool(flags & FLAG_CLIP_REQUESTED), clip_id)
    _in_range(ranges.check_alert_fields, alert)
    return alert


def _in_range(check, payload) -> None:
    """Map the range table's verdict to the receiver's drop reasons."""
    try:
        check(payload)
    except ranges.ControlCharacter as exc:
        raise ControlChars(str(exc)) from None
    except ranges.FieldError as exc:
        raise OutOfRange(str(exc)) from None


def decode_heartbeat_body(body: bytes) -> HeartbeatData:
    """Heartbeat body bytes -> HeartbeatData; raises MalformedDatagram."""
    source_id, values, (message,) = _read_body(body, _HEARTBEAT_FIXED, ('status_message',),
                                               'heartbeat')
    role, status, active, uptime_s, period_s = values
    hb = HeartbeatData(source_id, role, status, message, active, uptime_s, period_s)
    _in_range(ranges.check_heartbeat_fields, hb)
    return hb


def decode(data: bytes, keyring, header: tuple[Envelope, int] | None = None) -> Datagram:
    """Steps 1-2 of the receiver: frame and version, then authentication, then the body.

    keyring.verifier(auth, key_id) returns an object with verify(signed, tag) -> bool, or
    raises Unauthenticated / UnknownKey. A verifier whose signs_alerts is False (a
    heartbeat-only key) is refused for an alert before its tag is checked, and for a
    heartbeat that is not a vehicle's (HeartbeatKeyMisuse). The body is parsed only after
    the tag verifies; then keyring.may_speak_for(verifier, source_id) (or the verifier's
    own may_speak_for) must allow its source_id (ForgedSource).
    header: parse_header(data) when the caller has it already.
    """
    envelope, body_len = parse_header(data) if header is None else header
    signed_end = HEADER_LEN + body_len
    verifier = keyring.verifier(envelope.auth, envelope.key_id)
    alerts_ok = getattr(verifier, 'signs_alerts', True)
    if not alerts_ok and envelope.msg_type == TYPE_ALERT:
        raise HeartbeatKeyMisuse(f'an alert signed with the heartbeat-only key '
                                 f'{envelope.key_id.hex()}')
    if envelope.auth != AUTH_NONE and not verifier.verify(data[:signed_end],
                                                          data[signed_end:]):
        raise BadSignature(f'tag does not verify for key id {envelope.key_id.hex()}')
    body = data[HEADER_LEN:signed_end]
    if envelope.msg_type == TYPE_ALERT:
        payload = decode_alert_body(body)
    else:
        payload = decode_heartbeat_body(body)
        if not alerts_ok and payload.role != ranges.ROLE_VEHICLE:
            raise HeartbeatKeyMisuse(f'the heartbeat-only key {envelope.key_id.hex()} signs '
                                     f'only vehicle heartbeats, not role {payload.role}')
    keyring_check = getattr(keyring, 'may_speak_for', None)
    if keyring_check is not None:
        allowed = keyring_check(verifier, payload.source_id)
    else:
        own_check = getattr(verifier, 'may_speak_for', None)
        allowed = own_check is None or own_check(payload.source_id)
    if not allowed:
        name = getattr(verifier, 'name', '') or envelope.key_id.hex()
        raise ForgedSource(f'key {name} may not sign for source_id '
                           f'{ranges.printable(payload.source_id)!r}')
    return Datagram(envelope, payload, verifier)


def f32(value: float) -> float:
    """value rounded to float32 as it comes back from the wire (tests, conversions)."""
    return _F32.unpack(_F32.pack(value))[0]
