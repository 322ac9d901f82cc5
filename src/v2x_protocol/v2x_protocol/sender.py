"""The sending side (sans-IO): identity assignment, datagram framing, the repeat outbox.

A Sender is one sender session: a random 64-bit session id drawn at start plus a counter
that increases with every datagram, so receivers catch a replayed datagram and a restarted
sender (new session id) is not locked out.
"""

from dataclasses import dataclass, replace
import math
import secrets

from v2x_protocol import ranges, wire
from v2x_protocol.wire import AlertData, HeartbeatData

__all__ = [
    'MAX_VALIDITY_S', 'InvalidTiming', 'UnknownEvent', 'OutOfRangeInput', 'check_validity',
    'check_input', 'Sender', 'fill_identity', 'Outbox',
]

#: the largest validity_s accepted (ranges.MAX_VALIDITY_S, DENM's one day)
MAX_VALIDITY_S = ranges.MAX_VALIDITY_S


class InvalidTiming(wire.InvalidMessage):
    """A validity or time the integer-ns arithmetic cannot take (inf, nan, out of range)."""


class UnknownEvent(wire.InvalidMessage):
    """An update or cancellation naming an event this station does not hold."""


class OutOfRangeInput(wire.InvalidMessage):
    """An alert field outside the range table (ranges.py); the message names the field."""


def check_validity(validity_s: float) -> None:
    """Raise InvalidTiming unless 0 <= validity_s <= MAX_VALIDITY_S (0 = the default)."""
    try:
        ranges.check_validity(validity_s, allow_zero=True)
    except ranges.FieldError as exc:
        raise InvalidTiming(str(exc)) from None


def check_input(alert: AlertData) -> None:
    """An alert taken in to be sent (zeros still to be filled): the range table's verdict,
    as OutOfRangeInput (or InvalidTiming for validity_s) naming the field."""
    try:
        ranges.check_alert_fields(alert, filled=False)
    except ranges.FieldError as exc:
        cls = InvalidTiming if exc.field == 'validity_s' else OutOfRangeInput
        raise cls(str(exc)) from None


class Sender:
    """Frames and signs datagrams for one session. signer None means auth 'none'.

    origin: the station instance (SequenceStore.origin) whose events these are; session:
    random per start. heartbeat_signer: the key for heartbeats when it is not signer (a
    vehicle's fleet heartbeat key); a key that may not sign alerts (HeartbeatKey) never
    signs one here (InvalidMessage), so a vehicle cannot put an alert on the air.
    """

    def __init__(self, signer=None, session: int | None = None, origin: int = 0,
                 heartbeat_signer=None):
        self.signer = signer
        self.heartbeat_signer = heartbeat_signer
        self.session = secrets.randbits(64) if session is None else session
        self.origin = origin
        self.counter = 0

    def datagram(self, payload: AlertData | HeartbeatData, now_ns: int) -> bytes:
        """The next datagram of this session (raises wire.InvalidMessage on bad input)."""
        signer = self.signer
        if isinstance(payload, HeartbeatData) and self.heartbeat_signer is not None:
            signer = self.heartbeat_signer
        elif signer is not None and not getattr(signer, 'signs_alerts', True):
            raise wire.InvalidMessage(f'{signer!r} is a heartbeat-only key: it signs no '
                                      'alert (an RSU signs alerts with its own key)')
        data = wire.encode(payload, signer=signer, session=self.session,
                           counter=self.counter + 1, send_time_ns=now_ns, origin=self.origin)
        self.counter += 1
        return data


