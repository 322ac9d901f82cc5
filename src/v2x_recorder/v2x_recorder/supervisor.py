"""When to (re)start or kill the recording ffmpeg: the one state table (pure Python).

The node feeds each tick with a monotonic time, whether ffmpeg is alive and the name of
the newest segment; the supervisor answers START, KILL or nothing. ffmpeg that exits is
restarted after a backoff that doubles up to a ceiling and resets once recording has
produced two new segments; ffmpeg that makes no new segment within STALL_SEGMENTS
segment lengths is killed (then restarted the same way).
"""

from dataclasses import dataclass
import enum

from v2x_recorder.segments import STALL_SEGMENTS


class Action(enum.Enum):
    """What the node must do now."""

    NONE = 'none'
    START = 'start'
    KILL = 'kill'


class State(enum.Enum):
    """Where the recorder stands."""

    WAITING = 'waiting'    # ffmpeg not running; (re)start at restart_at
    RUNNING = 'running'


@dataclass
class SupervisorStats:
    """Counters for diagnostics."""

    starts: int = 0
    restarts: int = 0
    exits: int = 0
    stalls: int = 0
    last_reason: str = ''


class Supervisor:
    """The recorder's state machine: one method, on_tick, decides."""

    def __init__(self, segment_s: float, backoff_s: float = 1.0, backoff_max_s: float = 30.0):
        self.segment_s = segment_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.state = State.WAITING
        self.restart_at = 0.0          # start at the first tick
        self.next_backoff = backoff_s
        self.last_progress = 0.0
        self.newest: str | None = None
        self.new_segments = 0          # since the last start
        self.stats = SupervisorStats()

    @property
    def stall_after_s(self) -> float:
        return STALL_SEGMENTS * self.segment_s

    def on_tick(self, now: float, alive: bool, newest: str | None) -> Action:
        """Advance with the current observations; returns what to do."""
        if self.state is State.WAITING:
            if now < self.restart_at:
                return Action.NONE
            self.state = State.RUNNING
            self.last_progress = now
            self.new_segments = 0
            self.newest = newest
            if self.stats.starts:
                self.stats.restarts += 1
            self.stats.starts += 1
            return Action.START
        # RUNNING
        if newest is not None and newest != self.newest:
            self.newest = newest
            self.last_progress = now
            self.new_segments += 1
            if self.new_segments >= 2:
                self.next_backoff = self.backoff_s  # healthy again
        if not alive:
            self.stats.exits += 1
            self.stats.last_reason = 'ffmpeg exited'
            self._wait(now)
            return Action.NONE
        if now - self.last_progress > self.stall_after_s:
            self.stats.stalls += 1
            self.stats.last_reason = (
                f'no new segment for {now - self.last_progress:.1f} s (stalled)')
            self._wait(now)
            return Action.KILL
        return Action.NONE

    def _wait(self, now: float) -> None:
        self.state = State.WAITING
        self.restart_at = now + self.next_backoff
        self.next_backoff = min(self.backoff_max_s, self.next_backoff * 2)

    def seconds_since_progress(self, now: float) -> float:
        """How long since the last new segment (or the start)."""
        return now - self.last_progress
