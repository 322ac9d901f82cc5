import json
import math
import os

import pytest

from v2x_recorder.archive import (
    ArchivedClip,
    ArchivePolicy,
    plan_archive_deletions,
    scan_archive,
)
from v2x_recorder.clips import (
    BadClipRequest,
    ClipRequest,
    Piece,
    clip_stem,
    concat_list,
    due_at,
    first_start_after,
    gap_strings,
    is_due,
    make_request,
    make_sidecar,
    plan_clip,
    result_from_sidecar,
    with_shortfall,
)
from v2x_recorder.pending import PendingStore, read_windows
from v2x_recorder.segments import Segment

T0 = 1_700_000_100.0


def seg(start, duration=10.0):
    return Segment(f'/rec/seg_{int(start)}.mp4', float(start), 100, duration)


def test_zero_pre_and_post_take_the_defaults():
    """pre_s/post_s of 0 mean the node's defaults; an empty clip_id gets manual-<T0>."""
    req = make_request('', T0, 0, 0, default_pre_s=30, default_post_s=20)
    assert (req.pre_s, req.post_s, req.clip_id) == (30, 20, f'manual-{int(T0)}')
    assert (req.lo, req.hi) == (T0 - 30, T0 + 20)


@pytest.mark.parametrize('t0, pre, post', [
    (0.0, 10, 10),             # t0 unset
    (-5.0, 10, 10),            # before the epoch
    (math.nan, 10, 10),        # not a number
    (math.inf, 10, 10),        # infinite
    (T0, -1, 10),              # negative pre-window
    (T0, 10, math.nan),        # NaN post-window
    (T0, 1e9, 10),             # absurdly long window
])
def test_unusable_requests_are_refused(t0, pre, post):
    """Requests a caller got wrong raise BadClipRequest, never a clip."""
    with pytest.raises(BadClipRequest):
        make_request('x', t0, pre, post)


def test_t0_far_in_the_future_is_refused():
    """A T0 hours after the request (a wrong clock) would wait forever: refused."""
    with pytest.raises(BadClipRequest, match='future'):
        make_request('x', T0 + 7200, 10, 10, requested_at=T0)
    assert make_request('x', T0 + 60, 10, 10, requested_at=T0).t0 == T0 + 60


@pytest.mark.parametrize('record', [
    None,                                             # not a dict
    {'clip_id': 'a'},                                 # fields missing
    {'clip_id': 'a', 't0': 'soon', 'pre_s': 1, 'post_s': 1},  # t0 not a number
])
def test_malformed_persisted_records_are_refused(record):
    """from_json rejects what it cannot trust."""
    with pytest.raises(BadClipRequest):
        ClipRequest.from_json(record)


def test_clip_name_is_safe_for_any_clip_id():
    """Slashes, spaces and dots in a clip_id cannot leave the archive directory."""
    assert clip_stem(T0, 'rsu_01-7') == f'accident_{int(T0)}_rsu_01-7'
    assert '/' not in clip_stem(T0, '../../etc/passwd x')
    assert clip_stem(T0, '...') == f'accident_{int(T0)}_clip'


def test_plan_trims_first_and_last_segment():
    """inpoint on the first covering segment, outpoint on the last, gaps listed."""
    req = make_request('c', T0, pre_s=15, post_s=12)  # window [T0-15, T0+12]
    ring = [seg(T0 - 30), seg(T0 - 20), seg(T0 - 10), seg(T0 + 5), seg(T0 + 15)]
    plan = plan_clip(req, ring)
    assert [p.start for p in plan.pieces] == [T0 - 20, T0 - 10, T0 + 5]
    assert plan.pieces[0].inpoint == pytest.approx(5.0)
    assert plan.pieces[-1].outpoint == pytest.approx(7.0)
    assert plan.gaps == ((T0, T0 + 5),)
    assert plan.expected_duration_s == pytest.approx(5 + 10 + 7)


def test_window_inside_one_segment_trims_it_both_ways():
    """A short window inside one segment gives one piece with inpoint and outpoint."""
    plan = plan_clip(make_request('c', T0, 2, 3), [seg(T0 - 5)])
    (piece,) = plan.pieces
    assert (piece.inpoint, piece.outpoint) == (pytest.approx(3.0), pytest.approx(8.0))
    assert plan.gaps == ()


def test_concat_list_quotes_paths_and_writes_points():
    """The ffconcat script escapes quotes and carries inpoint/outpoint lines."""
    text = concat_list([Piece("/rec/it's.mp4", 0, 10, inpoint=2.5),
                        Piece('/rec/b.mp4', 10, 10, outpoint=4.0)])
    assert text.splitlines() == [
        'ffconcat version 1.0', "file '/rec/it'\\''s.mp4'", 'inpoint 2.500',
        "file '/rec/b.mp4'", 'outpoint 4.000']


