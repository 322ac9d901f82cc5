"""The whole node, model included, under real rclpy: alerts, images, sources, parameters."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import cv2
from detector_media import collision_frames, flame_frames, udp_sender, write_video
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger
import yaml

from v2x_common import qos
from v2x_common.params import ParameterError
from v2x_common.timeutil import to_seconds
from v2x_detector import assets
from v2x_detector.hazard_detector import HazardDetector, parameter_defaults
from v2x_detector.sources import read_frames
from v2x_msgs.msg import Alert
from v2x_protocol.io.state import SequenceStore

WS = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
YAML = os.path.join(WS, 'launch', 'config', 'hazard_detector.yaml')
EPOCH = 1_700_000_000


def overrides(**values):
    return [Parameter(k, value=v) for k, v in values.items()]


def start(ros, **values):
    """The node under test in the harness's context, with parameter overrides."""
    return ros.add(HazardDetector(context=ros.context, parameter_overrides=overrides(**values)))


def listen(ros):
    """Collect alert_out and detections/image messages."""
    got = {'alerts': [], 'images': []}
    node = ros.node('listener')
    node.create_subscription(Alert, 'v2x/alert_out', got['alerts'].append, qos.ALERT_OUT)
    node.create_subscription(Image, 'v2x/detections/image', got['images'].append,
                             qos.SENSOR_DATA)
    return got


@pytest.fixture(scope='module')
def scenario_dir(tmp_path_factory):
    """The collision scenario as a recorder segment (seg_<epoch>.mp4): real cars, one crash."""
    d = tmp_path_factory.mktemp('scenario')
    write_video(str(d / f'seg_{EPOCH}.mp4'), collision_frames(hold=60, cleared=40))
    return d


#: lifecycle thresholds that let the short scenario show an update and a cancellation
LIFECYCLE = dict(clear_s=1.0, severity_large_area=0.5, severity_long_s=1.5,
                 update_interval_s=0.5)


def run_file(ros, path, tmp_path, **values):
    got = listen(ros)
    node = start(ros, source=str(path), realtime=False, state_dir=str(tmp_path / 'state'),
                 **values)
    assert ros.spin_until(node.finished.is_set, timeout=150)
    ros.spin_for(0.5)  # deliveries of the last frame
    return node, got


@pytest.mark.parametrize('backend', ['onnx', 'ultralytics'])
def test_scenario_gives_exactly_one_collision_alert(ros, scenario_dir, tmp_path, backend):
    """Two real cars crash, stand, are towed: one collision alert, updated, then cancelled."""
    node, got = run_file(ros, scenario_dir / f'seg_{EPOCH}.mp4', tmp_path, backend=backend,
                         source_id='rsu_detector_test', json_dir=str(tmp_path / 'json'),
                         latitude=48.1, longitude=11.5, road='r7', **LIFECYCLE)
    alerts = got['alerts']
    assert {(a.source_id, a.sequence, a.kind) for a in alerts} == {
        ('rsu_detector_test', 1, Alert.KIND_COLLISION)}
    first, last = alerts[0], alerts[-1]
    assert not first.cancelled and first.clip_requested
    assert first.severity == Alert.SEVERITY_MEDIUM
    updates = [a for a in alerts[1:-1] if not a.cancelled]
    assert [a.severity for a in updates] == [Alert.SEVERITY_HIGH]    # it lasted severity_long_s
    assert last.cancelled and len(alerts) == 3                        # the road is clear again
    stamps = [to_seconds(a.header.stamp) for a in alerts]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    assert {to_seconds(a.detection_time) for a in alerts} == {to_seconds(first.detection_time)}
    assert (first.latitude, first.longitude, first.road) == (48.1, 11.5, 'r7')
    t_detect = to_seconds(first.detection_time)
    # the cars touch at 0.72 s into the file; the model's boxes are a little larger than
    # the cars, so they touch a few frames earlier (detection_time: the first contact)
    assert EPOCH + 0.5 <= t_detect <= EPOCH + 2.0
    assert to_seconds(first.header.stamp) >= t_detect
    assert node.counts['frames'] == 118 and node.counts['alerts'] == 1
    assert (node.counts['updates'], node.counts['cancels']) == (1, 1)
    images = got['images']
    assert images and (images[0].encoding, images[0].width, images[0].height) == ('bgr8', 640, 272)
    assert EPOCH <= to_seconds(images[-1].header.stamp) < EPOCH + 5
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / 'json').iterdir())]
    assert sorted((r['type'], r['event_id'], r['phase']) for r in records) == [
        ('collision', 'rsu_detector_test-1', phase) for phase in ('cancel', 'new', 'update')]
    assert SequenceStore(tmp_path / 'state').peek('rsu_detector_test') == 1


