"""The one table of what each alert and heartbeat field may hold (docs/protocol.md).

Every entry point uses it: the CLI tools, v2x_inject, event_intake's schema, the gateway's
v2x/alert_out input and the receiver (a datagram outside it is dropped as `out_of_range`,
one with a control character as `control_chars`). A refusal is a FieldError whose message
starts with the field's name, so each entry point refuses the same value the same way.
"""

import math
import re

__all__ = [
    'MAX_TEXT_BYTES', 'MAX_STATION_ID_BYTES', 'MAX_VALIDITY_S', 'MAX_TIME_NS',
    'MAX_HEARTBEAT_PERIOD_S', 'MAX_DISTANCE_M', 'KINDS', 'SEVERITIES', 'SUGGESTS', 'ROLE_RSU',
    'ROLE_VEHICLE', 'ROLES', 'STATUSES', 'PRINTABLE_PATTERN', 'RESERVED_IN_SOURCE_ID',
    'FieldError', 'ControlCharacter', 'check_source_id', 'check_position',
    'check_text', 'has_control', 'printable', 'check_range', 'check_enum', 'check_validity',
    'check_time_ns', 'check_alert_fields', 'check_heartbeat_fields',
]

#: text fields on the wire are str8: at most this many bytes of UTF-8
MAX_TEXT_BYTES = 255
#: a station id (source_id) set by an operator: at most this many bytes
MAX_STATION_ID_BYTES = 64
#: validity_s on the wire and at every input: 0 < v <= this (DENM's validityDuration max
#: is 86400 s; a day is plenty for a road hazard)
MAX_VALIDITY_S = 86400.0
#: builtin_interfaces/Time.sec is an int32: times are 0 <= t < 2^31 s
MAX_TIME_NS = (1 << 31) * 1_000_000_000
#: a heartbeat's period_s: 0 < p <= this (a dead peer is stale after a few periods)
MAX_HEARTBEAT_PERIOD_S = 3600.0
#: the largest distance figure in metres (far beyond any radio range)
MAX_DISTANCE_M = 1_000_000.0

KINDS = {0: 'unknown', 1: 'collision', 2: 'fire', 3: 'blockage'}
SEVERITIES = {1: 'low', 2: 'medium', 3: 'high'}
SUGGESTS = {0: 'none', 1: 'slow_down', 2: 'stop'}
ROLE_RSU = 1
ROLE_VEHICLE = 2
ROLES = {ROLE_RSU: 'rsu', ROLE_VEHICLE: 'vehicle'}
STATUSES = {0: 'ok', 1: 'warn', 2: 'error'}

#: C0 controls, DEL, C1 controls and the Unicode bidirectional controls (ALM, LRM, RLM,
#: the embeddings, overrides and isolates U+202A..U+202E, U+2066..U+2069, which reorder
#: what a terminal or a page shows): never allowed in a text field
_CONTROL = re.compile('[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]')
#: a JSON Schema pattern for text without those characters
PRINTABLE_PATTERN = ('^[^\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e'
                     '\\u2066-\\u2069]*$')
#: shown escaped by printable(): the controls above and the invisible format characters
#: (zero-width space/joiners, word joiner, BOM...), which are allowed in text but would
#: hide what a log line says
_INVISIBLE = re.compile('[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f'
                        '\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]')
#: reserved in a source_id: a receiver names a second station instance <source_id>@<origin>
RESERVED_IN_SOURCE_ID = '@'


class FieldError(ValueError):
    """A field value outside the table. field names it; the message starts with it."""

    reason = 'out_of_range'

    def __init__(self, field: str, message: str):
        super().__init__(f'{field}: {message}')
        self.field = field


class ControlCharacter(FieldError):
    """A text field holding a C0/C1 control character or DEL (incl. NUL, ESC, CR, LF)."""

    reason = 'control_chars'


def check_text(field: str, value: str, *, required: bool = False,
               max_bytes: int = MAX_TEXT_BYTES) -> None:
    """A text field: UTF-8 of at most max_bytes, no control characters."""
    if not isinstance(value, str):
        raise FieldError(field, f'{value!r} is not text')
    if required and not value:
        raise FieldError(field, 'must not be empty')
    try:
        n = len(value.encode('utf-8'))
    except UnicodeEncodeError as exc:
        raise FieldError(field, f'not valid UTF-8 (lone surrogate at position {exc.start})'
                         ) from None
    if n > max_bytes:
        raise FieldError(field, f'{n} bytes of UTF-8; at most {max_bytes}')
    m = _CONTROL.search(value)
    if m:
        raise ControlCharacter(field, f'control character U+{ord(m.group()):04X} at '
                               f'position {m.start()} (text must be printable)')


def check_source_id(value: str, *, required: bool = True) -> None:
    """A source_id: text of 1..255 bytes without '@' (reserved for conflict names)."""
    check_text('source_id', value, required=required)
    if RESERVED_IN_SOURCE_ID in value:
        raise FieldError('source_id', f"{printable(value)!r} holds '@', reserved for the "
                         "receiver's name of a second station instance (<source_id>@<origin>)")


def check_position(lat, lon) -> None:
    """latitude and longitude: each finite in its closed range, or NaN (unknown); the
    position counts as known only when both are finite (what every consumer does)."""
    check_range('latitude', lat, -90.0, 90.0, unknown_nan=True)
    check_range('longitude', lon, -180.0, 180.0, unknown_nan=True)


def has_control(value: str) -> bool:
    """True when value holds a C0/C1 control character or DEL."""
    return _CONTROL.search(value) is not None


