import pytest

from v2x_recorder.segments import (
    RingPolicy,
    Segment,
    candidates,
    covering,
    find_gaps,
    parse_segment_name,
    plan_ring_deletions,
    scan,
    with_timing,
)
from v2x_recorder.supervisor import Action, State, Supervisor


def seg(start, duration=10.0, size=100):
    return Segment(f'/r/seg_{start}.mp4', float(start), size, duration)


def test_segment_name_parsed_to_its_epoch():
    """seg_<epoch>.mp4 gives the epoch as float seconds."""
    assert parse_segment_name('seg_1700000000.mp4') == 1700000000.0
    assert parse_segment_name('seg_1700000000.5.mp4') == 1700000000.5


@pytest.mark.parametrize('name', [
    'seg_.mp4',                   # no epoch
    'seg_abc.mp4',                # not a number
    'seg_1700000000.mp4.part',    # a temporary file
    'seg_1700000000.mkv',         # another container
    'accident_1700000000_x.mp4',  # a clip, not a segment
    '../seg_1700000000.mp4',      # a path, not a name
    'seg_-5.mp4',                 # negative epoch
    'seg_1700000000',             # no extension
])
def test_other_names_are_not_segments(name):
    """Names that are not seg_<epoch>.mp4 are ignored."""
    assert parse_segment_name(name) is None


def test_scan_sorts_by_time_and_skips_strangers(tmp_path):
    """scan lists segments oldest first, with sizes, ignoring other files."""
    for name, data in [('seg_20.mp4', b'xx'), ('seg_10.mp4', b'x'), ('notes.txt', b'')]:
        (tmp_path / name).write_bytes(data)
    found = scan(str(tmp_path))
    assert [(s.start, s.size) for s in found] == [(10.0, 1), (20.0, 2)]
    assert scan(str(tmp_path / 'missing')) == []


def test_candidates_by_name_keep_the_segment_running_into_the_window():
    """The last segment before the window and the first after it are candidates; no others."""
    ring = [seg(0), seg(10), seg(20), seg(30), seg(40)]
    assert [s.start for s in candidates(ring, 15, 32)] == [10, 20, 30, 40]
    assert [s.start for s in candidates(ring, 50, 60)] == [40]
    assert [s.start for s in candidates(ring, -30, -10)] == [0]


def test_covering_needs_footage_inside_the_window():
    """A segment that ends before the window or has no readable duration is not used."""
    ring = [seg(0, 5), seg(10, None), seg(20, 10)]
    assert [s.start for s in covering(ring, 6, 25)] == [20]


def test_gaps_inside_and_at_the_edges():
    """Missing footage at the start, between segments and at the end is reported."""
    ring = [seg(10, 10), seg(20, 5), seg(30, 10)]
    assert find_gaps(ring, 0, 50, tolerance=1.5) == [(0, 10), (25, 30), (40, 50)]


def test_naming_jitter_is_not_a_gap():
    """A hole shorter than the tolerance (whole-second names) is no gap."""
    ring = [seg(10, 9.2), seg(20, 10)]
    assert find_gaps(ring, 10, 30, tolerance=1.5) == []


def test_ring_deletes_by_age_but_keeps_pending_footage():
    """Old segments go, except those a pending clip's window overlaps; the newest stays."""
    ring = [seg(t) for t in (0, 10, 20, 30, 40)]
    doomed = plan_ring_deletions(ring, now=45, policy=RingPolicy(keep_s=20, max_bytes=0),
                                 protected=[(12, 15)])
    assert [(s.start, why) for s, why in doomed] == [(0, 'age')]


def test_byte_cap_deletes_oldest_first_even_protected():
    """The byte cap (with room for the growing segment) wins over protection."""
    ring = [seg(t, size=100) for t in (0, 10, 20, 30, 40)]
    doomed = plan_ring_deletions(ring, now=45, policy=RingPolicy(keep_s=1000, max_bytes=350),
                                 protected=[(0, 50)], reserve_bytes=100)
    assert [(s.start, why) for s, why in doomed] == [(0, 'bytes'), (10, 'bytes'), (20, 'bytes')]


def test_the_segment_being_written_is_never_deleted():
    """With one segment, nothing is deleted even over the cap."""
    ring = [seg(0, size=10_000)]
    assert plan_ring_deletions(ring, 1e9, RingPolicy(keep_s=0, max_bytes=1)) == []


def test_supervisor_restarts_with_growing_backoff_and_resets_when_healthy():
    """Exits wait 1, 2, 4 s; two new segments after a start reset the backoff."""
    sup = Supervisor(segment_s=1.0, backoff_s=1.0, backoff_max_s=4.0)
    assert sup.on_tick(0.0, alive=False, newest=None) is Action.START
    assert sup.on_tick(0.5, alive=False, newest=None) is Action.NONE  # died
    assert sup.state is State.WAITING and sup.restart_at == 1.5
    assert sup.on_tick(1.0, alive=False, newest=None) is Action.NONE
    assert sup.on_tick(1.5, alive=False, newest=None) is Action.START
    assert sup.on_tick(1.6, alive=False, newest=None) is Action.NONE
    assert sup.restart_at == pytest.approx(3.6)  # backoff doubled
    assert sup.on_tick(3.6, alive=False, newest=None) is Action.START
    sup.on_tick(4.0, alive=True, newest='seg_1.mp4')
    sup.on_tick(5.0, alive=True, newest='seg_2.mp4')
    assert sup.next_backoff == 1.0
    assert sup.stats.restarts == 2 and sup.stats.exits == 2


