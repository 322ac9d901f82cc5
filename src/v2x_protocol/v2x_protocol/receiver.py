"""The receiver pipeline (sans-IO): datagram bytes + the time now -> one event.

Order (docs/protocol.md): size/version, authentication and body (ranges, control
characters, the signer's source ids), generation time within the skew window and behind
no sender's high-water mark, expiry, replay per sender session, then the event table
decides new / update / cancel / repeat. An event is (source_id, origin, sequence): a second
station using the same source id (another origin) never updates, repeats or cancels the
first one's events, and the two are reported as an id conflict.

Time: wall-clock time (now_ns) only for the checks against send and expiry times; every
piece of state ages on the monotonic clock (mono_ns), so a wall-clock step never wipes it
(a step is detected and noted). State is bounded; when a table is full the newcomer loses:

- sessions (replay bitmaps): forgotten 2 x skew after their last datagram (a replay is
  then outside the skew window); when full, the least recently heard session is
  forgotten and its newest send time, clamped to the receive time, becomes a floor for
  its (source_id, origin): a datagram of a session not held must be newer than that
  (else `state_full`), so no replay of a forgotten session passes, and a flood of
  sessions (even future-dated ones) delays no other sender;
- events: kept until their validity has passed on the monotonic clock (+ skew), cancelled
  ones too, and never evicted: a new event is dropped and counted (`state_full`) when the
  table is full, when its source id holds its quota, or when its signer (auth, key id)
  holds its quota; a source holding no event may not take the last tenth of the table.
  An established source (bound to an Ed25519 key by the trust store, or an RSU heard by
  its heartbeats) keeps room for its first few events whatever else is held, so new
  unknown sources and the signers that flood lose first, never an RSU that holds no live
  event. Flooding can hide new events for a while but can never make a live event new
  again or revive a cancelled one.
"""

from collections import OrderedDict
from dataclasses import dataclass, replace

from v2x_protocol import ranges
from v2x_protocol.wire import (
    AlertData,
    CounterJump,
    Envelope,
    Expired,
    FutureDated,
    HeartbeatData,
    Replayed,
    TooOld,
    WireError,
    decode,
    parse_header,
)

__all__ = [
    'NEW', 'UPDATE', 'CANCEL', 'REPEAT', 'OUTDATED', 'WINDOW', 'MAX_COUNTER_JUMP',
    'ESTABLISHED_RESERVE', 'StateFull', 'AlertDelivered', 'AlertRepeated', 'HeartbeatReceived',
    'DatagramRejected', 'OwnDatagramSkipped', 'IdConflict', 'classify', 'ReplayWindow',
    'Receiver',
]

NEW = 'new'
UPDATE = 'update'
CANCEL = 'cancel'
REPEAT = 'repeat'
OUTDATED = 'outdated'

WINDOW = 64  # counters accepted per session: highest-63 .. highest (IPsec-style bitmap)
MAX_COUNTER_JUMP = 1 << 32  # a counter further above the highest is refused
CLOCK_STEP_NS = 1_000_000_000  # a change of (wall - monotonic) beyond this is a step
MAX_ORIGINS_PER_SOURCE = 16  # station instances remembered per source id
#: an established source (bound, or an RSU heard by heartbeat) always has room for this
#: many events (only the table's own bound can refuse them)
ESTABLISHED_RESERVE = 16
#: an RSU heard by a heartbeat stays established this long after its last one
ESTABLISHED_FOR_NS = 600 * 1_000_000_000
#: RSUs established by heartbeat remembered at most (newcomers lose): with a shared HMAC
#: key a key holder could invent RSUs, whose reserve then takes at most 256 x 16 events
MAX_ESTABLISHED_RSUS = 256


class StateFull(WireError):
    """A new event while the event table (or the source's quota) is full."""

    reason = 'state_full'


@dataclass(frozen=True)
class AlertDelivered:
    """An alert to hand on: change is 'new', 'update' or 'cancel'."""

    alert: AlertData
    envelope: Envelope
    change: str


@dataclass(frozen=True)
class AlertRepeated:
    """An authentic alert we already have (a repeat, or an older version): not delivered."""

    alert: AlertData
    envelope: Envelope
    change: str  # 'repeat' or 'outdated'


@dataclass(frozen=True)
class HeartbeatReceived:
    """A peer's heartbeat; clock_offset_s = its send time minus our receive time."""

    heartbeat: HeartbeatData
    envelope: Envelope
    clock_offset_s: float
    #: the source id is bound to this signer by the trust store (an RSU's own key)
    bound: bool = False