def test_restart_continues_the_sequence(ros, scenario_dir, tmp_path):
    """With 41 sequences used before a restart, the next alert is number 42."""
    (tmp_path / 'state').mkdir()
    (tmp_path / 'state' / SequenceStore.FILE).write_text('{"rsu_detector_01": 41}')
    _, got = run_file(ros, scenario_dir / f'seg_{EPOCH}.mp4', tmp_path, backend='onnx',
                      **LIFECYCLE)
    assert {a.sequence for a in got['alerts']} == {42}


def test_flames_give_one_fire_alert(ros, tmp_path):
    """Flickering flames drawn on real road footage for 4 s (longer than fire_persist_s): the
    node raises one fire alert with a clip."""
    path = write_video(str(tmp_path / f'seg_{EPOCH}.mp4'), flame_frames(100))
    _, got = run_file(ros, path, tmp_path, backend='onnx')
    assert [(a.sequence, a.kind, a.cancelled) for a in got['alerts']] == [
        (1, Alert.KIND_FIRE, False)]
    assert got['alerts'][0].clip_requested


def test_cars_standing_in_the_lane_are_blockages(ros, tmp_path):
    """The scenario's cars stopping apart in the lane for blockage_time_s: one blockage
    (one obstruction, however many objects make it) whose box covers both cars."""
    path = write_video(str(tmp_path / f'seg_{EPOCH}.mp4'), collision_frames(gap=40, hold=70))
    _, got = run_file(ros, path, tmp_path, backend='onnx', blockage_time_s=1.0,
                      lane_polygon=[0.0, 0.4, 1.0, 0.4, 1.0, 1.0, 0.0, 1.0])
    alerts = got['alerts']
    assert {a.kind for a in alerts} == {Alert.KIND_BLOCKAGE}
    assert {a.sequence for a in alerts} == {1}
    assert not any(a.clip_requested or a.cancelled for a in alerts)


def test_bikes_video_raises_nothing(ros, tmp_path):
    """All 250 frames of bikes.mp4 through the node: annotated images, zero alerts."""
    node, got = run_file(ros, assets.sample_path('bikes.mp4'), tmp_path, backend='onnx')
    assert node.counts['frames'] == 250
    assert got['alerts'] == [] and len(got['images']) >= 200


def image_msg(img: np.ndarray, stamp: float, pad: int = 8) -> Image:
    """An rgb8 Image with padded rows."""
    h, w = img.shape[:2]
    rows = np.concatenate([img[:, :, ::-1].reshape(h, -1), np.zeros((h, pad), np.uint8)], axis=1)
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), 0
    msg.height, msg.width, msg.encoding, msg.step = h, w, 'rgb8', rows.shape[1]
    msg.data = rows.tobytes()
    return msg


@pytest.mark.needs_ultralytics  # bus.jpg comes with ultralytics
def test_image_topic_input_and_bad_images(ros, tmp_path):
    """Frames on image_raw (rgb8, padded) come back annotated, same stamp; junk is counted."""
    got = listen(ros)
    health = []
    ros.node('monitor').create_subscription(DiagnosticArray, '/diagnostics', health.append,
                                            qos.DIAGNOSTICS)
    node = start(ros, source='', backend='onnx', state_dir=str(tmp_path))
    pub = ros.node('camera').create_publisher(Image, 'image_raw', qos.SENSOR_DATA)
    bus = cv2.imread(assets.sample_path('bus.jpg'))
    bad = image_msg(bus, EPOCH)
    bad.step = 10  # shorter than a row
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0, timeout=20)
    for _ in range(3):
        pub.publish(bad)
    assert ros.spin_until(lambda: node.counts['bad_images'] >= 1, timeout=20)
    pub.publish(image_msg(bus, EPOCH + 5))
    assert ros.spin_until(lambda: got['images'], timeout=30)
    out = got['images'][0]
    assert to_seconds(out.header.stamp) == EPOCH + 5
    assert (out.width, out.height) == (bus.shape[1], bus.shape[0])
    assert node.counts['frames'] == 1 and got['alerts'] == []

    def reported():
        values = [{kv.key: kv.value for kv in s.values} for a in health for s in a.status
                  if s.name.endswith('hazard_detector')]
        return values and values[-1].get('frames') == '1' and values[-1]['bad_images'] == '3'
    assert ros.spin_until(reported, timeout=10)


