"""The decisions of alert_gateway, without ROS, sockets, files or threads.

Data in, actions out (the shape of h11 and of v2x_policy's ``step``): the node hands the
core what happened (datagrams heard on a path, an alert taken from v2x/alert_out, a
message seen on v2x/alert, a repeat tick, the once-a-second tick) and carries out the
actions the core returns, in order (publish, transmit, save a file, log). The core holds
every table the gateway keeps: the Receiver (replay and event state), the peer table and
the path each peer was heard on, the live alerts (markers), the version of each event
published on v2x/alert (what a foreign change is checked against), the RSU's outbox, the
counters, and the :class:`~v2x_bridge.identity.Identity`. The clock comes in at
construction (``time_ns()``, ``monotonic()``, ``monotonic_ns()``: the ``time`` module, or
a fake one in tests).

Not thread-safe, on purpose: the node makes every call under one lock, and advances
:meth:`GatewayCore.ingest` (a generator) under that lock too.

Trust boundary of the ROS graph (docs/ARCHITECTURE.md): a message on v2x/alert that
would replace, for a consumer, the version of an event this gateway published (a newer
stamp, other content) came from someone else; :meth:`GatewayCore.seen` answers it with
our own version, re-published as a newer one.
"""

from dataclasses import dataclass, fields, replace
import time
from typing import Callable, Iterable, Iterator, NamedTuple

from v2x_bridge.identity import Identity
from v2x_federation.duplicates import SeenDatagrams
from v2x_protocol.peers import CAMERA_DEGRADED, FORGET_AFTER_S, PeerInfo, PeerTable
from v2x_protocol.receiver import (
    AlertDelivered,
    AlertRepeated,
    DatagramRejected,
    HeartbeatReceived,
    Receiver,
)
from v2x_protocol.sender import (
    InvalidTiming,
    Outbox,
    OutOfRangeInput,
    UnknownEvent,
    fill_identity,
)
from v2x_protocol.wire import AUTH_NONE, MAX_TIME_NS, AlertData, HeartbeatData, InvalidMessage

#: health levels (the node maps them to diagnostic_msgs' levels)
OK, WARN, ERROR = 'ok', 'warn', 'error'
#: the heartbeat's status for each level (docs/protocol.md: 0 OK, 1 WARN, 2 ERROR)
HEARTBEAT_STATUS = {OK: 0, WARN: 1, ERROR: 2}
#: the reason when the detector says nothing (dead, disabled) or fails in itself
DETECTOR_DOWN = 'detector_down'

ID_CONFLICT_ERROR_S = 60.0  # diagnostics ERROR this long after an id conflict was heard
HIGH_WATER_SAVE_S = 10.0    # the replay high-water marks are saved at most this often
MAX_MARKED_ALERTS = 1000    # the newest live alerts drawn (markers refresh at 1 Hz)
AUTH_REASONS = ('unsigned', 'unknown_key', 'bad_signature')
AUTH_WARN_S = 10.0          # diagnostics WARN while authentication failures are this recent
GRAPH_LOG_PERIOD_S = 10.0   # at most one summary of foreign v2x/alert messages this often
DROP_LOG_PERIOD_S = 10.0    # at most one summary of dropped datagrams this often
# a re-asserted version is this much newer than the foreign one it undoes (consumers hold
# stamps as float seconds: 1 ns would be lost)
REASSERT_STEP_NS = 1_000_000


class AlreadyExpired(InvalidMessage):
    """An alert on v2x/alert_out whose detection_time + validity_s has passed."""


# why an alert on v2x/alert_out was dropped: counter dropped_alert_out_<reason>
_ALERT_OUT_REASONS = ((InvalidTiming, 'bad_time'), (OverflowError, 'bad_time'),
                      (AlreadyExpired, 'expired'), (OSError, 'state_error'),
                      (UnknownEvent, 'unknown_event'), (OutOfRangeInput, 'out_of_range'),
                      (InvalidMessage, 'invalid'), (ValueError, 'invalid'))


def alert_out_reason(exc: BaseException) -> str:
    """The counted reason for an alert_out refused with exc ('internal': a bug of ours)."""
    return next((r for t, r in _ALERT_OUT_REASONS if isinstance(exc, t)), 'internal')


def same_version(a: AlertData, b: AlertData) -> bool:
    """The same content but perhaps the header stamp (NaN equals NaN)."""
    for f in fields(AlertData):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name not in ('stamp_ns', 'origin') and x != y and not (x != x and y != y):
            return False
    return True