@dataclass(frozen=True)
class DatagramRejected:
    """A dropped datagram; reason is the WireError's reason (e.g. 'bad_signature')."""

    reason: str
    detail: str


@dataclass(frozen=True)
class OwnDatagramSkipped:
    """Our own datagram looped back by multicast: neither delivered nor a drop."""


@dataclass(frozen=True)
class IdConflict:
    """Two station instances (origins) using one source_id at the same time."""

    source_id: str
    origin: int
    session: int
    other_origin: int
    other_session: int

    def describe(self) -> str:
        """The log line naming both senders."""
        return (f'two stations use source id {ranges.printable(self.source_id)!r}: origin '
                f'{self.other_origin:016x} (session {self.other_session:016x}) and origin '
                f'{self.origin:016x} (session {self.origin_session_hex()}); give each station '
                'its own station_id')

    def origin_session_hex(self) -> str:
        """The newer sender's session in hex."""
        return f'{self.session:016x}'


def classify(prev: tuple[int, bool] | None, alert: AlertData) -> str:
    """The event table: (last delivered stamp, cancelled) and a new version -> its change."""
    if prev is None:
        return CANCEL if alert.cancelled else NEW
    prev_stamp, prev_cancelled = prev
    if prev_cancelled:
        return REPEAT  # a cancellation is final
    if alert.cancelled:  # a cancellation older than the live version delivered is outdated
        return CANCEL if alert.stamp_ns >= prev_stamp else OUTDATED
    if alert.stamp_ns > prev_stamp:
        return UPDATE
    return REPEAT if alert.stamp_ns == prev_stamp else OUTDATED


class ReplayWindow:
    """The highest counter seen and a 64-bit bitmap of the ones just below it: O(1) time
    and memory for any counter (a jump of WINDOW or more starts a fresh bitmap)."""

    __slots__ = ('highest', 'bitmap')

    def __init__(self):
        self.highest = 0  # counters start at 1
        self.bitmap = 0   # bit i: highest - i seen

    def check(self, counter: int) -> str:
        """'' when counter is acceptable, else why not ('replayed', 'counter_jump')."""
        if counter > self.highest:
            return 'counter_jump' if counter - self.highest > MAX_COUNTER_JUMP else ''
        back = self.highest - counter
        if back >= WINDOW or self.bitmap >> back & 1:
            return 'replayed'
        return ''

    def mark(self, counter: int) -> None:
        """Record an accepted counter (after check() said '')."""
        if counter > self.highest:
            shift = counter - self.highest
            self.bitmap = 1 if shift >= WINDOW else ((self.bitmap << shift) | 1) & (
                (1 << WINDOW) - 1)
            self.highest = counter
        else:
            self.bitmap |= 1 << (self.highest - counter)


class _Session:
    __slots__ = ('window', 'last_mono', 'last_send_ns', 'last_recv_ns')

    def __init__(self):
        self.window = ReplayWindow()
        self.last_mono = 0
        self.last_send_ns = 0
        self.last_recv_ns = 0  # the receiver's wall clock at the last accepted datagram

    def floor(self) -> int:
        """The send time a forgotten session leaves behind: its newest, but never later
        than when we last heard it (a future-dated session raises no floor)."""
        return min(self.last_send_ns, self.last_recv_ns)


