"""The decision core of speed_policy: alerts table, distance, hysteresis, most restrictive wins.

Pure Python (no rclpy, no v2x_msgs); alerts are v2x_protocol's AlertData (the wire's,
with how this station got it: ``authenticated``, ``path``); the clock comes in with every
event. All state
transitions happen in :func:`step`: ``step(state, event, settings) -> (state, note)``.
The resulting ``state.decision`` is what the filter applies to each command
(:func:`filter_twist`).

Cost: the alerts are held in an :class:`AlertTable` indexed by key, by expiry (a heap)
and by rank (a heap of each alert's strongest rule match), so an alert, a tick or a
command costs O(log n) in the n alerts held, never a rescan. Only a change of what every
distance depends on (a new or stale fix, an RSU going stale under rsu_stale_action stop)
re-ranks the alerts whose rank depends on it. The table is updated in place: step
consumes the state it is given (keep only the state it returns).

Trust: an alert counts as authenticated when its gateway verified it or when it was
produced on this station's own graph (path local): :func:`trusted`. Only an
authenticated alert may stop the vehicle (unless allow_unauthenticated_stop).

Lifecycle of an alert (keyed by ``AlertData.key``: source_id and sequence, an
unauthenticated alert apart so that it never updates or cancels an authenticated one): it
acts from arrival until detection_time + validity_s or its cancellation; a newer version
(header stamp) replaces it; a repeat or an older version is ignored; a cancellation stays
as a tombstone until the expiry so that a late copy of an older version cannot revive the
event.

Hysteresis: a stricter decision takes effect at once; a milder one only after the raw
decision has stayed milder for hold_time_s, so the vehicle does not oscillate at a
distance threshold or between overlapping alerts.
"""

from dataclasses import dataclass, field, replace
import heapq
import math
from typing import Mapping

from v2x_common.geo import EARTH_RADIUS_M
from v2x_common.params import ParameterError
from v2x_common.timeutil import NS_PER_S
from v2x_policy.rules import (
    ACTION_NONE,
    ACTION_SLOW_DOWN,
    ACTION_STOP,
    Rule,
)
from v2x_protocol.wire import AlertData

#: Alert.validity_s == 0 means DENM's default validity.
DEFAULT_VALIDITY_S = 600.0
#: The longest validity honoured (DENM's maximum, one day); longer is cut to this.
MAX_VALIDITY_S = 86400.0
#: Metres per degree of latitude on the mean sphere (no two points nearer in latitude).
M_PER_DEG = math.radians(1.0) * EARTH_RADIUS_M
#: ``rsu_stale_action``: keep acting on alerts until expiry, or stop while an RSU is stale.
RSU_STALE_ACTIONS = ('keep', 'stop')
#: ``rsu_camera_action``: keep acting as the alerts say, or stop while an RSU's heartbeat
#: says its camera cannot see (docs/protocol.md: 'rsu degraded: camera <reason>').
RSU_CAMERA_ACTIONS = ('keep', 'stop')
#: Alert.PATH_LOCAL: the alert was produced on this station's own ROS graph.
PATH_LOCAL = 0


@dataclass(frozen=True)
class PolicySettings:
    """The node's parameters that shape decisions (validated on construction)."""

    rules: tuple[Rule, ...]
    slowdown_ratio: float = 0.5
    slowdown_max_speed: float = 1.0
    hold_time_s: float = 2.0
    fix_timeout_s: float = 2.0
    rsu_stale_action: str = 'keep'
    rsu_camera_action: str = 'keep'  # a camera fault must not stop a fleet by default
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
        if self.rsu_camera_action not in RSU_CAMERA_ACTIONS:
            raise ParameterError('rsu_camera_action',
                                f'unknown value {self.rsu_camera_action!r}; expected one of '
                                f'{", ".join(RSU_CAMERA_ACTIONS)}')


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