@dataclass(frozen=True)
class CoreSettings:
    """The parameters that shape the gateway's decisions."""

    role: str                   # 'rsu' or 'vehicle'
    heartbeat_role: int         # the heartbeat's role code (Heartbeat.ROLE_*)
    repeat_interval_s: float
    heartbeat_period_s: float
    stale_after: int
    max_clock_skew_s: float
    default_validity_s: float
    federated: bool = False     # a broker path beside the radio: one datagram, once
    camera_stale_s: float = 0.0  # RSU: the detector silent this long is a camera fault; 0 off


class CameraWatch:
    """What an RSU's hazard_detector last said of its camera (its /diagnostics status),
    and when: the reason the camera cannot see, or None while it can."""

    def __init__(self, stale_s: float, now: float):
        self.stale_s = stale_s
        self._heard_at = now  # start: the detector has stale_s to say something
        self._reason: str | None = None

    def heard(self, level: str, camera: str, now: float) -> None:
        """The detector's status: its level and its 'camera' value ('ok', a reason of
        v2x_detector.camera_health, '' when it has none)."""
        self._heard_at = now
        if camera not in ('', 'ok', 'off'):
            self._reason = camera
        else:
            self._reason = DETECTOR_DOWN if level == ERROR else None

    def fault(self, now: float) -> str | None:
        """Why the camera cannot see now (None: it can)."""
        if now - self._heard_at > self.stale_s:
            return DETECTOR_DOWN
        return self._reason


# --- actions: what the node does, in the order given ---------------------------------
# Immutable NamedTuples rather than frozen dataclasses: one is built per delivered alert
# and per heartbeat on the receive path, and a NamedTuple costs half as much to build.
class Delivered(NamedTuple):
    """A new version of an event heard: publish it on v2x/alert, log its CSV row."""

    alert: AlertData
    path: int
    authenticated: bool
    change: str
    received_ns: int


class Publish(NamedTuple):
    """Publish this version on v2x/alert (our own version, re-asserted)."""

    alert: AlertData
    path: int
    authenticated: bool


class HeardHeartbeat(NamedTuple):
    """A peer's heartbeat accepted: publish it on v2x/heartbeat."""

    heartbeat: HeartbeatData
    send_time_ns: int


class Transmit(NamedTuple):
    """Send this datagram on the link (and, federated, to the broker); report the outcome
    with count('sent') or count('send_errors')."""

    payload: AlertData | HeartbeatData
    datagram: bytes


class Sent(NamedTuple):
    """An alert taken from v2x/alert_out was signed and sent: publish it on alert_sent."""

    alert: AlertData


class AlertOutDropped(NamedTuple):
    """An alert from v2x/alert_out refused (counted); log it, at ERROR when ``error``."""

    reason: str
    text: str
    error: bool


class PeersNow(NamedTuple):
    """The peer table now, with the (path, authenticated) each peer was last heard on."""

    peers: list[PeerInfo]
    paths: dict[str, tuple[int, bool]]


class MarkersNow(NamedTuple):
    """The live alerts changed: draw these (the newest MAX_MARKED_ALERTS)."""

    alerts: list[AlertData]


class SaveOutbox(NamedTuple):
    """The RSU's live alerts changed: persist them (off the executor: many alerts)."""

    alerts: list[AlertData]


class SaveHighWater(NamedTuple):
    """The replay high-water marks moved: persist them (Receiver.high_water_state())."""

    marks: dict[str, int]


class Log(NamedTuple):
    """A line for the node's log: level 'info', 'warn' or 'error'."""

    level: str
    text: str


