"""Hazard rules: tracks per frame in, hazard events out (pure: no rclpy, no model, no I/O).

Three evaluators turn each frame's observation into *signatures* (evidence of a hazard in
this frame); one state machine (``HazardRules._advance``) turns signatures into incidents:

    candidate --(seen for confirm_s)--> active: NEW
    active --(severity up, or box grew, at most every update_interval_s)--> UPDATE
    active --(no evidence for clear_s)--> CANCEL, then a cooldown over its box
    candidate --(evidence lost for more than gap_s)--> forgotten

so one incident gives one alert, then updates while it grows and one cancellation.

- collision: two vehicles whose boxes overlap or touch, both (nearly) stopped now, and one
  of them fast shortly before (a sharp drop of image-plane speed); speeds are measured in
  box diagonals per second so they do not depend on distance to the camera.
- fire: a flame-coloured region (``fire.py`` finds them) that stays in place and flickers.
- blockage: a vehicle or person standing still with its foot point inside a lane polygon
  for blockage_time_s.
"""

from collections import deque
from dataclasses import dataclass, field
import math
from typing import Iterable

from v2x_common.mappings import (
    KIND_BLOCKAGE,
    KIND_COLLISION,
    KIND_FIRE,
    SEVERITY_HIGH,
    SEVERITY_LOW,
    SEVERITY_MEDIUM,
    SUGGEST_SLOW_DOWN,
    SUGGEST_STOP,
)
from v2x_detector.detections import Box, Track, area, center, diag, gap, iou, union_box

NEW, UPDATE, CANCEL = 'new', 'update', 'cancel'

VEHICLES = ('car', 'bus', 'truck', 'motorcycle')


@dataclass(frozen=True)
class FireRegion:
    """A flame-coloured blob in one frame: its box and how many pixels it holds."""

    box: Box
    pixels: float
    score: float = 1.0


@dataclass(frozen=True)
class Observation:
    """What the rules see of one frame: its capture time, size, tracks and fire blobs."""

    t: float
    width: int
    height: int
    tracks: tuple[Track, ...] | None = ()  # None: the model did not look at this frame
    fire: tuple[FireRegion, ...] = ()


@dataclass(frozen=True)
class RuleConfig:
    """Thresholds of the hazard rules (documented in docs/detector.md)."""

    # shared lifecycle
    confirm_s: float = 0.5          # evidence must last this long before the first alert
    gap_s: float = 0.5              # a candidate survives evidence gaps this short
    clear_s: float = 5.0            # an active incident without evidence this long is cancelled
    cooldown_s: float = 30.0        # no new incident of the same kind over a cancelled one's box
    update_interval_s: float = 2.0  # at most one update per incident this often
    update_growth: float = 0.25     # an update when the box area grew by this fraction
    speed_span_s: float = 0.4       # speeds are measured over this span
    max_jump: float = 1.0           # a centre jump over this many diagonals: a new object
    # severity: base per kind, +1 for a large box, +1 for a long incident
    severity_large_area: float = 0.05   # box area / frame area
    severity_long_s: float = 60.0
    # collision
    collision_classes: tuple[str, ...] = VEHICLES
    collision_touch: float = 0.02       # gap / smaller box diagonal that counts as touching
    collision_min_speed: float = 1.0    # diagonals/s one of them had before the impact
    collision_stop_speed: float = 0.2   # diagonals/s both are below after it
    collision_drop_window_s: float = 0.5
    # fire
    fire_enabled: bool = True
    fire_frames: int = 10               # flicker is measured over this many frames
    fire_min_area: float = 0.001        # blob pixels / frame pixels
    fire_flicker: float = 0.08          # std/mean of the blob's pixel count
    fire_max_drift: float = 0.5         # diagonals the blob centre may wander over the window
    # blockage
    blockage_classes: tuple[str, ...] = VEHICLES + ('bicycle', 'person')
    blockage_time_s: float = 30.0
    blockage_speed: float = 0.1         # diagonals/s below which an object stands still
    lane_polygon: tuple[float, ...] = ()  # x1, y1, x2, y2, ... in 0..1 of the frame; empty = off

    def problems(self) -> list[tuple[str, str]]:
        """(field, reason) for every value that cannot work; empty when all are fine."""
        out = []
        for name in ('confirm_s', 'gap_s', 'clear_s', 'cooldown_s', 'update_interval_s',
                     'severity_long_s', 'blockage_time_s', 'collision_drop_window_s'):
            if not getattr(self, name) >= 0:
                out.append((name, 'must be >= 0'))
        for name in ('speed_span_s', 'max_jump', 'collision_min_speed', 'fire_flicker',
                     'fire_min_area', 'blockage_speed', 'collision_stop_speed'):
            if not getattr(self, name) > 0:
                out.append((name, 'must be > 0'))
        if self.collision_stop_speed >= self.collision_min_speed:
            out.append(('collision_stop_speed', 'must be below collision_min_speed'))
        if self.fire_frames < 3:
            out.append(('fire_frames', 'must be >= 3'))
        poly = self.lane_polygon
        if poly and (len(poly) % 2 or len(poly) < 6):
            out.append(('lane_polygon', 'needs x,y pairs of at least 3 points'))
        elif any(not (0.0 <= v <= 1.0) for v in poly):
            out.append(('lane_polygon', 'coordinates are fractions of the frame, 0..1'))
        return out


