"""The one schema of an intake event and its validation (pure Python, no rclpy).

Both intakes (dropped JSON files and HTTP POST /events) accept the seed's event format::

    {"ts": 1737930000.0, "type": "collision", "severity": "high", "lat": 37.12,
     "lon": 127.12, "road": "A", "distance_m": 500, "clip_hint": true}

plus the optional "ttl_s" (seconds the event stays valid after ts) and "event_id"
(makes a submission idempotent), and the optional "suggest" and "confidence" of the
Alert message. Unknown extra fields are allowed and kept (``IntakeEvent.extra``).
Every field is optional, as it was for the seed's watcher (watch_and_broadcast.py):
an event without ``ts`` happened when it arrives, and the fields the watcher filled
keep its defaults (SEED_DEFAULTS), except lat/lon, which are unknown (null) rather than
the watcher's 0.0: (0, 0) is a real place in the Gulf of Guinea, and a vehicle with a
GPS fix would measure its distance to it and ignore the alert; unknown makes it use
distance_m (500), as the seed's own rule did.

``parse_event`` returns an ``IntakeEvent`` or raises an ``IntakeError`` whose ``field``
names the problem: the sender's fault, never a crash.
"""

from dataclasses import asdict, dataclass, field
import json
import math
from typing import Any, Mapping

from jsonschema import Draft202012Validator

from v2x_common import mappings
from v2x_common.timeutil import iso
from v2x_protocol import ranges
from v2x_protocol.wire import AlertData

# Time.sec of builtin_interfaces is an int32: later stamps do not fit the message.
_MAX_TS = 2_147_483_647
# the protocol's range table decides (ranges.py): accepted here means sent by the gateway
_MAX_TTL_S = ranges.MAX_VALIDITY_S
# intake's field names for the range table's
_FIELD_NAMES = {'latitude': 'lat', 'longitude': 'lon', 'validity_s': 'ttl_s', 'kind': 'type',
                'detection_time': 'ts', 'stamp': 'ts'}

#: What the seed's watcher put in place of a missing field (evt.get(name, default)),
#: and what the fields it never read mean when absent. ts is absent = now.
SEED_DEFAULTS: dict[str, Any] = {
    'type': 'unknown', 'severity': 'high', 'lat': None, 'lon': None, 'road': 'segment_A',
    'distance_m': 500, 'clip_hint': False,
}

EVENT_SCHEMA: dict[str, Any] = {
    '$schema': 'https://json-schema.org/draft/2020-12/schema',
    'title': 'IntakeEvent',
    'description': 'A road hazard event handed to the RSU (the seed format). '
                   'Unknown extra fields are accepted and kept in the processed record.',
    'type': 'object',
    'required': [],
    'properties': {
        'ts': {'type': 'number', 'exclusiveMinimum': 0, 'maximum': _MAX_TS,
               'description': 'detection time, UNIX epoch seconds (UTC); absent: the '
                              'time the event arrives'},
        'type': {'type': 'string', 'enum': sorted(mappings.KINDS),
                 'description': 'kind of hazard'},
        'severity': {'type': 'string', 'enum': sorted(mappings.SEVERITIES)},
        'lat': {'type': ['number', 'null'], 'minimum': -90, 'maximum': 90,
                'description': 'WGS84 latitude in degrees; null when unknown'},
        'lon': {'type': ['number', 'null'], 'minimum': -180, 'maximum': 180,
                'description': 'WGS84 longitude in degrees; null when unknown'},
        'road': {'type': 'string', 'maxLength': ranges.MAX_TEXT_BYTES,
                 'pattern': ranges.PRINTABLE_PATTERN,
                 'description': 'road segment id: at most 255 bytes of UTF-8, no control '
                                'characters (checked with the protocol range table)'},
        'distance_m': {'type': ['number', 'null'], 'minimum': 0, 'maximum': 1e6,
                       'description': "the sender's distance figure in metres; null = unknown"},
        'clip_hint': {'type': 'boolean', 'description': 'cut an evidence clip around ts'},
        'ttl_s': {'type': 'number', 'minimum': 1, 'maximum': _MAX_TTL_S,
                  'description': 'validity after ts in seconds (default: the node parameter '
                                 'default_validity_s, 600)'},
        'event_id': {'type': 'string', 'minLength': 1, 'maxLength': 128,
                     'pattern': '^[A-Za-z0-9._:@/+-]+$',
                     'description': 'idempotency key: the same id is published once'},
        'suggest': {'type': 'string', 'enum': sorted(mappings.SUGGESTIONS),
                    'description': 'suggested reaction (default none)'},
        'confidence': {'type': 'number', 'minimum': 0, 'maximum': 1,
                       'description': '0..1 (default 1)'},
    },
    'additionalProperties': True,
}

