"""The console's actions as plain data: request bodies checked, credentials compared.

No HTTP and no ROS here. An action body that does not hold up raises ActionError naming
the field; the HTTP layer answers 422 with it. Credentials: a bearer token (one line in
token_file) and/or HTTP basic users (``user:password`` lines in password_file); both
are compared in constant time and never logged.
"""

import base64
import binascii
from dataclasses import dataclass
import hmac
import math

from v2x_common.mappings import (
    UnknownValue,
    kind_from_str,
    severity_from_str,
    suggest_from_str,
)
from v2x_common.params import ParameterError
from v2x_protocol import ranges
from v2x_protocol.io.keys import KeyConfigError, read_private_lines
from v2x_protocol.wire import AlertData

MAX_CLIP_WINDOW_S = 86400.0  # event_clipper's MAX_WINDOW_S


class ActionError(ValueError):
    """An action request the console refuses (the caller's mistake); names the field."""

    def __init__(self, field: str, detail: str):
        super().__init__(f'{field}: {detail}')
        self.field = field
        self.detail = detail

    def as_dict(self) -> dict:
        return {'error': 'invalid', 'field': self.field, 'detail': self.detail}


#: A test alert: v2x_inject's fields and defaults, identity and times left to the gateway
#: (source_id '', sequence 0); the protocol's one alert value.
InjectRequest = AlertData


@dataclass(frozen=True)
class ClipRequestBody:
    """A RequestClip call: T0 (Unix seconds), window, id ('' = event_clipper's)."""

    t0: float
    pre_s: float
    post_s: float
    clip_id: str


def _number(body: dict, name: str, default: float, nullable: bool = False) -> float:
    """A JSON number (null = NaN, unknown, where nullable); ranges are the protocol's."""
    if name not in body:
        return default
    value = body[name]
    if value is None and nullable:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ActionError(name, f'{value!r} is not a number')
    return float(value)


def _named(body: dict, name: str, default: str, parse) -> int:
    try:
        return parse(body.get(name, default))
    except UnknownValue as exc:
        raise ActionError(name, str(exc)) from None


def _check_keys(body, allowed: set[str]) -> dict:
    if not isinstance(body, dict):
        raise ActionError('body', 'expected a JSON object')
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ActionError(unknown[0], 'no such field')
    return body


INJECT_FIELDS = {'type', 'severity', 'suggest', 'distance_m', 'road', 'lat', 'lon', 'ttl_s',
                 'confidence', 'clip'}


#: the protocol's field names -> this API's (v2x_inject's flag names)
_API_NAMES = {'kind': 'type', 'latitude': 'lat', 'longitude': 'lon', 'validity_s': 'ttl_s'}


def parse_inject(body) -> AlertData:
    """v2x_inject's flags as JSON: type, severity, suggest, distance_m, road, lat, lon,
    ttl_s (0 = the gateway's default), confidence, clip; the same defaults. Every value is
    checked against the protocol's field table (v2x_protocol.ranges), as every other
    entry point checks it."""
    body = _check_keys(body, INJECT_FIELDS)
    clip = body.get('clip', False)
    if not isinstance(clip, bool):
        raise ActionError('clip', f'{clip!r} is not true/false')
    road = body.get('road', 'segment_A')
    if not isinstance(road, str):
        raise ActionError('road', f'{road!r} is not text')
    request = AlertData(
        source_id='', sequence=0, stamp_ns=0, detection_time_ns=0,
        kind=_named(body, 'type', 'collision', kind_from_str),
        severity=_named(body, 'severity', 'high', severity_from_str),
        suggest=_named(body, 'suggest', 'slow_down', suggest_from_str),
        distance_m=_number(body, 'distance_m', 500.0, nullable=True),
        road=road,
        latitude=_number(body, 'lat', math.nan, nullable=True),
        longitude=_number(body, 'lon', math.nan, nullable=True),
        validity_s=_number(body, 'ttl_s', 0.0),
        confidence=_number(body, 'confidence', 1.0),
        clip_requested=clip)
    try:
        ranges.check_alert_fields(request, filled=False)
    except ranges.FieldError as exc:
        field = _API_NAMES.get(exc.field, exc.field)
        raise ActionError(field, str(exc).split(': ', 1)[-1]) from None
    return request


