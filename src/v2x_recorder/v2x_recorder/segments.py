"""The ring of recorded segments: names, coverage, gaps and what to delete (pure Python).

A segment is ``seg_<unix epoch>.mp4``; the epoch is the wall-clock second at which
ffmpeg opened it (the segment muxer's strftime ``%s``), so names sort by time and carry
one second of uncertainty. Durations come from the files (see mp4.py) and are passed in,
and so does each segment's wall-clock anchor (its producer reference times): a segment
with one starts there (``anchored``), exact to a few milliseconds, and the holes between
anchored segments are judged to ANCHORED_GAP_TOLERANCE_S instead of a second.
"""

from dataclasses import dataclass, replace
import os
import re
from typing import Iterable, Sequence

SEGMENT_RE = re.compile(r'^seg_(\d{1,12})(?:\.(\d{1,9}))?\.mp4$')

#: A hole between two segments shorter than this is naming jitter, not missing footage:
#: a name holds the whole second its segment began, so the hole between one segment's end
#: (name + duration) and the next one's name is always less than a second.
GAP_TOLERANCE_S = 1.0

#: Missing footage at the head or tail of a window longer than this is a gap (a few frames).
EDGE_TOLERANCE_S = 0.25

#: A hole between two anchored segments longer than this is missing footage (the anchors
#: agree to a few milliseconds; this leaves room for a late write under load).
ANCHORED_GAP_TOLERANCE_S = 0.25

#: An anchor further than this from the segment's name is a clock that stepped: ignored.
ANCHOR_MAX_OFFSET_S = 2.0

#: The recorder counts ffmpeg as stalled after this many segment lengths without a new one.
STALL_SEGMENTS = 3.0


@dataclass(frozen=True)
class Segment:
    """One recorded file: where it is, when it started, its size and (once read) duration."""

    path: str
    start: float
    size: int = 0
    duration: float | None = None
    anchored: bool = False  # start is the wall-clock anchor read from the file

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def end(self) -> float:
        """Start plus duration (the start itself while the duration is unknown)."""
        return self.start + (self.duration or 0.0)


def parse_segment_name(name: str) -> float | None:
    """'seg_1700000000.mp4' -> 1700000000.0; anything else -> None."""
    match = SEGMENT_RE.match(name)
    if not match:
        return None
    whole, frac = match.groups()
    return float(f'{whole}.{frac}') if frac else float(whole)


def segment_name(start: float) -> str:
    """The file name of a segment that starts at the whole second start."""
    return f'seg_{int(start)}.mp4'


def scan(directory: str) -> list[Segment]:
    """The segments in directory, oldest first (missing directory: none)."""
    found = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        start = parse_segment_name(entry.name)
        if start is None:
            continue
        try:
            size = entry.stat().st_size
        except FileNotFoundError:  # deleted while we looked
            continue
        found.append(Segment(entry.path, start, size))
    return sorted(found, key=lambda s: (s.start, s.name))


def candidates(segments: Sequence[Segment], lo: float, hi: float) -> list[Segment]:
    """The segments that may overlap [lo, hi], judged by names alone, and the first after.

    A segment can only overlap if it starts before hi and the next one starts after lo
    (segments do not overlap each other); the last one before lo is kept because its
    footage may run into the window, and the first one at or after hi because it tells
    whether the footage runs on past hi (see find_gaps). A name holds the second the file
    was opened, up to a second (and a delayed write) before its first frame: a segment
    runs on past the next one's name by as much, so those within ANCHOR_MAX_OFFSET_S of
    lo are kept too.
    """
    chosen = []
    for i, seg in enumerate(segments):
        if seg.start >= hi:
            chosen.append(seg)
            break
        nxt = segments[i + 1].start if i + 1 < len(segments) else None
        if nxt is not None and nxt + ANCHOR_MAX_OFFSET_S <= lo:
            continue
        chosen.append(seg)
    return chosen


def covering(segments: Iterable[Segment], lo: float, hi: float) -> list[Segment]:
    """The segments (durations known) with footage inside [lo, hi], oldest first."""
    return [s for s in segments
            if s.duration and s.duration > 0 and s.start < hi and s.end > lo]


def find_gaps(timed: Sequence[Segment], lo: float, hi: float,
              tolerance: float = GAP_TOLERANCE_S,
              edge_tolerance: float = EDGE_TOLERANCE_S) -> list[tuple[float, float]]:
    """The stretches of [lo, hi] without footage, from segments oldest first.

    Segments without a known duration hold no usable footage. A hole between two segments
    counts when longer than tolerance (naming jitter is shorter); the head and the tail of
    the window count when longer than edge_tolerance, except that a segment starting
    after hi within tolerance of the footage's end means the footage runs on (jitter).
    """
    holes = []
    cursor = None
    prev_anchored = False
    after = None  # the first segment starting at or after hi
    for seg in sorted(timed, key=lambda s: s.start):
        if seg.start >= hi:
            after = seg.start
            break
        if not seg.duration or seg.duration <= 0:
            continue
        if cursor is None:
            if seg.start - lo > edge_tolerance:
                holes.append((lo, seg.start))
        elif seg.start - cursor > (ANCHORED_GAP_TOLERANCE_S
                                   if seg.anchored and prev_anchored else tolerance):
            holes.append((cursor, seg.start))
        cursor = seg.end if cursor is None else max(cursor, seg.end)
        prev_anchored = seg.anchored
    if cursor is None:
        holes.append((lo, hi))
    elif hi - cursor > edge_tolerance and (after is None or after - cursor > tolerance):
        holes.append((cursor, hi))
    return [(max(a, lo), min(b, hi)) for a, b in holes if min(b, hi) > max(a, lo)]


