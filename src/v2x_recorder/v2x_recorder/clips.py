"""Evidence clips: requests, the concat plan with inpoint/outpoint, sidecar (pure Python).

A clip covers [T0 - pre, T0 + post]. It is cut once the footage of T0 + post is recorded
and closed (the recorder began a segment at or after it), or at a deadline (the recorder
is down or behind: what exists is cut). The plan lists the covering segments for ffmpeg's
concat demuxer, trimming the first with ``inpoint`` and the last with ``outpoint``; with
stream copy the cut lands on the keyframe before the inpoint, so a clip may start up to
one keyframe interval early. Every stretch of the window without footage (head, middle,
tail) becomes a gap in the sidecar; the concat joins the footage either side of a gap, so
the clip is shorter by the gaps, never by more.
"""

import bisect
from dataclasses import asdict, dataclass, field, replace
import math
import re
from typing import Sequence

from v2x_common.clip_archive import ARCHIVE_PREFIX
from v2x_common.timeutil import iso
from v2x_recorder.segments import (
    EDGE_TOLERANCE_S,
    GAP_TOLERANCE_S,
    Segment,
    covering,
    find_gaps,
)

DEFAULT_PRE_S = 300.0
DEFAULT_POST_S = 300.0
#: Longest window accepted (a day each side); a larger one is a caller's mistake.
MAX_WINDOW_S = 86400.0
#: A T0 further ahead of the request than this is a wrong clock, not an event.
MAX_FUTURE_S = 3600.0
#: Longest wait after T0 + post for its footage; then what exists is cut, the rest are gaps.
DEFAULT_DEADLINE_S = 60.0
#: A cut clip shorter than its plan by more than this lists the shortfall as a gap.
SHORTFALL_TOLERANCE_S = 0.5

SIDECAR_VERSION = 2


class BadClipRequest(ValueError):
    """A clip request that cannot be served (the caller's mistake)."""


@dataclass(frozen=True)
class ClipRequest:
    """Cut [t0 - pre_s, t0 + post_s] into accident_<t0>_<clip_id>.mp4."""

    clip_id: str
    t0: float
    pre_s: float = DEFAULT_PRE_S
    post_s: float = DEFAULT_POST_S
    alert: dict | None = None      # the alert behind it, as plain values (sidecar)
    requested_at: float = 0.0
    origin: str = 'alert'          # 'alert' | 'service' | 'cli'

    @property
    def lo(self) -> float:
        return self.t0 - self.pre_s

    @property
    def hi(self) -> float:
        return self.t0 + self.post_s

    @property
    def stem(self) -> str:
        return clip_stem(self.t0, self.clip_id)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> 'ClipRequest':
        """Inverse of to_json; raises BadClipRequest on a malformed record."""
        if not isinstance(data, dict):
            raise BadClipRequest(f'not a clip request record: {data!r}')
        try:
            return make_request(
                str(data['clip_id']), float(data['t0']), float(data['pre_s']),
                float(data['post_s']), alert=data.get('alert'),
                requested_at=float(data.get('requested_at', 0.0)),
                origin=str(data.get('origin', 'alert')))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadClipRequest(f'malformed clip request record: {exc}') from None


def make_request(clip_id: str, t0: float, pre_s: float = 0.0, post_s: float = 0.0,
                 default_pre_s: float = DEFAULT_PRE_S, default_post_s: float = DEFAULT_POST_S,
                 **extra) -> ClipRequest:
    """A validated ClipRequest; pre/post of 0 take the defaults. Raises BadClipRequest.

    With requested_at (in extra), a t0 more than MAX_FUTURE_S after it is refused.
    """
    t0, pre_s, post_s = float(t0), float(pre_s), float(post_s)
    if not math.isfinite(t0) or t0 <= 0:
        raise BadClipRequest(f't0 must be a positive epoch time, got {t0!r}')
    pre_s = default_pre_s if pre_s == 0 else pre_s
    post_s = default_post_s if post_s == 0 else post_s
    for name, value in (('pre_s', pre_s), ('post_s', post_s)):
        if not math.isfinite(value) or value < 0 or value > MAX_WINDOW_S:
            raise BadClipRequest(f'{name} must be within 0..{MAX_WINDOW_S:g} s, got {value!r}')
    if pre_s + post_s <= 0:
        raise BadClipRequest('the window [t0 - pre_s, t0 + post_s] is empty')
    requested_at = float(extra.get('requested_at') or 0.0)
    if requested_at and t0 > requested_at + MAX_FUTURE_S:
        raise BadClipRequest(f't0 is {t0 - requested_at:.0f} s in the future (clock wrong?)')
    if not clip_id:
        clip_id = f'manual-{int(t0)}'
    return ClipRequest(clip_id=clip_id, t0=t0, pre_s=pre_s, post_s=post_s, **extra)


