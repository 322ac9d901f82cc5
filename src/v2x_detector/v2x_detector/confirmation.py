"""Operator confirmation: hold low-confidence events for a person (pure: no rclpy, no I/O).

Off unless a kind's threshold is above 0. A NEW event whose confidence is below its kind's
threshold is held instead of published; then exactly one of these ends the hold:

    operator confirms                 -> CONFIRMED: its latest version goes out now (as new)
    operator dismisses                -> DISMISSED: dropped; the shell keeps the frame as a
                                         labelled negative; later versions are dropped too
    an update reaches the threshold   -> CONFIDENT: its latest version goes out now
    the incident is cancelled         -> WITHDRAWN: nothing goes out (the hazard ended)
    timeout_s passes (``tick``)       -> SENT_AT_TIMEOUT (timeout_action broadcast, the
                                         default: no hazard waits on a person who is away)
                                         or DROPPED_AT_TIMEOUT (timeout_action drop)

Updates of a held incident replace the version it would send; updates and the
cancellation of an incident that went out pass through (the shell's sequence follows it);
those of a dropped incident are dropped. Every input returns the actions it caused:
``Publish(event)`` (the shell publishes it as any other event), ``Held(hold)`` (a new
hold: the shell takes the snapshot and announces it) and ``Resolved(hold, outcome)``
(announce the end of a hold; a ``Publish`` follows it when the event goes out).

The clock comes in as ``now`` on every call; holds live in memory only (a restart
forgets them: docs/detector.md).
"""

from dataclasses import dataclass, replace
from typing import Iterable, Mapping

from v2x_common.mappings import kind_to_str
from v2x_detector.rules import CANCEL, NEW, HazardEvent

BROADCAST, DROP = 'broadcast', 'drop'
TIMEOUT_ACTIONS = (BROADCAST, DROP)

# outcomes (HeldEvent.STATE_* on the wire)
HELD = 'held'
CONFIRMED = 'confirmed'
DISMISSED = 'dismissed'
SENT_AT_TIMEOUT = 'sent_at_timeout'
DROPPED_AT_TIMEOUT = 'dropped_at_timeout'
CONFIDENT = 'confident'
WITHDRAWN = 'withdrawn'
#: outcomes after which the event went out
SENT = (CONFIRMED, SENT_AT_TIMEOUT, CONFIDENT)
#: decisions remembered for the answer to a late confirm/dismiss
MAX_DECIDED = 256


class UnknownHold(LookupError):
    """A confirm/dismiss naming no held event (the caller's mistake, or decided already)."""


@dataclass(frozen=True)
class ConfirmSettings:
    """Per-kind thresholds (kind constant -> 0..1; 0 or absent = never held), timeout."""

    thresholds: Mapping[int, float]
    timeout_s: float = 120.0
    timeout_action: str = BROADCAST

    def problems(self) -> list[tuple[str, str]]:
        """(what, reason) for every value that cannot work; empty when all are fine."""
        out = []
        for kind, value in sorted(self.thresholds.items()):
            if not 0.0 <= value <= 1.0:
                out.append((kind_to_str(kind), f'{value}: a confidence threshold in 0..1'))
        if not self.timeout_s > 0:
            out.append(('timeout_s', f'{self.timeout_s}: must be > 0'))
        if self.timeout_action not in TIMEOUT_ACTIONS:
            out.append(('timeout_action', f'{self.timeout_action!r}: broadcast or drop'))
        return out

    @property
    def enabled(self) -> bool:
        return any(v > 0 for v in self.thresholds.values())

    def threshold(self, kind: int) -> float:
        return float(self.thresholds.get(kind, 0.0))


@dataclass(frozen=True)
class Hold:
    """An event waiting for an operator: the version it would send, since when, until."""

    hold_id: str
    first: HazardEvent        # the version that was held (its frame is the snapshot)
    latest: HazardEvent       # the newest version (what goes out when it does)
    threshold: float
    held_at: float
    deadline: float


@dataclass(frozen=True)
class Publish:
    """Publish this event as the detector publishes any event."""

    event: HazardEvent


@dataclass(frozen=True)
class Held:
    """A new hold: snapshot it and show it to the operators."""

    hold: Hold


@dataclass(frozen=True)
class Resolved:
    """A hold ended with this outcome (by: who decided, or why)."""

    hold: Hold
    outcome: str
    by: str = ''