@dataclass(frozen=True)
class HazardEvent:
    """One version of an incident: new, update or cancel."""

    incident: int
    phase: str
    kind: int
    severity: int
    suggest: int
    confidence: float
    detection_time: float     # capture time of the frame where the hazard began
    stamp: float              # capture time of the frame that produced this version
    box: Box
    track_ids: tuple[int, ...]
    clip_requested: bool


@dataclass(frozen=True)
class _Signature:
    kind: int
    box: Box
    ids: frozenset[int]
    conf: float
    since: float
    onset: bool = True


@dataclass
class _Incident:
    number: int
    kind: int
    box: Box
    ids: frozenset[int]
    since: float
    first_seen: float
    last_seen: float
    conf: float
    active: bool = False
    severity: int = 0
    emitted_at: float = -math.inf
    emitted_area: float = 0.0


@dataclass
class _TrackHistory:
    samples: deque = field(default_factory=lambda: deque(maxlen=256))  # (t, cx, cy, diag)
    speeds: deque = field(default_factory=lambda: deque(maxlen=256))   # (t, speed)
    still_since: float | None = None
    last_t: float = -math.inf


def point_in_polygon(x: float, y: float, poly: tuple[float, ...]) -> bool:
    """Even-odd rule; poly is a flat x, y, x, y, ... sequence."""
    pts = list(zip(poly[0::2], poly[1::2], strict=False))
    inside = False
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=False):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


_BASE_SEVERITY = {KIND_COLLISION: SEVERITY_MEDIUM, KIND_FIRE: SEVERITY_MEDIUM,
                  KIND_BLOCKAGE: SEVERITY_LOW}