def fill_identity(alert: AlertData, *, station_id: str, now_ns: int,
                  default_validity_s: float, next_sequence, previous=None) -> AlertData:
    """ARCHITECTURE.md's defaults: own source id, assigned sequence, times, clip id.

    next_sequence(source_id) -> int is called only when alert.sequence is 0. previous(key)
    -> AlertData | None gives the version being repeated, so an update or cancellation that
    leaves detection_time / validity_s at 0 keeps the event's own (not a fresh 600 s).
    A cancellation carries the event's own fields (kind, severity, place, ...) from
    previous; when previous is given and does not know the event, UnknownEvent is raised.
    Raises InvalidMessage for a cancellation without a sequence (it would name no event),
    and for any field the range table (ranges.py) refuses, naming it.
    """
    check_validity(default_validity_s)
    check_input(alert)
    source_id = alert.source_id or station_id
    if alert.cancelled and not alert.sequence:
        raise wire.InvalidMessage('a cancellation needs the sequence of the event it cancels')
    before = previous((source_id, alert.sequence)) if (previous and alert.sequence) else None
    if alert.cancelled and previous is not None and before is None:
        raise UnknownEvent(f'cannot cancel {source_id}#{alert.sequence}: no such live event '
                           'was sent by this station (never sent, or already expired)')
    if alert.cancelled and before is not None:
        alert = replace(before, cancelled=True, stamp_ns=alert.stamp_ns,
                        validity_s=alert.validity_s or before.validity_s,
                        detection_time_ns=alert.detection_time_ns or before.detection_time_ns)
    sequence = alert.sequence or next_sequence(source_id)
    detection_ns = alert.detection_time_ns or (before.detection_time_ns if before else now_ns)
    if alert.validity_s > 0:
        validity_s = alert.validity_s
    else:
        validity_s = before.validity_s if before else default_validity_s
    stamp_ns = alert.stamp_ns or now_ns
    clip_id = alert.clip_id
    if alert.clip_requested and not clip_id:
        clip_id = f'{source_id}-{sequence}'
    lat, lon = alert.latitude, alert.longitude
    if before is not None and math.isnan(lat) and math.isnan(lon):
        lat, lon = before.latitude, before.longitude  # a cancellation keeps its place
    return replace(alert, source_id=source_id, sequence=sequence, stamp_ns=stamp_ns,
                   detection_time_ns=detection_ns, validity_s=validity_s, clip_id=clip_id,
                   latitude=lat, longitude=lon)


@dataclass
class _Entry:
    alert: AlertData
    next_send_ns: int


class Outbox:
    """Alerts being repeated until they expire; the latest version per event wins."""

    def __init__(self, repeat_interval_s: float = 1.0):
        self.interval_ns = int(repeat_interval_s * 1e9)
        self._entries: dict[tuple[str, int], _Entry] = {}
        self._changed = False

    def __len__(self) -> int:
        return len(self._entries)

    def active(self) -> list[AlertData]:
        """Alerts currently repeated (cancellations included)."""
        return [e.alert for e in self._entries.values()]

    def get(self, key: tuple[str, int]) -> AlertData | None:
        """The version of event key being repeated, if any."""
        entry = self._entries.get(key)
        return None if entry is None else entry.alert

    def put(self, alert: AlertData, now_ns: int, due_now: bool = False) -> None:
        """Repeat alert every interval from now (sent now by the caller, or by the next
        due() when due_now); replaces an older version of the event."""
        first = now_ns if due_now else now_ns + self.interval_ns
        self._entries[alert.key] = _Entry(alert, first)
        self._changed = True

    def take_changed(self) -> bool:
        """True once after alerts were added, replaced or dropped (for persisting)."""
        changed, self._changed = self._changed, False
        return changed

    def due(self, now_ns: int) -> list[AlertData]:
        """Alerts whose repeat is due at now_ns; drops expired ones."""
        out = []
        for key, entry in list(self._entries.items()):
            if entry.alert.expires_ns <= now_ns:
                del self._entries[key]
                self._changed = True
            elif entry.next_send_ns <= now_ns:
                out.append(entry.alert)
                # keep the cadence; skip missed slots instead of bursting
                missed = (now_ns - entry.next_send_ns) // self.interval_ns + 1
                entry.next_send_ns += missed * self.interval_ns
        return out
