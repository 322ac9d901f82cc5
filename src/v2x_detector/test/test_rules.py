"""Hazard rules on synthetic track sequences: each hazard, its near misses, the lifecycle."""


import pytest

from v2x_common.mappings import (
    KIND_BLOCKAGE,
    KIND_COLLISION,
    KIND_FIRE,
    SEVERITY_HIGH,
    SEVERITY_LOW,
    SEVERITY_MEDIUM,
    SUGGEST_STOP,
)
from v2x_detector.detections import Track
from v2x_detector.rules import (
    CANCEL,
    NEW,
    UPDATE,
    FireRegion,
    HazardRules,
    Observation,
    RuleConfig,
    point_in_polygon,
)

FPS = 25.0
W, H = 640, 360
T0 = 1_700_000_000.0
LANE = (0.0, 0.5, 1.0, 0.5, 1.0, 1.0, 0.0, 1.0)  # the lower half of the frame


def car(track_id, x, y=200.0, w=120.0, h=80.0, name='car', conf=0.8):
    return Track(track_id, (x, y, x + w, y + h), 2, name, conf)


def run(rules, frames):
    """frames: list of track tuples (or (tracks, fire)) at 25 fps; returns all events."""
    events = []
    for i, item in enumerate(frames):
        tracks, fire = item if isinstance(item, tuple) else (item, ())
        events += rules.step(Observation(T0 + i / FPS, W, H, tuple(tracks), tuple(fire)))
    return events


def crash(approach=25, hold=50, speed=8.0, overlap=3.0):
    """Two cars drive head-on at speed px/frame, touch (overlap px) and stop."""
    frames = []
    meet = 320.0
    for i in range(approach + hold):
        d = max(0, approach - i) * speed
        frames.append([car(1, meet - 120 + overlap / 2 - d), car(2, meet - overlap / 2 + d)])
    return frames


def test_collision_raises_one_alert_with_clip_and_detection_time():
    """Cars that touch and stop sharply give exactly one NEW collision with clip_requested."""
    events = run(HazardRules(), crash())
    news = [e for e in events if e.phase == NEW]
    assert [(e.kind, e.track_ids) for e in news] == [(KIND_COLLISION, (1, 2))]
    alert = news[0]
    assert alert.clip_requested and 0.0 < alert.confidence <= 1.0
    contact = T0 + 25 / FPS
    assert contact <= alert.detection_time <= contact + 0.6
    assert alert.stamp >= alert.detection_time + RuleConfig().confirm_s
    assert not [e for e in events if e.phase == CANCEL]


def test_collision_is_cancelled_when_cleared_and_cooldown_blocks_a_repeat():
    """Once the wreck is gone for clear_s, one CANCEL; the same spot right after stays quiet."""
    cfg = RuleConfig(clear_s=1.0, cooldown_s=30.0)
    frames = crash() + [[]] * 40 + crash()
    events = run(HazardRules(cfg), frames)
    assert [e.phase for e in events if e.phase != UPDATE] == [NEW, CANCEL]
    assert events[-1].stamp - events[0].stamp > cfg.clear_s


def test_second_crash_after_cooldown_is_a_new_incident():
    """After the cooldown a new crash at the same place is a new incident."""
    cfg = RuleConfig(clear_s=0.5, cooldown_s=0.5)
    events = run(HazardRules(cfg), crash() + [[]] * 40 + crash())
    news = [e for e in events if e.phase == NEW]
    assert len(news) == 2 and news[0].incident != news[1].incident


@pytest.mark.parametrize('frames', [
    # passing cars that never touch: 40 px apart, both keep driving
    [[car(1, 10 + 8 * i, y=100), car(2, 600 - 8 * i, y=250)] for i in range(75)],
    # overlapping in the image (one passes behind the other) but both keep moving
    [[car(1, 10 + 8 * i, y=180), car(2, 500 - 8 * i, y=200)] for i in range(75)],
    # firm braking (0.4 g) behind a car waiting at a light, stopping bumper to bumper
    [[car(1, 20 + 12 * (min(i, 62) - min(i, 62) ** 2 / 124)), car(2, 512)] for i in range(120)],
    # parked cars touching each other, standing still all along
    [[car(1, 100), car(2, 220)] for _ in range(100)],
    # a car stops sharply next to a person (not a vehicle)
    [[car(1, min(200, 8 * i)), car(2, 320, name='person')] for i in range(80)],
], ids=['passing', 'overlap-moving', 'gentle-stop', 'parked', 'person'])
def test_near_misses_raise_no_collision(frames):
    """Near misses of the collision rule give no event at all."""
    assert run(HazardRules(), frames) == []