def test_udp_stream_source(ros, tmp_path, mcast):
    """A udp:// URL (the recorder's local stream) feeds the node; frames carry wall-clock times."""
    sender = udp_sender(mcast['port'], assets.sample_path('bikes.mp4'))
    try:
        got = listen(ros)
        start(ros, source=f'udp://127.0.0.1:{mcast["port"]}', backend='onnx',
              state_dir=str(tmp_path))
        assert ros.spin_until(lambda: len(got['images']) >= 5, timeout=90)
    finally:
        sender.terminate()
        sender.wait(10)
    assert abs(to_seconds(got['images'][-1].header.stamp) - time.time()) < 30


@pytest.mark.parametrize('values,name', [
    ({'backend': 'tensorflow'}, 'backend'),
    ({'imgsz': 320, 'backend': 'onnx'}, 'imgsz'),    # the pinned ONNX takes 640 only
    ({'imgsz': 100}, 'imgsz'),
    ({'conf': 1.5}, 'conf'),
    ({'lane_polygon': [0.0, 0.5, 1.0]}, 'lane_polygon'),
    ({'json_dir': '/opt/v2x/events'}, 'json_dir'),
    ({'model': '/nonexistent/model.onnx', 'backend': 'onnx'}, 'model'),
    ({'model': 'junk', 'backend': 'onnx'}, 'model'),          # a file onnxruntime rejects
    pytest.param({'model': 'junk', 'backend': 'ultralytics'}, 'model',  # loaded at start
                 marks=pytest.mark.needs_ultralytics),
    ({'model_sha256': '00' * 32}, 'model_sha256'),
    ({'classes': ['unicorn'], 'backend': 'onnx'}, 'classes'),
    ({'fire_classifier': 'nope'}, 'fire_classifier'),
    ({'source': '/nonexistent/video.mp4', 'backend': 'onnx'}, 'source'),
    ({'source': 'sample:nothing.mp4', 'backend': 'onnx'}, 'source'),
    ({'collision_stop_speed': 2.0}, 'collision_stop_speed'),
])
def test_bad_parameter_is_named(ros, tmp_path, values, name):
    """Each unusable parameter stops start-up with an error naming it."""
    values.setdefault('state_dir', str(tmp_path))
    if values.get('model') == 'junk':
        values['model'] = str(tmp_path / 'junk.onnx')
        (tmp_path / 'junk.onnx').write_bytes(b'\0not a model')
    with pytest.raises(ParameterError) as err:
        HazardDetector(context=ros.context, parameter_overrides=overrides(**values))
    assert err.value.name == name


