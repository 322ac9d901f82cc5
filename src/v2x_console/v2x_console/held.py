"""Held events: what hazard_detector holds for an operator, as the page shows it (pure).

Each HeldEvent message (v2x/held_events) carries the absolute state of one hold; the
newest per hold id wins, except that a held state never replaces a decision (a
transient-local replay may bring the held version after the decided one). The snapshot
JPEG is kept while the event waits; a decided one keeps its text only, and the newest
MAX_DECIDED decided ones are shown. Every update returns the Event the live stream pushes.
"""

from dataclasses import dataclass, replace

from v2x_common.mappings import kind_to_str, severity_to_str
from v2x_console.core import Event, seconds
from v2x_protocol.wire import AlertData

#: HeldEvent.STATE_* -> the page's words
STATES = {0: 'held', 1: 'confirmed', 2: 'dismissed', 3: 'sent_at_timeout',
          4: 'dropped_at_timeout', 5: 'confident', 6: 'withdrawn'}
HELD = 'held'
MAX_DECIDED = 20
MAX_HELD = 200   # waiting at once (the detector's timeout ends each): beyond, oldest dropped


@dataclass(frozen=True)
class HeldInput:
    """One HeldEvent message."""

    hold_id: str
    state: int
    alert: AlertData
    threshold: float
    deadline: float
    boxes: tuple[float, ...]
    width: int
    height: int
    jpeg: bytes
    note: str

    @property
    def waiting(self) -> bool:
        return STATES.get(self.state) == HELD


class HeldList:
    """The held events of this station's detector, and the last decisions."""

    def __init__(self):
        self._items: dict[str, tuple[HeldInput, float]] = {}  # id -> (input, updated_at)

    def update(self, h: HeldInput, now: float) -> list[Event]:
        """A HeldEvent message arrived -> the event for the page (none when ignored)."""
        old = self._items.get(h.hold_id)
        if old is not None and not old[0].waiting and h.waiting:
            return []
        if not h.waiting:
            h = replace(h, jpeg=b'')
        self._items.pop(h.hold_id, None)
        self._items[h.hold_id] = (h, now)
        self._prune()
        return [Event('held', self._json(h, now))]

    def _prune(self) -> None:
        decided = [k for k, (h, _) in self._items.items() if not h.waiting]
        for key in decided[:-MAX_DECIDED]:
            del self._items[key]
        waiting = [k for k, (h, _) in self._items.items() if h.waiting]
        for key in waiting[:-MAX_HELD]:
            del self._items[key]

    def jpeg(self, hold_id: str) -> bytes | None:
        """The snapshot of a waiting event, or None."""
        item = self._items.get(hold_id)
        return item[0].jpeg or None if item is not None else None

    def json(self) -> list[dict]:
        """Waiting events (oldest first, the one that decides soonest on top), then the
        decided ones, newest first."""
        items = list(self._items.values())
        waiting = sorted((i for i in items if i[0].waiting), key=lambda i: i[0].deadline)
        decided = sorted((i for i in items if not i[0].waiting), key=lambda i: -i[1])
        return [self._json(h, at) for h, at in waiting + decided]

    @staticmethod
    def _json(h: HeldInput, at: float) -> dict:
        a = h.alert
        return {
            'id': h.hold_id, 'state': STATES.get(h.state, 'unknown'), 'waiting': h.waiting,
            'kind': kind_to_str(a.kind), 'severity': severity_to_str(a.severity),
            'confidence': round(a.confidence, 3), 'threshold': round(h.threshold, 3),
            'deadline': h.deadline, 'detection_time': seconds(a.detection_time_ns),
            'source_id': a.source_id, 'road': a.road, 'boxes': list(h.boxes),
            'width': h.width, 'height': h.height, 'snapshot': bool(h.jpeg),
            'note': h.note, 'updated_at': at}