def test_scene_cut_is_not_motion():
    """A track that jumps across the frame (a cut) and stops by another car is not a crash."""
    frames = [[car(1, 20), car(2, 400)] for _ in range(30)]
    frames += [[car(1, 282), car(2, 400)] for _ in range(60)]
    assert run(HazardRules(), frames) == []


def test_blockage_after_time_in_lane():
    """A car standing still in the lane for blockage_time_s gives one blockage, LOW."""
    cfg = RuleConfig(lane_polygon=LANE, blockage_time_s=3.0)
    frames = [[car(7, 300)] for _ in range(int(4.5 * FPS))]
    events = run(HazardRules(cfg), frames)
    assert [(e.phase, e.kind, e.severity) for e in events] == [(NEW, KIND_BLOCKAGE, SEVERITY_LOW)]
    assert events[0].detection_time == pytest.approx(T0, abs=0.05)
    assert events[0].stamp >= T0 + 3.0 and not events[0].clip_requested


@pytest.mark.parametrize('frames,cfg', [
    # waiting at a light for 2 s, T is 3 s
    ([[car(7, 300)] for _ in range(50)] + [[car(7, 300 + 10 * i)] for i in range(30)],
     RuleConfig(lane_polygon=LANE, blockage_time_s=3.0)),
    # standing still long, but outside the lane (upper half)
    ([[car(7, 300, y=20)] for _ in range(125)],
     RuleConfig(lane_polygon=LANE, blockage_time_s=3.0)),
    # standing still long, no lane configured: the rule is off
    ([[car(7, 300)] for _ in range(125)], RuleConfig(blockage_time_s=3.0)),
], ids=['short-wait', 'outside-lane', 'no-lane'])
def test_no_blockage(frames, cfg):
    """Short waits, objects outside the lane, and no lane polygon raise nothing."""
    assert run(HazardRules(cfg), frames) == []


def test_blockage_clears_when_the_car_leaves():
    """When the blocking car drives away, the blockage is cancelled once."""
    cfg = RuleConfig(lane_polygon=LANE, blockage_time_s=1.0, clear_s=1.0)
    frames = [[car(7, 300)] for _ in range(50)] + [[car(7, 300 + 20 * i)] for i in range(1, 15)]
    frames += [[]] * 40
    phases = [e.phase for e in run(HazardRules(cfg), frames)]
    assert phases == [NEW, CANCEL]


def test_severity_grows_with_size_and_duration_and_updates_keep_the_incident():
    """A large, long blockage rises LOW -> MEDIUM -> HIGH via updates of one incident."""
    cfg = RuleConfig(lane_polygon=LANE, blockage_time_s=0.5, severity_long_s=3.0,
                     severity_large_area=0.05, update_interval_s=0.5)
    big = Track(3, (100, 150, 400, 350), 7, 'truck', 0.9)  # 0.26 of the frame
    events = run(HazardRules(cfg), [[big] for _ in range(int(4 * FPS))])
    assert [e.phase for e in events] == [NEW, UPDATE]
    assert [e.severity for e in events] == [SEVERITY_MEDIUM, SEVERITY_HIGH]
    assert events[1].suggest == SUGGEST_STOP
    assert len({e.incident for e in events}) == 1 and events[1].stamp > events[0].stamp


def flames(n, flicker=0.4, x=300.0, drift=0.0, pixels=2500.0, present=1.0, tracks=()):
    """n frames of a flame region as fire.FlameStage reports it (followed since frame 0)."""
    return [(list(tracks), (FireRegion((x + drift * i, 100, x + drift * i + 60, 180), pixels,
                                       flicker=flicker, drift=abs(drift) * FPS * 2 / 100,
                                       age_s=i / FPS, present=present, ident=1),))
            for i in range(n)]


