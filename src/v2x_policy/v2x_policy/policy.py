"""The decision core of speed_policy: alerts table, distance, hysteresis, most restrictive wins.

Pure Python (no rclpy, no v2x_msgs); the clock comes in with every event. All state
transitions happen in :func:`step`: ``step(state, event, settings) -> (state, note)``.
The resulting ``state.decision`` is what the filter applies to each command
(:func:`filter_twist`).

Lifecycle of an alert (keyed by source_id and sequence): it acts from arrival until
detection_time + validity_s or its cancellation; a newer version (header stamp) replaces
it; a repeat or an older version is ignored; a cancellation stays as a tombstone until
the expiry so that a late copy of an older version cannot revive the event.

Hysteresis: a stricter decision takes effect at once; a milder one only after the raw
decision has stayed milder for hold_time_s, so the vehicle does not oscillate at a
distance threshold or between overlapping alerts.
"""

from dataclasses import dataclass, field, replace
import math
from typing import Mapping

from v2x_common.geo import EARTH_RADIUS_M
from v2x_common.params import ParameterError
from v2x_policy.rules import (
    ACTION_NONE,
    ACTION_SLOW_DOWN,
    ACTION_STOP,
    Rule,
)

#: Alert.validity_s == 0 means DENM's default validity.
DEFAULT_VALIDITY_S = 600.0
#: The longest validity honoured (DENM's maximum, one day); longer is cut to this.
MAX_VALIDITY_S = 86400.0
#: ``rsu_stale_action``: keep acting on alerts until expiry, or stop while an RSU is stale.
RSU_STALE_ACTIONS = ('keep', 'stop')


@dataclass(frozen=True)
class AlertData:
    """What the policy needs of one v2x_msgs/Alert (times in float seconds, NaN = unknown)."""

    source_id: str
    sequence: int
    stamp: float
    kind: int
    severity: int
    suggest: int
    detection_time: float = 0.0  # 0: not set (the arrival time is used)
    validity_s: float = 0.0  # 0: DEFAULT_VALIDITY_S
    cancelled: bool = False
    latitude: float = math.nan
    longitude: float = math.nan
    distance_m: float = math.nan
    # Signature verified, or produced on this station; False: DENM, unsigned radio.
    authenticated: bool = True

    @property
    def key(self) -> tuple:
        """Unauthenticated alerts live in their own event-id space: they can never update
        or cancel an authenticated alert of the same (source_id, sequence)."""
        if self.authenticated:
            return self.source_id, self.sequence
        return self.source_id, self.sequence, 'unauthenticated'


@dataclass(frozen=True)
class PolicySettings:
    """The node's parameters that shape decisions (validated on construction)."""

    rules: tuple[Rule, ...]
    slowdown_ratio: float = 0.5
    slowdown_max_speed: float = 1.0
    hold_time_s: float = 2.0
    fix_timeout_s: float = 2.0
    rsu_stale_action: str = 'keep'
    allow_unauthenticated_stop: bool = False  # else an unauthenticated alert slows down

    def __post_init__(self):
        if not self.rules:
            raise ParameterError('rules', 'is empty: the policy would never act')
        _check_range('slowdown_ratio', self.slowdown_ratio, 0.0, 1.0)
        _check_range('slowdown_max_speed', self.slowdown_max_speed, 0.0, math.inf)
        _check_range('hold_time_s', self.hold_time_s, 0.0, math.inf)
        _check_range('fix_timeout_s', self.fix_timeout_s, 0.0, math.inf)
        if self.rsu_stale_action not in RSU_STALE_ACTIONS:
            raise ParameterError('rsu_stale_action',
                                f'unknown value {self.rsu_stale_action!r}; expected one of '
                                f'{", ".join(RSU_STALE_ACTIONS)}')


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not isinstance(value, (int, float)) or not low <= value <= high:
        raise ParameterError(name, f'must be within [{low}, {high}], got {value!r}')


