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
from v2x_detector.ground import Ground
from v2x_detector.ground import problems as ground_problems

NEW, UPDATE, CANCEL = 'new', 'update', 'cancel'

VEHICLES = ('car', 'bus', 'truck', 'motorcycle')


@dataclass(frozen=True)
class FireRegion:
    """A flame-coloured region in one frame: its box, how many pixels it holds, and what
    ``fire.FlameStage`` measured of it over every decoded frame of the last window
    (flicker: shape change per frame; drift: centre wander in its diagonals; age_s: how
    long it has been followed; present: fraction of frames it was seen in; growth: largest
    over smallest pixel count; ident: the follower's number, 0 when not followed). A region
    without time features has age_s 0 and never passes the rule."""

    box: Box
    pixels: float
    score: float = 1.0
    flicker: float = 0.0
    drift: float = 0.0
    age_s: float = 0.0
    present: float = 1.0
    growth: float = 1.0
    ident: int = 0


@dataclass(frozen=True)
class Observation:
    """What the rules see of one frame: its capture time, size, tracks, fire regions and
    how far the whole image moved (camera_motion.GlobalMotion; 0 when not measured)."""

    t: float
    width: int
    height: int
    tracks: tuple[Track, ...] | None = ()  # None: the model did not look at this frame
    fire: tuple[FireRegion, ...] = ()
    camera_shift: float = 0.0  # global image shift since the last observation, diagonals/s


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
    collision_min_speed: float = 1.0    # diagonals/s (centre + size change) before the impact
    collision_stop_speed: float = 0.2   # diagonals/s it is below after it
    collision_drop_window_s: float = 3.0  # from min_speed to standing still within (s)
    collision_stitch_s: float = 0.8     # a new track where a vehicle was lost this recently
                                        # carries on its speeds (id and class switches)
    collision_partner_speed: float = 0.5  # a neighbour stopping with it had at least this
    collision_min_size: float = 0.05    # box diagonal / frame diagonal of the stopping vehicle
    # with a ground calibration (ground_points) the collision cues are speeds on the road
    collision_min_speed_mps: float = 4.0    # m/s one vehicle had before the impact (14 km/h)
    collision_stop_speed_mps: float = 0.5   # m/s it is below after it
    collision_partner_speed_mps: float = 2.0  # m/s a neighbour stopping with it had at least
    camera_motion: float = 0.1          # frame diagonals/s of global image shift on two model
                                        # frames in a row: the camera moves, no motion cue
                                        # counts meanwhile (one jump: a cut or a glitch)
    camera_settle_s: float = 10.0       # ... nor this long after it last moved (a hand-held
                                        # or swaying camera keeps moving a little)
    # fire (the time features come from fire.FlameStage, measured on every decoded frame)
    fire_enabled: bool = True
    fire_persist_s: float = 2.0         # a flame region must be followed this long
    fire_min_area: float = 0.001        # region pixels / frame pixels
    fire_flicker: float = 0.12          # median two-way share of its shape changing in 0.1 s
    fire_max_drift: float = 0.5         # diagonals the region centre may wander in 1 s
    fire_min_present: float = 0.5       # share of the decoded frames it must be seen in
    fire_vehicle_speed: float = 0.3     # a region mostly inside a vehicle box moving faster
                                        # than this (diagonals/s) is a vehicle's light or paint
    # blockage
    blockage_classes: tuple[str, ...] = VEHICLES + ('bicycle', 'person')
    blockage_time_s: float = 30.0
    blockage_speed: float = 0.1         # diagonals/s below which an object stands still
    blockage_memory_s: float = 10.0     # a standing object unseen this long is forgotten
                                        # (occluded, an id switch, a missed detection)
    lane_polygon: tuple[float, ...] = ()  # x1, y1, x2, y2, ... in 0..1 of the frame; empty = off
    # a site setting: four image points (u, v in 0..1) and where they lie on the road (x, y
    # in metres): u1, v1, x1, y1, ... (ground.py); empty = none: speeds in diagonals/s
    ground_points: tuple[float, ...] = ()

    def problems(self) -> list[tuple[str, str]]:
        """(field, reason) for every value that cannot work; empty when all are fine."""
        out = []
        for name in ('confirm_s', 'gap_s', 'clear_s', 'cooldown_s', 'update_interval_s',
                     'severity_long_s', 'blockage_time_s', 'collision_drop_window_s',
                     'fire_persist_s', 'fire_vehicle_speed', 'blockage_memory_s',
                     'collision_stitch_s', 'collision_partner_speed', 'collision_min_size',
                     'camera_motion', 'camera_settle_s'):
            if not getattr(self, name) >= 0:
                out.append((name, 'must be >= 0'))
        for name in ('speed_span_s', 'max_jump', 'collision_min_speed', 'fire_flicker',
                     'fire_min_area', 'blockage_speed', 'collision_stop_speed',
                     'fire_max_drift', 'collision_min_speed_mps', 'collision_stop_speed_mps',
                     'collision_partner_speed_mps'):
            if not getattr(self, name) > 0:
                out.append((name, 'must be > 0'))
        if self.collision_stop_speed >= self.collision_min_speed:
            out.append(('collision_stop_speed', 'must be below collision_min_speed'))
        if self.collision_stop_speed_mps >= self.collision_min_speed_mps:
            out.append(('collision_stop_speed_mps', 'must be below collision_min_speed_mps'))
        out += [('ground_points', why) for why in ground_problems(self.ground_points)]
        if not 0.0 <= self.fire_min_present <= 1.0:
            out.append(('fire_min_present', 'must lie in 0..1'))
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
    position: tuple[float, float] = (math.nan, math.nan)  # foot point (bottom centre of
    #                                   the box) in 0..1 of the frame: where it stands
    ground_position: tuple[float, float] | None = None  # the foot point in metres on the
    #                                   road, with a ground calibration (else None)


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
class _Standing:
    """An object standing in the lane, remembered by its place (not by its track ids)."""

    box: Box
    name: str
    since: float
    last_seen: float
    ids: set
    seen: int = 1
    anchor: Box = (0.0, 0.0, 0.0, 0.0)  # its box when it was first seen standing