def test_flickering_fire_is_alerted_and_cancelled():
    """A flame region that lasts fire_persist_s, flickers and stays put: one fire, then a
    cancel; detection_time is when the region was first followed."""
    cfg = RuleConfig(clear_s=1.0)
    frames = flames(80) + [((), ())] * 40
    events = run(HazardRules(cfg), frames)
    assert [(e.phase, e.kind) for e in events] == [(NEW, KIND_FIRE), (CANCEL, KIND_FIRE)]
    assert events[0].clip_requested
    assert events[0].detection_time == pytest.approx(T0, abs=0.05)
    assert events[0].stamp >= T0 + cfg.fire_persist_s


@pytest.mark.parametrize('frames', [
    flames(100, flicker=0.05),                 # a lamp, neon sign or orange paint: steady shape
    flames(100, drift=12.0),                   # moving with a vehicle (a tail light)
    flames(100, pixels=20.0),                  # too small
    flames(40),                                # not followed for fire_persist_s yet
    flames(100, present=0.3),                  # seen in a third of the frames: noise
    # flickering and (as measured) in place, but inside the box of a car driving through:
    # its brake lights
    [([car(9, 300 + 6 * i, y=90, w=200, h=100)],
      (FireRegion((330 + 6 * i, 100, 390 + 6 * i, 180), 2500.0, flicker=0.4, age_s=i / FPS,
                  ident=1),)) for i in range(100)],
], ids=['steady', 'moving', 'tiny', 'young', 'sparse', 'on-a-moving-car'])
def test_no_fire(frames):
    """Steady, moving, tiny, young, sparse or vehicle-borne flame regions are not fires."""
    assert run(HazardRules(), frames) == []


def test_flames_on_a_parked_car_are_a_fire():
    """A burning car that stands still is a fire (only moving vehicles' lights are excused)."""
    frames = [(tr, fire) for (tr, fire), tr in zip(
        flames(100, x=330.0), ([car(9, 300, y=90, w=200, h=100)] for _ in range(100)),
        strict=False)]
    assert [e.kind for e in run(HazardRules(), frames) if e.phase == NEW] == [KIND_FIRE]


def test_one_fire_is_one_incident_however_its_flames_split():
    """Two flame regions side by side (one fire seen in two parts) give one incident whose
    box covers both."""
    a, b = flames(100, x=300.0), flames(100, x=380.0)
    frames = [((), fa + fb) for (_, fa), (_, fb) in zip(a, b, strict=False)]
    news = [e for e in run(HazardRules(), frames) if e.phase == NEW]
    assert len(news) == 1
    box = [e for e in run(HazardRules(), frames)][-1].box
    assert box[0] <= 300 and box[2] >= 440


def test_fire_rule_can_be_disabled():
    """fire_enabled false ignores even a flickering region."""
    assert run(HazardRules(RuleConfig(fire_enabled=False)), flames(100)) == []


def test_fire_on_frames_the_model_skipped():
    """Frames without tracks (the model skipped them) still advance the fire rule."""
    rules = HazardRules()
    events = []
    for i, (_, fire) in enumerate(flames(100)):
        events += rules.step(Observation(T0 + i / FPS, W, H, None if i % 3 else (), fire))
    assert [e.kind for e in events if e.phase == NEW] == [KIND_FIRE]


def test_old_or_empty_frames_are_ignored():
    """Frames out of time order or of zero size are dropped, not crashed on."""
    rules = HazardRules()
    assert rules.step(Observation(T0 + 1, W, H, (car(1, 0),))) == []
    assert rules.step(Observation(T0, W, H, (car(1, 50),))) == []        # older
    assert rules.step(Observation(T0 + 1, W, H, (car(1, 50),))) == []    # same time
    assert rules.step(Observation(T0 + 2, 0, 0, (car(1, 50),))) == []    # no size


