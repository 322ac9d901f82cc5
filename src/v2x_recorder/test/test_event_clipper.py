import hashlib
import io
import json
import os
import socket
import subprocess
import time

import pytest
from rclpy.parameter import Parameter
import yaml

from v2x_common import qos
from v2x_common.diagnostics import WARN
from v2x_common.exit_codes import ExitCode
from v2x_common.timeutil import fill_stamp, to_seconds
from v2x_msgs.msg import Alert, Clip
from v2x_msgs.srv import RequestClip
from v2x_recorder import mp4, v2x_make_clip
from v2x_recorder.event_clipper import PARAMETERS, EventClipper
from v2x_recorder.ffmpeg_tools import probe_duration
from v2x_recorder.pending import PendingStore, read_windows

CONFIG = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'launch', 'config',
                      'event_clipper.yaml')


def clipper_params(recording, tmp_path, **overrides):
    values = {'recording_dir': recording, 'archive_dir': str(tmp_path / 'archive'),
              'state_dir': str(tmp_path / 'state'), 'segment_s': 1.0, 'pre_window_s': 2.0,
              'post_window_s': 3.0, 'settle_s': 0.5, 'check_period_s': 0.2, **overrides}
    return [Parameter(k, value=v) for k, v in values.items()]


def start_clipper(ros, recording, tmp_path, **overrides):
    """An EventClipper in this process, spun by the harness."""
    return ros.add(EventClipper(context=ros.context,
                                parameter_overrides=clipper_params(recording, tmp_path,
                                                                   **overrides)))


def listen(ros):
    """A helper node: an Alert publisher, a Clip inbox and a RequestClip client."""
    node = ros.node('clip_test_helper')
    inbox = []
    node.create_subscription(Clip, 'v2x/clip', lambda m: inbox.append((time.time(), m)),
                             qos.CLIP)
    pub = node.create_publisher(Alert, 'v2x/alert_sent', qos.ALERT_SENT_WRITER)
    client = node.create_client(RequestClip, 'v2x/request_clip')
    return node, inbox, pub, client


def alert(t0, sequence, clip_requested=True, cancelled=False):
    msg = Alert()
    msg.source_id = 'rsu_test'
    msg.sequence = sequence
    msg.kind = Alert.KIND_COLLISION
    msg.severity = Alert.SEVERITY_HIGH
    fill_stamp(msg.detection_time, t0)
    msg.header.stamp = msg.detection_time
    msg.latitude = msg.longitude = float('nan')
    msg.clip_requested = clip_requested
    msg.cancelled = cancelled
    msg.clip_id = f'rsu_test-{sequence}' if clip_requested else ''
    return msg


def call(ros, client, t0, clip_id, pre_s=0.0, post_s=0.0):
    assert ros.spin_until(client.service_is_ready, timeout=15)
    req = RequestClip.Request()
    fill_stamp(req.t0, t0)
    req.clip_id, req.pre_s, req.post_s = clip_id, pre_s, post_s
    future = client.call_async(req)
    assert ros.spin_until(future.done, timeout=15)
    return future.result()


def sidecar_of(msg_path_or_dir, clip_id):
    names = [n for n in os.listdir(msg_path_or_dir) if n.endswith(f'_{clip_id}.json')]
    assert len(names) == 1, names
    with open(os.path.join(msg_path_or_dir, names[0])) as f:
        return json.load(f)


def test_clip_waits_for_post_window_and_matches_its_sidecar(ros, live_recording, tmp_path,
                                                            tools):
    """Clips of two overlapping alerts come after their post-windows, valid and checksummed."""
    start_clipper(ros, live_recording.recording_dir, tmp_path)
    _, inbox, pub, _ = listen(ros)
    t0 = time.time()
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0, timeout=15)
    pub.publish(alert(t0, 1))
    pub.publish(alert(t0 + 1.0, 2))
    assert ros.spin_until(lambda: len(inbox) >= 2, timeout=40)
    archive = str(tmp_path / 'archive')
    used = []
    for received_at, msg in inbox:
        t0_msg = to_seconds(msg.t0)
        assert received_at >= t0_msg + 3.0 + 1.0  # post-window plus one segment
        assert msg.error == '' and list(msg.gaps) == []
        # 5 s window; stream copy may start up to one keyframe (1 s) early
        assert 4.5 <= msg.duration_s <= 6.5
        assert probe_duration(msg.path, tools) == pytest.approx(msg.duration_s, abs=0.1)
        with open(msg.path, 'rb') as f:
            assert hashlib.sha256(f.read()).hexdigest() == msg.sha256
        side = sidecar_of(archive, msg.clip_id)
        assert (side['path'], side['sha256'], side['gaps'], side['error']) == (
            msg.path, msg.sha256, list(msg.gaps), msg.error)
        assert side['duration_s'] == pytest.approx(msg.duration_s, abs=1e-3)
        assert side['alert']['kind'] == 'collision' and side['t0'] == pytest.approx(t0_msg)
        used.append({s['file'] for s in side['segments']})
    assert used[0] & used[1], 'overlapping events reuse the same segments'
    assert PendingStore(str(tmp_path / 'state')).load()[0] == []