def with_durations(segments: Iterable[Segment], read_duration) -> list[Segment]:
    """Copies of segments with duration = read_duration(path) (None when unreadable)."""
    return [replace(s, duration=read_duration(s.path)) for s in segments]


def with_timing(segments: Iterable[Segment], read_timing) -> list[Segment]:
    """Copies of segments with (duration, wall-clock start) = read_timing(path): a start
    within ANCHOR_MAX_OFFSET_S of the name's replaces it (anchored), sorted again.

    An anchor is never early, only late (by the delay of the write it was taken at), and
    a segment ends before the next one starts: so a segment started no later than the next
    one's start less its own duration. That bound, carried back from the newest segment,
    takes out a write delayed by load (which would otherwise open a false gap before the
    late segment), while a real hole (ffmpeg restarted) stays: the segment after it is
    later by the hole.
    """
    timed = []
    for seg in segments:
        duration, anchor = read_timing(seg.path)
        if anchor is not None and abs(anchor - seg.start) <= ANCHOR_MAX_OFFSET_S:
            timed.append(replace(seg, duration=duration, start=anchor, anchored=True))
        else:
            timed.append(replace(seg, duration=duration))
    timed.sort(key=lambda s: (s.start, s.name))
    following = None  # the (bounded) start of the next anchored segment
    for i in reversed(range(len(timed))):
        seg = timed[i]
        if not seg.anchored or not seg.duration:
            following = None
            continue
        bound = None if following is None else following - seg.duration
        if bound is not None and seg.start > bound >= seg.start - ANCHOR_MAX_OFFSET_S:
            seg = timed[i] = replace(seg, start=bound)
        following = seg.start
    return timed


@dataclass(frozen=True)
class RingPolicy:
    """How much the recorder keeps: footage within keep_s of now, at most max_bytes; to keep
    min_free_bytes free on the filesystem, footage older than recent_s goes too."""

    keep_s: float
    max_bytes: int  # 0: no byte cap
    recent_s: float = 0.0  # footage a new alert's clip needs (pre_window_s)


def plan_ring_deletions(segments: Sequence[Segment], now: float, policy: RingPolicy,
                        protected: Sequence[tuple[float, float]] = (),
                        reserve_bytes: int = 0, free_bytes: int | None = None,
                        min_free_bytes: int = 0,
                        floor_bytes: int = 0) -> list[tuple[Segment, str]]:
    """(segment, reason) to delete, oldest first; reason is 'age', 'bytes' or 'disk'.

    The newest segment (being written) is never deleted. By age: every segment that ended
    (the next one started) more than keep_s ago, unless it overlaps a protected window (a
    pending clip). By bytes: oldest first until the rest plus reserve_bytes (room for the
    segment being written to grow) fits max_bytes, protected or not, since the cap is
    never exceeded. By disk (the filesystem has free_bytes free): while less than
    min_free_bytes is free, unprotected segments that ended more than recent_s ago, oldest
    first; while less than floor_bytes (room to go on recording) is free, the oldest
    segments, unprotected first, then protected ones: recording goes on.
    """
    if len(segments) < 2:
        return []
    finished = list(segments[:-1])
    newest = segments[-1]
    ends = {seg.path: segments[i + 1].start for i, seg in enumerate(finished)}
    doomed: list[tuple[Segment, str]] = []
    kept = []
    for seg in finished:
        end = ends[seg.path]
        if end < now - policy.keep_s and not protected_overlap(seg, end, protected):
            doomed.append((seg, 'age'))
        else:
            kept.append(seg)
    if policy.max_bytes > 0:
        total = sum(s.size for s in kept) + newest.size + reserve_bytes
        for seg in list(kept):
            if total <= policy.max_bytes:
                break
            doomed.append((seg, 'bytes'))
            kept.remove(seg)
            total -= seg.size
    if free_bytes is not None:
        free = free_bytes + sum(seg.size for seg, _ in doomed)
        unprotected = [s for s in kept if not protected_overlap(s, ends[s.path], protected)]
        old = [s for s in unprotected if ends[s.path] < now - policy.recent_s]
        for target, order in ((min_free_bytes, old),
                              (floor_bytes, unprotected + [s for s in kept
                                                           if s not in unprotected])):
            for seg in order:
                if free >= target:
                    break
                if seg in kept:
                    doomed.append((seg, 'disk'))
                    kept.remove(seg)
                    free += seg.size
    return sorted(doomed, key=lambda d: d[0].start)


def protected_overlap(segment: Segment, end: float,
                      protected: Sequence[tuple[float, float]]) -> bool:
    """True when [segment.start, end] overlaps a protected window; end is the next one's
    name, which the footage may run past by up to ANCHOR_MAX_OFFSET_S (see candidates)."""
    return any(segment.start < p_hi and end + ANCHOR_MAX_OFFSET_S > p_lo
               for p_lo, p_hi in protected)