_UNSAFE = re.compile(r'[^A-Za-z0-9._-]+')


def safe_clip_id(clip_id: str) -> str:
    """clip_id reduced to file-name-safe characters (at most 80)."""
    return (_UNSAFE.sub('_', clip_id).strip('._') or 'clip')[:80]


def clip_stem(t0: float, clip_id: str) -> str:
    """accident_<whole-second T0>_<safe clip id>, the name without extension."""
    return f'{ARCHIVE_PREFIX}{int(t0)}_{safe_clip_id(clip_id)}'


def is_due(request: ClipRequest, now: float, settle_s: float = 1.0,
           next_start: float | None = None,
           deadline_s: float = DEFAULT_DEADLINE_S) -> bool:
    """True once the footage of the window's end is recorded and closed, or at the deadline.

    Recorded: the first segment that started at or after T0 + post (next_start, from its
    name, which is never later than its real start; see first_start_after) started settle_s
    ago, so the recorder closed the segment that holds T0 + post. Deadline: deadline_s after
    T0 + post the recorder is down or behind, and what exists is cut, the rest listed as
    gaps.
    """
    if now >= due_at(request, deadline_s):
        return True
    return next_start is not None and next_start >= request.hi \
        and now >= next_start + settle_s


def first_start_after(starts: Sequence[float], t: float) -> float | None:
    """The first of the sorted segment starts at or after t (None when none)."""
    i = bisect.bisect_left(starts, t)
    return starts[i] if i < len(starts) else None


def due_at(request: ClipRequest, deadline_s: float = DEFAULT_DEADLINE_S) -> float:
    """The wall-clock time by which a clip is cut at the latest (its deadline)."""
    return request.hi + deadline_s


@dataclass(frozen=True)
class Piece:
    """One concat entry: a segment file and how much of it to keep (seconds in the file)."""

    path: str
    start: float
    duration: float
    inpoint: float | None = None
    outpoint: float | None = None

    @property
    def kept_s(self) -> float:
        end = self.duration if self.outpoint is None else self.outpoint
        return max(0.0, end - (self.inpoint or 0.0))


@dataclass(frozen=True)
class ClipPlan:
    """What to concatenate for a request, and which stretches are missing."""

    request: ClipRequest
    pieces: tuple[Piece, ...]
    gaps: tuple[tuple[float, float], ...]

    @property
    def expected_duration_s(self) -> float:
        return sum(p.kept_s for p in self.pieces)


def plan_clip(request: ClipRequest, segments: Sequence[Segment],
              tolerance: float = GAP_TOLERANCE_S,
              edge_tolerance: float = EDGE_TOLERANCE_S) -> ClipPlan:
    """The concat plan of request from segments whose durations are known."""
    lo, hi = request.lo, request.hi
    used = covering(segments, lo, hi)
    pieces = []
    for seg in used:
        inpoint = lo - seg.start if lo > seg.start else None
        outpoint = hi - seg.start if hi < seg.end else None
        pieces.append(Piece(seg.path, seg.start, float(seg.duration), inpoint, outpoint))
    gaps = find_gaps(segments, lo, hi, tolerance, edge_tolerance)
    return ClipPlan(request, tuple(pieces), tuple(gaps))


def with_shortfall(plan: ClipPlan, duration_s: float,
                   tolerance: float = SHORTFALL_TOLERANCE_S) -> ClipPlan:
    """plan with the footage the cut clip lacks against it listed as a gap at the tail.

    Stream copy only ever adds footage (the first keyframe may come early), so a clip
    shorter than its plan lost the end of its footage (a segment still being flushed).
    """
    short = plan.expected_duration_s - duration_s
    if short <= tolerance:
        return plan
    hi = plan.request.hi
    return replace(plan, gaps=(*plan.gaps, (hi - short, hi)))


