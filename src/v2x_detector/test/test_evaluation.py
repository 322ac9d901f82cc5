"""Scoring of hazard_detector_eval (pure): labels file, matching windows, per-kind figures."""

import pytest

from v2x_detector.evaluation import (
    ClipSpec,
    Detected,
    Label,
    LabelsError,
    clip_lines,
    kind_table,
    match_clip,
    read_labels,
    read_sites,
    score,
)
from v2x_detector.pipeline import DetectionSchedule

BLOCKAGE_S = 30.0


def judge(labels, events, duration=60.0):
    return match_clip('clip.mp4', labels, events, duration, BLOCKAGE_S)


@pytest.mark.parametrize('t, outcome', [
    (6.0, 'false'),     # more than 1 s before the impact
    (6.5, 'hit'),       # exactly 1 s before: the window's edge
    (9.0, 'hit'),
    (17.5, 'hit'),      # t + 10: the other edge
    (17.6, 'false'),    # too late to be this crash
])
def test_collision_window_is_one_second_before_to_ten_after(t, outcome):
    """A collision matches a label within [t-1, t+10] s and nothing outside it."""
    verdict = judge([Label('collision', 7.5)], [Detected('collision', t)])
    assert verdict.events[0].outcome == outcome
    assert (verdict.delays[0] is not None) == (outcome == 'hit')


@pytest.mark.parametrize('t, outcome', [
    (3.9, 'false'),     # before t-1
    (4.0, 'hit'),
    (59.0, 'hit'),      # any time until the clip ends
])
def test_fire_window_runs_to_the_end_of_the_clip(t, outcome):
    """A fire matches from t-1 to the end of the clip."""
    assert judge([Label('fire', 5.0)], [Detected('fire', t)]).events[0].outcome == outcome


@pytest.mark.parametrize('t, outcome', [
    (38.9, 'false'),    # before t + blockage_time_s - 2
    (39.0, 'hit'),
    (50.0, 'hit'),
])
def test_blockage_window_starts_when_the_blockage_can_be_due(t, outcome):
    """A blockage matches from t + blockage_time_s - 2 to the end of the clip."""
    assert judge([Label('blockage', 11.0)], [Detected('blockage', t)]).events[0].outcome == outcome


def test_blockage_delay_counts_from_when_it_became_due():
    """A blockage's delay is measured from t + blockage_time_s."""
    assert judge([Label('blockage', 11.0)], [Detected('blockage', 43.0)]).delays == (2.0,)


def test_second_event_on_a_matched_label_is_a_false_alarm():
    """One label, two new events in its window: the first is the hit, the second false."""
    verdict = judge([Label('fire', 1.0)], [Detected('fire', 9.0, 2), Detected('fire', 2.0, 1)])
    assert [v.outcome for v in verdict.events] == ['hit', 'duplicate']
    assert verdict.delays == (1.0,)
    assert len(verdict.false_alarms) == 1


def test_two_labels_of_a_kind_each_take_one_event():
    """Two collisions in one clip: each event takes the earliest free label it fits."""
    verdict = judge([Label('collision', 5.0), Label('collision', 12.0)],
                    [Detected('collision', 6.0), Detected('collision', 13.0)])
    assert [v.outcome for v in verdict.events] == ['hit', 'hit']
    assert verdict.delays == (1.0, 1.0)


def test_wrong_kind_never_matches():
    """A fire event in a collision's window is a false fire alarm; the collision is missed."""
    verdict = judge([Label('collision', 5.0)], [Detected('fire', 5.5)])
    assert verdict.events[0].outcome == 'false' and verdict.delays == (None,)


def test_score_sums_per_kind_and_rates_per_hour():
    """Per kind: labels, detected, recall, precision, median delay, false alarms per hour."""
    clips = [judge([Label('collision', 5.0)], [Detected('collision', 6.0)], 1800.0),
             judge([Label('collision', 5.0)], [], 900.0),
             judge([], [Detected('fire', 3.0), Detected('collision', 2.0)], 900.0)]
    s = score(clips)
    assert (s['collision'].labels, s['collision'].detected) == (2, 1)
    assert s['collision'].recall == 0.5
    assert s['collision'].precision == 0.5
    assert s['collision'].median_delay_s == 1.0
    assert s['fire'].precision == 0.0 and s['fire'].recall is None
    assert s['all'].false_alarms == 2
    assert s['all'].per_hour(3600.0) == 2.0
    assert len(kind_table(s, 3600.0)) == 5


