"""hazard_detector_eval end to end: the launch's parameters, the real model and pipeline
over the demo scene (bikes.mp4's street, then a collision) and short dev clips of
../shared/eval (skipped where absent), scored as issue 23 says; a cached run replays the
model's tracks and gives the same results."""

import importlib.util
import io
import json
import os
from pathlib import Path

import pytest

from v2x_common.params import ParameterError
from v2x_detector import hazard_detector_eval as tool
from v2x_detector.scenes import street_then_collision

WS = Path(__file__).resolve().parents[3]
DEV = WS.parent / 'shared' / 'eval' / 'dev'
#: the backend rsu.launch.xml gives the node (ultralytics), else the light install's
BACKEND = 'ultralytics' if importlib.util.find_spec('ultralytics') else 'onnx'
DEMO = 'demo_street_then_collision.mp4'
DEMO_IMPACT_S = 11.2  # 250 frames of street, then 30 frames of approach at 25 fps
DEV_CLIPS = ('col_08_intersection_gray_overlay.mp4', 'blk_02_underpass_parked_twowheelers.mp4')
#: per backend and clip: (each label found?, (kind, verdict) of each new event) with the
#: rules of issue 23's work: col_08's crash is still missed; blk_02's painted wall (five
#: false fires before) and its parked scooters (too short for a blockage) raise nothing.
EXPECTED = {
    'ultralytics': {
        'col_08_intersection_gray_overlay.mp4': ((False,), ()),
        'blk_02_underpass_parked_twowheelers.mp4': ((False,), ()),
    },
    # the light install's backend (no ultralytics): its model sees the scooters of blk_02
    # differently and one false collision at 3.6 s remains (measured the same on Kilted and
    # Jazzy: hazard_detector_eval DIR detector_backend:=onnx)
    'onnx': {
        'col_08_intersection_gray_overlay.mp4': ((False,), ()),
        'blk_02_underpass_parked_twowheelers.mp4': ((False,), (('collision', 'false'),)),
    },
}