@dataclass
class _TrackHistory:
    samples: deque = field(default_factory=lambda: deque(maxlen=256))  # (t, cx, cy, diag)
    speeds: deque = field(default_factory=lambda: deque(maxlen=256))   # (t, speed)
    fast: deque = field(default_factory=lambda: deque(maxlen=256))  # (t, speed with looming, diag)
    contacts: deque = field(default_factory=lambda: deque(maxlen=64))  # t of fast contacts
    ground: deque = field(default_factory=lambda: deque(maxlen=256))  # (t, x m, y m) of its foot
    ancestors: set = field(default_factory=set)  # ids this track was stitched from
    box: Box = (0.0, 0.0, 0.0, 0.0)
    name: str = ''
    last_t: float = -math.inf
    still_since: float | None = None


def _run_start(times: Iterable[float], last: float, gap_s: float) -> float:
    """The first of the run of times (ascending, no gap over gap_s) that ends at last."""
    start = last
    for t in reversed([t for t in times if t <= last]):
        if start - t > gap_s:
            break
        start = t
    return start


def _keep_and_reference(samples: deque, sample: tuple, span: float) -> tuple | None:
    """Append (t, ...) to a track's samples, drop those older than the history keeps, and
    return the newest sample at least span before it (None: not that much history yet)."""
    t = sample[0]
    samples.append(sample)
    while samples and t - samples[0][0] > max(3.0, 4 * span):
        samples.popleft()
    ref = None
    for old in samples:
        if t - old[0] >= span:
            ref = old
        else:
            break
    return ref


def foot_point(box: Box, width: float, height: float) -> tuple[float, float]:
    """Where an object stands: the bottom centre of its box, in 0..1 of the frame."""
    return ((box[0] + box[2]) / 2 / width, box[3] / height)


