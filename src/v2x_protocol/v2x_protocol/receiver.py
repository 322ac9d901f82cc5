"""The receiver pipeline (sans-IO): datagram bytes + the time now -> one event.

Order (ARCHITECTURE.md): size/version, authentication, generation time within the skew
window, expiry, replay per (source, sender session), then the event table decides
new / update / cancel / repeat. State is bounded: a session is forgotten once its last
send time is older than the skew window (any replay of it then fails the window check),
an event once it has expired (any datagram of it then fails the expiry check).
"""

from collections import OrderedDict
from dataclasses import dataclass

from v2x_protocol.wire import (
    AlertData,
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

NEW = 'new'
UPDATE = 'update'
CANCEL = 'cancel'
REPEAT = 'repeat'
OUTDATED = 'outdated'

_WINDOW = 64  # out-of-order counters accepted per session (IPsec-style bitmap)


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


@dataclass(frozen=True)
class DatagramRejected:
    """A dropped datagram; reason is the WireError's reason (e.g. 'bad_signature')."""

    reason: str
    detail: str


@dataclass(frozen=True)
class OwnDatagramSkipped:
    """Our own datagram looped back by multicast: neither delivered nor a drop."""


def classify(prev: tuple[int, bool] | None, alert: AlertData) -> str:
    """The event table: (last delivered stamp, cancelled) and a new version -> its change."""
    if prev is None:
        return CANCEL if alert.cancelled else NEW
    prev_stamp, prev_cancelled = prev
    if prev_cancelled:
        return REPEAT  # a cancellation is final
    if alert.cancelled:
        return CANCEL
    if alert.stamp_ns > prev_stamp:
        return UPDATE
    return REPEAT if alert.stamp_ns == prev_stamp else OUTDATED


class _Session:
    __slots__ = ('highest', 'bitmap', 'last_send_ns')

    def __init__(self):
        self.highest = -1
        self.bitmap = 0
        self.last_send_ns = 0

    def check_and_mark(self, counter: int) -> bool:
        """False when counter was seen (or is too far behind the window)."""
        if counter > self.highest:
            shift = counter - self.highest
            self.bitmap = ((self.bitmap << shift) | 1) & ((1 << _WINDOW) - 1)
            self.highest = counter
            return True
        back = self.highest - counter
        if back >= _WINDOW or self.bitmap & (1 << back):
            return False
        self.bitmap |= 1 << back
        return True


class Receiver:
    """Turns datagrams into events. keyring: keys.Keyring. Not thread-safe: one caller."""

    def __init__(self, keyring, max_clock_skew_s: float = 30.0, own_sessions=(),
                 max_sessions: int = 4096, max_events: int = 16384):
        self.keyring = keyring
        self.skew_ns = int(max_clock_skew_s * 1e9)
        self.own_sessions = set(own_sessions)
        self.max_sessions = max_sessions
        self.max_events = max_events
        self._sessions: OrderedDict[tuple, _Session] = OrderedDict()
        # (source_id, sequence) -> (stamp_ns, cancelled, expires_ns)
        self._events: OrderedDict[tuple[str, int], tuple[int, bool, int]] = OrderedDict()
        self._next_prune_ns = 0

    @property
    def active_events(self) -> int:
        """Events held (not yet pruned as expired)."""
        return len(self._events)

    def receive(self, data: bytes, now_ns: int):
        """One datagram at receive time now_ns (Unix ns) -> one event dataclass."""
        try:
            return self._receive(data, now_ns)
        except WireError as exc:
            return DatagramRejected(exc.reason, str(exc))

    def _receive(self, data: bytes, now_ns: int):
        header = parse_header(data)                          # size/version
        if header[0].session in self.own_sessions:
            return OwnDatagramSkipped()  # our multicast looped back: not worth verifying
        dg = decode(data, self.keyring, header)              # authentication
        env = dg.envelope
        if env.send_time_ns > now_ns + self.skew_ns:         # generation time window
            raise FutureDated(f'sent {(env.send_time_ns - now_ns) / 1e9:.3f} s in the future')
        if env.send_time_ns < now_ns - self.skew_ns:
            raise TooOld(f'sent {(now_ns - env.send_time_ns) / 1e9:.3f} s ago')
        payload = dg.payload
        is_alert = isinstance(payload, AlertData)
        expires_ns = payload.expires_ns if is_alert else 0
        if is_alert and expires_ns < now_ns:                                 # expiry
            raise Expired(f'{payload.source_id}#{payload.sequence} expired '
                          f'{(now_ns - expires_ns) / 1e9:.3f} s ago')
        self._prune(now_ns)
        skey = (payload.source_id, env.auth, env.key_id, env.session)       # replay
        session = self._sessions.get(skey)
        if session is None:
            session = self._sessions[skey] = _Session()
            if len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(skey)
        if not session.check_and_mark(env.counter):
            raise Replayed(f'{payload.source_id} session {env.session:016x} '
                           f'counter {env.counter} seen before')
        session.last_send_ns = max(session.last_send_ns, env.send_time_ns)
        if not is_alert:
            return HeartbeatReceived(payload, env, (env.send_time_ns - now_ns) / 1e9)
        key = (payload.source_id, payload.sequence)
        prev = self._events.get(key)
        change = classify(None if prev is None else prev[:2], payload)
        if change in (REPEAT, OUTDATED):
            return AlertRepeated(payload, env, change)
        self._events[key] = (payload.stamp_ns, payload.cancelled, expires_ns)
        self._events.move_to_end(key)
        if len(self._events) > self.max_events:
            self._events.popitem(last=False)
        return AlertDelivered(payload, env, change)

    def _prune(self, now_ns: int) -> None:
        if now_ns < self._next_prune_ns:
            return
        self._next_prune_ns = now_ns + 1_000_000_000
        horizon = now_ns - self.skew_ns
        for key in [k for k, s in self._sessions.items() if s.last_send_ns < horizon]:
            del self._sessions[key]
        for key in [k for k, e in self._events.items() if e[2] < now_ns]:
            del self._events[key]