def printable(value: str) -> str:
    """value with every control and invisible format character shown as \\xNN or \\uNNNN
    (for terminals and logs: nothing in it moves the cursor, reorders or hides text)."""
    def escape(m):
        code = ord(m.group())
        return f'\\x{code:02x}' if code < 0x100 else f'\\u{code:04x}'
    return _INVISIBLE.sub(escape, value)


def _number(field: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldError(field, f'{value!r} is not a number')
    return float(value)


def check_range(field: str, value, lo: float, hi: float, *, unknown_nan: bool = False) -> None:
    """lo <= value <= hi and finite; NaN allowed only when unknown_nan (= unknown)."""
    v = _number(field, value)
    if math.isnan(v) and unknown_nan:
        return
    if not (math.isfinite(v) and lo <= v <= hi):
        what = ', or NaN when unknown' if unknown_nan else ''
        raise FieldError(field, f'{value!r} is not a finite number in {lo:g}..{hi:g}{what}')


def check_enum(field: str, value, names: dict[int, str]) -> None:
    """value is one of the known constants."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in names:
        known = ', '.join(f'{k} {v}' for k, v in names.items())
        raise FieldError(field, f'{value!r} is not one of {known}')


def check_validity(value, *, allow_zero: bool = False) -> None:
    """validity_s: finite, 0 < v <= MAX_VALIDITY_S (0 too where it means 'the default')."""
    v = _number('validity_s', value)
    if allow_zero and v == 0.0:
        return
    if not (math.isfinite(v) and 0.0 < v <= MAX_VALIDITY_S):
        zero = ' (0 = the default)' if allow_zero else ''
        raise FieldError('validity_s', f'{value!r} is not a number of seconds in '
                         f'(0, {MAX_VALIDITY_S:.0f}]{zero}')


def check_time_ns(field: str, ns) -> None:
    """A time in ns since the epoch: 0 <= t < 2^31 s (an input's 0 means 'now')."""
    if isinstance(ns, bool) or not isinstance(ns, int) or not 0 <= ns < MAX_TIME_NS:
        raise FieldError(field, f'{ns!r} ns is not a time in 0..2^31 s')


def _plain(text, required: bool) -> bool:
    """Fast path: short printable ASCII (anything else takes the full check)."""
    return (bool(text) or not required) and len(text) <= MAX_TEXT_BYTES and \
        text.isascii() and text.isprintable()


def _alert_fast(a, filled: bool) -> bool:
    """True when every field is plainly fine (the receiver's common case, ~3x cheaper)."""
    try:
        lat, lon, dist, validity = a.latitude, a.longitude, a.distance_m, a.validity_s
        return (_plain(a.source_id, filled) and '@' not in a.source_id
                and _plain(a.road, False)
                and _plain(a.clip_id, False)
                and type(a.sequence) is int and (1 if filled else 0) <= a.sequence <= 0xFFFFFFFF
                and a.kind in KINDS and a.severity in SEVERITIES and a.suggest in SUGGESTS
                and type(a.kind) is int and type(a.severity) is int and type(a.suggest) is int
                and type(a.stamp_ns) is int and 0 <= a.stamp_ns < MAX_TIME_NS
                and type(a.detection_time_ns) is int
                and 0 <= a.detection_time_ns < MAX_TIME_NS
                and type(validity) is float and 0.0 < validity <= MAX_VALIDITY_S
                and type(lat) is float and (lat != lat or -90.0 <= lat <= 90.0)
                and type(lon) is float and (lon != lon or -180.0 <= lon <= 180.0)
                and type(dist) is float and (dist != dist or 0.0 <= dist <= MAX_DISTANCE_M)
                and type(a.confidence) is float and 0.0 <= a.confidence <= 1.0)
    except (TypeError, AttributeError):
        return False


def check_alert_fields(a, *, filled: bool = True) -> None:
    """Every field of an AlertData (or anything with its attributes).

    filled: the alert is complete, as on the wire (source_id, sequence, times and validity
    set); False for an alert still to be filled by the sender (0 / '' mean 'assign').
    """
    if not _alert_fast(a, filled):
        _check_alert_each(a, filled)


def _check_alert_each(a, filled: bool) -> None:
    """The field-by-field check (names the first bad field)."""
    check_source_id(a.source_id, required=filled)
    if isinstance(a.sequence, bool) or not isinstance(a.sequence, int) or \
            not (1 if filled else 0) <= a.sequence <= 0xFFFFFFFF:
        raise FieldError('sequence', f'{a.sequence!r} is not in {1 if filled else 0}..2^32-1')
    check_enum('kind', a.kind, KINDS)
    check_enum('severity', a.severity, SEVERITIES)
    check_enum('suggest', a.suggest, SUGGESTS)
    check_time_ns('stamp', a.stamp_ns)
    check_time_ns('detection_time', a.detection_time_ns)
    check_validity(a.validity_s, allow_zero=not filled)
    check_position(a.latitude, a.longitude)
    check_range('distance_m', a.distance_m, 0.0, MAX_DISTANCE_M, unknown_nan=True)
    check_range('confidence', a.confidence, 0.0, 1.0)
    check_text('road', a.road)
    check_text('clip_id', a.clip_id)


def check_heartbeat_fields(h) -> None:
    """Every field of a HeartbeatData."""
    check_source_id(h.source_id)
    check_enum('role', h.role, ROLES)
    check_enum('status', h.status, STATUSES)
    check_range('uptime_s', h.uptime_s, 0.0, 3.4e38)
    check_range('period_s', h.period_s, 0.0, MAX_HEARTBEAT_PERIOD_S)
    if h.period_s == 0.0:
        raise FieldError('period_s', f'must be > 0 (at most {MAX_HEARTBEAT_PERIOD_S:.0f} s)')
    check_text('status_message', h.status_message)