MANIFEST = ('file\tkind\tt_start_s\tcamera\tduration_s\tnotes\n'
            'a.mp4\tcollision\t10.0\tcctv\t50.2\tcrash\n'
            'a.mp4\tblockage\t11.0\tcctv\t50.2\twrecks\n'
            'b.avi\tnone\t\tcctv\t30.0\tok\n')


def test_manifest_rows_become_one_clip_each_with_its_labels(tmp_path):
    """MANIFEST.tsv's columns: rows of one file make one clip; 'none' gives no label."""
    path = tmp_path / 'labels.tsv'
    path.write_text(MANIFEST)
    clips = read_labels(str(path))
    assert clips == [
        ClipSpec('a.mp4', (Label('collision', 10.0), Label('blockage', 11.0)), (), 50.2),
        ClipSpec('b.avi', (), (), 30.0)]


def test_site_columns_and_side_file_set_lane_polygon(tmp_path):
    """lane_polygon (or ground_*) in the labels or a side file are per-clip settings."""
    path = tmp_path / 'labels.tsv'
    path.write_text('file\tkind\tt_start_s\tlane_polygon\n'
                    'a.mp4\tfire\t1\t0,0.5,1,0.5,1,1\n'
                    'b.mp4\tnone\t\t\n')
    sites = tmp_path / 'sites.tsv'
    sites.write_text('file\tlane_polygon\tground_scale\nb.mp4\t0 0.6 1 0.6 1 1\t0.05\n')
    a, b = read_labels(str(path), read_sites(str(sites)))
    assert a.site == (('lane_polygon', [0.0, 0.5, 1.0, 0.5, 1.0, 1.0]),)
    assert dict(b.site) == {'lane_polygon': [0.0, 0.6, 1.0, 0.6, 1.0, 1.0],
                            'ground_scale': 0.05}


@pytest.mark.parametrize('text, problem', [
    ('file\tkind\n', 'missing column(s) t_start_s'),            # no time column
    ('file\tkind\tt_start_s\na.mp4\tcrash\t1\n', "kind 'crash'"),  # unknown kind
    ('file\tkind\tt_start_s\na.mp4\tfire\tsoon\n', "'soon' is not a number"),
    ('file\tkind\tt_start_s\na.mp4\tfire\t\n', "'' is not a number"),  # hazard without time
    ('file\tkind\tt_start_s\n\tfire\t1\n', 'empty file'),
])
def test_bad_labels_are_named(tmp_path, text, problem):
    """A labels file that breaks the format fails with the row and the problem."""
    path = tmp_path / 'labels.tsv'
    path.write_text(text)
    with pytest.raises(LabelsError, match=problem.replace('(', r'\(').replace(')', r'\)')):
        read_labels(str(path))


@pytest.mark.parametrize('fps, rate, expected', [
    (25.0, 8.0, 80),     # grid of 1/8 s: 8 a second, not every 4th frame (6.25)
    (30.0, 10.0, 100),
    (10.0, 8.0, 80),     # 10 fps: most frames, 8 a second
    (5.0, 8.0, 50),      # a slow camera: every frame
    (25.0, 0.0, 250),    # 0: every frame
])
def test_schedule_gives_a_steady_rate(fps, rate, expected):
    """DetectionSchedule picks rate_hz frames a second from capture times (10 s here)."""
    schedule = DetectionSchedule(rate)
    chosen = sum(schedule.due(1.7e9 + i / fps) for i in range(int(10 * fps)))
    assert abs(chosen - expected) <= 1


def test_schedule_restarts_after_a_jump():
    """A gap or a step back in time restarts the grid at that frame."""
    schedule = DetectionSchedule(8.0)
    assert schedule.due(100.0) and not schedule.due(100.04)
    assert schedule.due(200.0)          # a gap: due at once
    assert schedule.due(50.0)           # time went back (a loop): due at once
    assert not schedule.due(50.04)


def test_clip_line_shows_where_a_blockage_stands():
    """A blockage event's row names its foot point in the frame; other kinds do not."""
    verdict = judge([Label('blockage', 11.0)], [Detected('blockage', 43.0, 1, 0.9, (0.45, 0.73)),
                                                Detected('fire', 44.0, 2, 0.9, (0.5, 0.5))])
    line = clip_lines(verdict)[0]
    assert 'blockage@43.0s at 0.45,0.73 ok' in line
    assert 'fire@44.0s FALSE ALARM' in line