class _Grid:
    """Positioned alerts in latitude/longitude cells as wide as the farthest rule reaches,
    so that a new fix looks only at the alerts in the cells around it."""

    def __init__(self, reach_m: float):
        self.cell_deg = max(reach_m, 1.0) / M_PER_DEG
        self.columns = max(1, math.ceil(360.0 / self.cell_deg))
        self._cells: dict[tuple[int, int], set] = {}
        self._cell_of: dict[tuple, tuple[int, int]] = {}

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        return (math.floor(lat / self.cell_deg),
                math.floor((lon + 180.0) / self.cell_deg) % self.columns)

    def add(self, key, lat: float, lon: float) -> None:
        self.discard(key)
        cell = self._cell(lat, lon)
        self._cells.setdefault(cell, set()).add(key)
        self._cell_of[key] = cell

    def discard(self, key) -> None:
        cell = self._cell_of.pop(key, None)
        if cell is not None:
            members = self._cells[cell]
            members.discard(key)
            if not members:
                del self._cells[cell]

    def __iter__(self):
        return iter(self._cell_of)

    def near(self, lat: float, lon: float) -> list:
        """Every key that may lie within reach of (lat, lon) (and some that do not)."""
        row, column = self._cell(lat, lon)
        highest = min(90.0, abs(lat) + 2 * self.cell_deg)
        cos = math.cos(math.radians(highest))
        span = self.columns if cos < 1e-6 else min(self.columns, math.ceil(1.0 / cos) + 1)
        columns = (range(self.columns) if 2 * span + 1 >= self.columns else
                   [(column + d) % self.columns for d in range(-span, span + 1)])
        out = []
        for r in (row - 1, row, row + 1):
            for c in columns:
                out.extend(self._cells.get((r, c), ()))
        return out


class AlertTable:
    """The alerts held, indexed so that one alert costs O(log n): by key (entries), by
    expiry (heap), by rank (heap of each acting alert's strongest rule match; stale heap
    items are skipped lazily and the heaps compacted when mostly stale) and, for alerts
    with a position, by place (a grid): a new fix re-ranks only the alerts near the old
    fix or the new one, since no rule reaches further."""

    def __init__(self):
        self.entries: dict[tuple, Entry] = {}
        self.acting = 0  # entries not cancelled
        self.basis = None  # (fix, escalate) the ranks were computed for
        self._expiry: list[tuple[float, tuple]] = []
        self._ranked: list[tuple[tuple, tuple]] = []
        self._rank: dict[tuple, tuple] = {}  # key -> rank of its candidate
        self._decision: dict[tuple, Decision] = {}
        self._grid: _Grid | None = None  # positioned alerts: their rank depends on the fix
        self._near: set[tuple] = set()  # positioned alerts with a candidate

    def put(self, entry: Entry, basis, settings: 'PolicySettings') -> None:
        """Hold entry (a new alert or a newer version of one)."""
        if self._grid is None:
            self._grid = _Grid(max(rule.max_distance_m for rule in settings.rules))
        key, alert = entry.alert.key, entry.alert
        old = self.entries.get(key)
        if old is not None and not old.alert.cancelled:
            self.acting -= 1
        self.entries[key] = entry
        if not alert.cancelled:
            self.acting += 1
        heapq.heappush(self._expiry, (entry.expires_at, key))
        if valid_position(alert.latitude, alert.longitude):
            self._grid.add(key, alert.latitude, alert.longitude)
        else:
            self._grid.discard(key)
        self._rerank_one(key, basis, settings)
        self._compact()

    def remove(self, key: tuple) -> None:
        """Forget one alert."""
        entry = self.entries.pop(key, None)
        if entry is not None and not entry.alert.cancelled:
            self.acting -= 1
        self._rank.pop(key, None)
        self._decision.pop(key, None)
        self._near.discard(key)
        if self._grid is not None:
            self._grid.discard(key)

    def expire(self, now: float) -> None:
        """Forget the alerts whose expiry is at or before now."""
        heap = self._expiry
        while heap and heap[0][0] <= now:
            expires_at, key = heapq.heappop(heap)
            entry = self.entries.get(key)
            if entry is not None and entry.expires_at == expires_at:
                self.remove(key)

    def rebase(self, basis, settings: 'PolicySettings') -> None:
        """Re-rank for a new (fix, escalate): from one fix to another only the alerts near
        either; when the fix appears or goes, every positioned alert; when the escalation
        changes, every alert."""
        old, self.basis = self.basis, basis
        if old is None or old[1] != basis[1]:
            keys = list(self.entries)
        elif self._grid is None:
            keys = []
        elif old[0] is not None and basis[0] is not None:
            keys = list(self._near) + self._grid.near(basis[0].latitude, basis[0].longitude)
        else:
            keys = list(self._grid)
        for key in keys:
            self._rerank_one(key, basis, settings)
        self._compact()

    def best(self) -> Decision:
        """The most restrictive decision of all alerts held (NO_ACTION when none acts)."""
        heap = self._ranked
        while heap:
            rank, key = heap[0]
            if self._rank.get(key) == rank:
                return self._decision[key]
            heapq.heappop(heap)
        return NO_ACTION

    def _rerank_one(self, key, basis, settings) -> None:
        alert = self.entries[key].alert
        found = None if alert.cancelled else _candidate(alert, basis[0], settings, basis[1])
        if found is None:
            self._rank.pop(key, None)
            self._decision.pop(key, None)
            self._near.discard(key)
            return
        rank, decision = found
        self._decision[key] = decision
        if valid_position(alert.latitude, alert.longitude):
            self._near.add(key)
        else:
            self._near.discard(key)
        if self._rank.get(key) != rank:
            self._rank[key] = rank
            heapq.heappush(self._ranked, (rank, key))

    def _compact(self) -> None:
        if len(self._ranked) > 2 * len(self._rank) + 64:
            self._ranked = [(r, k) for k, r in self._rank.items()]
            heapq.heapify(self._ranked)
        if len(self._expiry) > 2 * len(self.entries) + 64:
            self._expiry = [(e.expires_at, k) for k, e in self.entries.items()]
            heapq.heapify(self._expiry)