for _name, _default in SEED_DEFAULTS.items():
    EVENT_SCHEMA['properties'][_name]['default'] = _default
_VALIDATOR = Draft202012Validator(EVENT_SCHEMA)
_KNOWN = frozenset(EVENT_SCHEMA['properties'])


class IntakeError(ValueError):
    """An event the sender got wrong; ``field`` names the culprit ('' = the whole body)."""

    kind = 'invalid'

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f'{field}: {reason}' if field else reason)

    def as_dict(self) -> dict[str, str]:
        """The JSON body of an HTTP error answer."""
        return {'error': self.kind, 'field': self.field, 'detail': self.reason}


class BadJson(IntakeError):
    """The bytes are not one JSON document (or use NaN/Infinity)."""

    kind = 'bad_json'


class InvalidField(IntakeError):
    """A missing field, a wrong type, an unknown type value or a value out of range."""

    kind = 'invalid_field'


class Expired(IntakeError):
    """ts + ttl_s is already past: nobody needs the alert any more."""

    kind = 'expired'


@dataclass(frozen=True)
class IntakeEvent:
    """A validated event, in the Alert's terms (constants, seconds, None = unknown)."""

    ts: float
    kind: int
    severity: int
    suggest: int
    latitude: float | None
    longitude: float | None
    road: str
    distance_m: float | None
    validity_s: float
    clip_requested: bool
    confidence: float
    event_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: the fields that were absent and took SEED_DEFAULTS (or now, for ts): for the log
    defaulted: tuple[str, ...] = field(default=(), compare=False)

    @property
    def expires_at(self) -> float:
        """UNIX time after which the event is void."""
        return self.ts + self.validity_s

    def to_record(self) -> dict[str, Any]:
        """A JSON-able dict (the ledger's record of what was accepted)."""
        record = asdict(self)
        record['extra'] = dict(self.extra)
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> 'IntakeEvent':
        """Inverse of to_record."""
        record = dict(record)
        record['defaulted'] = tuple(record.get('defaulted', ()))
        return cls(**record)


#: Deepest nesting of arrays/objects accepted: the seed's events are flat, and deeper
#: documents exhaust Python's recursion limit in the validator and the ledger's encoder.
MAX_DEPTH = 32


def check_depth(doc: Any) -> None:
    """Raise InvalidField naming the top-level field nested deeper than MAX_DEPTH."""
    stack = [(doc, 0, '')]
    while stack:
        value, depth, top = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidField(top, f'nested more than {MAX_DEPTH} levels deep')
        if isinstance(value, dict):
            stack.extend((v, depth + 1, top or str(k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, top) for v in value)


def _reject_constant(name: str):
    raise ValueError(f'{name} is not valid JSON')


def load_json(data: bytes | str) -> Any:
    """Bytes or text -> a JSON value; raises BadJson (NaN and Infinity included)."""
    try:
        text = data.decode('utf-8-sig') if isinstance(data, (bytes, bytearray)) else data
        return json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise BadJson('', f'not UTF-8: {exc.reason} at byte {exc.start}') from None
    except json.JSONDecodeError as exc:
        raise BadJson('', f'bad JSON: {exc.msg} at line {exc.lineno} column {exc.colno}') \
            from None
    except (ValueError, RecursionError) as exc:
        raise BadJson('', f'bad JSON: {exc}') from None


def _problems(doc: Any) -> list[tuple[str, str]]:
    """Every schema violation as (field, reason), in schema order, most basic first."""
    found = {}
    for error in _VALIDATOR.iter_errors(doc):
        path = '.'.join(str(p) for p in error.absolute_path)
        if error.validator == 'required':
            for name in error.validator_value:
                if isinstance(error.instance, dict) and name not in error.instance:
                    found[('.'.join(filter(None, [path, name])), 0)] = 'missing field'
        elif error.validator == 'type':
            got = type(error.instance).__name__
            found[(path, 1)] = (f'wrong type: expected {error.validator_value}, '
                                f'got {got} {error.instance!r:.60}')
        elif error.validator == 'enum':
            allowed = ', '.join(map(str, error.validator_value))
            found[(path, 2)] = f'unknown value {error.instance!r:.60}; expected one of {allowed}'
        else:
            found.setdefault((path, 3), error.message[:200])
    order = {name: i for i, name in enumerate(EVENT_SCHEMA['properties'])}
    keys = sorted(found, key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))
    seen, problems = set(), []
    for field_name, priority in keys:
        if field_name not in seen:  # one problem per field: the most basic
            seen.add(field_name)
            problems.append((field_name, found[(field_name, priority)]))
    return problems