def test_cli_exits_nonzero_on_a_bad_parameter(tmp_path):
    """The executable exits with status 2 and a message naming the parameter."""
    result = subprocess.run(
        [shutil.which('hazard_detector') or 'hazard_detector', '--ros-args',
         '-p', 'backend:=tensorflow', '-p', f'state_dir:={tmp_path}'],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "hazard_detector: parameter 'backend': " in result.stderr


def test_cli_runs_a_file_to_its_end(tmp_path):
    """hazard_detector with exit_at_end reads a short file and exits 0."""
    frames = read_frames(assets.sample_path('bikes.mp4'), 20)
    path = write_video(str(tmp_path / 'short.mp4'), frames)
    result = subprocess.run(
        [sys.executable, '-m', 'v2x_detector.hazard_detector', '--ros-args',
         '-p', f'source:={path}', '-p', 'backend:=onnx', '-p', 'realtime:=false',
         '-p', 'exit_at_end:=true', '-p', f'state_dir:={tmp_path}'],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_cli_ends_quietly_on_ctrl_c(tmp_path, ros):
    """SIGINT while frames flow: exit status 0 and no traceback."""
    got = listen(ros)
    proc = subprocess.Popen(
        [sys.executable, '-m', 'v2x_detector.hazard_detector', '--ros-args',
         '-p', 'source:=sample:bikes.mp4', '-p', 'loop:=true', '-p', 'backend:=onnx',
         '-p', f'state_dir:={tmp_path}'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert ros.spin_until(lambda: len(got['images']) >= 3, timeout=90)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert 'Traceback' not in err


def test_yaml_names_every_declared_parameter_and_starts(ros, tmp_path):
    """launch/config/hazard_detector.yaml holds exactly the declared parameters, valid ones."""
    with open(YAML, encoding='utf-8') as f:
        text = f.read()
    values = yaml.safe_load(text)['/**']['ros__parameters']
    # a params file cannot hold an empty list: such a parameter is named in a comment
    commented = set(re.findall(r'^ +# (\w+): \[', text, re.M))
    assert all(parameter_defaults()[name] == [] for name in commented), commented
    assert set(values) | commented == set(parameter_defaults())
    assert not set(values) & commented
    node = HazardDetector(context=ros.context, parameter_overrides=overrides(
        **dict(values, source='', state_dir=str(tmp_path))))
    builtin = {'use_sim_time', 'start_type_description_service'}  # rclpy's own (Jazzy+)
    assert set(node._parameters) - builtin == set(values) | commented
    assert node.settings.rules.lane_polygon == tuple(values['lane_polygon'])
    node.destroy_node()


def hazard_event(phase, stamp):
    from v2x_detector.rules import HazardEvent
    return HazardEvent(incident=7, phase=phase, kind=Alert.KIND_COLLISION,
                       severity=Alert.SEVERITY_HIGH, suggest=Alert.SUGGEST_SLOW_DOWN,
                       confidence=0.9, detection_time=stamp, stamp=stamp,
                       box=(10.0, 10.0, 50.0, 50.0), track_ids=(1, 2), clip_requested=True)


def test_unstorable_sequence_holds_the_alert_back_and_health_says_so(ros, tmp_path):
    """A full disk under state_dir: the alert waits (ERROR), then goes out with a new number."""
    got = listen(ros)
    node = start(ros, source='', backend='onnx', state_dir=str(tmp_path / 'state'))
    # The sequence file's name taken by a non-empty directory: storing fails, even for root.
    blocker = tmp_path / 'state' / os.path.basename(node.sequences.path)
    if blocker.exists():
        blocker.unlink()
    blocker.mkdir()
    (blocker / 'x').write_text('')
    node._publish_event(hazard_event('new', EPOCH))
    level, message, values = node._health()
    assert level == 2 and 'sequence' in message and values['detector_state'] == 'running'
    assert node.counts['alerts'] == 0
    shutil.rmtree(blocker)  # the disk recovers: the next version of the incident goes out
    node._publish_event(hazard_event('update', EPOCH + 1))
    assert ros.spin_until(lambda: got['alerts'], timeout=20)
    assert got['alerts'][0].sequence == 1 and node.counts['alerts'] == 1


def test_dead_worker_is_error_and_ends_the_node(ros, tmp_path):
    """A worker thread that dies is reported (ERROR, why) and sets a non-zero exit code."""
    node = start(ros, source='', backend='onnx', state_dir=str(tmp_path / 'state'))

    class BrokenSlot:  # a fault injected where the worker takes its frames
        dropped = 0

        def get(self, timeout):
            raise RuntimeError('injected fault')

        def close(self):
            pass

    node.slot = BrokenSlot()
    assert ros.spin_until(lambda: node._worker.dead, timeout=20)
    level, message, values = node._health()
    assert level == 2 and 'worker died' in message and 'injected fault' in message
    assert node.exit_code == 1 and values['detector_state'] == 'dead'


@pytest.mark.needs_ultralytics  # bus.jpg comes with ultralytics
def test_camera_health_in_diagnostics_and_the_retake_service(ros, tmp_path):
    """A camera that sends nothing reads silent (ERROR, value camera=silent); black frames
    on image_raw read dark once they last camera_hold_s; ~/retake_reference answers."""
    health = []
    ros.node('monitor').create_subscription(DiagnosticArray, '/diagnostics', health.append,
                                            qos.DIAGNOSTICS)
    node = start(ros, source='', backend='onnx', state_dir=str(tmp_path),
                 camera_silent_s=1.5, camera_hold_s=0.5, publish_image=False)

    def camera():
        values = [({kv.key: kv.value for kv in s.values}, s.message) for a in health
                  for s in a.status if s.name.endswith('hazard_detector')]
        return values[-1] if values else ({}, '')
    assert ros.spin_until(lambda: camera()[0].get('camera') == 'silent', timeout=20)
    assert camera()[1].startswith('camera silent: no frame yet')
    pub = ros.node('camera').create_publisher(Image, 'image_raw', qos.SENSOR_DATA)
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0, timeout=20)
    black = cv2.imread(assets.sample_path('bus.jpg')) // 20
    for i in range(3):  # one at a time: the newest frame wins the worker's slot
        pub.publish(image_msg(black, EPOCH + i))
        assert ros.spin_until(lambda n=i: node.camera.frames > n, timeout=30)
    level, message, values = node._health()
    assert (level, values['camera']) == (2, 'dark') and message.startswith('camera dark')
    client = ros.node('operator').create_client(Trigger, 'hazard_detector/retake_reference')
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    assert ros.spin_until(future.done, timeout=10) and future.result().success


def test_health_forgets_input_errors_outside_its_window():
    """A bad frame an hour ago no longer makes the detector WARN (recent window)."""
    from v2x_common.recent import RecentEvents
    now = [1000.0]
    errors = RecentEvents(window_s=60.0, clock=lambda: now[0])
    errors.add('bad frame', n=3)
    assert errors.count() == 3 and errors.total == 3
    now[0] += 61.0
    assert errors.count() == 0 and errors.total == 3 and errors.last == 'bad frame'
