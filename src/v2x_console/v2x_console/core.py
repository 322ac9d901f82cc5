"""The console's state: what the page shows, as plain data (no rclpy, no HTTP, no clock).

Alerts are v2x_protocol's AlertData (v2x_conversion.alert converts the messages, as
for every node); the other inputs are small dataclasses built by conversions.py;
every input method takes ``now`` (float seconds, wall clock) and returns the events it
caused. An event is what the live stream pushes: each carries the absolute new state of
one thing (an alert, the peer list, the policy state, one node's diagnostics, the clip
archive), so applying an event twice, or after a snapshot that already holds it, is
harmless. ``snapshot(now)`` is the whole state as JSON-ready dicts (the first render).

Alerts: keyed by (source_id, sequence), an unauthenticated alert apart (as speed_policy
keeps it: an alert heard on this station's own graph, path local, counts as
authenticated), so that an unauthenticated update or cancellation (a DENM from an
unsecured station) never replaces or removes an authenticated alert with the same id;
its id on the page ends in ``/unauthenticated``. A newer version (header stamp) replaces
the shown one, an older one is ignored, a cancellation or the expiry
(detection_time + validity_s) removes it. Alerts this station's gateway sent
(v2x/alert_sent) are marked ``own``: only those can be cancelled from the console.
"""

from dataclasses import dataclass, field, replace
import math
from typing import Any, Iterable, Mapping

from v2x_common.mappings import kind_to_str, severity_to_str, suggest_to_str
from v2x_common.timeutil import NS_PER_S
from v2x_protocol.wire import AlertData

PATHS = {0: 'local', 1: 'radio', 2: 'broker', 3: 'denm'}
PATH_LOCAL = 0  # Alert.PATH_LOCAL
UNAUTHENTICATED = 'unauthenticated'
LEVELS = {0: 'ok', 1: 'warn', 2: 'error', 3: 'stale'}
ACTIONS = {0: 'none', 1: 'slow_down', 2: 'stop'}
ROLES = {1: 'rsu', 2: 'vehicle'}
HEARTBEAT_STATUS = {0: 'ok', 1: 'warn', 2: 'error'}  # Heartbeat.STATUS_*
#: Diagnostics values counted as drops: dropped_<reason> (the gateway's convention).
DROP_PREFIX = 'dropped_'
#: Diagnostics counters turned into per-second rates (speed_policy's cmd_vel counters).
RATE_KEYS = ('cmd_in', 'cmd_out')


@dataclass(frozen=True)
class PeerInput:
    """One PeerStatus."""

    source_id: str
    role: int
    last_heard: float
    stale: bool
    active_alerts: int
    clock_offset_s: float
    path: int
    authenticated: bool
    status: int = 0             # the peer's last heartbeat (Heartbeat.STATUS_*)
    status_message: str = ''    # e.g. 'rsu degraded: camera frozen'


@dataclass(frozen=True)
class PolicyInput:
    """One PolicyState."""

    stamp: float
    action: int
    speed_limit: float
    rule: str
    source_id: str
    sequence: int
    distance_m: float
    enabled: bool


@dataclass(frozen=True)
class DiagnosticInput:
    """One DiagnosticStatus of a DiagnosticArray."""

    name: str
    level: int
    message: str
    values: Mapping[str, str]


@dataclass(frozen=True)
class ClipInput:
    """One Clip message (an evidence clip was cut, or could not be)."""

    clip_id: str
    t0: float
    path: str
    sha256: str
    duration_s: float
    gaps: tuple[str, ...]
    error: str


@dataclass(frozen=True)
class Event:
    """One change, as pushed on the live stream: kind names it, data is JSON-ready."""

    kind: str
    data: Any


@dataclass(frozen=True)
class ConsoleSettings:
    """What the core needs to know of its station."""

    role: str = 'rsu'
    site_lat: float = math.nan
    site_lon: float = math.nan
    tile_url: str = ''
    max_alerts: int = 2000
    actions: bool = False       # credentials configured: the page offers the actions


def _finite(x: float) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


@dataclass
class _Shown:
    alert: AlertData
    own: bool
    received_at: float