def test_pending_clip_survives_a_restart(ros, live_recording, tmp_path):
    """A clip requested before a restart of event_clipper is still cut and published."""
    first = EventClipper(context=ros.context,
                         parameter_overrides=clipper_params(live_recording.recording_dir,
                                                            tmp_path))
    ros.executor.add_node(first)
    _, inbox, _, client = listen(ros)
    t0 = time.time()
    response = call(ros, client, t0, 'restart-1', pre_s=1.0, post_s=3.0)
    assert response.accepted and response.path.endswith('_restart-1.mp4')
    ros.executor.remove_node(first)
    first.destroy_node()
    assert [r.clip_id for r in PendingStore(str(tmp_path / 'state')).load()[0]] == ['restart-1']
    start_clipper(ros, live_recording.recording_dir, tmp_path)
    assert ros.spin_until(lambda: inbox, timeout=40)
    msg = inbox[0][1]
    assert (msg.clip_id, msg.path, msg.error) == ('restart-1', response.path, '')
    assert 3.5 <= mp4.duration_s(msg.path) <= 5.5


def test_no_footage_gives_sidecar_and_error_and_archive_stays_capped(ros, tmp_path):
    """No footage: no video, a sidecar and a Clip with the error; the archive cap holds."""
    archive = tmp_path / 'archive'
    archive.mkdir()
    recent = time.time() - 100  # within archive_max_age_s: the count cap decides
    for i in range(3):  # older clips, oldest first
        for ext in ('.mp4', '.json'):
            path = archive / f'accident_{1000 + i}_old-{i}{ext}'
            path.write_text('{"origin": "cli"}')  # hand-made: these go first
            os.utime(path, (recent + i, recent + i))
    (archive / 'accident_9_writing.mp4.part').write_bytes(b'x')
    (tmp_path / 'empty_rec').mkdir()
    node = start_clipper(ros, str(tmp_path / 'empty_rec'), tmp_path, archive_max_count=2)
    _, inbox, _, client = listen(ros)
    response = call(ros, client, time.time() - 3600, 'nothing')
    assert response.accepted
    assert ros.spin_until(lambda: inbox, timeout=20)
    msg = inbox[0][1]
    assert msg.path == '' and msg.sha256 == '' and 'no footage' in msg.error
    assert len(msg.gaps) == 1
    side = sidecar_of(str(archive), 'nothing')
    assert side['error'] == msg.error and side['segments'] == []
    assert not any(n.endswith('_nothing.mp4') for n in os.listdir(archive))
    level, _, values = node._health()
    assert (values['no_footage'], values['failed'], values['pending']) == (1, 0, 0)
    stems = {n.split('.')[0] for n in os.listdir(archive) if n.startswith('accident_')}
    assert stems == {'accident_1002_old-2', f'accident_{int(to_seconds(msg.t0))}_nothing',
                     'accident_9_writing'}


def test_only_alerts_asking_for_a_clip_are_clipped(ros, tmp_path):
    """Without clip_every_alert, alerts lacking clip_requested (or cancelled) are skipped."""
    start_clipper(ros, str(tmp_path / 'rec'), tmp_path)
    _, inbox, pub, _ = listen(ros)
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0, timeout=15)
    old = time.time() - 600  # past: cut at once (no footage)
    pub.publish(alert(old, 1, clip_requested=False))
    pub.publish(alert(old, 2, cancelled=True))
    pub.publish(alert(old, 3))
    assert ros.spin_until(lambda: inbox, timeout=20)
    ros.spin_for(1.0)
    assert [m.clip_id for _, m in inbox] == ['rsu_test-3']


