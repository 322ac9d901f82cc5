"""camera_health on short synthetic alterations of a real static scene (the collision
scene: bikes.mp4's street with two of its cars, a fixed camera), no ROS."""

import cv2
from detector_media import collision_frames
import numpy as np
import pytest

from v2x_detector.camera_health import (
    BLURRED,
    COVERED,
    DARK,
    FROZEN,
    MOVED,
    SILENT,
    WASHED_OUT,
    CameraHealth,
    HealthConfig,
)

FPS = 25.0
#: short times so that each case is a few seconds of frames
QUICK = HealthConfig(reference_s=0.6, hold_s=0.4, moved_hold_s=0.8, moved_smooth_s=0.2,
                     frozen_s=0.6, silent_s=2.0, shake_window=6)


@pytest.fixture(scope='module')
def scene():
    """2.7 s of a fixed camera: cars drive in and stop (68 frames)."""
    return collision_frames()


_NOISE = [np.random.default_rng(n).integers(-3, 4, (272, 640, 3), dtype=np.int16)
          for n in range(7)]
_next = iter(range(10**9))


def _sensor(frame):
    """A real sensor's noise on what the lens sees (the drawn scene alone would repeat
    frames exactly once the cars stand)."""
    noise = _NOISE[next(_next) % len(_NOISE)][:frame.shape[0], :frame.shape[1]]
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


def _shift(frame, dx):
    return np.roll(frame, dx, axis=1)


ALTERATIONS = {
    # each: frame index, frame -> what the lens sees after the first 30 frames
    FROZEN: None,  # the stream repeats one delivered frame, noise and all
    DARK: lambda i, f, frames: (f * 0.06).astype(np.uint8),            # black frames
    WASHED_OUT: lambda i, f, frames: (f * 0.1 + 232).astype(np.uint8),  # glare
    COVERED: lambda i, f, frames: np.full_like(f, 128 + i % 2),  # a flat sheet
    BLURRED: lambda i, f, frames: cv2.blur(f, (21, 21)),               # boxblur
    MOVED: lambda i, f, frames: _shift(f, 96),                          # turned 15% aside
}
#: a hand-held camera: the view sways up to 2.5 % of the width around where it was
_SWAY = np.random.default_rng(1).integers(-16, 17, 1000)
SWAYING = {'moved (swaying)': lambda i, f, frames: _shift(f, int(_SWAY[i]))}


def _run(frames, config=QUICK):
    health = CameraHealth(config, now=0.0)
    verdicts = []
    for i, frame in enumerate(frames):
        t = i / FPS
        verdicts.append(health.observe(frame, t, t).reason)
    return health, verdicts


def test_a_healthy_fixed_camera_sees(scene):
    """Cars driving through a fixed view: no fault on any frame, a reference taken."""
    health, verdicts = _run([_sensor(f) for f in scene])
    assert set(verdicts) == {''} and health.has_reference
    assert health.measures.match > QUICK.moved_match and health.measures.sharpness > 0.7


@pytest.mark.parametrize('case', sorted(ALTERATIONS) + sorted(SWAYING))
def test_each_alteration_reads_as_its_reason(scene, case):
    """30 good frames, then the alteration: the camera reads healthy before, the reason
    once it has lasted hold_s (frozen: frozen_s more), and it is named in the detail."""
    alter = {**ALTERATIONS, **SWAYING}[case]
    reason = case.split()[0]
    later = scene[30:] * 2
    frames = [_sensor(f) for f in scene[:30]] + (
        [_sensor(scene[30])] * len(later) if alter is None else
        [_sensor(alter(i, f, scene)) for i, f in enumerate(later, 30)])
    health, verdicts = _run(frames)
    assert set(verdicts[:30]) == {''}
    assert verdicts[-1] == reason
    first = verdicts.index(reason)
    hold = QUICK.moved_hold_s if reason == MOVED else QUICK.hold_s
    if reason == FROZEN:
        hold += QUICK.frozen_s
    assert first >= 30 + hold * FPS - 1
    assert health.verdict(len(frames) / FPS).detail not in ('', reason)


def test_silence_retake_and_recovery(scene):
    """No frame for silent_s reads silent (before any frame too); a moved camera reads
    moved until the operator re-takes the reference; a fault clears hold_s after it ends."""
    health = CameraHealth(QUICK, now=100.0)
    assert health.verdict(101.0).ok and health.verdict(102.5).reason == SILENT
    health, verdicts = _run([_sensor(f) for f in scene[:30]]
                            + [_sensor(_shift(f, 96)) for f in scene[30:]])
    assert verdicts[-1] == MOVED
    health.retake_reference()
    t0 = len(scene) / FPS
    after = [health.observe(_sensor(_shift(f, 96)), t0 + i / FPS, t0 + i / FPS).reason
             for i, f in enumerate(scene[40:])]
    assert after[-1] == '' and MOVED in after[:5]
    assert health.verdict(t0 + 10.0).reason == SILENT


def test_a_new_frame_size_starts_over(scene):
    """A camera that changes resolution: a new reference, not a fault."""
    small = [_sensor(cv2.resize(f, (320, 136))) for f in scene]
    health, verdicts = _run([_sensor(f) for f in scene[:30]] + small)
    assert set(verdicts) == {''} and health.has_reference


@pytest.mark.parametrize('changes, name', [
    ({'width': 8}, 'width'),                  # too few pixels to judge
    ({'hold_s': 0.0}, 'hold_s'),              # faults would flap with every frame
    ({'silent_s': float('nan')}, 'silent_s'),  # never silent
])
def test_bad_config_is_named(changes, name):
    """HealthConfig.problems names each bad value."""
    assert [n for n, _ in HealthConfig(**changes).problems()] == [name]