def test_due_only_once_the_recorder_moved_past_the_window():
    """The cut waits for a segment begun at or after T0 + post (settled), not for a clock."""
    req = make_request('c', T0, 10, 10)  # ends T0 + 10
    assert not is_due(req, T0 + 12.5, settle_s=1.0, next_start=None)
    assert not is_due(req, T0 + 40.0, settle_s=1.0, next_start=T0 + 9)  # still writing
    assert not is_due(req, T0 + 12.5, settle_s=1.0, next_start=T0 + 12)
    assert is_due(req, T0 + 13.0, settle_s=1.0, next_start=T0 + 12)
    assert is_due(req, T0 + 10.0, settle_s=0.0, next_start=T0 + 10)
    # 1 s segments with a settle of 1 s: the segment past the window, not the newest one
    starts = [T0 + 8, T0 + 9, T0 + 10, T0 + 11, T0 + 12]
    assert first_start_after(starts, req.hi) == T0 + 10
    assert is_due(req, T0 + 12.5, settle_s=1.0, next_start=first_start_after(starts, req.hi))
    assert first_start_after(starts, T0 + 13) is None


def test_due_at_the_deadline_without_footage():
    """With no segment past the window (recorder down), the deadline cuts what exists."""
    req = make_request('c', T0, 10, 10)
    assert not is_due(req, T0 + 69.9, deadline_s=60.0)
    assert is_due(req, T0 + 70.0, deadline_s=60.0)
    assert is_due(req, T0 + 70.0, deadline_s=60.0, next_start=T0)
    assert due_at(req, 60.0) == T0 + 70.0


@pytest.mark.parametrize('ring, gaps', [
    # contiguous 1 s segments named to the whole second: nothing missing
    ([seg(T0 - 3, 1), seg(T0 - 2, 1), seg(T0 - 1, 1), seg(T0, 1), seg(T0 + 1, 1.5),
      seg(T0 + 2, 1)], []),
    # the recorder started late: the head is missing
    ([seg(T0 - 1, 1), seg(T0, 1), seg(T0 + 1, 1), seg(T0 + 2, 1)], [(T0 - 2, T0 - 1)]),
    # the newest segment was flushed only to T0 + 1.5 and nothing came after: the tail
    ([seg(T0 - 3, 2), seg(T0 - 1, 2), seg(T0 + 1, 0.5)], [(T0 + 1.5, T0 + 2)]),
    # the same, but the next segment began (name T0 + 2): the footage runs on (jitter)
    ([seg(T0 - 3, 2), seg(T0 - 1, 2), seg(T0 + 1, 0.9), seg(T0 + 2, None)], []),
    # a restart left a hole in the middle
    ([seg(T0 - 3, 2), seg(T0 + 1, 2)], [(T0 - 1, T0 + 1)]),
    # an unreadable segment holds no footage
    ([seg(T0 - 3, 2), seg(T0 - 1, None), seg(T0 + 1, 2)], [(T0 - 1, T0 + 1)]),
    # a head shorter than a few frames is no gap
    ([seg(T0 - 1.8, 4)], []),
])
def test_every_missing_span_is_a_gap(ring, gaps):
    """Head, middle and tail without footage are gaps; naming jitter is not."""
    plan = plan_clip(make_request('c', T0, 2, 2), ring)
    assert list(plan.gaps) == gaps


def test_a_clip_shorter_than_its_plan_lists_the_shortfall():
    """A cut clip that came out shorter than planned lists the missing end as a gap."""
    plan = plan_clip(make_request('c', T0, 2, 2), [seg(T0 - 3, 10)])
    assert with_shortfall(plan, 3.8) is plan  # within tolerance
    short = with_shortfall(plan, 3.0)
    assert short.gaps == (pytest.approx((T0 + 1.0, T0 + 2.0)),)


def test_sidecar_and_result_say_the_same():
    """The ClipResult built from a sidecar (what Clip carries) matches the sidecar."""
    req = make_request('rsu-3', T0, 5, 5, alert={'kind': 'collision'})
    plan = plan_clip(req, [seg(T0 - 10), seg(T0 + 2)])
    side = make_sidecar(plan, '/a/x.mp4', 'ab' * 32, 9.5, '', created_at=T0 + 20)
    json.dumps(side)  # plain JSON values only
    res = result_from_sidecar(side)
    assert (res.clip_id, res.t0, res.path, res.sha256) == ('rsu-3', T0, '/a/x.mp4', 'ab' * 32)
    assert list(res.gaps) == side['gaps'] == gap_strings(plan.gaps)
    assert side['alert'] == {'kind': 'collision'}
    assert [s['file'] for s in side['segments']] == [p.path for p in plan.pieces]


def test_gap_strings_are_iso_ranges():
    """Gaps read 'start..end' in ISO 8601 UTC."""
    assert gap_strings([(0.0, 1.5)]) == ['1970-01-01T00:00:00.000Z..1970-01-01T00:00:01.500Z']