Action = Publish | Held | Resolved


class ConfirmationGate:
    """Events in, actions out; confirm/dismiss/tick from the operator and the clock."""

    def __init__(self, settings: ConfirmSettings, id_prefix: str = ''):
        self.settings = settings
        self._prefix = id_prefix
        self._held: dict[int, Hold] = {}           # incident -> hold
        self._dropped: set[int] = set()            # incidents whose versions are dropped
        self._decided: dict[str, str] = {}         # hold_id -> outcome (the last MAX_DECIDED)

    @property
    def held(self) -> list[Hold]:
        """The holds waiting now, oldest first."""
        return sorted(self._held.values(), key=lambda h: h.held_at)

    def offer(self, event: HazardEvent, now: float) -> list[Action]:
        """One event from the rules -> what to do with it."""
        hold = self._held.get(event.incident)
        if hold is not None:
            if event.phase == CANCEL:
                return [self._end(hold, WITHDRAWN, 'the incident ended before a decision')]
            hold = self._held[event.incident] = replace(hold, latest=event)
            if event.confidence >= hold.threshold:
                return self._send(hold, CONFIDENT, f'confidence {event.confidence:.2f}')
            return []
        if event.incident in self._dropped:
            if event.phase == CANCEL:
                self._dropped.discard(event.incident)
            return []
        threshold = self.settings.threshold(event.kind)
        if event.phase == NEW and event.confidence < threshold:
            hold = Hold(f'{self._prefix}{event.incident}', event, event, threshold, now,
                        now + self.settings.timeout_s)
            self._held[event.incident] = hold
            return [Held(hold)]
        return [Publish(event)]

    def confirm(self, hold_id: str, now: float, by: str = '') -> list[Action]:
        """An operator confirms: the event goes out now. Raises UnknownHold."""
        return self._send(self._find(hold_id), CONFIRMED, by)

    def dismiss(self, hold_id: str, now: float, by: str = '') -> list[Action]:
        """An operator dismisses: dropped with every later version. Raises UnknownHold."""
        hold = self._find(hold_id)
        self._dropped.add(hold.first.incident)
        return [self._end(hold, DISMISSED, by)]

    def tick(self, now: float) -> list[Action]:
        """The timeout decides for every hold whose deadline has come."""
        out: list[Action] = []
        for hold in self.held:
            if now < hold.deadline:
                continue
            if self.settings.timeout_action == BROADCAST:
                out += self._send(hold, SENT_AT_TIMEOUT, 'no decision in time')
            else:
                self._dropped.add(hold.first.incident)
                out.append(self._end(hold, DROPPED_AT_TIMEOUT, 'no decision in time'))
        return out

    def outcome(self, hold_id: str) -> str | None:
        """What became of a hold (HELD while it waits; None when unknown or forgotten)."""
        if any(h.hold_id == hold_id for h in self._held.values()):
            return HELD
        return self._decided.get(hold_id)

    def _find(self, hold_id: str) -> Hold:
        for hold in self._held.values():
            if hold.hold_id == hold_id:
                return hold
        done = self._decided.get(hold_id)
        raise UnknownHold(f'no held event {hold_id!r}' +
                          (f' (already decided: {done})' if done else ''))

    def _send(self, hold: Hold, outcome: str, by: str) -> list[Action]:
        return [self._end(hold, outcome, by), Publish(replace(hold.latest, phase=NEW))]

    def _end(self, hold: Hold, outcome: str, by: str) -> Resolved:
        del self._held[hold.first.incident]
        self._decided[hold.hold_id] = outcome
        while len(self._decided) > MAX_DECIDED:
            del self._decided[next(iter(self._decided))]
        return Resolved(hold, outcome, by)


def to_prune(files: Iterable[tuple[str, int]], max_count: int,
             max_bytes: int) -> list[str]:
    """Retention of the negatives: files as (name, bytes), oldest first -> the names to
    delete (the oldest) so that at most max_count remain holding at most max_bytes
    (0 = no limit of that sort). The newest is always kept, however large."""
    files = list(files)
    count = len(files)
    total = sum(size for _, size in files)
    out = []
    for name, size in files[:-1]:
        if (max_count and count > max_count) or (max_bytes and total > max_bytes):
            out.append(name)
            count -= 1
            total -= size
        else:
            break
    return out