def _quote(path: str) -> str:
    # ffconcat quoting: inside single quotes, a quote is written '\''
    return "'" + path.replace("'", "'\\''") + "'"


def concat_list(pieces: Sequence[Piece], read_as: dict[str, str] | None = None) -> str:
    """The ffconcat script of the pieces, with inpoint/outpoint where a piece is trimmed.

    read_as maps a piece's path to the name ffmpeg reads it by (an open descriptor).
    """
    read_as = read_as or {}
    lines = ['ffconcat version 1.0']
    for p in pieces:
        lines.append(f'file {_quote(read_as.get(p.path, p.path))}')
        if p.inpoint is not None:
            lines.append(f'inpoint {p.inpoint:.3f}')
        if p.outpoint is not None:
            lines.append(f'outpoint {p.outpoint:.3f}')
    return '\n'.join(lines) + '\n'


def gap_strings(gaps: Sequence[tuple[float, float]]) -> list[str]:
    """Gaps as the Clip message carries them: 'start..end' in ISO time."""
    return [f'{iso(a)}..{iso(b)}' for a, b in gaps]


@dataclass(frozen=True)
class ClipResult:
    """The outcome of one clip, as the sidecar and the Clip message both tell it."""

    clip_id: str
    t0: float
    path: str                 # '' when no video file was written
    sha256: str
    duration_s: float
    gaps: tuple[str, ...]
    error: str                # '' on success
    sidecar_path: str = ''
    sidecar: dict = field(default_factory=dict, compare=False)


def request_event(request: ClipRequest) -> dict:
    """The identity of the event behind a clip: source_id, origin, sequence, kind, T0.

    Empty source_id / origin / sequence / kind for a clip asked by hand (no alert).
    """
    alert = request.alert or {}
    return {'source_id': str(alert.get('source_id', '')),
            'origin': str(alert.get('origin', '')),
            'sequence': int(alert.get('sequence', 0) or 0),
            'kind': str(alert.get('kind', '')),
            't0': request.t0}


def make_sidecar(plan: ClipPlan, path: str, sha256: str, duration_s: float, error: str,
                 created_at: float, station: str = '', key_id: str = '') -> dict:
    """The .json sidecar of a clip: the alert, T0, window, segments used, gaps, checksum,
    the event's identity and the station (key_id: the evidence key signing it, or '')."""
    req = plan.request
    return {
        'version': SIDECAR_VERSION,
        'station': station,
        'event': request_event(req),
        'key_id': key_id,
        'clip_id': req.clip_id,
        't0': req.t0,
        't0_iso': iso(req.t0),
        'pre_s': req.pre_s,
        'post_s': req.post_s,
        'window': {'start': req.lo, 'end': req.hi,
                   'start_iso': iso(req.lo), 'end_iso': iso(req.hi)},
        'origin': req.origin,
        'alert': req.alert,
        'path': path,
        'sha256': sha256,
        'duration_s': round(duration_s, 3),
        'expected_duration_s': round(plan.expected_duration_s, 3),
        'segments': [
            {'file': p.path, 'start': p.start, 'duration_s': round(p.duration, 3),
             'inpoint_s': p.inpoint, 'outpoint_s': p.outpoint}
            for p in plan.pieces],
        'gaps': gap_strings(plan.gaps),
        'gaps_s': [[a, b] for a, b in plan.gaps],
        'error': error,
        'created_at': created_at,
        'created_at_iso': iso(created_at),
    }


def result_from_sidecar(sidecar: dict, sidecar_path: str = '') -> ClipResult:
    """The ClipResult a sidecar records (what the Clip message must say)."""
    return ClipResult(
        clip_id=sidecar['clip_id'], t0=float(sidecar['t0']), path=sidecar['path'],
        sha256=sidecar['sha256'], duration_s=float(sidecar['duration_s']),
        gaps=tuple(sidecar['gaps']), error=sidecar['error'], sidecar_path=sidecar_path,
        sidecar=sidecar)