@dataclass(frozen=True)
class Decision:
    """What the filter does and why (the content of v2x_msgs/PolicyState)."""

    action: int = ACTION_NONE
    rule: str = ''
    source_id: str = ''
    sequence: int = 0
    distance_m: float = math.nan

    def same_reason(self, other: 'Decision') -> bool:
        """Equal but for the distance (which changes as the vehicle moves)."""
        return (self.action, self.rule, self.source_id, self.sequence) == (
            other.action, other.rule, other.source_id, other.sequence)


NO_ACTION = Decision()


@dataclass(frozen=True)
class Entry:
    """One alert in the table: its latest version and when it ends."""

    alert: AlertData
    expires_at: float


@dataclass(frozen=True)
class Fix:
    """The vehicle's last position fix and when it was received."""

    latitude: float
    longitude: float
    received_at: float


@dataclass(frozen=True)
class State:
    """Everything the policy knows; never mutated (step returns a new one)."""

    alerts: Mapping[tuple[str, int], Entry] = field(default_factory=dict)
    fix: Fix | None = None
    stale_rsus: frozenset = frozenset()
    enabled: bool = True
    held: Decision = NO_ACTION  # the decision in force while enabled
    milder_since: float | None = None  # when the raw decision first became milder than held

    @property
    def decision(self) -> Decision:
        """What the filter applies now: the held decision, or nothing while disabled."""
        return self.held if self.enabled else NO_ACTION

    def active_alerts(self) -> int:
        """Alerts in the table that are not cancelled."""
        return sum(1 for e in self.alerts.values() if not e.alert.cancelled)


# Events (what happened), each with the time it happened (ROS time, float seconds).

@dataclass(frozen=True)
class AlertReceived:
    """A version of an alert (new, update, repeat or cancellation) arrived."""

    alert: AlertData
    now: float


@dataclass(frozen=True)
class FixReceived:
    """A position fix of the vehicle arrived."""

    latitude: float
    longitude: float
    now: float


@dataclass(frozen=True)
class PeersReceived:
    """The gateway reported which RSUs are stale."""

    stale_rsus: frozenset
    now: float


@dataclass(frozen=True)
class EnabledSet:
    """An operator enabled or disabled the filter."""

    enabled: bool
    now: float


@dataclass(frozen=True)
class TimePassed:
    """Nothing arrived; time moved on (expiry, release after hold)."""

    now: float


Event = AlertReceived | FixReceived | PeersReceived | EnabledSet | TimePassed


def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in metres between two WGS84 points (degrees)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def valid_position(lat: float, lon: float) -> bool:
    """A usable WGS84 position (finite, in range)."""
    return (math.isfinite(lat) and math.isfinite(lon) and -90.0 <= lat <= 90.0
            and -180.0 <= lon <= 180.0)


def distance_to(alert: AlertData, fix: Fix | None) -> float:
    """From a recent fix and the alert's position, else the alert's distance_m, else NaN."""
    if fix is not None and valid_position(alert.latitude, alert.longitude):
        return great_circle_m(fix.latitude, fix.longitude, alert.latitude, alert.longitude)
    if math.isfinite(alert.distance_m) and alert.distance_m >= 0:
        return float(alert.distance_m)
    return math.nan


def _accept_alert(state: State, alert: AlertData, now: float) -> tuple[State, str]:
    """Put one received version of an alert into the table; the note says what it was."""
    if not (math.isfinite(alert.stamp) and math.isfinite(alert.detection_time)
            and math.isfinite(alert.validity_s) and alert.validity_s >= 0):
        return state, 'invalid'
    existing = state.alerts.get(alert.key)
    if existing is not None:
        old = existing.alert
        if alert == old:
            return state, 'repeat'
        if alert.stamp < old.stamp or (alert.stamp == old.stamp and old.cancelled):
            return state, 'older'
    detected = alert.detection_time if alert.detection_time > 0 else now
    validity = min(alert.validity_s or DEFAULT_VALIDITY_S, MAX_VALIDITY_S)
    expires_at = detected + validity
    alerts = dict(state.alerts)
    if expires_at <= now:
        alerts.pop(alert.key, None)
        return replace(state, alerts=alerts), 'expired'
    alerts[alert.key] = Entry(alert, expires_at)
    if alert.cancelled:
        note = 'cancel'
    else:
        note = 'new' if existing is None or existing.alert.cancelled else 'update'
    return replace(state, alerts=alerts), note