@pytest.mark.parametrize('kwargs,field', [
    ({'confirm_s': -1.0}, 'confirm_s'),
    ({'speed_span_s': 0.0}, 'speed_span_s'),
    ({'collision_stop_speed': 0.6, 'collision_min_speed': 0.5}, 'collision_stop_speed'),
    ({'fire_min_present': 1.5}, 'fire_min_present'),
    ({'collision_stitch_s': -0.1}, 'collision_stitch_s'),
    ({'lane_polygon': (0.0, 0.0, 1.0, 0.0)}, 'lane_polygon'),         # two points
    ({'lane_polygon': (0.0, 0.0, 1.0, 0.0, 1.0)}, 'lane_polygon'),    # odd count
    ({'lane_polygon': (0.0, 0.0, 2.0, 0.0, 1.0, 1.0)}, 'lane_polygon'),  # pixels, not 0..1
    ({'blockage_speed': float('nan')}, 'blockage_speed'),
])
def test_config_problems_name_the_field(kwargs, field):
    """Each unusable threshold is reported with its field name."""
    assert field in [name for name, _ in RuleConfig(**kwargs).problems()]


def test_default_config_is_valid():
    """The documented defaults pass their own checks."""
    assert RuleConfig().problems() == []


@pytest.mark.parametrize('x,y,inside', [
    (0.5, 0.75, True), (0.5, 0.25, False), (1.5, 0.75, False), (0.0001, 0.9999, True)])
def test_point_in_polygon(x, y, inside):
    """Even-odd test on the lower-half lane."""
    assert point_in_polygon(x, y, LANE) is inside


# ------------------------------------------------------------------ collision cues
def test_lost_fast_vehicle_is_stitched_to_its_replacement():
    """The fast car's track is lost at the impact and comes back under a new id (and
    another class): the new track carries its speed, so the stop after the crash counts."""
    frames = []
    for i in range(25):  # car 1 drives fast at the standing car 2
        frames.append([car(1, 40 + 9.6 * i), car(2, 400)])
    for _ in range(3):   # impact: car 1 lost for 0.12 s
        frames.append([car(2, 400)])
    for _ in range(60):  # it reappears as track 7, a 'truck', touching car 2, standing
        frames.append([car(7, 280, name='truck'), car(2, 400)])
    news = [e for e in run(HazardRules(), frames) if e.phase == NEW]
    assert [e.kind for e in news] == [KIND_COLLISION]
    assert 7 in news[0].track_ids


def test_vehicle_vanishing_under_a_fast_one_is_a_contact():
    """A motorbike is lost where a fast car arrives (thrown, hidden); the car stops soon
    after: a collision, timed at the contact."""
    frames = []
    for i in range(25):
        tracks = [car(1, 40 + 9.6 * i)]
        if i < 24:
            tracks.append(car(5, 290, w=60, h=60, name='motorcycle'))
        frames.append(tracks)
    frames += [[car(1, 240 + 4 * i)] for i in range(10)]  # slows down, stops beyond it
    frames += [[car(1, 280)] for _ in range(60)]
    news = [e for e in run(HazardRules(), frames) if e.phase == NEW]
    assert [e.kind for e in news] == [KIND_COLLISION]
    assert news[0].detection_time == pytest.approx(T0 + 14 / FPS, abs=0.1)  # first touch


def test_two_vehicles_stopping_together_touching():
    """Two cars, both moving, that stop at the same moment touching each other (no fast
    contact seen): a collision."""
    frames = [[car(1, 40 + 8 * i), car(2, 600 - 6 * i)] for i in range(25)]
    frames += [[car(1, 240), car(2, 450 - 90)] for _ in range(60)]
    assert [e.kind for e in run(HazardRules(), frames) if e.phase == NEW] == [KIND_COLLISION]


@pytest.mark.parametrize('frames', [
    # both cars brake hard at the same moment, but stop 40 px apart: a near miss
    [[car(1, 40 + 8 * i), car(2, 600 - 6 * i)] for i in range(25)]
    + [[car(1, 240), car(2, 400)] for _ in range(60)],
    # a car driving away from the camera shrinks and seems to stop; it touched a car before
    [[car(1, 200 + 3 * i, y=150 - 2 * i, w=300 - 9 * i, h=200 - 6 * i), car(2, 150)]
     for i in range(25)] + [[car(1, 275, y=100, w=75, h=50), car(2, 150)] for _ in range(60)],
], ids=['stop-apart', 'receding'])
def test_stops_that_are_no_collision(frames):
    """Hard stops apart and vehicles receding from the camera raise no collision."""
    assert [e for e in run(HazardRules(), frames) if e.phase == NEW] == []