class GatewayCore:
    """Every table and decision of the gateway; see the module docstring."""

    def __init__(self, settings: CoreSettings, identity: Identity, keyring, *,
                 next_sequence: Callable[[str], int], high_water=None, clock=time):
        s = self.settings = settings
        self.identity = identity
        self._clock = clock
        self._next_sequence = next_sequence  # SequenceStore.next: may raise OSError
        self.receiver = Receiver(keyring, s.max_clock_skew_s, high_water=high_water)
        self._claim_identity()
        # a peer is forgotten after 10 stale limits of our own period, at least 10 minutes
        self.peers = PeerTable(s.stale_after, forget_after_s=max(
            FORGET_AFTER_S, 10 * s.stale_after * s.heartbeat_period_s))
        self._peer_paths: dict[str, tuple[int, bool]] = {}  # source -> (path, authenticated)
        self.outbox = Outbox(s.repeat_interval_s)
        self._seen = SeenDatagrams() if s.federated else None  # accepted on either path
        self._path_duplicates = 0
        self.live: dict[tuple[str, int], AlertData] = {}
        # the version of each event last published on v2x/alert (with its path and whether
        # it was authenticated), until it expires: what a foreign message is checked against
        self._published: dict[tuple[str, int], tuple[AlertData, int, bool]] = {}
        self._markers_dirty = True
        self.counts = {'received': 0, 'reasserted': 0, 'foreign_alerts': 0, 'delivered': 0,
                       'repeats': 0, 'heartbeats': 0, 'sent': 0, 'send_errors': 0,
                       'csv_errors': 0, 'invalid_input': 0, 'internal_errors': 0}
        self.dropped: dict[str, int] = {}  # reason -> datagrams (or alert_out_*) dropped
        mono = clock.monotonic()
        self._started = mono
        self._last_rejected: DatagramRejected | None = None  # for the drop summary
        self._last_internal: str | None = None  # the latest internal error, logged once
        self._drop_log_at = mono - DROP_LOG_PERIOD_S
        self._drop_logged: dict[str, int] = {}  # the counts the last summary reported
        self._last_auth_drop = mono - AUTH_WARN_S
        self._graph_log_at = mono - GRAPH_LOG_PERIOD_S
        self._graph_logged = 0  # reasserted at the last summary
        self._last_foreign = ''
        # (kernel_drops, peers_refused, reasserted) last seen by health(), and when each moved
        self._pressure_seen = (0, 0, 0)
        self._pressure_at = [mono - AUTH_WARN_S] * 3
        self._id_conflict_at = mono - ID_CONFLICT_ERROR_S
        self._clock_steps_seen = 0
        self._high_water_saved = mono
        self.camera = (CameraWatch(s.camera_stale_s, mono)
                       if s.role == 'rsu' and s.camera_stale_s > 0 else None)

    # --- identity -----------------------------------------------------------------------
    def _claim_identity(self) -> None:
        """Tell the Receiver what we send: our session is no peer's, and another origin
        heard under our station id is a conflict."""
        if self.identity.sender is not None:
            self.receiver.own_sessions.add(self.identity.session)
            self.receiver.own_ids[self.identity.station_id] = (self.identity.origin,
                                                               self.identity.session)

    def rotate_pseudonym(self) -> list:
        """A new pseudonym, origin and session (identity.rotate); the node then sends a
        heartbeat under it."""
        self.receiver.own_ids.pop(self.identity.station_id, None)
        self.identity.rotate()
        self._claim_identity()
        return [Log('info', f'new pseudonym {self.identity.station_id}')]

    # --- receiving ----------------------------------------------------------------------
    def ingest(self, batch: Iterable[bytes], path: int) -> Iterator:
        """Run datagrams heard on path (the node's Alert.PATH_* value) through the
        Receiver, yielding each action as soon as its datagram is decided (so a real alert
        in a flood is published before the rest of its batch is read). One Receiver serves
        every path, so an alert heard on two is delivered once; federated, the exact
        datagram accepted on one path is skipped on the other (not counted as a replay).

        A rejected datagram costs one counter increment in a local dict, merged when the
        batch ends; never raises (an error of ours is counted as internal_errors and logged
        by the next tick)."""
        rejected: dict[str, int] = {}
        last = None
        n = 0
        receive, seen, clock = self.receiver.receive, self._seen, self._clock
        for data in batch:
            n += 1
            now = clock.time_ns()
            try:
                if seen is not None and data in seen:
                    self._path_duplicates += 1
                    continue
                event = receive(data, now, clock.monotonic_ns())
                if type(event) is DatagramRejected:
                    rejected[event.reason] = rejected.get(event.reason, 0) + 1
                    last = event
                    continue
                if seen is not None:
                    seen.add(data)
                action = self._accepted(event, now, path)
            except Exception as exc:  # noqa: BLE001 -- the receive path must not die
                self.counts['internal_errors'] += 1
                self._last_internal = f'receive path failed: {type(exc).__name__}: {exc}'
                continue
            if action is not None:
                yield action
        self.counts['received'] += n
        for reason, k in rejected.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + k
        if last is not None:
            self._last_rejected = last
            if any(r in rejected for r in AUTH_REASONS):
                self._last_auth_drop = clock.monotonic()

    def _accepted(self, event, now: int, path: int):
        """What an accepted datagram leads to (an action, or None)."""
        if isinstance(event, AlertDelivered):
            a = event.alert
            self.counts['delivered'] += 1
            if a.cancelled:
                self.live.pop(a.key, None)
            else:
                self.live[a.key] = a
            self._markers_dirty = True
            authenticated = event.envelope.auth != AUTH_NONE
            self._published[a.key] = (a, path, authenticated)
            return Delivered(a, path, authenticated, event.change, now)
        if isinstance(event, AlertRepeated):
            self.counts['repeats'] += 1
        elif isinstance(event, HeartbeatReceived):
            self.counts['heartbeats'] += 1
            hb = event.heartbeat
            if not self.peers.heard_event(event, now):
                return None  # the peer table is full of live peers (counted as refused)
            self._peer_paths[hb.source_id] = (path, event.envelope.auth != AUTH_NONE)
            return HeardHeartbeat(hb, event.envelope.send_time_ns)
        return None

    # --- the ROS graph ------------------------------------------------------------------
    def seen(self, seen: AlertData) -> Publish | None:
        """A message on v2x/alert (mostly our own, back). When it would replace our version
        of the event for a consumer (speed_policy takes a version with a stamp at least as
        new) with different content, re-assert ours as a newer version."""
        own, path, authenticated = self._published.get(seen.key, (None, 0, False))
        if own is None:
            self.counts['foreign_alerts'] += 1  # not ours (denm_gateway's, or forged)
            return None
        if seen.stamp_ns < own.stamp_ns or same_version(seen, own):
            return None  # an older version, or ours again
        again = replace(own, stamp_ns=min(max(own.stamp_ns, seen.stamp_ns + REASSERT_STEP_NS),
                                          MAX_TIME_NS - 1))
        self._published[seen.key] = (again, path, authenticated)
        self.counts['reasserted'] += 1
        what = 'a cancellation' if seen.cancelled else 'a different version'
        self._last_foreign = (f'{seen.source_id}/{seen.sequence}: {what} this gateway did '
                              'not publish; its own version re-published')
        return Publish(again, path, authenticated)

    # --- sending ------------------------------------------------------------------------
    def restore(self, alerts: list[AlertData]) -> list:
        """RSU start: the live alerts saved before are repeated at once, in a new session."""
        now = self._clock.time_ns()
        for alert in alerts:
            self.outbox.put(alert, now, due_now=True)
        return [Log('info', f'repeating {len(alerts)} live alerts from before')] if alerts \
            else []

    def alert_out(self, alert: AlertData) -> list:
        """An alert taken from v2x/alert_out (RSU): our identity and the defaults, signed,
        sent now and repeated until it expires. Bad input is dropped and counted."""
        now = self._clock.time_ns()
        try:
            alert = fill_identity(alert, station_id=self.identity.station_id, now_ns=now,
                                  default_validity_s=self.settings.default_validity_s,
                                  next_sequence=self._next_sequence, previous=self.outbox.get)
            if alert.expires_ns <= now:
                raise AlreadyExpired('already expired (detection_time + validity_s)')
            data = self.identity.sender.datagram(alert, now)
        except Exception as exc:  # noqa: BLE001 -- one bad alert must not stop the node
            return self.refuse_alert_out(exc)
        self.outbox.put(alert, now)
        return [Transmit(alert, data), Sent(alert)]

    def refuse_alert_out(self, exc: BaseException) -> list:
        """Count an alert from v2x/alert_out that cannot be taken (exc says why)."""
        reason = alert_out_reason(exc)
        if reason == 'internal':
            self.counts['internal_errors'] += 1
        self.counts['invalid_input'] += 1
        key = f'alert_out_{reason}'
        self.dropped[key] = self.dropped.get(key, 0) + 1
        return [AlertOutDropped(reason, f'{type(exc).__name__}: {exc}', reason == 'internal')]

    def due(self) -> list[Transmit]:
        """The repeats due now (RSU), each a new datagram."""
        now = self._clock.time_ns()
        sender = self.identity.sender
        return [Transmit(a, sender.datagram(a, now)) for a in self.outbox.due(now)]

    def camera_heard(self, level: str, camera: str) -> None:
        """The detector's /diagnostics status (its level, its 'camera' value)."""
        if self.camera is not None:
            self.camera.heard(level, camera, self._clock.monotonic())

    def camera_fault(self) -> str | None:
        """Why the RSU's camera cannot see now (None: it can, or none is watched)."""
        return self.camera.fault(self._clock.monotonic()) if self.camera else None

    def heartbeat_status(self, level: str, message: str) -> tuple[int, str]:
        """(status, status_message) of our heartbeat from our own health (level, message):
        an RSU whose camera cannot see says ERROR 'rsu degraded: camera <reason>' unless the
        gateway itself is in ERROR (that is said first)."""
        fault = self.camera_fault()
        if fault is not None and level != ERROR:
            return HEARTBEAT_STATUS[ERROR], CAMERA_DEGRADED + fault
        return HEARTBEAT_STATUS[level], message

    def heartbeat(self, level: str, message: str) -> list[Transmit]:
        """Our heartbeat now, under our current station id, from our health (level,
        message) and the camera's (heartbeat_status)."""
        s = self.settings
        active = len(self.outbox) if s.role == 'rsu' else len(self.live)
        status, message = self.heartbeat_status(level, message)
        hb = HeartbeatData(self.identity.station_id, s.heartbeat_role, status,
                           message, active, self._clock.monotonic() - self._started,
                           s.heartbeat_period_s)
        return [Transmit(hb, self.identity.sender.datagram(hb, self._clock.time_ns()))]

    def count(self, name: str) -> None:
        """An outcome the node saw (sent, send_errors, csv_errors)."""
        self.counts[name] += 1

    def internal_error(self, text: str) -> None:
        """The node failed carrying out an action of the receive path: counted, logged by
        the next tick (the receive path goes on)."""
        self.counts['internal_errors'] += 1
        self._last_internal = text

    # --- once a second ------------------------------------------------------------------
    def tick(self, kernel_drops: int = 0) -> list:
        """Once a second: id conflicts and clock steps, state to save, expiry, the peer
        table, markers when changed, and the summaries of drops and of foreign changes."""
        out: list = []
        now, mono = self._clock.time_ns(), self._clock.monotonic()
        self._watch_protocol(out, mono)
        if self.settings.role == 'rsu' and self.outbox.take_changed():
            out.append(SaveOutbox(self.outbox.active()))
        for key in [k for k, a in self.live.items() if a.expires_ns <= now]:
            del self.live[key]
            self._markers_dirty = True
        for key in [k for k, v in self._published.items() if v[0].expires_ns <= now]:
            del self._published[key]
        peers = self.peers.snapshot(now)
        if len(self._peer_paths) > len(peers):  # forgotten or evicted peers' paths go too
            held = {p.source_id for p in peers}
            self._peer_paths = {k: v for k, v in self._peer_paths.items() if k in held}
        out.append(PeersNow(peers, dict(self._peer_paths)))
        if self._markers_dirty:
            self._markers_dirty = False
            out.append(MarkersNow(list(self.live.values())[-MAX_MARKED_ALERTS:]))
        self._summarise_drops(out, mono, kernel_drops)
        self._summarise_graph(out, mono)
        return out

    def _watch_protocol(self, out: list, mono: float) -> None:
        rx = self.receiver
        for conflict in rx.take_conflicts():
            self._id_conflict_at = mono
            out.append(Log('error', conflict.describe()))
        if rx.counters['clock_steps'] != self._clock_steps_seen:
            self._clock_steps_seen = rx.counters['clock_steps']
            out.append(Log('warn', f'the wall clock stepped by {rx.clock_step_s:+.3f} s; '
                                   'replay and event state kept (monotonic)'))
        if rx.high_water_changed and mono - self._high_water_saved >= HIGH_WATER_SAVE_S:
            rx.high_water_changed = False
            self._high_water_saved = mono
            out.append(SaveHighWater(rx.high_water_state()))

    def _summarise_drops(self, out: list, mono: float, kernel_drops: int) -> None:
        """At most every DROP_LOG_PERIOD_S: one line summing the datagrams dropped since
        (and an internal error of the receive path, once)."""
        if mono - self._drop_log_at < DROP_LOG_PERIOD_S:
            return
        dropped = dict(self.dropped)
        last, self._last_rejected = self._last_rejected, None
        internal, self._last_internal = self._last_internal, None
        dropped['kernel_buffer_full'] = kernel_drops
        since = {k: v - self._drop_logged.get(k, 0) for k, v in dropped.items()}
        since = {k: v for k, v in since.items() if v > 0}
        if internal is not None:
            out.append(Log('error', internal))
        if not since:
            return
        self._drop_log_at, self._drop_logged = mono, dropped
        reasons = ', '.join(f'{k} {v}' for k, v in sorted(since.items()))
        example = f'; last: {last.reason}: {last.detail}' if last is not None else ''
        out.append(Log('warn', f'dropped {sum(since.values())} datagrams ({reasons})'
                               f'{example}'))

    def _summarise_graph(self, out: list, mono: float) -> None:
        """At most every GRAPH_LOG_PERIOD_S: one warning when foreign changes were undone.
        Alerts of events we never delivered are only counted (denm_gateway publishes its
        own)."""
        if mono - self._graph_log_at < GRAPH_LOG_PERIOD_S:
            return
        reasserted = self.counts['reasserted']
        if reasserted == self._graph_logged:
            return
        self._graph_log_at = mono
        out.append(Log('warn', f'v2x/alert carried {reasserted - self._graph_logged} changes '
                               'to live events that this gateway did not publish (someone '
                               'else on the ROS graph); undone by re-publishing its own '
                               f'versions; last: {self._last_foreign}'))
        self._graph_logged = reasserted

    # --- health -------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        """The core's counters (dropped ones as dropped_<reason>)."""
        out = dict(self.counts)
        out.update({f'dropped_{k}': v for k, v in self.dropped.items()})
        out['live_alerts'] = len(self.live)
        out['peers'] = len(self.peers)
        out['peers_refused'] = self.peers.refused
        out['peers_evicted'] = self.peers.evicted
        out['peers_forgotten'] = self.peers.forgotten
        out['outbox'] = len(self.outbox)
        rx = self.receiver
        out['id_conflicts'] = rx.counters['id_conflicts']
        out['clock_steps'] = rx.counters['clock_steps']
        out['events_held'] = rx.active_events
        out['sessions_held'] = rx.held_sessions
        if self._seen is not None:
            out['broker_path_duplicates'] = self._path_duplicates
        return out

    def health(self, c: dict) -> tuple[str, str]:
        """(level, message) from the counters c (counters() plus the node's kernel_drops)."""
        protocol = self._protocol_health()
        if protocol is not None and protocol[0] == ERROR:
            return protocol
        if c['send_errors'] or c['csv_errors'] or c['internal_errors']:
            return WARN, 'send, CSV or internal errors'
        warnings = []
        if self._clock.monotonic() - self._last_auth_drop < AUTH_WARN_S:
            warnings.append('rejecting datagrams that fail authentication (key mismatch?)')
        pressure = self._pressure(c)
        if pressure is not None:
            warnings.append(pressure)
        if warnings:
            return WARN, '; '.join(warnings)
        if protocol is not None:
            return protocol
        return OK, f'{self.settings.role} {self.identity.station_id}'

    def _protocol_health(self) -> tuple[str, str] | None:
        """(level, message) for id conflicts, a full event table and peer clock offsets."""
        if self._clock.monotonic() - self._id_conflict_at < ID_CONFLICT_ERROR_S:
            return ERROR, 'two stations use one station id (see the log); give each its own'
        rx = self.receiver
        if rx.active_events >= 0.9 * rx.max_events:
            return WARN, (f'event table {rx.active_events} of {rx.max_events}: new events are '
                          'dropped (state_full) while it is full; held ones are never evicted')
        skew = self.settings.max_clock_skew_s
        limit = skew / 2
        worst = max(((k, v) for k, (v, _) in rx.clock_offsets.items()),
                    key=lambda kv: abs(kv[1]), default=None)
        if worst is not None and abs(worst[1]) > limit:
            return WARN, (f'peer {worst[0]!r} clock offset {worst[1]:+.1f} s (over '
                          f'{limit:g} s; the skew window drops it at {skew:g} s)')
        return None

    def _pressure(self, c: dict) -> str | None:
        """A warning while the receive buffer overflowed, the peer table refused new source
        ids or foreign changes were undone within the last AUTH_WARN_S (else None)."""
        now = self._clock.monotonic()
        seen = (c.get('kernel_drops', 0), c['peers_refused'], c['reasserted'])
        for i, (value, before) in enumerate(zip(seen, self._pressure_seen, strict=True)):
            if value != before:
                self._pressure_at[i] = now
        self._pressure_seen = seen
        messages = ('receive buffer overflowing: datagrams dropped by the kernel (flood?)',
                    f'peer table full ({c["peers"]}): heartbeats of new source ids refused',
                    'changes to live events on v2x/alert from someone else were undone')
        recent = [m for m, at in zip(messages, self._pressure_at, strict=True)
                  if now - at < AUTH_WARN_S]
        return '; '.join(recent) if recent else None
