"""Receive rules for DENMs (sans-IO): BTP-B bytes + the time now -> one event.

The same rules as our own receiver (v2x_protocol.receiver) as far as they apply to an
unauthenticated standard message: no signature (DENM without TS 103 097 security), so no
replay window per sender session; instead
  1. BTP-B destination port 2002, UPER DENM v2 (else DenmRejected 'not_denm'/'malformed'),
  2. our own station's DENMs looped back are skipped (header.stationID == ours),
  3. referenceTime and detectionTime not ahead of our clock by more than the skew window
     ('future_dated'),
  4. expiry: detectionTime + validityDuration has passed ('expired'; validity 0 included),
  5. the event table keyed by actionID (source 'denm:<originatingStationID>', sequence):
     new / update (newer referenceTime) / cancel (termination; final) are delivered,
     a repetition (same referenceTime) or an older version is not; a termination for
     an actionID never seen (or already forgotten) is dropped ('unknown_event') and not
     stored, so an unsecured station cannot pre-cancel an event that has not begun.
State is bounded: an event is forgotten once expired (any copy of it then fails step 4),
and the table holds at most max_events (oldest first out).
"""

from collections import OrderedDict
from dataclasses import dataclass

from v2x_denm import codec, link
from v2x_protocol.receiver import CANCEL, NEW, OUTDATED, REPEAT, UPDATE, classify

__all__ = ['NEW', 'UPDATE', 'CANCEL', 'REPEAT', 'OUTDATED', 'DenmDelivered', 'DenmRepeated',
           'DenmRejected', 'OwnDenmSkipped', 'DenmReceiver']


@dataclass(frozen=True)
class DenmDelivered:
    """A DENM to hand on as an Alert: change is 'new', 'update' or 'cancel'."""

    denm: codec.DecodedDenm
    change: str


@dataclass(frozen=True)
class DenmRepeated:
    """A DENM version we already delivered (repetition) or an older one: not delivered."""

    denm: codec.DecodedDenm
    change: str  # 'repeat' or 'outdated'


@dataclass(frozen=True)
class DenmRejected:
    """A dropped packet; reason names why (malformed, not_denm, expired, future_dated...)."""

    reason: str
    detail: str


@dataclass(frozen=True)
class OwnDenmSkipped:
    """A DENM of our own station looped back: neither delivered nor a drop."""


class DenmReceiver:
    """BTP-B packets (UDP form, or a GN packet's payload) -> events. One caller at a time."""

    def __init__(self, own_station_id: int | None, max_clock_skew_s: float = 30.0,
                 max_events: int = 16384):
        self.own_station_id = own_station_id
        self.skew_ns = int(max_clock_skew_s * 1e9)
        self.max_events = max_events
        # (source_id, sequence) -> (stamp_ns, cancelled, expires_ns)
        self._events: OrderedDict[tuple[str, int], tuple[int, bool, int]] = OrderedDict()
        self._next_prune_ns = 0

    @property
    def active_events(self) -> int:
        """Events held (not yet pruned as expired)."""
        return len(self._events)

    def receive_btp(self, data: bytes, now_ns: int):
        """A BTP-B packet at receive time now_ns (Unix ns) -> one event dataclass."""
        try:
            payload = link.parse_btp_b(data)
        except link.MalformedFrame as exc:
            return DenmRejected(exc.reason, str(exc))
        return self.receive_denm(payload, now_ns)

    def receive_gn(self, packet: bytes, now_ns: int):
        """A GN packet (what follows the Ethernet header) -> one event dataclass."""
        try:
            gn = link.parse_gn(packet)
        except link.MalformedFrame as exc:
            return DenmRejected(exc.reason, str(exc))
        return self.receive_btp(gn.payload, now_ns)

    def receive_denm(self, data: bytes, now_ns: int):
        """UPER DENM bytes -> one event dataclass."""
        try:
            denm = codec.decode_alert(data)
        except codec.DenmError as exc:
            return DenmRejected(exc.reason, str(exc))
        if self.own_station_id is not None and denm.station_id == self.own_station_id:
            return OwnDenmSkipped()
        self._prune(now_ns)
        a = denm.alert
        ahead_ns = max(a.stamp_ns, a.detection_time_ns) - now_ns
        if ahead_ns > self.skew_ns:
            return DenmRejected('future_dated', f'{a.source_id}#{a.sequence} reference or '
                                f'detection time {ahead_ns / 1e9:.3f} s in the future')
        expires_ns = a.expires_ns
        if a.validity_s <= 0 or expires_ns < now_ns:
            return DenmRejected('expired', f'{a.source_id}#{a.sequence} expired '
                                f'{(now_ns - expires_ns) / 1e9:.3f} s ago')
        key = a.key
        prev = self._events.get(key)
        if prev is None and a.cancelled:
            return DenmRejected('unknown_event', f'{a.source_id}#{a.sequence} terminates '
                                'an event never heard: ignored, not stored')
        change = classify(None if prev is None else prev[:2], a)
        if change in (REPEAT, OUTDATED):
            return DenmRepeated(denm, change)
        self._events[key] = (a.stamp_ns, a.cancelled, expires_ns)
        self._events.move_to_end(key)
        if len(self._events) > self.max_events:
            self._events.popitem(last=False)
        return DenmDelivered(denm, change)

    def _prune(self, now_ns: int) -> None:
        if now_ns < self._next_prune_ns:
            return
        self._next_prune_ns = now_ns + 1_000_000_000
        for key in [k for k, e in self._events.items() if e[2] < now_ns]:
            del self._events[key]
