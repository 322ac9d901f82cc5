import os
import shutil

import pytest

from v2x_recorder import mp4
from v2x_recorder.ffmpeg_tools import (
    FfmpegNotFound,
    FfmpegTools,
    RecordOptions,
    find_ffmpeg,
    probe_duration,
    record_command,
    segment_duration,
    source_kind,
)


def test_box_reader_agrees_with_ffprobe(footage, tools):
    """Durations read from MP4 boxes match ffprobe's for the recorder's segments."""
    for path in footage:
        assert mp4.duration_s(path) == pytest.approx(probe_duration(path, tools), abs=0.01)
        assert mp4.duration_s(path) == pytest.approx(2.0, abs=0.01)


def test_segment_cut_short_keeps_its_complete_fragments(footage, tmp_path):
    """A segment truncated mid-write (a crash) still yields its complete fragments."""
    data = open(footage[0], 'rb').read()
    cut = tmp_path / 'seg_1.mp4'
    cut.write_bytes(data[: int(len(data) * 0.75)])
    assert 0.5 <= mp4.duration_s(str(cut)) < 2.0


@pytest.mark.parametrize('content', [
    b'',                                         # empty file (ffmpeg just opened it)
    b'\x00\x00\x00\x1cftypisom' + b'\x00' * 20,  # only the file type box
    os.urandom(4096),                            # noise
    b'\x00\x00\x00\x00moov',                     # size 0 box with nothing inside
    b'\xff\xff\xff\xffmoov' + b'\x00' * 16,      # box claiming more than the file
])
def test_unreadable_files_raise_mp4_error(tmp_path, content):
    """Files without complete media raise Mp4Error, never something else."""
    path = tmp_path / 'seg_1.mp4'
    path.write_bytes(content)
    with pytest.raises(mp4.Mp4Error):
        mp4.duration_s(str(path))


def test_durations_without_ffprobe_use_ffmpeg(footage, tools):
    """With only ffmpeg (imageio-ffmpeg ships no ffprobe), durations still read."""
    only_ffmpeg = FfmpegTools(tools.ffmpeg, None)
    assert probe_duration(footage[1], only_ffmpeg) == pytest.approx(2.0, abs=0.05)


def test_unreadable_segment_duration_is_none(tmp_path, tools):
    """A file ffmpeg cannot read either gives None (the clipper treats it as missing)."""
    bad = tmp_path / 'seg_2.mp4'
    bad.write_bytes(b'not a video')
    assert segment_duration(str(bad), tools) is None
    assert segment_duration(str(tmp_path / 'gone.mp4'), tools) is None


def test_system_ffmpeg_is_found_first(tools):
    """The system's ffmpeg on PATH comes before the imageio-ffmpeg wheel's."""
    system = shutil.which('ffmpeg')
    if system is None:
        pytest.skip('no system ffmpeg on PATH here')
    assert find_ffmpeg().ffmpeg == system


def test_wheel_ffmpeg_without_ffprobe_when_path_has_none(tmp_path):
    """With nothing on PATH, imageio-ffmpeg's binary is used, with no ffprobe."""
    found = find_ffmpeg(path=str(tmp_path))
    assert 'imageio_ffmpeg' in found.ffmpeg and found.ffprobe is None
    assert os.access(found.ffmpeg, os.X_OK)


def test_no_ffmpeg_at_all_says_how_to_get_one(tmp_path):
    """Without any ffmpeg the error tells the operator what to install or set."""
    with pytest.raises(FfmpegNotFound, match='apt-get install ffmpeg'):
        find_ffmpeg(path=str(tmp_path), use_imageio=False)
    with pytest.raises(FfmpegNotFound, match='ffmpeg_path'):
        find_ffmpeg(explicit=str(tmp_path / 'nope'))


@pytest.mark.parametrize('source, kind', [
    ('testsrc', 'testsrc'),
    ('rtsp://cam/stream1', 'stream'),
    ('RTSP://CAM/1', 'stream'),
    ('/dev/video0', 'device'),
    ('/data/bikes.mp4', 'file'),
])
def test_source_kinds(source, kind):
    """Sources are told apart by their shape."""
    assert source_kind(source) == kind


def test_file_source_plays_in_real_time_and_loops():
    """A file behaves like a live camera: -re, -stream_loop -1, encoded, epoch names."""
    cmd = record_command('ffmpeg', RecordOptions('/data/bikes.mp4', '/rec', 2.0))
    joined = ' '.join(cmd)
    assert '-re -stream_loop -1 -i /data/bikes.mp4' in joined
    assert 'libx264' in cmd and '-strftime' in cmd and cmd[-1] == '/rec/seg_%s.mp4'


def test_rtsp_is_stream_copied():
    """RTSP is recorded with stream copy over TCP (no re-encode)."""
    cmd = record_command('ffmpeg', RecordOptions('rtsp://cam/1', '/rec', 10.0))
    assert cmd[cmd.index('-c:v') + 1] == 'copy'
    assert cmd[cmd.index('-rtsp_transport') + 1] == 'tcp'


def test_local_stream_is_a_second_output_that_may_fail():
    """With local_stream, one encode feeds the segments and an MPEG-TS stream (onfail=ignore)."""
    cmd = record_command('ffmpeg', RecordOptions('/dev/video0', '/rec', 10.0,
                                                 local_stream='udp://127.0.0.1:5600'))
    assert cmd[cmd.index('-f', cmd.index('-c:v')) + 1] == 'tee'
    assert 'onfail=ignore' in cmd[-1] and cmd[-1].endswith('udp://127.0.0.1:5600')
    assert cmd.count('libx264') == 1


def test_sigkilled_recording_keeps_its_complete_fragments(tools, tmp_path):
    """ffmpeg SIGKILLed mid-segment: the segment keeps all its footage but the last
    keyframe interval (fragments are written as soon as complete)."""
    import signal
    import subprocess
    import time
    opts = RecordOptions(source='testsrc', recording_dir=str(tmp_path), segment_s=30.0)
    started = time.time()
    proc = subprocess.Popen(record_command(tools.ffmpeg, opts))

    def recorded() -> float:
        names = os.listdir(tmp_path)
        try:
            return mp4.duration_s(str(tmp_path / names[0])) if names else 0.0
        except mp4.Mp4Error:
            return 0.0
    end = time.monotonic() + 30
    while recorded() < 2.0 and time.monotonic() < end:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (name,) = os.listdir(tmp_path)
    assert recorded() >= 2.0
    assert probe_duration(str(tmp_path / name), tools) >= 2.0
    # its wall-clock anchor (producer reference times) survives too: after ffmpeg started,
    # before its name's second ended (the name is the second it opened the file)
    _, anchor = mp4.timing(str(tmp_path / name))
    assert started <= anchor <= int(name[4:-4]) + 1.0