def point_in_polygon(x: float, y: float, poly: tuple[float, ...]) -> bool:
    """Even-odd rule; poly is a flat x, y, x, y, ... sequence."""
    pts = list(zip(poly[0::2], poly[1::2], strict=False))
    inside = False
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=False):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def inside(a: Box, b: Box) -> float:
    """Share of box a's area that lies inside box b."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / area(a) if area(a) > 0 else 0.0


def _at_edge(box: Box, obs: Observation, margin: float = 2.0) -> bool:
    """The box touches the frame's border (cut off: its size is not the object's)."""
    return (box[0] <= margin or box[1] <= margin or box[2] >= obs.width - margin
            or box[3] >= obs.height - margin)


def _near(a: Box, b: Box) -> bool:
    """Boxes closer than the larger one's diagonal (flames of one fire)."""
    return gap(a, b) <= max(diag(a), diag(b))


_BASE_SEVERITY = {KIND_COLLISION: SEVERITY_MEDIUM, KIND_FIRE: SEVERITY_MEDIUM,
                  KIND_BLOCKAGE: SEVERITY_LOW}


class HazardRules:
    """Feed one Observation per frame (in time order) to step(); it returns the events."""

    def __init__(self, config: RuleConfig | None = None):
        self.cfg = config or RuleConfig()
        cfg = self.cfg
        self._ground = Ground(cfg.ground_points) if cfg.ground_points else None
        # the collision cues' thresholds, in the unit the speeds are measured in
        on_ground = self._ground is not None
        self._min_speed = cfg.collision_min_speed_mps if on_ground else cfg.collision_min_speed
        self._stop_speed = (cfg.collision_stop_speed_mps if on_ground
                            else cfg.collision_stop_speed)
        self._partner_speed = (cfg.collision_partner_speed_mps if on_ground
                               else cfg.collision_partner_speed)
        self._tracks: dict[int, _TrackHistory] = {}
        self._incidents: list[_Incident] = []
        self._cooldowns: list[tuple[int, Box, float]] = []  # kind, box, until
        self._standing: list[_Standing] = []
        self._camera_moved_at = -math.inf
        self._shifted = False  # the image moved at the last model frame
        self._frame = (1, 1)
        self._moving: list[Box] = []  # boxes of vehicles moving at the last model frame
        self._next_incident = 1
        self.last_t = -math.inf

    # ---------------------------------------------------------------- per-track motion
    def _observe_tracks(self, obs: Observation) -> dict[int, float | None]:
        """Per track: its speed now (None until speed_span_s of history exist).

        Two speeds are kept: ``speeds`` (centre motion, for standing still) and ``fast``
        (centre motion plus the change of the box size, so a vehicle driving at the camera
        counts as moving: looming). A new vehicle track that starts where a vehicle track
        was lost within collision_stitch_s inherits that one's history (stitching)."""
        cfg = self.cfg
        speeds = {}
        span = cfg.speed_span_s
        t = obs.t
        if obs.camera_shift <= cfg.camera_motion:
            self._shifted = False
        else:
            # the camera moved: what moved in the image tells nothing about the vehicles.
            # A cut (nothing in common: inf) only starts every history afresh; a camera
            # that moves keeps the motion cues off for camera_settle_s
            if obs.camera_shift != math.inf and self._shifted:
                self._camera_moved_at = t  # two model frames in a row: the camera moves
            self._shifted = obs.camera_shift != math.inf
            for hist in self._tracks.values():
                hist.fast.clear()
                hist.contacts.clear()
        for tr in obs.tracks:
            hist = self._tracks.get(tr.track_id)
            if hist is None:
                hist = self._tracks[tr.track_id] = _TrackHistory()
                if tr.name in cfg.collision_classes:
                    self._stitch(tr, hist, t)
            cx, cy = center(tr.box)
            d = max(diag(tr.box), 1.0)
            if hist.samples:
                _, px, py, pd = hist.samples[-1]
                if math.hypot(cx - px, cy - py) > cfg.max_jump * max(d, pd):
                    hist.samples.clear()  # a scene cut or an id switch: not motion
                    hist.speeds.clear()
                    hist.fast.clear()
                    hist.ground.clear()
            hist.last_t, hist.box, hist.name = t, tr.box, tr.name
            ref = _keep_and_reference(hist.samples, (t, cx, cy, d), span)
            speed = None
            if ref is not None:
                t0, x0, y0, d0 = ref
                move = math.hypot(cx - x0, cy - y0) / (t - t0) / ((d + d0) / 2)
                # a box cut by the frame's edge changes size as it enters: no looming
                loom = 0.0 if _at_edge(tr.box, obs) else abs(d - d0) / (t - t0) / ((d + d0) / 2)
                speed = move
                hist.speeds.append((t, move))
                if self._ground is None:
                    hist.fast.append((t, move + loom, d))
            still = speed
            if self._ground is not None:  # the collision cues in m/s on the road instead
                still = self._speed_on_ground(hist, tr.box, obs)
                if still is not None:
                    hist.fast.append((t, still, d))
            speeds[tr.track_id] = speed
            if still is not None and still <= self._stop_speed:
                if hist.still_since is None:
                    hist.still_since = t
            else:
                hist.still_since = None
        for tid in [k for k, h in self._tracks.items() if t - h.last_t > 5.0]:
            del self._tracks[tid]
        return speeds

    def _speed_on_ground(self, hist: _TrackHistory, box: Box, obs: Observation) -> float | None:
        """The foot point's speed on the road (m/s) over speed_span_s; None until that much
        history exists, or while the foot point is beyond the road's horizon."""
        t, span = obs.t, self.cfg.speed_span_s
        here = self._ground.to_ground(*foot_point(box, obs.width, obs.height))
        if here is None:
            hist.ground.clear()
            return None
        ref = _keep_and_reference(hist.ground, (t, *here), span)
        if ref is None:
            return None
        return math.dist(here, ref[1:]) / (t - ref[0])

    def _stitch(self, tr: Track, hist: _TrackHistory, t: float) -> None:
        """Carry the speeds of a vehicle track lost nearby just before over to this new one."""
        cfg = self.cfg
        best, best_d = None, math.inf
        for tid, old in self._tracks.items():
            if old is hist or old.name not in cfg.collision_classes or not old.fast:
                continue
            if not 0.0 < t - old.last_t <= cfg.collision_stitch_s:
                continue
            d = math.dist(center(old.box), center(tr.box))
            if d <= max(diag(old.box), diag(tr.box)) and d < best_d:
                best, best_d = tid, d
        if best is not None:
            old = self._tracks[best]
            hist.fast.extend(old.fast)  # its speeds, not its contacts: those were the old box's
            hist.ancestors = old.ancestors | {best}

    def _peak(self, hist: _TrackHistory, t: float, window: float) -> tuple[float, ...]:
        """(highest fast speed within window before t, when, the box diagonal then)."""
        return max(((v, ts, d) for ts, v, d in hist.fast if t - ts <= window),
                   default=(0.0, t, 0.0))

    # ---------------------------------------------------------------- evaluators
    def _collisions(self, obs: Observation, speeds) -> list[_Signature]:
        """A vehicle that was fast, touched another (or one vanished under it) and then
        stopped within collision_drop_window_s; or one that stopped abruptly together
        with a neighbour. Evidence lasts while it stands there."""
        cfg = self.cfg
        t = obs.t
        window = cfg.collision_drop_window_s
        cars = [tr for tr in obs.tracks if tr.name in cfg.collision_classes]
        here = {tr.track_id for tr in cars}
        # contacts while fast, with a present vehicle or one lost in the last stitch_s
        ghosts = [(tid, h.box) for tid, h in self._tracks.items()
                  if tid not in here and h.name in cfg.collision_classes and h.speeds
                  and 0.0 < t - h.last_t <= cfg.collision_stitch_s]  # lost: seen for a while
        for a in cars:
            ha = self._tracks[a.track_id]
            if not ha.fast or ha.fast[-1][1] < self._min_speed:
                continue
            # fast now, or just stitched from a track that was fast when it was lost (the
            # impact hid it: the contact is seen when it comes back)
            if ha.fast[-1][0] != t and not (ha.ancestors and len(ha.samples) == 1
                                            and t - ha.fast[-1][0] <= cfg.collision_stitch_s):
                continue
            others = [(b.track_id, b.box) for b in cars if b is not a] + ghosts
            for tid, box in others:
                if tid in ha.ancestors or a.track_id in self._tracks.get(tid, ha).ancestors:
                    continue
                if gap(a.box, box) <= cfg.collision_touch * min(diag(a.box), diag(box)):
                    ha.contacts.append(t)
                    break
        if t - self._camera_moved_at < cfg.camera_settle_s:
            return []  # contacts seen meanwhile still count once the camera has settled
        out = []
        min_diag = cfg.collision_min_size * math.hypot(obs.width, obs.height)
        for a in cars:
            ha = self._tracks[a.track_id]
            if ha.still_since is None or diag(a.box) < min_diag:
                continue  # moving, or too small for its speed to mean anything
            peak, peak_t, _ = self._peak(ha, ha.still_since, window)
            widest = max((d for ts, _, d in ha.fast if ha.still_since - ts <= window),
                         default=0.0)
            if peak < self._min_speed or (self._ground is None and diag(a.box) < 0.67 * widest):
                # slow, or it drove away from the camera: speed in its own diagonals falls
                # with distance, so a receding vehicle seems to stop (not so on the ground)
                continue
            onset = t - ha.still_since <= window
            partner = None
            impact = peak_t
            touches = [c for c in ha.contacts if peak_t - window <= c <= ha.still_since]
            if touches:
                # the impact is where that contact began: a vehicle touching others all
                # along (passing parked cars, boxes overlapping in perspective) and slowing
                # to a stop long after is parking, not stopped by an impact
                start = _run_start(ha.contacts, touches[-1], cfg.gap_s)
                if ha.still_since - start <= window:
                    partner, impact = a, start
            if partner is None:
                for b in cars:
                    hb = self._tracks[b.track_id]
                    if b is a or hb.still_since is None or \
                            abs(hb.still_since - ha.still_since) > 1.0:
                        continue
                    if gap(a.box, b.box) > cfg.collision_touch * min(diag(a.box), diag(b.box)):
                        continue  # two cars braking hard apart: a near miss
                    if self._peak(hb, hb.still_since, window)[0] >= self._partner_speed:
                        partner = b
                        break
            if partner is None:
                continue
            box = union_box([a.box, partner.box])
            out.append(_Signature(KIND_COLLISION, box,
                                  frozenset({a.track_id, partner.track_id}),
                                  (a.conf + partner.conf) / 2, impact, onset=onset))
        return out

    def _fires(self, obs: Observation, speeds) -> list[_Signature]:
        """Flame regions that lasted, flicker, stay in place and ride on no moving vehicle."""
        cfg = self.cfg
        if not cfg.fire_enabled:
            return []
        frame_px = max(1, obs.width * obs.height)
        if speeds is not None:  # the model looked at this frame; else the last ones it saw
            self._moving = [tr.box for tr in obs.tracks
                            if tr.name in VEHICLES + ('bicycle',)
                            and (speeds.get(tr.track_id) or 0.0) > cfg.fire_vehicle_speed]
        moving = self._moving
        out = []
        for region in obs.fire:
            if (region.pixels / frame_px < cfg.fire_min_area
                    or region.age_s < cfg.fire_persist_s
                    or region.present < cfg.fire_min_present
                    or region.flicker < cfg.fire_flicker
                    or region.drift > cfg.fire_max_drift):
                continue
            if any(inside(region.box, box) >= 0.5 for box in moving):
                continue  # a tail light, a headlight, an orange bus
            conf = min(1.0, 0.5 + region.flicker) * region.score
            out.append(_Signature(KIND_FIRE, region.box, frozenset(), conf,
                                  obs.t - region.age_s))
        return out

    def _blockages(self, obs: Observation, speeds) -> list[_Signature]:
        """Standing objects in the lane, remembered by place, not by track id."""
        cfg = self.cfg
        if not cfg.lane_polygon:
            return []
        t = obs.t
        for tr in obs.tracks:
            if tr.name not in cfg.blockage_classes:
                continue
            speed = speeds.get(tr.track_id)
            best = max(self._standing, key=lambda s: iou(s.anchor, tr.box), default=None)
            overlap = iou(best.anchor, tr.box) if best is not None else 0.0
            if best is not None and overlap < 0.3 and tr.track_id in best.ids \
                    and speed is not None and speed > cfg.blockage_speed:
                self._standing.remove(best)  # it drove off its place
                continue
            if not point_in_polygon(*foot_point(tr.box, obs.width, obs.height),
                                    cfg.lane_polygon):
                continue
            if overlap >= 0.5:
                # still on its place (a jolt of the box while someone walks past, or a new
                # id, keeps it): the place is what is remembered, not the id
                if speed is None or speed <= 3 * cfg.blockage_speed:
                    best.box, best.last_seen = tr.box, t
                    best.ids.add(tr.track_id)
                    best.seen += 1
            elif speed is not None and speed <= cfg.blockage_speed:
                self._standing.append(_Standing(tr.box, tr.name, t - cfg.speed_span_s, t,
                                                {tr.track_id}, anchor=tr.box))
        self._standing = [s for s in self._standing if t - s.last_seen <= cfg.blockage_memory_s]
        return [_Signature(KIND_BLOCKAGE, s.box, frozenset(s.ids),
                           0.5 + 0.5 * min(1.0, s.seen / 50), s.since)
                for s in self._standing
                if s.last_seen == t and t - s.since >= cfg.blockage_time_s]

    # ---------------------------------------------------------------- the state machine
    def step(self, obs: Observation) -> list[HazardEvent]:
        """Advance by one frame; frames must come in time order (older ones are ignored)."""
        if obs.t <= self.last_t or obs.width <= 0 or obs.height <= 0:
            return []
        self.last_t = obs.t
        if obs.tracks is None:  # a frame the model skipped: only the fire stage saw it
            return self._advance(obs, self._fires(obs, None))
        speeds = self._observe_tracks(obs)
        signatures = (self._collisions(obs, speeds) + self._fires(obs, speeds)
                      + self._blockages(obs, speeds))
        return self._advance(obs, signatures)

    def _match(self, sig: _Signature) -> _Incident | None:
        for inc in self._incidents:
            if inc.kind != sig.kind:
                continue
            if (sig.ids & inc.ids) or iou(sig.box, inc.box) >= 0.3:
                return inc
            if _near(sig.box, inc.box):
                return inc  # one fire, crash or pile of wrecks is one incident
        return None

    def _cooling(self, sig: _Signature, t: float) -> bool:
        self._cooldowns = [c for c in self._cooldowns if c[2] > t]
        return any(kind == sig.kind and _near(box, sig.box) for kind, box, _ in self._cooldowns)

    def _advance(self, obs: Observation, signatures: Iterable[_Signature]) -> list[HazardEvent]:
        cfg, t = self.cfg, obs.t
        self._frame = (obs.width, obs.height)
        for sig in signatures:
            inc = self._match(sig)
            if inc is not None:
                # parts of one hazard seen in the same frame: the incident covers them all
                box = union_box([inc.box, sig.box]) if inc.last_seen == t else sig.box
                inc.box, inc.ids, inc.last_seen = box, inc.ids | sig.ids, t
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
        foot = foot_point(inc.box, *self._frame)
        return HazardEvent(
            incident=inc.number, phase=phase, kind=inc.kind, severity=inc.severity,
            suggest=SUGGEST_STOP if inc.severity >= SEVERITY_HIGH else SUGGEST_SLOW_DOWN,
            confidence=float(min(1.0, max(0.0, inc.conf))), detection_time=inc.since, stamp=t,
            box=inc.box, track_ids=tuple(sorted(inc.ids)),
            clip_requested=inc.kind in (KIND_COLLISION, KIND_FIRE),
            position=foot,
            ground_position=self._ground.to_ground(*foot) if self._ground else None)

    def incidents(self) -> list[tuple[int, int, Box, bool]]:
        """(number, kind, box, alerted) of every incident now followed (for drawing)."""
        return [(inc.number, inc.kind, inc.box, inc.active) for inc in self._incidents]

    @property
    def active(self) -> int:
        """Number of incidents alerted and not yet cancelled."""
        return sum(1 for inc in self._incidents if inc.active)