def test_supervisor_kills_a_stalled_ffmpeg():
    """No new segment within three segment lengths: KILL, then a restart after backoff."""
    sup = Supervisor(segment_s=2.0, backoff_s=1.0)
    sup.on_tick(0.0, alive=False, newest='seg_0.mp4')
    assert sup.on_tick(5.9, alive=True, newest='seg_0.mp4') is Action.NONE
    assert sup.on_tick(6.1, alive=True, newest='seg_0.mp4') is Action.KILL
    assert sup.stats.stalls == 1
    assert sup.on_tick(7.2, alive=False, newest='seg_0.mp4') is Action.START


def test_full_disk_deletes_oldest_unprotected_footage_first():
    """Short of free space: to keep min_free_bytes free, unprotected footage older than
    recent_s goes; below the floor (room to record), the oldest unprotected, then protected
    segments; the newest (being written) never."""
    ring = [seg(t, size=100) for t in (0, 10, 20, 30, 40)]
    policy = RingPolicy(keep_s=1000, max_bytes=0, recent_s=15)
    # soft target: only unprotected footage that ended before now - recent_s (10, 20)
    doomed = plan_ring_deletions(ring, now=46, policy=policy, protected=[(0, 5)],
                                 free_bytes=50, min_free_bytes=10_000)
    assert [(s.start, why) for s, why in doomed] == [(10, 'disk'), (20, 'disk')]
    # the floor: anything but the newest, unprotected first
    doomed = plan_ring_deletions(ring, now=45, policy=policy, protected=[(0, 5)],
                                 free_bytes=50, floor_bytes=350)
    assert [s.start for s, _ in doomed] == [10, 20, 30]
    doomed = plan_ring_deletions(ring, now=45, policy=policy, protected=[(0, 5)],
                                 free_bytes=0, floor_bytes=10_000)
    assert [s.start for s, _ in doomed] == [0, 10, 20, 30]
    assert plan_ring_deletions(ring, now=45, policy=policy, free_bytes=10_000,
                               min_free_bytes=250, floor_bytes=250) == []


def test_anchored_segments_judge_holes_to_a_quarter_second():
    """Between two anchored segments a 0.5 s hole is missing footage; between segments
    known by their names only it is naming jitter."""
    from dataclasses import replace
    anchored = [Segment('/a', 100.2, duration=9.3, anchored=True),
                Segment('/b', 110.0, duration=10.0, anchored=True)]
    assert find_gaps(anchored, 100.2, 115.0) == [(109.5, 110.0)]
    assert find_gaps([replace(s, anchored=False) for s in anchored], 100.2, 115.0) == []


@pytest.mark.parametrize('anchor, start, anchored', [
    (100.37, 100.37, True),   # the anchor replaces the whole-second name
    (99.9, 99.9, True),       # captured just before the file was opened
    (107.0, 100.0, False),    # a clock that stepped: the name stays
    (None, 100.0, False),     # no producer reference time in the file
])
def test_with_timing_takes_an_anchor_near_the_name(anchor, start, anchored):
    """with_timing puts a segment at its wall-clock anchor when it agrees with its name."""
    (seg,) = with_timing([Segment('/seg_100.mp4', 100.0)], lambda path: (10.0, anchor))
    assert (seg.start, seg.anchored, seg.duration) == (start, anchored, 10.0)


def test_a_late_anchor_is_bounded_by_the_next_segment_and_a_real_hole_stays():
    """A segment whose write was delayed (anchor 0.7 s late) is put back against the next
    one: no false gap; a hole where ffmpeg restarted stays a gap."""
    anchors = {'/s0': (1.0, 100.0), '/s1': (1.0, 101.7), '/s2': (1.0, 102.01),
               '/s3': (1.0, 105.0), '/s4': (1.0, 106.0)}  # restart: 103.01..105.0 missing
    timed = with_timing([Segment(p, float(100 + i)) for i, p in enumerate(anchors)],
                        anchors.get)
    assert [round(s.start, 2) for s in timed] == [100.0, 101.01, 102.01, 105.0, 106.0]
    assert [(round(a, 2), round(b, 2)) for a, b in find_gaps(timed, 100.0, 107.0)] == [
        (103.01, 105.0)]


def test_candidates_keep_a_segment_running_past_the_next_name():
    """seg_29 may hold footage until 29.8 + 1 s although seg_30 is named 30: for a window
    from 30.1 it is still a candidate (so is seg_28, within the 2 s margin); seg_27 is not."""
    segs = [Segment(f'/seg_{n}.mp4', float(n)) for n in (27, 28, 29, 30, 31)]
    assert [s.start for s in candidates(segs, 30.1, 30.9)] == [28.0, 29.0, 30.0, 31.0]