def run_tool(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = tool.main([str(a) for a in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    """A directory: the demo scene, the short dev clips (links) where ../shared/eval is,
    and a labels file in MANIFEST.tsv's columns."""
    base = tmp_path_factory.mktemp('clips')
    street_then_collision(str(base / DEMO))
    rows = ['file\tkind\tt_start_s\tnotes', f'{DEMO}\tcollision\t{DEMO_IMPACT_S}\tdemo']
    if DEV.is_dir():
        manifest = (DEV / 'MANIFEST.tsv').read_text().splitlines()
        for name in DEV_CLIPS:
            os.symlink(DEV / name, base / name)
            rows += [line for line in manifest if line.startswith(name + '\t')]
    (base / 'MANIFEST.tsv').write_text('\n'.join(rows) + '\n')
    return base


@pytest.fixture(scope='module')
def report(clips, tmp_path_factory):
    """One uncached run over every clip (its tracks kept in a cache), as JSON."""
    cache = tmp_path_factory.mktemp('cache')
    code, out, err = run_tool(clips, f'detector_backend:={BACKEND}', '--json', '--cache', cache)
    assert code == 0, err
    return json.loads(out), cache


def clip(report_doc, name):
    return next(c for c in report_doc['clips'] if c['file'] == name)


def test_demo_collision_is_found_and_the_street_raises_nothing(report):
    """The demo scene: its one collision found within 3 s, nothing on bikes.mp4's street."""
    demo = clip(report[0], DEMO)
    assert [lab['detected'] for lab in demo['labels']] == [True]
    assert 0.0 <= demo['labels'][0]['delay_s'] < 3.0
    assert [(e['kind'], e['verdict']) for e in demo['events']] == [('collision', 'hit')]
    x, y = demo['events'][0]['position']  # the bottom centre of the crash's box
    assert 0.0 <= x <= 1.0 and 0.5 <= y <= 1.0  # the scene's road is in its lower half
    assert demo['false_alarms'] == 0


def test_report_has_the_node_settings_per_kind_figures_and_speed(report):
    """The report names the launch's backend and rate, sums per kind and times the run;
    the model saw about detection_rate_hz frames a second of video, not every frame."""
    doc = report[0]
    assert doc['backend'] == BACKEND and doc['detection_rate_hz'] == 8.0
    assert doc['kinds']['collision']['detected'] >= 1
    run = doc['run']
    assert run['cached_clips'] == 0 and run['realtime_factor'] > 0
    assert run['frames'] > run['model_frames']
    assert abs(run['model_frames'] - 8.0 * run['footage_s']) <= 2 * run['clips']
    lines = tool.report_lines(doc)
    assert any(line.startswith('collision') for line in lines)
    assert any('real-time factor' in line for line in lines)


@pytest.mark.skipif(not DEV.is_dir(), reason=f'{DEV} is absent (the dev clips of '
                    'issue 23 sit beside the repository in CI, not on every machine)')
@pytest.mark.parametrize('name', DEV_CLIPS)
def test_dev_clip_verdicts(report, name):
    """Each short dev clip gives the verdicts the current rules give with this backend."""
    got = clip(report[0], name)
    verdicts = (tuple(lab['detected'] for lab in got['labels']),
                tuple((e['kind'], e['verdict']) for e in got['events']))
    assert verdicts == EXPECTED[BACKEND][name]


def test_cached_run_replays_the_same_results(report, clips):
    """A second run from the cache gives exactly the uncached run's events and verdicts."""
    doc, cache = report
    code, out, err = run_tool(clips, f'detector_backend:={BACKEND}', '--json', '--cache', cache,
                              '--only', DEMO)
    assert code == 0, err
    again = json.loads(out)
    assert again['run']['cached_clips'] == 1
    strip = ('wall_s', 'cached')
    assert {k: v for k, v in clip(again, DEMO).items() if k not in strip} == \
        {k: v for k, v in clip(doc, DEMO).items() if k not in strip}


def test_settings_follow_the_launch_layering(tmp_path):
    """The launch's files and values, then site columns, then -p: as the node gets them."""
    import rclpy
    launch = tool.find_launch(str(WS / 'launch' / 'rsu.launch.xml'))
    context = rclpy.Context()
    rclpy.init(args=[], context=context)
    try:
        ros_args = tool.node_arguments(launch, {}, tmp_path)
        s = tool.settings_for(ros_args, {}, tmp_path, context)
        assert s.backend == 'ultralytics'  # rsu.launch.xml's detector_backend over the yaml
        assert s.rules.lane_polygon == (0.0, 0.55, 1.0, 0.55, 1.0, 1.0, 0.0, 1.0)
        s = tool.settings_for(ros_args, {'lane_polygon': [0.0, 0.7, 1.0, 0.7, 1.0, 1.0],
                                         'detection_rate_hz': 5.0}, tmp_path, context)
        assert s.rules.lane_polygon == (0.0, 0.7, 1.0, 0.7, 1.0, 1.0)
        assert s.detection_rate_hz == 5.0
        with pytest.raises(ParameterError, match='detection_rate_hz'):
            tool.settings_for(ros_args, {'detection_rate_hz': -1.0}, tmp_path, context)
    finally:
        rclpy.try_shutdown(context=context)


@pytest.mark.parametrize('argv, problem', [
    (['-p', 'conf:=2.0'], "parameter 'conf'"),                 # the node's own check
    (['--labels', '/nonexistent.tsv'], '/nonexistent.tsv'),    # labels file missing
    (['--only', 'no_such_clip'], 'no clips to run'),
])
def test_bad_input_exits_2_naming_it(clips, argv, problem):
    """A bad parameter, labels file or selection stops the tool with status 2, named."""
    code, _, err = run_tool(clips, *argv)
    assert code == 2 and problem in err