def test_pending_store_round_trip_and_windows(tmp_path):
    """Saved requests load back equal; the recorder reads their windows."""
    store = PendingStore(str(tmp_path))
    reqs = [make_request('a', T0, 5, 6, alert={'road': 'A'}), make_request('b', T0 + 1, 1, 2)]
    store.save(reqs)
    loaded, problems = store.load()
    assert loaded == reqs and problems == []
    assert read_windows(str(tmp_path)) == [(T0 - 5, T0 + 6), (T0 + 1 - 1, T0 + 1 + 2)]


def test_corrupt_pending_file_is_set_aside(tmp_path):
    """A truncated state file is moved aside and reported, not fatal."""
    (tmp_path / 'pending_clips.json').write_text('{"pending": [')
    loaded, problems = PendingStore(str(tmp_path)).load()
    assert loaded == [] and len(problems) == 1
    assert (tmp_path / 'pending_clips.json.corrupt').exists()
    assert read_windows(str(tmp_path)) == []


def clip(stem, size, mtime, origin='cli'):
    return ArchivedClip(stem, (f'/a/{stem}.mp4',), size, mtime, origin)


@pytest.mark.parametrize('policy, expected', [
    (ArchivePolicy(max_count=2, max_bytes=0, max_age_s=0), ['c1', 'c2']),
    (ArchivePolicy(max_count=0, max_bytes=250, max_age_s=0), ['c1', 'c2']),
    (ArchivePolicy(max_count=0, max_bytes=0, max_age_s=250), ['c1', 'c2']),
    (ArchivePolicy(max_count=0, max_bytes=0, max_age_s=0), []),
])
def test_archive_retention_oldest_first(policy, expected):
    """Count, byte and age caps each delete the oldest (hand-made) clips first."""
    clips = [clip(f'c{i}', 100, 1000.0 + i * 100) for i in range(1, 5)]  # c1 oldest
    doomed = plan_archive_deletions(clips, now=1500.0, policy=policy)
    assert [c.stem for c, _ in doomed] == expected


@pytest.mark.parametrize('policy, expected', [
    # the caps take every hand-made clip, however new, before the oldest evidence
    (ArchivePolicy(max_count=2, max_bytes=0, max_age_s=0), ['m2', 'm4']),
    (ArchivePolicy(max_count=1, max_bytes=0, max_age_s=0), ['m2', 'm4', 'a1']),
    (ArchivePolicy(max_count=0, max_bytes=150, max_age_s=0), ['m2', 'm4', 'a1']),
    # the age limit spares evidence unless alert_max_age_s is set
    (ArchivePolicy(max_count=0, max_bytes=0, max_age_s=250), ['m2']),
    (ArchivePolicy(max_count=0, max_bytes=0, max_age_s=250, alert_max_age_s=250),
     ['a1', 'm2']),
])
def test_archive_keeps_evidence_of_alerts_longest(policy, expected):
    """Clips of real alerts go last; test clips made by hand never push one out."""
    clips = [clip('a1', 100, 1100.0, 'alert'), clip('m2', 100, 1200.0, 'cli'),
             clip('a3', 100, 1300.0, 'alert'), clip('m4', 100, 1400.0, 'service')]
    doomed = plan_archive_deletions(clips, now=1500.0, policy=policy)
    assert [c.stem for c, _ in doomed] == expected


def test_archive_never_deletes_protected_clips():
    """A clip being written (protected) survives even when it is the oldest."""
    clips = [clip('c1', 100, 1.0), clip('c2', 100, 2.0), clip('c3', 100, 3.0)]
    doomed = plan_archive_deletions(clips, 10.0, ArchivePolicy(1, 0, 0), protected={'c1'})
    assert [c.stem for c, _ in doomed] == ['c2', 'c3']


def test_archive_reads_the_origin_from_the_sidecar(tmp_path):
    """scan_archive tells evidence (origin alert, or unreadable) from hand-made clips."""
    (tmp_path / 'accident_1_a.json').write_text('{"origin": "alert"}')
    (tmp_path / 'accident_2_b.json').write_text('{"origin": "cli"}')
    (tmp_path / 'accident_3_c.json').write_text('{garbled')
    (tmp_path / 'accident_4_d.mp4').write_bytes(b'')
    found = {c.stem: c.is_evidence for c in scan_archive(str(tmp_path))}
    assert found == {'accident_1_a': True, 'accident_2_b': False, 'accident_3_c': True,
                     'accident_4_d': True}


def test_scan_archive_pairs_video_and_sidecar_and_skips_parts(tmp_path):
    """A clip is its .mp4 and .json; .part files and strangers are not listed."""
    for name in ('accident_1_a.mp4', 'accident_1_a.json', 'accident_2_b.json',
                 'accident_3_c.mp4.part', 'readme.txt'):
        (tmp_path / name).write_bytes(b'12345')
    os.utime(tmp_path / 'accident_2_b.json', (1, 1))
    found = scan_archive(str(tmp_path))
    assert [(c.stem, len(c.files), c.size) for c in found] == [
        ('accident_2_b', 1, 5), ('accident_1_a', 2, 10)]