def test_moving_camera_suppresses_motion_cues():
    """While the whole image moves (camera_shift), what moves in it proves nothing."""
    rules = HazardRules()
    events = []
    for i, tracks in enumerate(crash()):
        shift = 0.5 if i < 30 else 0.0
        events += rules.step(Observation(T0 + i / FPS, W, H, tuple(tracks), (), shift))
    assert [e for e in events if e.phase == NEW] == []


def test_small_far_vehicles_do_not_collide():
    """Boxes under collision_min_size of the frame: their speeds are detector jitter."""
    frames = [[car(1, 40 + 1.6 * i, w=20, h=13), car(2, 100, w=20, h=13)] for i in range(25)]
    frames += [[car(1, 80, w=20, h=13), car(2, 100, w=20, h=13)] for _ in range(60)]
    assert run(HazardRules(), frames) == []


# ------------------------------------------------------------------ blockage memory
def test_blockage_survives_id_switches_and_people_walking_past():
    """The standing car changes track id twice and a person walks across it: the standing
    time runs on from the first frame (the place is remembered, not the id)."""
    cfg = RuleConfig(lane_polygon=LANE, blockage_time_s=3.0)
    frames = []
    for i in range(int(4.5 * FPS)):
        tid = 7 if i < 30 else 8 if i < 60 else 9
        tracks = [car(tid, 300)]
        if 40 <= i < 70:  # a person walks past in front of it; the car is missed meanwhile
            tracks = [car(20, 250 + 5 * (i - 40), w=30, h=80, name='person')]
        frames.append(tracks)
    events = run(HazardRules(cfg), frames)
    news = [e for e in events if e.phase == NEW]
    assert [e.kind for e in news] == [KIND_BLOCKAGE]
    assert news[0].detection_time == pytest.approx(T0, abs=0.5)
    assert news[0].stamp < T0 + 3.6


def test_blockage_memory_forgets_after_blockage_memory_s():
    """A car gone longer than blockage_memory_s starts from zero when one stands there again."""
    cfg = RuleConfig(lane_polygon=LANE, blockage_time_s=3.0, blockage_memory_s=0.5)
    frames = [[car(7, 300)] for _ in range(50)] + [[]] * 20 + [[car(8, 300)] for _ in range(50)]
    assert run(HazardRules(cfg), frames) == []


def test_blockage_reports_the_standing_objects_position():
    """The blockage's box is the standing car's box, and its position its foot point."""
    cfg = RuleConfig(lane_polygon=LANE, blockage_time_s=1.0)
    events = run(HazardRules(cfg), [[car(7, 300)] for _ in range(40)])
    assert events[0].box == (300, 200, 420, 280)
    assert events[0].position == pytest.approx((360 / W, 280 / H))


def test_a_cut_restarts_histories_without_silencing_the_next_crash():
    """One jump of the image (a cut, a glitch) forgets what moved before it, but a crash
    right after it is found; the image moving on two model frames in a row (the camera
    moves) keeps the collision cues off for camera_settle_s."""
    def events(shifted):
        rules = HazardRules()
        out = []
        frames = [[car(1, 40 + 9.6 * i)] for i in range(10)] + crash()
        for i, tracks in enumerate(frames):
            out += rules.step(Observation(T0 + i / FPS, W, H, tuple(tracks), (),
                                          0.5 if i in shifted else 0.0))
        return [e.kind for e in out if e.phase == NEW]
    assert events({10}) == [KIND_COLLISION]
    assert events({9, 10}) == []


# ---------------------------------------------------------------- ground calibration
#: a camera looking straight down: the frame's corners are a 32 m x 18 m patch of road
#: (0.05 m per pixel at 640 x 360)
TOP_DOWN = (0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 32.0, 0.0, 1.0, 1.0, 32.0, 18.0, 0.0, 1.0, 0.0, 18.0)