class Receiver:
    """Turns datagrams into events. keyring: keys.Keyring. Not thread-safe: one caller."""

    def __init__(self, keyring, max_clock_skew_s: float = 30.0, own_sessions=(),
                 max_sessions: int = 4096, max_events: int = 16384,
                 max_events_per_source: int = 1024, high_water=None,
                 max_events_per_signer: int | None = None):
        self.keyring = keyring
        self.skew_ns = int(max_clock_skew_s * 1e9)
        self.own_sessions = set(own_sessions)
        self.max_sessions = max_sessions
        self.max_events = max_events
        self.max_events_per_source = max_events_per_source
        #: events one signer (auth, key id) may hold; None: a quarter of the table, at
        #: least one source's quota (so one key cannot fill the table alone)
        self.max_events_per_signer = max_events_per_signer
        self._sessions: OrderedDict[tuple, _Session] = OrderedDict()
        # (source_id, origin) -> (floor send time, forget at mono) of sessions forgotten
        # because the table was full: a session not held must be newer than its floor
        self._floors: OrderedDict[tuple[str, int], tuple[int, int]] = OrderedDict()
        # (source_id, origin, sequence) -> (stamp_ns, cancelled, forget_at_mono_ns, signer)
        self._events: dict[tuple[str, int, int], tuple[int, bool, int, tuple]] = {}
        self._per_source: dict[str, int] = {}
        self._per_signer: dict[tuple[int, bytes], int] = {}
        # RSUs heard by heartbeats of an alert-capable key: source_id -> last mono (bounded)
        self._rsus: OrderedDict[str, int] = OrderedDict()
        # source_id -> {origin: (last_mono, session)}; names given to conflicting origins
        self._origins: dict[str, dict[int, tuple[int, int]]] = {}
        self._names: dict[tuple[str, int], str] = {}
        #: source_id -> (origin, session) of what this station itself sends: another origin
        #: heard with one of these ids is always a conflict (the sending side's check)
        self.own_ids: dict[str, tuple[int, int]] = {}
        #: (source_id, auth, key_id) -> highest accepted send time (persist with
        #: high_water_state(); a restart keeps refusing what is older than it - 2 skew)
        self.high_water: dict[tuple[str, int, bytes], int] = dict(high_water or {})
        self.high_water_changed = False
        #: source_id -> (send - receive time in seconds, monotonic ns when measured)
        self.clock_offsets: dict[str, tuple[float, int]] = {}
        self.counters = {'id_conflicts': 0, 'clock_steps': 0, 'internal_errors': 0,
                         'floors_dropped': 0}
        self.conflicts: list[IdConflict] = []  # new ones, for the shell to log (take them)
        self.clock_step_s = 0.0  # the last wall-clock step seen
        self._wall_minus_mono: int | None = None
        self._next_prune_mono = 0

    @property
    def active_events(self) -> int:
        """Events held (live, or cancelled and not yet past their validity)."""
        return len(self._events)

    @property
    def held_sessions(self) -> int:
        """Sender sessions held (replay windows)."""
        return len(self._sessions)

    @property
    def signer_quota(self) -> int:
        """Events one signer (auth, key id) may hold."""
        if self.max_events_per_signer is not None:
            return self.max_events_per_signer
        return max(self.max_events_per_source, self.max_events // 4)

    def established(self, source: str) -> bool:
        """A source that is never an unknown newcomer: bound to an Ed25519 key by the trust
        store, or an RSU heard by its heartbeats within the last ESTABLISHED_FOR_NS."""
        bound = getattr(self.keyring, 'bound_ids', ())
        return source in bound or source in self._rsus

    def take_conflicts(self) -> list[IdConflict]:
        """Id conflicts found since the last call."""
        out, self.conflicts = self.conflicts, []
        return out

    def receive(self, data: bytes, now_ns: int, mono_ns: int | None = None):
        """One datagram at wall-clock now_ns (Unix ns) and monotonic mono_ns (default:
        now_ns) -> one event dataclass. Never raises: anything unexpected is a drop with
        reason 'internal_error'."""
        mono = now_ns if mono_ns is None else mono_ns
        try:
            self._watch_clock(now_ns, mono)
            return self._receive(data, now_ns, mono)
        except WireError as exc:
            return DatagramRejected(exc.reason, str(exc))
        except Exception as exc:  # noqa: BLE001 -- one datagram must not end the loop
            self.counters['internal_errors'] += 1
            return DatagramRejected('internal_error', f'{type(exc).__name__}: {exc}')

    def _watch_clock(self, now_ns: int, mono: int) -> None:
        offset = now_ns - mono
        if self._wall_minus_mono is not None and \
                abs(offset - self._wall_minus_mono) > CLOCK_STEP_NS:
            self.counters['clock_steps'] += 1
            self.clock_step_s = (offset - self._wall_minus_mono) / 1e9
        self._wall_minus_mono = offset

    def _receive(self, data: bytes, now_ns: int, mono: int):
        header = parse_header(data)                          # size/version
        if header[0].session in self.own_sessions:
            return OwnDatagramSkipped()  # our multicast looped back: not worth verifying
        dg = decode(data, self.keyring, header)              # authentication, body
        env = dg.envelope
        payload = dg.payload
        source = payload.source_id
        if len(self.clock_offsets) < self.max_sessions or source in self.clock_offsets:
            self.clock_offsets[source] = ((env.send_time_ns - now_ns) / 1e9, mono)  # pre-skew
        if env.send_time_ns > now_ns + self.skew_ns:         # generation time window
            raise FutureDated(f'sent {(env.send_time_ns - now_ns) / 1e9:.3f} s in the future')
        if env.send_time_ns < now_ns - self.skew_ns:
            raise TooOld(f'sent {(now_ns - env.send_time_ns) / 1e9:.3f} s ago')
        hw_key = (source, env.auth, env.key_id)
        high = self.high_water.get(hw_key)
        if high is not None and env.send_time_ns < high - 2 * self.skew_ns:
            raise TooOld(f'sent {(high - env.send_time_ns) / 1e9:.3f} s before the newest '
                         'datagram of its sender (clock stepped back, or a replay)')
        is_alert = isinstance(payload, AlertData)
        expires_ns = payload.expires_ns if is_alert else 0
        if is_alert and expires_ns < now_ns:                                 # expiry
            raise Expired(f'{ranges.printable(source)}#{payload.sequence} expired '
                          f'{(now_ns - expires_ns) / 1e9:.3f} s ago')
        self._prune(mono)
        skey = (source, env.auth, env.key_id, env.origin, env.session)      # replay
        session = self._sessions.get(skey)
        verdict = ReplayWindow().check(env.counter) if session is None else \
            session.window.check(env.counter)
        if verdict == 'counter_jump':
            raise CounterJump(f'counter {env.counter} is more than 2^32 above the highest '
                              f'of session {env.session:016x}')
        if verdict:
            raise Replayed(f'{ranges.printable(source)} session {env.session:016x} counter '
                           f'{env.counter}: seen before or 64+ behind the highest')
        name = self._identity(source, env, mono)
        key = (source, env.origin, payload.sequence) if is_alert else None
        prev = self._events.get(key) if is_alert else None
        signer = (env.auth, env.key_id)
        if is_alert and prev is None:
            self._admit(source, signer)
        if session is None:
            floor = self._floors.get((source, env.origin))
            if floor is not None and env.send_time_ns <= floor[0]:
                late_s = (floor[0] - env.send_time_ns) / 1e9
                raise StateFull(f'session table was full: a session of this sender not held '
                                f'must be newer than its last one forgotten ({late_s:.3f} s '
                                'older)')
            session = self._sessions[skey] = _Session()
            if len(self._sessions) > self.max_sessions:
                self._forget_oldest_session(mono)
        else:
            self._sessions.move_to_end(skey)
        session.window.mark(env.counter)
        session.last_mono = mono
        session.last_send_ns = max(session.last_send_ns, env.send_time_ns)
        session.last_recv_ns = now_ns
        mark = min(env.send_time_ns, now_ns)  # a future-dated datagram raises no mark
        if (high is None and len(self.high_water) < 4 * self.max_sessions) or (
                high is not None and mark > high):
            self.high_water[hw_key] = mark
            self.high_water_changed = True
        if not is_alert:
            bound = source in getattr(self.keyring, 'bound_ids', ())
            if payload.role == ranges.ROLE_RSU and getattr(dg.verifier, 'signs_alerts', True):
                self._note_rsu(source, mono)
            return HeartbeatReceived(payload, env, (env.send_time_ns - now_ns) / 1e9, bound)
        if name != source:
            payload = replace(payload, source_id=name)
        change = classify(None if prev is None else prev[:2], payload)
        if change in (REPEAT, OUTDATED):
            return AlertRepeated(payload, env, change)
        forget_at = mono + (expires_ns - now_ns) + self.skew_ns
        if prev is None:
            self._per_source[source] = self._per_source.get(source, 0) + 1
            self._per_signer[signer] = self._per_signer.get(signer, 0) + 1
        else:
            signer = prev[3]  # the event stays charged to the signer that created it
        self._events[key] = (payload.stamp_ns, payload.cancelled, forget_at, signer)
        return AlertDelivered(payload, env, change)

    def _admit(self, source: str, signer: tuple[int, bytes]) -> None:
        """Room for a new event of source signed by signer, else StateFull."""
        held = self._per_source.get(source, 0)
        total = len(self._events)
        if total >= self.max_events or held >= self.max_events_per_source:
            raise StateFull(f'event table full ({total} held, {held} of '
                            f'{ranges.printable(source)}): new event dropped')
        if held < ESTABLISHED_RESERVE and self.established(source):
            return  # an RSU is never an unknown newcomer, whatever the flood holds
        by_signer = self._per_signer.get(signer, 0)
        if by_signer >= self.signer_quota:
            raise StateFull(f'its key {signer[1].hex()} holds {by_signer} events (its '
                            'quota): new event dropped')
        if not held and total >= self.max_events - self.max_events // 10:
            raise StateFull(f'event table {total} of {self.max_events}: the last tenth is '
                            f'kept for sources already known; new source '
                            f'{ranges.printable(source)} dropped')

    def _note_rsu(self, source: str, mono: int) -> None:
        """An RSU heard by a heartbeat of an alert-capable key (bounded: newcomers lose)."""
        rsus = self._rsus
        if source in rsus:
            rsus.move_to_end(source)
        elif len(rsus) >= MAX_ESTABLISHED_RSUS:
            return
        rsus[source] = mono

    def _forget_oldest_session(self, mono: int) -> None:
        """Make room: the least recently heard session goes; its floor stays 2 x skew."""
        (source, _, _, origin, _), old = self._sessions.popitem(last=False)
        floors = self._floors
        name = (source, origin)
        before = floors.pop(name, None)
        floor = old.floor() if before is None else max(before[0], old.floor())
        floors[name] = (floor, mono + 2 * self.skew_ns)
        if len(floors) > 4 * self.max_sessions:
            floors.popitem(last=False)
            self.counters['floors_dropped'] += 1

    def _identity(self, source: str, env: Envelope, mono: int) -> str:
        """Track the origins using source; note a conflict; the name to deliver under."""
        origins = self._origins.setdefault(source, {})
        own = self.own_ids.get(source)
        if own is not None and own[0] != env.origin:
            origins[own[0]] = (mono, own[1])
        known = env.origin in origins
        keep = known or len(origins) < MAX_ORIGINS_PER_SOURCE  # bounded per source id
        horizon = mono - 2 * self.skew_ns
        if not known:
            for other, (last, other_session) in origins.items():
                if last >= horizon:
                    self.counters['id_conflicts'] += 1
                    if len(self.conflicts) < 100:
                        self.conflicts.append(IdConflict(source, env.origin, env.session,
                                                         other, other_session))
                    if keep:
                        self._names[(source, env.origin)] = f'{source}@{env.origin:016x}'
                    break
        if not keep:  # not remembered: never under the plain name, which is taken
            return f'{source}@{env.origin:016x}'
        origins[env.origin] = (mono, env.session)
        return self._names.get((source, env.origin), source)

    def _prune(self, mono: int) -> None:
        if mono < self._next_prune_mono:
            return
        self._next_prune_mono = mono + 1_000_000_000
        horizon = mono - 2 * self.skew_ns
        for key in [k for k, s in self._sessions.items() if s.last_mono < horizon]:
            del self._sessions[key]
        for key in [k for k, e in self._events.items() if e[2] < mono]:
            _release(self._per_source, key[0])
            _release(self._per_signer, self._events.pop(key)[3])
        floors = self._floors
        while floors and next(iter(floors.values()))[1] < mono:
            floors.popitem(last=False)
        rsus, quiet = self._rsus, mono - ESTABLISHED_FOR_NS
        while rsus and next(iter(rsus.values())) < quiet:
            rsus.popitem(last=False)
        for source in list(self._origins):
            origins = self._origins[source]
            for origin in [o for o, (last, _) in origins.items() if last < horizon]:
                if source not in self._per_source:
                    del origins[origin]
                    self._names.pop((source, origin), None)
            if not origins:
                del self._origins[source]
        for source in [k for k, (_, at) in self.clock_offsets.items() if at < horizon]:
            del self.clock_offsets[source]

    def high_water_state(self) -> dict[str, int]:
        """The high-water marks as JSON-able {'<auth>:<key id hex>:<source_id>': ns}."""
        return {f'{a}:{k.hex()}:{s}': t for (s, a, k), t in self.high_water.copy().items()}

    @staticmethod
    def high_water_from_state(state: dict) -> dict[tuple[str, int, bytes], int]:
        """The inverse of high_water_state (unreadable entries skipped)."""
        out = {}
        for name, t in (state or {}).items():
            try:
                auth, key_hex, source = str(name).split(':', 2)
                out[(source, int(auth), bytes.fromhex(key_hex))] = int(t)
            except (ValueError, TypeError):
                continue
        return out


def _release(counts: dict, key) -> None:
    """One held event of key less."""
    left = counts.get(key, 1) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