class HazardRules:
    """Feed one Observation per frame (in time order) to step(); it returns the events."""

    def __init__(self, config: RuleConfig | None = None):
        self.cfg = config or RuleConfig()
        self._tracks: dict[int, _TrackHistory] = {}
        self._fire_blobs: list[dict] = []
        self._incidents: list[_Incident] = []
        self._cooldowns: list[tuple[int, Box, float]] = []  # kind, box, until
        self._next_incident = 1
        self.last_t = -math.inf

    # ---------------------------------------------------------------- per-track motion
    def _observe_tracks(self, obs: Observation) -> dict[int, float | None]:
        speeds = {}
        span = self.cfg.speed_span_s
        for tr in obs.tracks:
            hist = self._tracks.setdefault(tr.track_id, _TrackHistory())
            cx, cy = center(tr.box)
            d = max(diag(tr.box), 1.0)
            if hist.samples:
                _, px, py, pd = hist.samples[-1]
                if math.hypot(cx - px, cy - py) > self.cfg.max_jump * max(d, pd):
                    hist.samples.clear()  # a scene cut or an id switch: not motion
                    hist.speeds.clear()
                    hist.still_since = None
            hist.samples.append((obs.t, cx, cy, d))
            hist.last_t = obs.t
            while hist.samples and obs.t - hist.samples[0][0] > max(3.0, 4 * span):
                hist.samples.popleft()
            speed = None
            ref = None
            for s in hist.samples:
                if obs.t - s[0] >= span:
                    ref = s
                else:
                    break
            if ref is not None:
                t0, x0, y0, d0 = ref
                speed = math.hypot(cx - x0, cy - y0) / (obs.t - t0) / ((d + d0) / 2)
                hist.speeds.append((obs.t, speed))
            speeds[tr.track_id] = speed
        for tid in [k for k, h in self._tracks.items() if obs.t - h.last_t > 5.0]:
            del self._tracks[tid]
        return speeds

    def _recent_max_speed(self, track_id: int, t: float, window: float) -> float:
        hist = self._tracks.get(track_id)
        if hist is None:
            return 0.0
        return max((v for ts, v in hist.speeds if t - ts <= window), default=0.0)

    # ---------------------------------------------------------------- evaluators
    def _collisions(self, obs: Observation, speeds) -> list[_Signature]:
        cfg = self.cfg
        cars = [tr for tr in obs.tracks if tr.name in cfg.collision_classes]
        out = []
        for i, a in enumerate(cars):
            for b in cars[i + 1:]:
                if gap(a.box, b.box) > cfg.collision_touch * min(diag(a.box), diag(b.box)):
                    continue
                va, vb = speeds.get(a.track_id), speeds.get(b.track_id)
                if va is None or vb is None or max(va, vb) > cfg.collision_stop_speed:
                    continue
                window = cfg.collision_drop_window_s
                before = max(self._recent_max_speed(a.track_id, obs.t, window),
                             self._recent_max_speed(b.track_id, obs.t, window))
                out.append(_Signature(KIND_COLLISION, union_box([a.box, b.box]),
                                      frozenset((a.track_id, b.track_id)),
                                      (a.conf + b.conf) / 2, obs.t,
                                      onset=before >= cfg.collision_min_speed))
        return out

    def _fires(self, obs: Observation) -> list[_Signature]:
        cfg = self.cfg
        if not cfg.fire_enabled:
            return []
        frame_px = max(1, obs.width * obs.height)
        blobs = self._fire_blobs
        for region in obs.fire:
            if region.pixels / frame_px < cfg.fire_min_area:
                continue
            best = max(blobs, key=lambda b: iou(b['box'], region.box), default=None)
            if best is None or iou(best['box'], region.box) < 0.2 or best['t'] == obs.t:
                best = {'since': obs.t, 'hist': deque(maxlen=cfg.fire_frames)}
                blobs.append(best)
            best['box'], best['t'], best['score'] = region.box, obs.t, region.score
            best['hist'].append((region.pixels, center(region.box), diag(region.box)))
        out = []
        keep = []
        for blob in blobs:
            if blob['t'] != obs.t:
                blob['hist'].append((0.0, None, None))  # a missed frame counts as flicker
            if obs.t - blob['t'] > cfg.gap_s:
                continue
            keep.append(blob)
            hist = [h for h in blob['hist'] if h[1] is not None]
            if len(blob['hist']) < cfg.fire_frames or len(hist) < cfg.fire_frames * 0.7:
                continue
            counts = [h[0] for h in blob['hist']]
            mean = sum(counts) / len(counts)
            flicker = (sum((c - mean) ** 2 for c in counts) / len(counts)) ** 0.5 / mean
            size = max(h[2] for h in hist)
            drift = max(math.hypot(h[1][0] - hist[0][1][0], h[1][1] - hist[0][1][1])
                        for h in hist) / size
            if flicker >= cfg.fire_flicker and drift <= cfg.fire_max_drift:
                conf = min(1.0, 0.5 + flicker) * blob['score']
                out.append(_Signature(KIND_FIRE, blob['box'], frozenset(), conf, blob['since']))
        self._fire_blobs = keep
        return out

    def _blockages(self, obs: Observation, speeds) -> list[_Signature]:
        cfg = self.cfg
        out = []
        for tr in obs.tracks:
            hist = self._tracks[tr.track_id]
            speed = speeds.get(tr.track_id)
            if speed is not None and speed > cfg.blockage_speed:
                hist.still_since = None
            elif hist.still_since is None:
                hist.still_since = hist.samples[0][0]
            if not cfg.lane_polygon or tr.name not in cfg.blockage_classes:
                continue
            foot = ((tr.box[0] + tr.box[2]) / 2 / obs.width, tr.box[3] / obs.height)
            if not point_in_polygon(foot[0], foot[1], cfg.lane_polygon):
                continue
            if hist.still_since is not None and obs.t - hist.still_since >= cfg.blockage_time_s:
                out.append(_Signature(KIND_BLOCKAGE, tr.box, frozenset((tr.track_id,)), tr.conf,
                                      hist.still_since))
        return out

    # ---------------------------------------------------------------- the state machine
    def step(self, obs: Observation) -> list[HazardEvent]:
        """Advance by one frame; frames must come in time order (older ones are ignored)."""
        if obs.t <= self.last_t or obs.width <= 0 or obs.height <= 0:
            return []
        self.last_t = obs.t
        if obs.tracks is None:  # a frame the model skipped: only the fire stage saw it
            return self._advance(obs, self._fires(obs))
        speeds = self._observe_tracks(obs)
        signatures = (self._collisions(obs, speeds) + self._fires(obs)
                      + self._blockages(obs, speeds))
        return self._advance(obs, signatures)

    def _match(self, sig: _Signature) -> _Incident | None:
        for inc in self._incidents:
            if inc.kind != sig.kind:
                continue
            if (sig.ids & inc.ids) or iou(sig.box, inc.box) >= 0.3:
                return inc
        return None

    def _cooling(self, sig: _Signature, t: float) -> bool:
        self._cooldowns = [c for c in self._cooldowns if c[2] > t]
        return any(kind == sig.kind and iou(box, sig.box) > 0.0
                   for kind, box, _ in self._cooldowns)

    def _advance(self, obs: Observation, signatures: Iterable[_Signature]) -> list[HazardEvent]:
        cfg, t = self.cfg, obs.t
        for sig in signatures:
            inc = self._match(sig)
            if inc is not None:
                inc.box, inc.ids, inc.last_seen = sig.box, inc.ids | sig.ids, t
                inc.conf = max(inc.conf, sig.conf)
            elif sig.onset and not self._cooling(sig, t):
                self._incidents.append(_Incident(self._next_incident, sig.kind, sig.box, sig.ids,
                                                 sig.since, t, t, sig.conf))
                self._next_incident += 1
        events, keep = [], []
        frame_area = float(obs.width * obs.height)
        for inc in self._incidents:
            unseen = t - inc.last_seen
            if not inc.active:
                if unseen > cfg.gap_s:
                    continue  # never confirmed: forgotten without a word
                if inc.last_seen - inc.first_seen >= cfg.confirm_s:
                    inc.active = True
                    inc.severity = self._severity(inc, t, frame_area)
                    events.append(self._event(inc, NEW, t))
                keep.append(inc)
                continue
            if unseen >= cfg.clear_s:
                events.append(self._event(inc, CANCEL, t))
                self._cooldowns.append((inc.kind, inc.box, t + cfg.cooldown_s))
                continue
            keep.append(inc)
            if unseen > 0 or t - inc.emitted_at < cfg.update_interval_s:
                continue
            severity = self._severity(inc, t, frame_area)
            grown = area(inc.box) > inc.emitted_area * (1 + cfg.update_growth)
            if severity != inc.severity or grown:
                inc.severity = max(severity, inc.severity)
                events.append(self._event(inc, UPDATE, t))
        self._incidents = keep
        return events

    def _severity(self, inc: _Incident, t: float, frame_area: float) -> int:
        level = _BASE_SEVERITY[inc.kind]
        level += area(inc.box) / frame_area >= self.cfg.severity_large_area
        level += t - inc.since >= self.cfg.severity_long_s
        return int(min(max(level, SEVERITY_LOW), SEVERITY_HIGH))

    def _event(self, inc: _Incident, phase: str, t: float) -> HazardEvent:
        inc.emitted_at, inc.emitted_area = t, area(inc.box)
        return HazardEvent(
            incident=inc.number, phase=phase, kind=inc.kind, severity=inc.severity,
            suggest=SUGGEST_STOP if inc.severity >= SEVERITY_HIGH else SUGGEST_SLOW_DOWN,
            confidence=float(min(1.0, max(0.0, inc.conf))), detection_time=inc.since, stamp=t,
            box=inc.box, track_ids=tuple(sorted(inc.ids)),
            clip_requested=inc.kind in (KIND_COLLISION, KIND_FIRE))

    def incidents(self) -> list[tuple[int, int, Box, bool]]:
        """(number, kind, box, alerted) of every incident now followed (for drawing)."""
        return [(inc.number, inc.kind, inc.box, inc.active) for inc in self._incidents]

    @property
    def active(self) -> int:
        """Number of incidents alerted and not yet cancelled."""
        return sum(1 for inc in self._incidents if inc.active)
