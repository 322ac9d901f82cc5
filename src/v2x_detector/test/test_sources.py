"""Frame sources: capture time = start + PTS for files, newest frame wins, udp:// streams."""

import shutil
import time

from detector_media import udp_sender
import pytest

from v2x_detector import assets
from v2x_detector.sources import Frame, LatestSlot, VideoSource, is_stream, segment_start


def collect(source: VideoSource, timeout: float = 60.0) -> list[Frame]:
    frames = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        frame = source.slot.get(0.2)
        if frame is not None:
            frames.append(frame)
        elif source.finished.is_set():
            break
    return frames


def test_file_times_are_segment_start_plus_pts(tmp_path):
    """A recorder segment seg_<epoch>.mp4: frame i is at epoch + i/25, every frame kept."""
    path = tmp_path / 'seg_1700000000.mp4'
    shutil.copy(assets.sample_path('bikes.mp4'), path)
    source = VideoSource(str(path), LatestSlot(lossless=True), realtime=False).start()
    frames = collect(source)
    source.stop()
    assert len(frames) == 250 and source.slot.dropped == 0
    assert [f.index for f in frames] == list(range(250))
    for f in (frames[0], frames[100], frames[249]):
        assert f.t == pytest.approx(1700000000 + f.index / 25, abs=1e-3)


def test_start_time_parameter_and_loop():
    """A given start time is used; a looped file keeps its times rising."""
    source = VideoSource(assets.sample_path('bikes.mp4'), LatestSlot(lossless=True),
                         realtime=False, loop=True, start_time=5000.0).start()
    frames = []
    while len(frames) < 300:
        frame = source.slot.get(5.0)
        assert frame is not None
        frames.append(frame)
    source.stop()
    assert frames[0].t == pytest.approx(5000.0)
    assert all(b.t > a.t for a, b in zip(frames, frames[1:], strict=False))


def test_missing_file_finishes_with_an_error(tmp_path):
    """A file that cannot be opened ends the source with a reason."""
    source = VideoSource(str(tmp_path / 'none.mp4'), LatestSlot()).start()
    assert source.finished.wait(10)
    assert source.errors == 1 and 'cannot open' in source.last_error


def test_latest_slot_drops_old_frames():
    """Unconsumed frames are replaced by newer ones and counted as dropped."""
    slot = LatestSlot()
    for i in range(5):
        slot.put(Frame(None, float(i), i))
    assert slot.get(0.1).index == 4 and slot.dropped == 4
    assert slot.get(0.05) is None
    slot.close()
    assert not slot.put(Frame(None, 9.0, 9))


def test_realtime_file_under_load_gives_the_newest_frame():
    """Read at its frame rate by a slow consumer, a file's frames are skipped, not queued."""
    source = VideoSource(assets.sample_path('bikes.mp4'), LatestSlot(), realtime=True).start()
    got = []
    while len(got) < 4:
        frame = source.slot.get(5.0)
        assert frame is not None
        got.append(frame)
        time.sleep(0.3)  # a consumer slower than 25 fps
    source.stop()
    assert source.slot.dropped > 0
    assert all(b.index - a.index > 1 for a, b in zip(got[1:], got[2:], strict=False))


@pytest.mark.parametrize('url,stream', [('udp://127.0.0.1:5000', True), ('rtsp://cam/1', True),
                                        ('file:///tmp/a.mp4', False), ('/tmp/a.mp4', False)])
def test_is_stream(url, stream):
    """URLs other than file:// are live streams."""
    assert is_stream(url) is stream


def test_segment_start():
    """Only recorder segment names carry a start time."""
    assert segment_start('/var/rec/seg_1700000000.mp4') == 1700000000.0
    assert segment_start('/tmp/bikes.mp4') is None


def test_udp_stream_frames_have_wall_clock_times(mcast):
    """A udp:// URL (OpenCV's FFmpeg backend) delivers frames stamped with the wall clock."""
    sender = udp_sender(mcast['port'], assets.sample_path('bikes.mp4'))
    try:
        source = VideoSource(f'udp://127.0.0.1:{mcast["port"]}', LatestSlot(),
                             reconnect_s=0.5).start()
        frames = []
        end = time.monotonic() + 60
        while len(frames) < 10 and time.monotonic() < end:
            frame = source.slot.get(0.5)
            if frame is not None:
                frames.append(frame)
        source.stop()
    finally:
        sender.terminate()
        sender.wait(10)
    assert len(frames) == 10
    assert frames[0].image.shape == (272, 640, 3)
    assert all(abs(f.t - time.time()) < 60 for f in frames)
    assert all(b.t > a.t for a, b in zip(frames, frames[1:], strict=False))


def test_unreachable_camera_url_names_cause_and_fix():
    """A refused rtsp:// URL: the error says what to check, without the password."""
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]  # nobody listens: refused at once
    source = VideoSource(f'rtsp://cam:secret@127.0.0.1:{port}/live', LatestSlot(),
                         reconnect_s=0.1).start()
    end = time.monotonic() + 20
    while not source.errors and time.monotonic() < end:
        time.sleep(0.05)
    source.stop()
    assert 'check the URL' in source.last_error and 'secret' not in source.last_error
    assert 'rtsp://***@127.0.0.1' in source.last_error
