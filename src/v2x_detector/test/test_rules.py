"""Hazard rules on synthetic track sequences: each hazard, its near misses, the lifecycle."""

import math

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


def flames(n, pixels, x=300.0, drift=0.0):
    """n frames of a flame blob whose pixel count follows pixels(i)."""
    return [((), (FireRegion((x + drift * i, 100, x + drift * i + 60, 180), pixels(i)),))
            for i in range(n)]


def test_flickering_fire_is_alerted_and_cancelled():
    """A flame-coloured blob that flickers in place gives one fire alert, then a cancel."""
    cfg = RuleConfig(clear_s=1.0)
    frames = flames(50, lambda i: 2500 + 900 * math.sin(i * 1.7)) + [((), ())] * 40
    events = run(HazardRules(cfg), frames)
    assert [(e.phase, e.kind) for e in events] == [(NEW, KIND_FIRE), (CANCEL, KIND_FIRE)]
    assert events[0].clip_requested


@pytest.mark.parametrize('frames', [
    flames(60, lambda i: 2500.0),                                # steady (a sign, a light)
    flames(60, lambda i: 2500 + 900 * math.sin(i * 1.7), drift=12.0),  # moving (a red car)
    flames(60, lambda i: 20 + 5 * math.sin(i * 1.7)),            # too small
], ids=['steady', 'moving', 'tiny'])
def test_no_fire(frames):
    """Steady, moving or tiny flame-coloured blobs are not fires."""
    assert run(HazardRules(), frames) == []


def test_fire_rule_can_be_disabled():
    """fire_enabled false ignores even a flickering blob."""
    frames = flames(50, lambda i: 2500 + 900 * math.sin(i * 1.7))
    assert run(HazardRules(RuleConfig(fire_enabled=False)), frames) == []


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
    ({'fire_frames': 2}, 'fire_frames'),
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
