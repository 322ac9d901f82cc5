"""Cutting clips from real segments: what exists is cut, everything missing is a gap."""

import contextlib
import os

import pytest

from v2x_recorder import cutter, mp4
from v2x_recorder.clips import make_request

START = 1_700_000_000


@pytest.fixture
def ring(make_segments, tmp_path):
    """Ten real 1 s segments, seg_<START>..seg_<START + 9>."""
    directory = str(tmp_path / 'ring')
    make_segments(directory, START, count=10, seg_s=1)
    return directory


def test_window_longer_than_the_footage_is_cut_with_the_rest_as_gaps(ring, tools, tmp_path):
    """A 65 s window over 10 s of footage (the byte cap kept no more): clip plus two gaps."""
    request = make_request('long', START + 5, pre_s=30, post_s=35)
    result = cutter.cut_clip(request, ring, str(tmp_path), tools)
    assert result.error == '' and result.path
    assert result.duration_s == pytest.approx(10.0, abs=0.3)
    assert result.sidecar['gaps_s'] == [[START - 25, START], [pytest.approx(START + 10, abs=0.2),
                                                             START + 40]]
    assert mp4.duration_s(result.path) == pytest.approx(result.duration_s, abs=0.05)


def test_segments_deleted_during_the_cut_are_still_read(ring, tools, tmp_path):
    """The ring deleting planned segments (byte cap) while ffmpeg runs does not fail the cut."""
    copy = tmp_path / 'rec'
    copy.mkdir()
    for name in os.listdir(ring):
        os.link(os.path.join(ring, name), copy / name)
    request = make_request('deleted', START + 5, pre_s=3, post_s=3)
    with contextlib.ExitStack() as stack:
        plan, fds = cutter._plan_and_open(request, str(copy), tools, stack)
        for piece in plan.pieces:  # the ring strikes between planning and ffmpeg
            os.unlink(piece.path)
        out = str(tmp_path / 'clip.mp4')
        assert cutter.run_concat(plan, out, tools, fds) == ''
    assert mp4.duration_s(out) == pytest.approx(6.0, abs=1.1)
    assert plan.gaps == ()


def test_missing_recording_dir_is_named_not_called_no_footage(tools, tmp_path):
    """A recording dir that does not exist is reported as such, with the fix."""
    request = make_request('nodir', START, pre_s=1, post_s=1)
    result = cutter.cut_clip(request, str(tmp_path / 'nowhere'), str(tmp_path / 'a'), tools)
    assert result.path == '' and 'does not exist' in result.error
    assert 'recording_dir' in result.error and 'no footage' not in result.error
    empty = tmp_path / 'empty'
    empty.mkdir()
    result = cutter.cut_clip(request, str(empty), str(tmp_path / 'a'), tools)
    assert 'no footage' in result.error