def test_clip_every_alert_clips_alerts_without_the_flag(ros, tmp_path):
    """With clip_every_alert, an alert without clip_requested gets '<source>-<seq>'."""
    start_clipper(ros, str(tmp_path / 'rec'), tmp_path, clip_every_alert=True)
    _, inbox, pub, _ = listen(ros)
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0, timeout=15)
    pub.publish(alert(time.time() - 600, 7, clip_requested=False))
    assert ros.spin_until(lambda: inbox, timeout=20)
    assert inbox[0][1].clip_id == 'rsu_test-7'


@pytest.mark.parametrize('t0, pre_s, message', [
    (0.0, 0.0, 't0'),              # t0 unset
    (1_700_000_000.0, -5.0, 'pre_s'),  # negative window
])
def test_service_refuses_bad_requests(ros, tmp_path, t0, pre_s, message):
    """A request without t0 or with a negative window is refused with the reason."""
    start_clipper(ros, str(tmp_path / 'rec'), tmp_path)
    _, _, _, client = listen(ros)
    response = call(ros, client, t0, 'bad', pre_s=pre_s)
    assert not response.accepted and message in response.message


def test_make_clip_cuts_directly_without_the_node(tmp_path, make_segments):
    """v2x_make_clip with no node cuts from the recording dir (past T0: no wait)."""
    start = int(time.time()) - 100
    make_segments(str(tmp_path / 'rec'), start, count=8, seg_s=1)
    out = io.StringIO()
    argv = [str(start + 4), '--pre', '2', '--post', '2', '--direct', '--clip-id', 'cli',
            '--recording-dir', str(tmp_path / 'rec'), '--archive-dir', str(tmp_path / 'a')]
    assert v2x_make_clip.main(argv, out=out) == ExitCode.OK
    side = json.loads(out.getvalue())
    assert side['duration_s'] == pytest.approx(4.0, abs=1.0) and side['gaps'] == []
    assert os.path.basename(side['path']) == f'accident_{start + 4}_cli.mp4'
    argv[0] = str(start - 1000)
    assert v2x_make_clip.main(argv, out=io.StringIO()) == ExitCode.NO_FOOTAGE


def test_make_clip_waiting_directly_holds_the_footage(tmp_path, make_segments):
    """While direct mode waits for the post-window, its window is pending for the recorder."""
    now = int(time.time())
    make_segments(str(tmp_path / 'rec'), now - 6, count=6, seg_s=1)
    state = str(tmp_path / 'state')
    held = []
    argv = [str(now - 1), '--pre', '3', '--post', '2', '--direct',
            '--recording-dir', str(tmp_path / 'rec'), '--archive-dir', str(tmp_path / 'a'),
            '--state-dir', state]

    def sleep(seconds):  # meanwhile the recorder moves on past the window
        held.extend(read_windows(state))
        (tmp_path / 'rec' / f'seg_{now + 1}.mp4').write_bytes(b'')
        time.sleep(seconds)

    status = v2x_make_clip.main(argv, out=io.StringIO(), sleep=sleep)
    assert status == ExitCode.OK
    assert set(held) == {(now - 4, now + 1)}
    assert read_windows(state) == []


