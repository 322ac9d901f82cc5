"""Fixtures of v2x_recorder's tests: real ffmpeg, real segments, real recorder processes."""

import os
import signal
import subprocess
import sys
import time

import pytest

from v2x_bridge import v2x_keygen
from v2x_recorder import clips, ffmpeg_tools, segments
from v2x_testing import random_domain_id

# The recorder's encode, as fast as ffmpeg goes (no -re), for footage "recorded" in the past.
_FAST_SEGMENTS = (
    '-hide_banner -nostdin -loglevel error -y -f lavfi -i testsrc=size=320x240:rate=10 '
    '-c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 10 -sc_threshold 0 '
    '-force_key_frames expr:gte(t,n_forced*1) -f segment -segment_time {seg} '
    '-segment_format mp4 -segment_format_options {movflags} -reset_timestamps 1 '
    '-t {total}').split()


@pytest.fixture(scope='session')
def tools():
    """The ffmpeg (and ffprobe) the tests run."""
    return ffmpeg_tools.find_ffmpeg()


def write_segments(tools, directory: str, start: int, count: int, seg_s: int = 1) -> list[str]:
    """count segments of seg_s seconds named seg_<start + i*seg_s>.mp4, made at full speed."""
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, '.gen')
    os.makedirs(tmp, exist_ok=True)
    args = [a.format(seg=seg_s, total=count * seg_s, movflags=ffmpeg_tools.SEGMENT_MOVFLAGS)
            for a in _FAST_SEGMENTS]
    subprocess.run([tools.ffmpeg, *args, os.path.join(tmp, 'part_%04d.mp4')], check=True,
                   timeout=120)
    paths = []
    for i, name in enumerate(sorted(os.listdir(tmp))):
        path = os.path.join(directory, segments.segment_name(start + i * seg_s))
        os.replace(os.path.join(tmp, name), path)
        paths.append(path)
    os.rmdir(tmp)
    return paths


@pytest.fixture
def make_segments(tools):
    """write_segments bound to the session's ffmpeg."""
    return lambda *a, **kw: write_segments(tools, *a, **kw)


@pytest.fixture(scope='session')
def footage(tools, tmp_path_factory):
    """Three real 2 s fragmented segments from ffmpeg (made at full speed), shared."""
    directory = str(tmp_path_factory.mktemp('footage'))
    return write_segments(tools, directory, start=1_700_000_000, count=3, seg_s=2)


class RecorderProcess:
    """segment_recorder as a real process on its own domain, recording testsrc."""

    def __init__(self, root: str, **overrides):
        self.recording_dir = os.path.join(root, 'rec')
        self.state_dir = os.path.join(root, 'state')
        settings = {'recording_dir': self.recording_dir, 'state_dir': self.state_dir,
                    'segment_s': 1.0, 'pre_window_s': 60.0, 'margin_s': 10.0, **overrides}
        ros_args = []
        for key, value in settings.items():
            ros_args += ['-p', f'{key}:={value}']
        env = {**os.environ, 'ROS_DOMAIN_ID': str(random_domain_id())}
        self.log = open(os.path.join(root, 'recorder.log'), 'w')  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'v2x_recorder.segment_recorder', '--ros-args', *ros_args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def scan(self) -> list[segments.Segment]:
        return segments.scan(self.recording_dir)

    def wait_segments(self, count: int, timeout: float = 30.0) -> list[segments.Segment]:
        """Wait until count segments exist (event-driven polling of the directory)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = self.scan()
            if len(found) >= count:
                return found
            assert self.proc.poll() is None, 'segment_recorder exited'
            time.sleep(0.1)
        raise AssertionError(f'fewer than {count} segments after {timeout} s')

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def recorder_process():
    """RecorderProcess, for a test that starts its own (and stops it)."""
    return RecorderProcess


@pytest.fixture(scope='module')
def live_recording(tmp_path_factory):
    """One segment_recorder (testsrc, 1 s segments) shared by a module's tests, with more
    than 3 s recorded (a 2 s pre-window from now holds footage: the segments' wall-clock
    anchors show a window that starts before the recording as a gap)."""
    rec = RecorderProcess(str(tmp_path_factory.mktemp('live')))
    rec.wait_segments(5)
    yield rec
    rec.stop()


def _make_key(directory, name='evidence'):
    """An Ed25519 evidence key made by the project's own v2x_keygen (PEM, mode 0600)."""
    assert v2x_keygen.main(['--station-id', name, '--out-dir', str(directory)],
                           env={}) == 0
    return str(directory / f'{name}.key')


def _alert_request(sequence, t0, origin='00000000000000aa'):
    return clips.make_request(f'rsu_test-{sequence}', t0, 1.0, 1.0, origin='alert',
                              alert={'source_id': 'rsu_test', 'origin': origin,
                                     'sequence': sequence, 'kind': 'collision'})


@pytest.fixture(scope='session')
def make_key():
    """make_key(directory, name='evidence') -> the path of a new Ed25519 evidence key."""
    return _make_key


@pytest.fixture(scope='session')
def alert_request():
    """alert_request(sequence, t0) -> a ClipRequest of an alert of rsu_test (1 s + 1 s)."""
    return _alert_request