@dataclass(frozen=True)
class State:
    """Everything the policy knows. step returns a new State; the alert table inside is
    shared and updated in place, so a state given to step must not be used again."""

    table: AlertTable = field(default_factory=AlertTable)
    fix: Fix | None = None
    stale_rsus: frozenset = frozenset()
    camera_degraded_rsus: frozenset = frozenset()
    enabled: bool = True
    held: Decision = NO_ACTION  # the decision in force while enabled
    milder_since: float | None = None  # when the raw decision first became milder than held

    @property
    def decision(self) -> Decision:
        """What the filter applies now: the held decision, or nothing while disabled."""
        return self.held if self.enabled else NO_ACTION

    @property
    def alerts(self) -> Mapping[tuple, Entry]:
        """The alerts held, by (source_id, sequence) (read only)."""
        return self.table.entries

    def active_alerts(self) -> int:
        """Alerts in the table that are not cancelled."""
        return self.table.acting


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
    """The gateway reported which RSUs are stale (and whose camera cannot see)."""

    stale_rsus: frozenset
    now: float
    camera_degraded_rsus: frozenset = frozenset()


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


def trusted(alert: AlertData) -> AlertData:
    """The trust rule: an alert produced on this station's own graph (path local) counts
    as authenticated, as Alert.msg says ("signature verified (or produced locally)"); any
    other keeps what its gateway verified (a DENM or unsigned radio alert is not). Applied
    to every alert step takes in, before its key is taken (an unauthenticated alert lives
    apart, see AlertData.key)."""
    if alert.path == PATH_LOCAL and not alert.authenticated:
        return replace(alert, authenticated=True)
    return alert


def _accept_alert(state: State, alert: AlertData, now: float, settings) -> tuple[State, str]:
    """Put one received version of an alert into the table; the note says what it was."""
    if not (math.isfinite(alert.validity_s) and alert.validity_s >= 0
            and alert.stamp_ns >= 0 and alert.detection_time_ns >= 0):
        return state, 'invalid'
    table = state.table
    existing = table.entries.get(alert.key)
    if existing is not None:
        old = existing.alert
        if alert == old:
            return state, 'repeat'
        if alert.stamp_ns < old.stamp_ns or (alert.stamp_ns == old.stamp_ns
                                               and old.cancelled):
            return state, 'older'
    detected = alert.detection_time_ns / NS_PER_S if alert.detection_time_ns > 0 else now
    validity = min(alert.validity_s or DEFAULT_VALIDITY_S, MAX_VALIDITY_S)
    expires_at = detected + validity
    if expires_at <= now:
        table.remove(alert.key)
        return state, 'expired'
    _rebase(state, settings, now)
    table.put(Entry(alert, expires_at), table.basis, settings)
    if alert.cancelled:
        note = 'cancel'
    else:
        note = 'new' if existing is None or existing.alert.cancelled else 'update'
    return state, note