@dataclass
class ConsoleState:
    """Everything the page shows; mutate only through the methods (they return events)."""

    settings: ConsoleSettings = field(default_factory=ConsoleSettings)

    def __post_init__(self):
        self._alerts: dict[tuple[str, int], _Shown] = {}
        self._peers: list[PeerInput] = []
        self._peers_at = math.nan
        self._policy: PolicyInput | None = None
        self._diagnostics: dict[str, dict] = {}
        self._rate_base: dict[tuple[str, str], tuple[float, float]] = {}
        self._clips: dict[str, ClipInput] = {}      # from v2x/clip, by clip_id
        self._archive: list[dict] = []
        self._position: dict | None = None          # this vehicle's last GPS fix
        self.counts = dict.fromkeys(('alerts_received', 'alerts_shown', 'alerts_invalid',
                                     'alerts_older',
                                     'alerts_expired', 'alerts_cancelled',
                                     'alerts_late', 'alerts_overflow'), 0)
        self._counts_sent = dict(self.counts)

    # --- alerts -------------------------------------------------------------------
    def alert(self, a: AlertData, now: float, own: bool = False) -> list[Event]:
        """A version of an alert heard on v2x/alert (own=False) or v2x/alert_sent (own)."""
        self.counts['alerts_received'] += 1
        if not math.isfinite(a.validity_s) or a.validity_s < 0:
            self.counts['alerts_invalid'] += 1  # e.g. hand-published with an infinite validity
            return [Event('counts', dict(self.counts))]
        key = alert_key(a)
        shown = self._alerts.get(key)
        if shown is not None and a.stamp_ns < shown.alert.stamp_ns:
            self.counts['alerts_older'] += 1
            return []
        if a.cancelled:
            if shown is None:
                return []
            del self._alerts[key]
            self.counts['alerts_cancelled'] += 1
            return [_removed(key, 'cancelled')]
        if expires_at(a) <= now:
            self.counts['alerts_late'] += 1
            if shown is None:
                return []
            del self._alerts[key]
            return [_removed(key, 'expired')]
        if shown is None and len(self._alerts) >= self.settings.max_alerts:
            # Never silently: counted and shown on the page as overflow.
            self.counts['alerts_overflow'] += 1
            return [Event('counts', dict(self.counts))]
        own = own or (shown is not None and shown.own)
        received = shown.received_at if shown is not None else now
        self._alerts[key] = _Shown(a, own, received)
        self.counts['alerts_shown'] = len(self._alerts)
        return [Event('alert', self._alert_json(self._alerts[key]))]

    def expire(self, now: float) -> list[Event]:
        """Remove every alert whose validity ended; push the counters when they changed."""
        gone = [k for k, s in self._alerts.items() if expires_at(s.alert) <= now]
        for key in gone:
            del self._alerts[key]
        self.counts['alerts_expired'] += len(gone)
        self.counts['alerts_shown'] = len(self._alerts)
        events = [_removed(k, 'expired') for k in gone]
        if self.counts != self._counts_sent:  # the page's counters, at the expiry pace
            self._counts_sent = dict(self.counts)
            events.append(Event('counts', self._counts_sent))
        return events

    def own_alert(self, source_id: str, sequence: int) -> AlertData | None:
        """The shown alert (source_id, sequence) when this station sent it, else None."""
        shown = self._alerts.get((source_id, sequence))
        return shown.alert if shown is not None and shown.own else None

    def _clip_state(self, a: AlertData) -> str:
        if not a.clip_requested and not a.clip_id:
            return ''
        clip = self._clips.get(a.clip_id)
        if clip is None:
            return 'requested'
        return f'failed: {clip.error}' if clip.error else 'ready'

    def _alert_json(self, s: _Shown) -> dict:
        a = s.alert
        return {
            'id': alert_id(*alert_key(a)),
            'source_id': a.source_id, 'sequence': a.sequence,
            'kind': kind_to_str(a.kind), 'severity': severity_to_str(a.severity),
            'severity_level': int(a.severity), 'suggest': suggest_to_str(a.suggest),
            'stamp': seconds(a.stamp_ns), 'detection_time': seconds(a.detection_time_ns),
            'validity_s': a.validity_s, 'expires_at': expires_at(a),
            'latitude': _finite(a.latitude), 'longitude': _finite(a.longitude),
            'road': a.road, 'distance_m': _finite(a.distance_m),
            'confidence': _finite(a.confidence),
            'clip_requested': a.clip_requested, 'clip_id': a.clip_id,
            'clip_state': self._clip_state(a),
            'path': PATHS.get(a.path, str(a.path)), 'authenticated': a.authenticated,
            'own': s.own, 'received_at': s.received_at,
        }

    def alerts_json(self) -> list[dict]:
        """The shown alerts, most severe first (stop before slow down, then expiring first)."""
        shown = sorted(self._alerts.values(), key=lambda s: (
            -s.alert.severity, -s.alert.suggest, expires_at(s.alert), alert_key(s.alert)))
        return [self._alert_json(s) for s in shown]

    # --- peers, policy, diagnostics -------------------------------------------------
    def peers(self, peers: Iterable[PeerInput], now: float) -> list[Event]:
        """The gateway's peer table (v2x/peers, 1 Hz)."""
        self._peers = sorted(peers, key=lambda p: p.source_id)
        self._peers_at = now
        return [Event('peers', self.peers_json(now))]

    def peers_json(self, now: float) -> list[dict]:
        return [{'source_id': p.source_id, 'role': ROLES.get(p.role, str(p.role)),
                 'last_heard': p.last_heard, 'age_s': max(0.0, now - p.last_heard),
                 'stale': p.stale,
                 'health': 'stale' if p.stale else HEARTBEAT_STATUS.get(p.status, 'error'),
                 'status_message': p.status_message,
                 'active_alerts': p.active_alerts,
                 'clock_offset_s': _finite(p.clock_offset_s),
                 'path': PATHS.get(p.path, str(p.path)), 'authenticated': p.authenticated}
                for p in self._peers]

    def policy(self, p: PolicyInput) -> list[Event]:
        """speed_policy's state (v2x/policy_state)."""
        self._policy = p
        return [Event('policy', self.policy_json())]

    def policy_json(self) -> dict | None:
        p = self._policy
        if p is None:
            return None
        rates = {}
        for name, d in self._diagnostics.items():
            if name.rsplit('/', 1)[-1] == 'speed_policy':
                rates = d.get('rates', {})
        return {'stamp': p.stamp, 'action': ACTIONS.get(p.action, str(p.action)),
                'speed_limit': _finite(p.speed_limit), 'rule': p.rule,
                'source_id': p.source_id, 'sequence': p.sequence,
                'distance_m': _finite(p.distance_m), 'enabled': p.enabled,
                'cmd_in_hz': rates.get('cmd_in'), 'cmd_out_hz': rates.get('cmd_out')}

    def diagnostics(self, statuses: Iterable[DiagnosticInput], now: float) -> list[Event]:
        """One DiagnosticArray: each status replaces that node's entry."""
        events = []
        for st in statuses:
            rates = {}
            for key in RATE_KEYS:
                value = _number(st.values.get(key))
                if value is None:
                    continue
                base = self._rate_base.get((st.name, key))
                if base is not None and now > base[0] and value >= base[1]:
                    rates[key] = round((value - base[1]) / (now - base[0]), 2)
                self._rate_base[(st.name, key)] = (now, value)
            drops = {k[len(DROP_PREFIX):]: _number(v) for k, v in st.values.items()
                     if k.startswith(DROP_PREFIX)}
            entry = {'name': st.name, 'level': LEVELS.get(st.level, str(st.level)),
                     'message': st.message, 'values': dict(sorted(st.values.items())),
                     'drops': drops, 'rates': rates, 'received_at': now}
            self._diagnostics[st.name] = entry
            events.append(Event('diagnostics', entry))
            if rates and st.name.rsplit('/', 1)[-1] == 'speed_policy' and self._policy:
                events.append(Event('policy', self.policy_json()))
        return events

    def position(self, lat: float, lon: float, now: float) -> list[Event]:
        """This station's own GPS fix (vehicle: /fix); the map centres on it."""
        if not (_finite(lat) is not None and _finite(lon) is not None
                and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            return []
        self._position = {'lat': float(lat), 'lon': float(lon), 'at': now}
        return [Event('position', self._position)]

    # --- clips ------------------------------------------------------------------------
    def clip(self, c: ClipInput) -> list[Event]:
        """A Clip message: alerts carrying its clip_id show it ready (or failed)."""
        self._clips[c.clip_id] = c
        return [Event('alert', self._alert_json(s)) for s in self._alerts.values()
                if s.alert.clip_id == c.clip_id]

    def archive(self, clips: list[dict]) -> list[Event]:
        """The archive listing (archive.read_archive); an event only when it changed."""
        if clips == self._archive:
            return []
        self._archive = clips
        return [Event('archive', clips)]

    # --- everything ---------------------------------------------------------------------
    def snapshot(self, now: float) -> dict:
        """The whole state, JSON-ready: what the first render and /api/state show."""
        s = self.settings
        return {
            'now': now, 'role': s.role, 'actions': s.actions,
            'site': {'lat': _finite(s.site_lat), 'lon': _finite(s.site_lon),
                     'tile_url': s.tile_url},
            'alerts': self.alerts_json(), 'peers': self.peers_json(now),
            'policy': self.policy_json(), 'position': self._position,
            'diagnostics': [self._diagnostics[k] for k in sorted(self._diagnostics)],
            'archive': self._archive, 'counts': dict(self.counts),
        }


def seconds(ns: int) -> float:
    """Integer ns -> float seconds, as sec + nanosec / 10^9 of the message's Time."""
    return ns // NS_PER_S + ns % NS_PER_S / NS_PER_S


def expires_at(a: AlertData) -> float:
    """detection_time + validity_s, float seconds."""
    return seconds(a.detection_time_ns) + a.validity_s


def trusted(a: AlertData) -> bool:
    """Verified by the gateway, or produced on this station's own graph (path local)."""
    return a.authenticated or a.path == PATH_LOCAL


def alert_key(a: AlertData) -> tuple:
    """The console shows one alert per (source_id, sequence), an unauthenticated one in
    its own id space."""
    if trusted(a):
        return (a.source_id, a.sequence)
    return (a.source_id, a.sequence, UNAUTHENTICATED)


def cancellation(a: AlertData) -> AlertData:
    """The cancellation of an alert this station sent: the same identity and content,
    cancelled; times, validity and clip left to the gateway (it sends its own version)."""
    return replace(a, cancelled=True, stamp_ns=0, detection_time_ns=0, validity_s=0.0,
                   clip_requested=False, clip_id='', path=0, authenticated=False)


def alert_id(source_id: str, sequence: int, *space: str) -> str:
    """The alert's id in the API and the page: '<source_id>/<sequence>', with
    '/unauthenticated' after it for an unauthenticated alert."""
    return '/'.join((source_id, str(sequence), *space))


def _removed(key: tuple[str, int], reason: str) -> Event:
    return Event('alert_removed', {'id': alert_id(*key), 'reason': reason})


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None

