"""The flame stage on real footage with drawn flames and lights, the ONNX classifier's
loading path, and the camera-motion guard."""

import hashlib

import cv2
from detector_media import bikes_frames, flame_frames
import numpy as np
import pytest

from v2x_detector.camera_motion import GlobalMotion
from v2x_detector.fire import (
    FlameStage,
    OnnxFireClassifier,
    fire_mask,
    fire_regions,
    load_classifier,
)
from v2x_detector.rules import KIND_FIRE, NEW, HazardRules, Observation

FPS = 25.0


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


def run_stage(frames, rules=None):
    """Every frame through FlameStage and the rules; returns (last regions, events)."""
    stage, rules = FlameStage(), rules or HazardRules()
    events, regions = [], ()
    for i, frame in enumerate(frames):
        regions = stage.update(frame, 100.0 + i / FPS)
        h, w = frame.shape[:2]
        events += rules.step(Observation(100.0 + i / FPS, w, h, (), regions))
    return regions, events


@pytest.fixture(scope='module')
def road():
    """Frame 10 of bikes.mp4: empty real asphalt."""
    return bikes_frames([10])[10]


def lamp_frames(road, n=100, grow=0.0, seed=1):
    """A steady orange light (a lamp, a sign, orange paint) with sensor noise; grow: pixels
    its radius gains per frame (an exposure drift over warm paint)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        frame = road.copy()
        cv2.circle(frame, (320, 170), int(30 + grow * i), (40, 160, 250), -1)
        noise = rng.integers(-6, 7, frame.shape, dtype=np.int16)
        out.append(np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return out


def test_drawn_flames_become_one_fire_alert():
    """Flickering flames over real road footage for 4 s: one merged region that flickers,
    one fire alert."""
    regions, events = run_stage(flame_frames(100))
    assert len(regions) == 1 and regions[0].flicker >= 0.12 and regions[0].age_s > 3.0
    assert [(e.phase, e.kind) for e in events] == [(NEW, KIND_FIRE)]


@pytest.mark.parametrize('grow', [0.0, 0.3], ids=['steady', 'exposure-drift'])
def test_steady_or_drifting_lights_are_no_fire(road, grow):
    """A lamp-like orange disc, steady or slowly growing one way (exposure), keeps its
    shape in the two-way flicker measure: no fire."""
    regions, events = run_stage(lamp_frames(road, grow=grow))
    assert regions and regions[0].flicker < 0.12
    assert events == []


def test_classifier_can_veto_regions():
    """A plugged-in classifier that says 'no fire' removes every region."""
    frame = flame_frames(1)[0]
    assert fire_regions(frame)
    assert fire_regions(frame, classifier=lambda crop: 0.0) == ()
    kept = fire_regions(frame, classifier=lambda crop: 0.9)
    assert kept and all(r.score == 0.9 for r in kept)
    stage = FlameStage(classifier=lambda crop: 0.0)
    assert all(stage.update(f, i / FPS) == () for i, f in enumerate(flame_frames(5)))


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


def tiny_onnx(path, outputs=1):
    """A real ONNX model built with the onnx package: 1x3x16x16 image -> mean of its red
    channel (sigmoid-free, in 0..1), repeated `outputs` times."""
    pytest.importorskip('onnx', reason='the onnx package (builds the test model) comes with '
                        'the full install only (requirements/full.txt)')
    from onnx import TensorProto, helper, save
    x = helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 3, 16, 16])
    y = helper.make_tensor_value_info('p', TensorProto.FLOAT, [1, outputs])
    starts = helper.make_tensor('s', TensorProto.INT64, [1], [0])
    ends = helper.make_tensor('e', TensorProto.INT64, [1], [1])
    axes = helper.make_tensor('a', TensorProto.INT64, [1], [1])
    shape = helper.make_tensor('shape', TensorProto.INT64, [2], [1, 1])
    reps = helper.make_tensor('reps', TensorProto.INT64, [2], [1, outputs])
    nodes = [
        helper.make_node('Slice', ['image', 's', 'e', 'a'], ['red']),
        helper.make_node('ReduceMean', ['red'], ['m'], keepdims=0),
        helper.make_node('Reshape', ['m', 'shape'], ['m2']),
        helper.make_node('Tile', ['m2', 'reps'], ['p']),
    ]
    graph = helper.make_graph(nodes, 'fire', [x], [y], [starts, ends, axes, shape, reps])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    save(model, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_onnx_fire_model_loads_and_scores(tmp_path):
    """A checked ONNX model scores crops: a red crop high, a blue one low."""
    path = tmp_path / 'fire.onnx'
    digest = tiny_onnx(path)
    clf = OnnxFireClassifier(str(path), digest)
    red = np.zeros((20, 20, 3), np.uint8)
    red[:, :, 2] = 255
    blue = np.zeros((20, 20, 3), np.uint8)
    blue[:, :, 0] = 255
    assert clf(red) == pytest.approx(1.0) and clf(blue) == pytest.approx(0.0)
    assert clf(np.zeros((0, 0, 3), np.uint8)) == 0.0


@pytest.mark.parametrize('case,field', [
    ('no-sha', 'fire_model_sha256'),      # the file must be pinned
    ('wrong-sha', 'fire_model_sha256'),   # another file under that name
    ('missing', 'fire_model'),            # no such file
    ('not-onnx', 'fire_model'),           # garbage bytes
    ('three-outputs', 'fire_model'),      # answers 3 values: not a probability
])
def test_onnx_fire_model_refusals_name_the_parameter(tmp_path, case, field):
    """Each unusable fire model is refused with the parameter's name first."""
    path = tmp_path / 'fire.onnx'
    digest = tiny_onnx(path, outputs=3 if case == 'three-outputs' else 1)
    if case == 'not-onnx':
        path.write_bytes(b'not a model')
        digest = hashlib.sha256(b'not a model').hexdigest()
    args = {'no-sha': (str(path), ''), 'wrong-sha': (str(path), '0' * 64),
            'missing': (str(tmp_path / 'nowhere.onnx'), digest)}.get(case, (str(path), digest))
    with pytest.raises(ValueError) as err:
        OnnxFireClassifier(*args)
    assert str(err.value).startswith(field + ':')


def test_global_motion_tells_a_moving_camera_from_a_moving_car(road):
    """Shifting the whole real frame reads as camera motion; a car-sized patch moving over
    a still frame (its box blanked) does not."""
    gm = GlobalMotion()
    shifts = [gm.update(np.roll(road, 4 * i, axis=1), i / FPS) for i in range(5)]
    assert min(shifts[1:]) > 0.1
    gm = GlobalMotion()
    patch = road[150:230, 50:170].copy()
    moving = []
    for i in range(5):
        frame = road.copy()
        x = 100 + 20 * i
        frame[150:230, x:x + 120] = patch
        moving.append(gm.update(frame, i / FPS, [(x, 150, x + 120, 230)]))
    assert max(moving) < 0.05