def _apply_event(state: State, event: Event, settings) -> tuple[State, str]:
    if isinstance(event, AlertReceived):
        return _accept_alert(state, trusted(event.alert), event.now, settings)
    if isinstance(event, FixReceived):
        if not valid_position(event.latitude, event.longitude):
            return state, 'invalid'
        return replace(state, fix=Fix(event.latitude, event.longitude, event.now)), 'fix'
    if isinstance(event, PeersReceived):
        return replace(state, stale_rsus=frozenset(event.stale_rsus),
                       camera_degraded_rsus=frozenset(event.camera_degraded_rsus)), 'peers'
    if isinstance(event, EnabledSet):
        note = 'enabled' if event.enabled else 'disabled'
        return replace(state, enabled=bool(event.enabled)), note
    if isinstance(event, TimePassed):
        return state, 'tick'
    raise TypeError(f'not a policy event: {event!r}')


def _basis(state: State, settings: PolicySettings, now: float):
    """What every alert's rank depends on: the fix in use (None when stale) and why every
    match escalates to stop ('' none; 'rsu_stale': a stale RSU under rsu_stale_action stop;
    'rsu_camera': an RSU whose camera cannot see, under rsu_camera_action stop)."""
    fix = state.fix
    if fix is not None and now - fix.received_at > settings.fix_timeout_s:
        fix = None
    if settings.rsu_stale_action == 'stop' and state.stale_rsus:
        return fix, 'rsu_stale'
    if settings.rsu_camera_action == 'stop' and state.camera_degraded_rsus:
        return fix, 'rsu_camera'
    return fix, ''


def _rebase(state: State, settings: PolicySettings, now: float) -> None:
    basis = _basis(state, settings, now)
    if basis != state.table.basis:
        state.table.rebase(basis, settings)


def _candidate(alert: AlertData, fix: Fix | None, settings: PolicySettings,
               escalate: str) -> tuple[tuple, Decision] | None:
    """(rank, decision) of the strongest rule this alert matches; None when none does.
    Lower ranks are more restrictive: (-action, distance, rule order)."""
    distance = distance_to(alert, fix)
    best = None
    for index, rule in enumerate(settings.rules):
        if not (rule.matches(alert.kind, alert.severity, alert.suggest)
                and rule.covers(distance)):
            continue
        action, name = rule.action, rule.name
        if escalate and action != ACTION_STOP:
            action, name = ACTION_STOP, f'{rule.name}+{escalate}'
        if action == ACTION_STOP and not (alert.authenticated
                                          or settings.allow_unauthenticated_stop):
            action, name = ACTION_SLOW_DOWN, f'{name}+unauthenticated'
        rank = (-action, distance if not math.isnan(distance) else math.inf, index)
        if best is None or rank < best[0]:
            best = (rank, Decision(action, name, alert.source_id, alert.sequence, distance))
    return best


def raw_decision(state: State, settings: PolicySettings, now: float) -> Decision:
    """The most restrictive (action, then nearest, then rule order, then key) of every
    matching alert, by a scan of them all: the reference the indexed table must agree
    with (step uses the table)."""
    fix, escalate = _basis(state, settings, now)
    best, best_rank = NO_ACTION, None
    for key in sorted(state.alerts):
        alert = state.alerts[key].alert
        if alert.cancelled or state.alerts[key].expires_at <= now:
            continue
        found = _candidate(alert, fix, settings, escalate)
        if found is not None and (best_rank is None or found[0] < best_rank):
            best_rank, best = found
    return best


def step(state: State, event: Event, settings: PolicySettings) -> tuple[State, str]:
    """Apply one event, drop expired alerts and decide; returns the new state and a note.

    The note names what the event was: new, update, cancel, repeat, older, expired,
    invalid (alerts); fix, peers, enabled, disabled, tick.
    """
    now = event.now
    state, note = _apply_event(state, event, settings)
    state.table.expire(now)
    _rebase(state, settings, now)
    raw = state.table.best()
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