def _apply_event(state: State, event: Event) -> tuple[State, str]:
    if isinstance(event, AlertReceived):
        return _accept_alert(state, event.alert, event.now)
    if isinstance(event, FixReceived):
        if not valid_position(event.latitude, event.longitude):
            return state, 'invalid'
        return replace(state, fix=Fix(event.latitude, event.longitude, event.now)), 'fix'
    if isinstance(event, PeersReceived):
        return replace(state, stale_rsus=frozenset(event.stale_rsus)), 'peers'
    if isinstance(event, EnabledSet):
        note = 'enabled' if event.enabled else 'disabled'
        return replace(state, enabled=bool(event.enabled)), note
    if isinstance(event, TimePassed):
        return state, 'tick'
    raise TypeError(f'not a policy event: {event!r}')


def _prune(state: State, now: float) -> State:
    if all(e.expires_at > now for e in state.alerts.values()):
        return state
    return replace(state, alerts={k: e for k, e in state.alerts.items() if e.expires_at > now})


def raw_decision(state: State, settings: PolicySettings, now: float) -> Decision:
    """The most restrictive (action, then nearest, then rule order) of every matching alert."""
    fix = state.fix
    if fix is not None and now - fix.received_at > settings.fix_timeout_s:
        fix = None
    escalate = settings.rsu_stale_action == 'stop' and bool(state.stale_rsus)
    best, best_rank = NO_ACTION, None
    for key in sorted(state.alerts):
        alert = state.alerts[key].alert
        if alert.cancelled:
            continue
        distance = distance_to(alert, fix)
        for index, rule in enumerate(settings.rules):
            if not (rule.matches(alert.kind, alert.severity, alert.suggest)
                    and rule.covers(distance)):
                continue
            action, name = rule.action, rule.name
            if escalate and action != ACTION_STOP:
                action, name = ACTION_STOP, f'{rule.name}+rsu_stale'
            if action == ACTION_STOP and not (alert.authenticated
                                              or settings.allow_unauthenticated_stop):
                action, name = ACTION_SLOW_DOWN, f'{name}+unauthenticated'
            rank = (-action, distance if not math.isnan(distance) else math.inf, index)
            if best_rank is None or rank < best_rank:
                best = Decision(action, name, alert.source_id, alert.sequence, distance)
                best_rank = rank
    return best


def step(state: State, event: Event, settings: PolicySettings) -> tuple[State, str]:
    """Apply one event, drop expired alerts and decide; returns the new state and a note.

    The note names what the event was: new, update, cancel, repeat, older, expired,
    invalid (alerts); fix, peers, enabled, disabled, tick.
    """
    now = event.now
    state, note = _apply_event(state, event)
    state = _prune(state, now)
    raw = raw_decision(state, settings, now)
    held = state.held
    if raw.action >= held.action:
        return replace(state, held=raw, milder_since=None), note
    since = state.milder_since if state.milder_since is not None else now
    if now - since >= settings.hold_time_s:
        return replace(state, held=raw, milder_since=None), note
    return replace(state, milder_since=since), note


def speed_limit(action: int, settings: PolicySettings) -> float:
    """The linear speed limit in force (m/s): 0 for stop, the cap for slow down, else NaN."""
    if action == ACTION_STOP:
        return 0.0
    if action == ACTION_SLOW_DOWN:
        return settings.slowdown_max_speed
    return math.nan


Vector = tuple[float, float, float]


def filter_twist(action: int, linear: Vector, angular: Vector,
                 settings: PolicySettings) -> tuple[Vector, Vector]:
    """The command to send: zero to stop; scaled by the ratio and capped to slow down."""
    if action == ACTION_STOP:
        return (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    if action != ACTION_SLOW_DOWN:
        return tuple(linear), tuple(angular)
    ratio = settings.slowdown_ratio
    lin = tuple(v * ratio for v in linear)
    ang = tuple(w * ratio for w in angular)
    speed = math.sqrt(sum(v * v for v in lin))
    if speed > settings.slowdown_max_speed:
        scale = settings.slowdown_max_speed / speed
        lin = tuple(v * scale for v in lin)
    return lin, ang