def parse_clip_request(body, now: float) -> ClipRequestBody:
    """t0 (Unix seconds; default now), pre_s/post_s (0 = event_clipper's), clip_id."""
    body = _check_keys(body, {'t0', 'pre_s', 'post_s', 'clip_id'})
    clip_id = body.get('clip_id', '')
    if not isinstance(clip_id, str) or len(clip_id) > 128:
        raise ActionError('clip_id', 'expected a string of at most 128 characters')
    return ClipRequestBody(
        t0=_within('t0', _number(body, 't0', now), 1.0, now + 3600.0),
        pre_s=_within('pre_s', _number(body, 'pre_s', 0.0), 0.0, MAX_CLIP_WINDOW_S),
        post_s=_within('post_s', _number(body, 'post_s', 0.0), 0.0, MAX_CLIP_WINDOW_S),
        clip_id=clip_id)


def parse_held_request(body) -> str:
    """{"id": <hold id>} of a confirm or dismiss (ids are hazard_detector's, 1..128 chars)."""
    body = _check_keys(body, {'id'})
    hold_id = body.get('id')
    if not isinstance(hold_id, str) or not 0 < len(hold_id) <= 128:
        raise ActionError('id', "expected the held event's id, 1..128 characters")
    return hold_id


def _within(name: str, value: float, lo: float, hi: float) -> float:
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ActionError(name, f'{value!r} is not in {lo:g}..{hi:g}')
    return value


@dataclass(frozen=True)
class Credentials:
    """Who may act: a bearer token and/or basic users. Empty = nobody may."""

    token: bytes = b''
    users: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.token or self.users)

    def check(self, authorization: str | None) -> str | None:
        """The caller's name ('token' or the basic user) when the header is right, else None."""
        if not authorization or ' ' not in authorization:
            return None
        scheme, _, value = authorization.strip().partition(' ')
        value = value.strip().encode('utf-8', 'surrogateescape')
        if scheme.lower() == 'bearer' and self.token:
            return 'token' if hmac.compare_digest(value, self.token) else None
        if scheme.lower() == 'basic' and self.users:
            try:
                user, sep, password = base64.b64decode(value, validate=True).partition(b':')
            except (binascii.Error, ValueError):
                return None
            if not sep:
                return None
            ok = False
            for name, secret in self.users:  # all compared: no early exit on a match
                ok |= hmac.compare_digest(user, name) & hmac.compare_digest(password, secret)
            return user.decode('utf-8', 'replace') if ok else None
        return None


def _private_lines(path: str, what: str, parameter: str) -> list[bytes]:
    """The lines of a secret file only its owner may read (as ssh wants its keys);
    ParameterError names the file's parameter when it cannot be used."""
    try:
        return read_private_lines(path, what)
    except KeyConfigError as exc:
        raise ParameterError(parameter, str(exc)) from None


def load_credentials(token_file: str, password_file: str) -> Credentials:
    """Read the token (first line) and the ``user:password`` lines (files only the owner
    may read, as ssh wants its keys); ParameterError names
    the file's parameter when one cannot be used."""
    token = b''
    users = []
    if token_file:
        lines = _private_lines(token_file, 'token file', 'console_token_file')
        token = lines[0].strip() if lines else b''
        if len(token) < 16:
            raise ParameterError('console_token_file', 'the token must be at least 16 '
                                 'characters')
    if password_file:
        lines = _private_lines(password_file, 'password file', 'console_password_file')
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.startswith(b'#'):
                continue
            user, sep, password = line.partition(b':')
            if not sep or not user or len(password) < 8:
                raise ParameterError('console_password_file', f"line {number} is not "
                                     "'user:password' with a password of 8+ characters")
            users.append((user, password))
        if not users:
            raise ParameterError('console_password_file', 'no user in the file')
    return Credentials(token, tuple(users))