def validate_document(doc: Any) -> None:
    """Raise InvalidField naming the first bad field (the others in the reason)."""
    problems = _problems(doc)
    if not problems:
        return
    (field_name, reason), others = problems[0], problems[1:]
    if others:
        reason += ' (also: ' + '; '.join(f'{f or "(body)"}: {r}' for f, r in others[:6]) + ')'
    raise InvalidField(field_name, reason)


def age_text(seconds: float) -> str:
    """How old, for a person: '42 s', '17 min', '5 h 3 min', '676 days'."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f'{seconds:.0f} s'
    if seconds < 2 * 3600:
        return f'{seconds / 60:.0f} min'
    if seconds < 2 * 86400:
        return f'{seconds // 3600:.0f} h {seconds % 3600 / 60:.0f} min'
    return f'{seconds / 86400:.0f} days'


def _opt_float(value) -> float | None:
    return None if value is None else float(value)


def parse_event(data: Any, now: float,
                default_validity_s: float = 600.0, max_clock_skew_s: float = 300.0
                ) -> IntakeEvent:
    """Validate one event (bytes, text or a parsed JSON value) against EVENT_SCHEMA and
    the clock; raise IntakeError."""
    doc = load_json(data) if isinstance(data, (bytes, bytearray, str)) else data
    check_depth(doc)
    validate_document(doc)
    given = doc
    doc = {**SEED_DEFAULTS, 'ts': now, **doc}
    ts = float(doc['ts'])
    validity_s = float(doc.get('ttl_s', default_validity_s))
    if not math.isfinite(ts + validity_s):
        raise InvalidField('ts', 'not a finite time')
    if ts > now + max_clock_skew_s:
        raise InvalidField('ts', f'{iso(ts)} is more than {max_clock_skew_s:g} s in the '
                                 f'future (now {iso(now)})')
    if ts + validity_s <= now:
        ttl = 'ttl_s' if 'ttl_s' in given else 'default_validity_s'
        raise Expired('ts', f'expired: ts {iso(ts)} is {age_text(now - ts)} old, valid for '
                            f'{validity_s:g} s ({ttl}); now {iso(now)}. Leave ts out for '
                            '"now", or write the time of detection')
    event = IntakeEvent(
        ts=ts,
        kind=mappings.kind_from_str(doc['type']),
        severity=mappings.severity_from_str(doc['severity']),
        suggest=mappings.suggest_from_str(doc.get('suggest', 'none')),
        latitude=_opt_float(doc['lat']),
        longitude=_opt_float(doc['lon']),
        road=doc['road'],
        distance_m=_opt_float(doc['distance_m']),
        validity_s=validity_s,
        clip_requested=bool(doc['clip_hint']),
        confidence=float(doc.get('confidence', 1.0)),
        event_id=doc.get('event_id'),
        extra={k: v for k, v in doc.items() if k not in _KNOWN},
        defaulted=tuple(sorted((set(SEED_DEFAULTS) | {'ts'}) - set(given))),
    )
    check_ranges(event)
    return event


def check_ranges(event: IntakeEvent) -> None:
    """The protocol's range table (the same verdicts as the gateway, the CLI tools and the
    receiver); raises InvalidField naming the intake field."""
    nan = math.nan
    alert = AlertData(
        source_id='', sequence=0, kind=event.kind, severity=event.severity,
        suggest=event.suggest, stamp_ns=0, detection_time_ns=int(event.ts * 1e9),
        validity_s=event.validity_s,
        latitude=nan if event.latitude is None else event.latitude,
        longitude=nan if event.longitude is None else event.longitude, road=event.road,
        distance_m=nan if event.distance_m is None else event.distance_m,
        confidence=event.confidence)
    try:
        ranges.check_alert_fields(alert, filled=False)
    except ranges.FieldError as exc:
        name = _FIELD_NAMES.get(exc.field, exc.field)
        raise InvalidField(name, str(exc).split(': ', 1)[1]) from None
