"""The fire colour rule on real images and on flames drawn over real footage."""

from detector_media import flame_frames
import numpy as np
import pytest

from v2x_detector.fire import fire_mask, fire_regions, load_classifier
from v2x_detector.rules import KIND_FIRE, NEW, HazardRules, Observation


@pytest.mark.parametrize('bgr,fire', [
    ((40, 160, 250), True),    # orange flame
    ((120, 230, 255), True),   # yellow flame core
    ((250, 80, 30), False),    # blue
    ((200, 200, 200), False),  # grey/white
    ((30, 30, 120), False),    # dark red
    ((40, 250, 120), False),   # green
])
def test_fire_mask_colours(bgr, fire):
    """Flame colours pass the colour rule, others do not."""
    assert bool(fire_mask(np.full((2, 2, 3), bgr, np.uint8)).all()) is fire


def test_drawn_flames_become_one_fire_alert():
    """Flickering flames over real road footage give one fire alert through the colour rule."""
    rules = HazardRules()
    events = []
    for i, frame in enumerate(flame_frames()):
        h, w = frame.shape[:2]
        events += rules.step(Observation(100.0 + i / 25, w, h, (), fire_regions(frame)))
    assert [(e.phase, e.kind) for e in events] == [(NEW, KIND_FIRE)]


def test_classifier_can_veto_blobs():
    """A plugged-in classifier that says 'no fire' removes every blob."""
    frame = flame_frames(1)[0]
    assert fire_regions(frame)
    assert fire_regions(frame, classifier=lambda crop: 0.0) == ()
    kept = fire_regions(frame, classifier=lambda crop: 0.9)
    assert kept and all(r.score == 0.9 for r in kept)


@pytest.mark.parametrize('spec,ok', [
    ('', True), ('math:sqrt', True), ('math', False), ('math:nope', False),
    ('no_such_module_x:f', False), ('math:pi', False)])
def test_load_classifier(spec, ok):
    """'module:function' loads; anything else is a ValueError."""
    if ok:
        assert spec == '' and load_classifier(spec) is None or callable(load_classifier(spec))
    else:
        with pytest.raises(ValueError):
            load_classifier(spec)