def test_make_clip_uses_the_service_when_the_node_runs(ros, live_recording, tmp_path):
    """The docs' `v2x_make_clip now --wait`: the node's own windows, its Clip printed."""
    start_clipper(ros, live_recording.recording_dir, tmp_path)
    proc = subprocess.Popen(
        ['v2x_make_clip', 'now', '--clip-id', 'via-srv', '--wait',
         '--state-dir', str(tmp_path / 'nostate')],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert ros.spin_until(lambda: proc.poll() is not None, timeout=60)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    reply, clip = (json.loads(line) for line in out.strip().splitlines())
    assert reply['accepted'] and reply['path'].startswith(str(tmp_path / 'archive'))
    assert clip['path'] == reply['path'] and clip['error'] == ''
    assert 4.5 <= clip['duration_s'] <= 6.5  # the node's 2 s + 3 s, not 300 s + 300 s
    # Direct mode takes the same defaults from the file the node keeps in its state_dir.
    assert v2x_make_clip.read_clipper_settings(str(tmp_path / 'state')) == {
        'recording_dir': live_recording.recording_dir, 'archive_dir': str(tmp_path / 'archive'),
        'pre_window_s': 2.0, 'post_window_s': 3.0, 'segment_s': 1.0, 'cut_deadline_s': 60.0,
        'evidence_key_file': '', 'station_id': socket.gethostname()}


@pytest.mark.parametrize('arg, name', [
    ('archive_dir:={file}/archive', 'archive_dir'),  # a directory below a file
    ('post_window_s:=-1.0', 'post_window_s'),        # negative window
    ('archive_max_count:=2.5', 'archive_max_count'),  # not a whole number
    ('archive_max_bytes:=.inf', 'archive_max_bytes'),  # an integer given infinity
    ('archive_max_count:=.nan', 'archive_max_count'),  # an integer given nan
    ('clip_every_alert:=3', 'clip_every_alert'),      # wrong type: rclpy refuses it
])
def test_bad_start_up_exits_2_naming_the_parameter(tmp_path, arg, name):
    """A parameter the node cannot run with ends it at once with a message naming it."""
    blocker = tmp_path / 'file'
    blocker.write_text('')
    proc = subprocess.run(
        ['event_clipper', '--ros-args', '-p', f'state_dir:={tmp_path}/state',
         '-p', f'archive_dir:={tmp_path}/archive', '-p', arg.format(file=blocker)],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert name in proc.stderr
    assert 'Traceback' not in proc.stderr, proc.stderr


def test_unsavable_state_refuses_the_clip_and_the_node_runs_on(ros, tmp_path):
    """Pending clips that cannot be persisted: the request is refused, the node lives."""
    node = start_clipper(ros, str(tmp_path / 'rec'), tmp_path)
    _, inbox, pub, client = listen(ros)
    # The pending file's name taken by a directory: replacing it fails, even for root.
    blocked = tmp_path / 'state' / 'pending_clips.json'
    blocked.mkdir()
    response = call(ros, client, time.time() - 600, 'unsaved')
    assert not response.accepted and response.path == ''
    assert 'pending_clips.json' in response.message
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0, timeout=15)
    pub.publish(alert(time.time() - 600, 4))
    assert ros.spin_until(lambda: node.counts['save_failed'] >= 2, timeout=15)
    level, message, _ = node._health()
    assert level == WARN and 'pending clips failed' in message
    assert node.pending == {}
    blocked.rmdir()  # the disk recovers: the same node takes the next request
    response = call(ros, client, time.time() - 600, 'saved')
    assert response.accepted
    assert ros.spin_until(lambda: inbox, timeout=20)
    assert [m.clip_id for _, m in inbox] == ['saved']


def test_config_yaml_names_only_declared_parameters():
    """Every key of launch/config/event_clipper.yaml is a parameter the node declares."""
    with open(CONFIG) as f:
        doc = yaml.safe_load(f)
    assert set(doc['/**']['ros__parameters']) == {p.name for p in PARAMETERS}


def test_bad_persisted_request_and_undeletable_clip_do_not_kill_the_node(ros, tmp_path):
    """A malformed persisted request is set aside with its reason; a clip retention cannot
    delete is logged and counted (WARN); the node runs on and serves the good request."""
    state = tmp_path / 'state'
    state.mkdir()
    good = {'clip_id': 'good', 't0': time.time() - 600, 'pre_s': 1, 'post_s': 1}
    (state / 'pending_clips.json').write_text(json.dumps(
        {'version': 1, 'pending': [{'clip_id': 'bad', 't0': 'soon'}, good]}))
    archive = tmp_path / 'archive'
    (archive / 'accident_1000_stuck.mp4').mkdir(parents=True)  # unlink fails: EISDIR
    (archive / 'accident_1000_stuck.mp4' / 'x').write_text('')
    os.utime(archive / 'accident_1000_stuck.mp4', (1000, 1000))
    node = start_clipper(ros, str(tmp_path / 'rec'), tmp_path, archive_max_count=1)
    _, inbox, _, _ = listen(ros)
    assert ros.spin_until(lambda: inbox, timeout=20)
    assert inbox[0][1].clip_id == 'good'
    (line,) = (state / 'pending_clips.json.rejected').read_text().splitlines()
    rejected = json.loads(line)
    assert rejected['record']['clip_id'] == 'bad' and 'malformed' in rejected['reason']
    assert ros.spin_until(lambda: node.counts['archive_delete_errors'] >= 1, timeout=10)
    level, message, values = node._health()
    assert level == WARN and 'accident_1000_stuck' in message
    assert values['set_aside'] == 1 and node.context.ok()