def head_on(speed, w, h, approach=25, hold=50):
    """Two vehicles of w x h px drive at each other at speed px/frame, touch and stop."""
    frames = []
    for i in range(approach + hold):
        d = max(0, approach - i) * speed
        frames.append([car(1, 320.0 - w + 1.5 - d, w=w, h=h),
                       car(2, 318.5 + d, w=w, h=h)])
    return frames


def test_ground_calibration_maps_its_points_and_refuses_bad_ones():
    """The four points map to their metres; a point beyond the horizon has none; values
    that cannot fix a plane are refused naming ground_points."""
    from v2x_detector.ground import Ground
    tilted = (0.0, 1.0, -5.0, 0.0, 1.0, 1.0, 5.0, 0.0,
              0.6, 0.4, 5.0, 100.0, 0.4, 0.4, -5.0, 100.0)  # a road running to a horizon
    ground = Ground(tilted)
    for i in range(0, 16, 4):
        assert ground.to_ground(tilted[i], tilted[i + 1]) == pytest.approx(
            (tilted[i + 2], tilted[i + 3]), abs=1e-6)
    assert ground.to_ground(0.5, 0.05) is None  # the sky above the horizon
    assert RuleConfig(ground_points=tilted).problems() == []
    for bad, why in (((0.0, 0.0, 0.0, 0.0), '16 values'),
                     ((0.0, 0.0, 0, 0, 0.5, 0.5, 1, 1, 1.0, 1.0, 2, 2, 0.0, 1.0, 0, 3), 'a line'),
                     (TOP_DOWN[:4] + (1.5,) + TOP_DOWN[5:], '0..1')):
        problems = RuleConfig(ground_points=bad).problems()
        assert [name for name, _ in problems] == ['ground_points'], problems
        assert why in problems[0][1]


def test_a_bus_crash_too_slow_in_diagonals_is_found_in_metres():
    """A bus (a 300 px box) hits a car at 6 m/s (4.8 px a frame at 0.05 m/px): 0.4 of its
    diagonals a second, no impact in box diagonals; with the site's ground calibration it is
    a collision at 6 m/s, and the alert says where on the road."""
    frames = head_on(4.8, 280, 110)
    assert [e for e in run(HazardRules(), frames) if e.phase == NEW] == []
    news = [e for e in run(HazardRules(RuleConfig(ground_points=TOP_DOWN)), frames)
            if e.phase == NEW]
    assert [e.kind for e in news] == [KIND_COLLISION]
    x, y = news[0].ground_position
    assert x == pytest.approx(news[0].position[0] * 32.0) and y == pytest.approx(310 * 0.05)


def test_a_small_car_touching_at_parking_speed_is_no_collision_in_metres():
    """A small car (40 x 24 px) creeping into another at 2.5 m/s (2 px a frame): over one
    of its diagonals a second, a collision in box diagonals; in metres it is parking."""
    frames = head_on(2.0, 40, 24)
    assert [e.kind for e in run(HazardRules(), frames) if e.phase == NEW] == [KIND_COLLISION]
    calibrated = HazardRules(RuleConfig(ground_points=TOP_DOWN))
    assert [e for e in run(calibrated, frames) if e.phase == NEW] == []


def slowing_along_parked_cars(seconds=5.0, start_speed=10.0, hold=50):
    """A car drives left along a row of parked cars whose boxes overlap its own (as an
    elevated camera sees a parking street) and slows evenly to a stop over seconds."""
    frames, x = [], 520.0
    parked = [car(10 + i, 130.0 * i, y=130.0) for i in range(5)]  # bottoms at 210 > 200
    n = int(seconds * FPS)
    for i in range(n + hold):
        x -= max(0.0, start_speed * (1 - i / n))
        frames.append(parked + [car(1, x)])
    return frames


def test_a_car_slowing_to_a_stop_along_parked_cars_is_no_collision():
    """Touching the parked row all along from the start and standing still 4 s later: the
    stop did not follow an impact (the contact began long before), so no collision."""
    events = run(HazardRules(), slowing_along_parked_cars())
    assert [e for e in events if e.kind == KIND_COLLISION] == []
