import math

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
import pytest

from v2x_common import mappings as m
from v2x_common.params import ParameterError
from v2x_policy.policy import (
    DEFAULT_VALIDITY_S,
    AlertData,
    AlertReceived,
    EnabledSet,
    FixReceived,
    PeersReceived,
    PolicySettings,
    State,
    TimePassed,
    filter_twist,
    great_circle_m,
    speed_limit,
    step,
)
from v2x_policy.rules import (
    ACTION_NONE,
    ACTION_SLOW_DOWN,
    ACTION_STOP,
    DEFAULT_RULE_NAMES,
    DEFAULT_RULES,
    parse_rules,
)

T0 = 1_800_000_000.0
RULES = parse_rules(list(DEFAULT_RULE_NAMES), lambda n: DEFAULT_RULES[n])
SETTINGS = PolicySettings(rules=RULES, hold_time_s=2.0)
# One degree of latitude on the mean sphere, in metres.
DEG_M = math.radians(1.0) * 6_371_008.8


def alert(seq=1, kind=m.KIND_COLLISION, distance=300.0, stamp=T0, suggest=m.SUGGEST_NONE,
          validity=15.0, detection=T0, cancelled=False, lat=math.nan, lon=math.nan,
          severity=m.SEVERITY_HIGH, source='rsu_a'):
    return AlertData(source_id=source, sequence=seq, stamp_ns=ns(stamp), kind=kind,
                     severity=severity, suggest=suggest, detection_time_ns=ns(detection),
                     validity_s=validity, cancelled=cancelled, latitude=lat, longitude=lon,
                     distance_m=distance)


def ns(t: float) -> int:
    """Float seconds (the tests' clock) -> the alert's integer ns."""
    return round(t * 1e9)


def run(events, state=None, settings=SETTINGS):
    state = state or State()
    notes = []
    for event in events:
        state, note = step(state, event, settings)
        notes.append(note)
    return state, notes


@pytest.mark.parametrize('kind, distance, suggest, action, rule', [
    (m.KIND_COLLISION, 499.0, m.SUGGEST_NONE, ACTION_SLOW_DOWN, 'slow_hazard'),
    (m.KIND_COLLISION, 500.0, m.SUGGEST_NONE, ACTION_SLOW_DOWN, 'slow_hazard'),
    (m.KIND_COLLISION, 501.0, m.SUGGEST_NONE, ACTION_NONE, ''),
    (m.KIND_FIRE, 499.0, m.SUGGEST_NONE, ACTION_SLOW_DOWN, 'slow_hazard'),
    (m.KIND_BLOCKAGE, 199.0, m.SUGGEST_NONE, ACTION_STOP, 'stop_blockage'),
    (m.KIND_BLOCKAGE, 201.0, m.SUGGEST_NONE, ACTION_NONE, ''),
    (m.KIND_UNKNOWN, 150.0, m.SUGGEST_STOP, ACTION_STOP, 'stop_suggested'),
    (m.KIND_UNKNOWN, 250.0, m.SUGGEST_STOP, ACTION_NONE, ''),
    (m.KIND_COLLISION, 150.0, m.SUGGEST_STOP, ACTION_STOP, 'stop_suggested'),
    (m.KIND_UNKNOWN, 10.0, m.SUGGEST_SLOW_DOWN, ACTION_NONE, ''),
])
def test_default_rules_at_their_thresholds(kind, distance, suggest, action, rule):
    """The default rules act within (<=) their distance and not beyond it."""
    state, notes = run([AlertReceived(alert(kind=kind, distance=distance, suggest=suggest),
                                      T0)])
    assert notes == ['new']
    assert state.decision.action == action and state.decision.rule == rule
    if action != ACTION_NONE:
        assert state.decision.distance_m == distance
        assert (state.decision.source_id, state.decision.sequence) == ('rsu_a', 1)


def test_great_circle_distance():
    """One degree of latitude is ~111.2 km; a point to itself is 0."""
    assert great_circle_m(48.0, 11.0, 49.0, 11.0) == pytest.approx(DEG_M, rel=1e-9)
    assert great_circle_m(48.0, 11.0, 48.0, 11.0) == 0.0
    # 1 degree of longitude at 60 degrees north is about half as long.
    assert great_circle_m(60.0, 0.0, 60.0, 1.0) == pytest.approx(DEG_M / 2, rel=1e-3)


def test_fix_distance_replaces_alert_distance_and_follows_the_vehicle():
    """With a fresh fix and a position, the great-circle distance decides, as the car moves."""
    event_at = (48.0, 11.0)
    a = alert(distance=50.0, lat=event_at[0], lon=event_at[1])  # distance_m says 50 m
    far = FixReceived(event_at[0] - 600.0 / DEG_M, event_at[1], T0)
    state, _ = run([far, AlertReceived(a, T0)])
    assert state.decision.action == ACTION_NONE  # 600 m by the fix, not 50 m
    state, _ = run([FixReceived(event_at[0] - 450.0 / DEG_M, event_at[1], T0 + 1)], state)
    assert state.decision.action == ACTION_SLOW_DOWN
    assert state.decision.distance_m == pytest.approx(450.0, abs=0.01)


def test_stale_fix_falls_back_to_alert_distance_then_when_unknown():
    """An old fix is not used; then distance_m; with neither the rule's when_unknown decides."""
    fix = FixReceived(48.0, 11.0, T0)
    a = alert(distance=450.0, lat=48.0 + 900.0 / DEG_M, lon=11.0)
    state, _ = run([fix, AlertReceived(a, T0)])
    assert state.decision.action == ACTION_NONE  # 900 m by the fix
    state, _ = run([TimePassed(T0 + SETTINGS.fix_timeout_s + 0.1)], state)
    assert state.decision.action == ACTION_SLOW_DOWN  # fix stale: distance_m 450 m
    assert state.decision.distance_m == 450.0
    unknown = alert(seq=2, distance=math.nan)
    state, _ = run([AlertReceived(unknown, T0)])
    assert state.decision.action == ACTION_SLOW_DOWN and math.isnan(state.decision.distance_m)
    ignoring = parse_rules(['slow'], lambda n: {**DEFAULT_RULES['slow_hazard'],
                                                'when_unknown': 'ignore'})
    state, _ = run([AlertReceived(unknown, T0)], settings=PolicySettings(rules=ignoring))
    assert state.decision.action == ACTION_NONE


def test_expiry_releases_only_after_the_hold_time():
    """An alert acts until detection_time + validity_s, then the hold time, then releases."""
    state, _ = run([AlertReceived(alert(kind=m.KIND_BLOCKAGE, distance=100.0,
                                        validity=10.0), T0)])
    assert state.decision.action == ACTION_STOP
    state, _ = run([TimePassed(T0 + 9.9)], state)
    assert state.decision.action == ACTION_STOP
    state, _ = run([TimePassed(T0 + 10.0)], state)
    assert state.active_alerts() == 0 and state.decision.action == ACTION_STOP  # held
    state, _ = run([TimePassed(T0 + 11.9)], state)
    assert state.decision.action == ACTION_STOP
    state, _ = run([TimePassed(T0 + 12.0)], state)
    assert state.decision.action == ACTION_NONE


def test_cancellation_releases_after_hold_and_blocks_older_versions():
    """A cancellation releases after the hold; a late copy of an older version does not revive."""
    a = alert(kind=m.KIND_BLOCKAGE, distance=100.0)
    state, notes = run([AlertReceived(a, T0),
                        AlertReceived(alert(kind=m.KIND_BLOCKAGE, distance=100.0,
                                            stamp=T0 + 1, cancelled=True), T0 + 1)])
    assert notes == ['new', 'cancel'] and state.decision.action == ACTION_STOP
    state, notes = run([AlertReceived(a, T0 + 2), TimePassed(T0 + 3.0)], state)
    assert notes == ['older', 'tick'] and state.decision.action == ACTION_NONE


def test_updates_replace_repeats_and_older_versions_are_ignored():
    """A newer header stamp replaces the alert; a repeat or an older stamp changes nothing."""
    v1 = alert(distance=400.0)
    v2 = alert(kind=m.KIND_BLOCKAGE, distance=150.0, stamp=T0 + 1)
    v0 = alert(kind=m.KIND_BLOCKAGE, distance=50.0, stamp=T0 - 1)
    state, notes = run([AlertReceived(v1, T0), AlertReceived(v1, T0 + 0.5)])
    assert notes == ['new', 'repeat'] and state.decision.action == ACTION_SLOW_DOWN
    state, notes = run([AlertReceived(v2, T0 + 1), AlertReceived(v0, T0 + 1.5)], state)
    assert notes == ['update', 'older']
    assert state.decision.action == ACTION_STOP and state.decision.distance_m == 150.0
    assert state.active_alerts() == 1


def test_update_to_a_milder_alert_is_held_then_applied():
    """An update that makes the event milder releases only after the hold time."""
    v1 = alert(kind=m.KIND_BLOCKAGE, distance=150.0)
    v2 = alert(kind=m.KIND_BLOCKAGE, distance=300.0, stamp=T0 + 1)
    state, _ = run([AlertReceived(v1, T0), AlertReceived(v2, T0 + 1)])
    assert state.decision.action == ACTION_STOP
    state, _ = run([TimePassed(T0 + 3.0)], state)
    assert state.decision.action == ACTION_NONE


def test_most_restrictive_wins_then_nearest():
    """Of overlapping alerts the strictest action decides; among equals the nearest."""
    slow_far = alert(seq=1, distance=450.0)
    slow_near = alert(seq=2, distance=100.0)
    stop = alert(seq=3, kind=m.KIND_BLOCKAGE, distance=190.0)
    state, _ = run([AlertReceived(slow_far, T0), AlertReceived(slow_near, T0)])
    assert state.decision.sequence == 2 and state.decision.action == ACTION_SLOW_DOWN
    state, _ = run([AlertReceived(stop, T0)], state)
    assert state.decision.sequence == 3 and state.decision.action == ACTION_STOP
    cancel = alert(seq=3, kind=m.KIND_BLOCKAGE, distance=190.0, stamp=T0 + 1, cancelled=True)
    state, _ = run([AlertReceived(cancel, T0 + 1), TimePassed(T0 + 3.5)], state)
    assert state.decision.action == ACTION_SLOW_DOWN and state.decision.sequence == 2


def test_hysteresis_keeps_the_action_when_the_distance_jitters_at_the_threshold():
    """A vehicle wobbling across 500 m stays slowed; it releases after hold_time_s away."""
    lat0 = 48.0
    a = alert(distance=math.nan, lat=lat0, lon=11.0, validity=600.0)
    state, _ = run([FixReceived(lat0 - 499.0 / DEG_M, 11.0, T0), AlertReceived(a, T0)])
    actions = []
    for i in range(1, 31):  # 0.1 s steps, alternating 501 m and 499 m, ends at 499
        d = 501.0 if i % 2 else 499.0
        state, _ = run([FixReceived(lat0 - d / DEG_M, 11.0, T0 + i * 0.1)], state)
        actions.append(state.decision.action)
    assert set(actions) == {ACTION_SLOW_DOWN}
    t = T0 + 3.1
    state, _ = run([FixReceived(lat0 - 501.0 / DEG_M, 11.0, t)], state)
    state, _ = run([FixReceived(lat0 - 501.0 / DEG_M, 11.0, t + 1.9)], state)
    assert state.decision.action == ACTION_SLOW_DOWN
    state, _ = run([FixReceived(lat0 - 501.0 / DEG_M, 11.0, t + 2.0)], state)
    assert state.decision.action == ACTION_NONE


@pytest.mark.parametrize('bad, note', [
    # validity NaN: cannot know when it ends
    (alert(validity=math.nan), 'invalid'),
    # negative validity
    (alert(validity=-1.0), 'invalid'),
    # validity infinite
    (alert(validity=math.inf), 'invalid'),
    # already expired when it arrives
    (alert(detection=T0 - 20.0, validity=15.0), 'expired'),
])
def test_hostile_or_dead_alerts_are_dropped(bad, note):
    """Alerts with unusable times or already past their validity never act."""
    state, notes = run([AlertReceived(bad, T0)])
    assert notes == [note] and state.decision.action == ACTION_NONE
    assert state.alerts == {}


def test_zero_times_take_arrival_and_default_validity():
    """detection_time 0 means the arrival time; validity_s 0 means the DENM default."""
    state, _ = run([AlertReceived(alert(detection=0.0, validity=0.0), T0)])
    assert state.alerts[('rsu_a', 1)].expires_at == T0 + DEFAULT_VALIDITY_S


def test_rsu_stale_keeps_acting_or_stops_by_parameter():
    """By default a stale RSU changes nothing; with rsu_stale_action=stop a slow down stops."""
    events = [AlertReceived(alert(distance=300.0), T0),
              PeersReceived(frozenset({'rsu_a'}), T0 + 1)]
    state, _ = run(events)
    assert state.decision.action == ACTION_SLOW_DOWN
    strict = PolicySettings(rules=RULES, rsu_stale_action='stop')
    state, _ = run(events, settings=strict)
    assert state.decision.action == ACTION_STOP
    assert state.decision.rule == 'slow_hazard+rsu_stale'
    state, _ = run([PeersReceived(frozenset(), T0 + 2)], state, settings=strict)
    assert state.decision.action == ACTION_STOP  # milder: held
    state, _ = run([TimePassed(T0 + 4.0)], state, settings=strict)
    assert state.decision.action == ACTION_SLOW_DOWN
    state, _ = run([PeersReceived(frozenset({'rsu_a'}), T0 + 5)], State(), settings=strict)
    assert state.decision.action == ACTION_NONE  # stale RSU alone, no alert: nothing


def test_disabled_decides_nothing_and_reenabling_restores():
    """While disabled the decision is none; alerts keep being tracked for re-enabling."""
    state, _ = run([EnabledSet(False, T0),
                    AlertReceived(alert(kind=m.KIND_BLOCKAGE, distance=10.0), T0)])
    assert state.decision.action == ACTION_NONE and state.held.action == ACTION_STOP
    state, _ = run([EnabledSet(True, T0 + 1)], state)
    assert state.decision.action == ACTION_STOP


def test_filter_twist_stop_slow_and_pass():
    """Stop zeroes, slow down scales by the ratio and caps the linear speed, none passes."""
    s = PolicySettings(rules=RULES, slowdown_ratio=0.5, slowdown_max_speed=1.0)
    lin, ang = (1.2, 0.0, 0.0), (0.0, 0.0, 0.4)
    assert filter_twist(ACTION_NONE, lin, ang, s) == (lin, ang)
    assert filter_twist(ACTION_STOP, lin, ang, s) == ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    assert filter_twist(ACTION_SLOW_DOWN, lin, ang, s) == ((0.6, 0.0, 0.0), (0.0, 0.0, 0.2))
    fast, _ = filter_twist(ACTION_SLOW_DOWN, (3.0, 4.0, 0.0), ang, s)  # 5 m/s -> 2.5 -> cap 1
    assert math.hypot(*fast) == pytest.approx(1.0) and fast[0] == pytest.approx(0.6)
    assert speed_limit(ACTION_SLOW_DOWN, s) == 1.0 and speed_limit(ACTION_STOP, s) == 0.0
    assert math.isnan(speed_limit(ACTION_NONE, s))


@hsettings(max_examples=200, deadline=None)
@given(action=st.sampled_from([ACTION_NONE, ACTION_SLOW_DOWN, ACTION_STOP]),
       lin=st.tuples(*[st.floats(-50, 50)] * 3), ang=st.tuples(*[st.floats(-5, 5)] * 3),
       ratio=st.floats(0, 1), cap=st.floats(0, 10))
def test_filter_never_speeds_up(action, lin, ang, ratio, cap):
    """Whatever the command, the output is never faster than the input, nor the cap when slow."""
    s = PolicySettings(rules=RULES, slowdown_ratio=ratio, slowdown_max_speed=cap)
    out_lin, out_ang = filter_twist(action, lin, ang, s)
    speed_in, speed_out = math.sqrt(sum(v * v for v in lin)), math.sqrt(
        sum(v * v for v in out_lin))
    assert speed_out <= speed_in + 1e-9
    assert all(abs(o) <= abs(i) + 1e-12 for o, i in zip(out_ang, ang, strict=True))
    if action == ACTION_SLOW_DOWN:
        assert speed_out <= cap + 1e-9


@hsettings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([m.KIND_COLLISION, m.KIND_BLOCKAGE, m.KIND_FIRE]),
                          st.floats(0, 800), st.integers(1, 4), st.booleans()),
                min_size=1, max_size=20))
def test_stricter_raw_decision_always_applies_at_once(events):
    """After any sequence of alerts the held action is never milder than the raw decision."""
    from v2x_policy.policy import raw_decision
    state = State()
    for i, (kind, distance, seq, cancelled) in enumerate(events):
        now = T0 + i * 0.3
        a = alert(seq=seq, kind=kind, distance=distance, stamp=now, cancelled=cancelled)
        state, _ = step(state, AlertReceived(a, now), SETTINGS)
        assert state.held.action >= raw_decision(state, SETTINGS, now).action


def test_rsu_camera_fault_keeps_acting_by_default_or_stops_by_parameter():
    """An RSU whose camera cannot see changes nothing by default (rsu_camera_action keep);
    with stop, a slow down stops ('+rsu_camera') while it says so, and is released after
    hold_time_s once it sees again; a camera fault alone, with no alert, does nothing."""
    events = [AlertReceived(alert(distance=300.0), T0),
              PeersReceived(frozenset(), T0 + 1, frozenset({'rsu_a'}))]
    state, _ = run(events)
    assert state.decision.action == ACTION_SLOW_DOWN
    strict = PolicySettings(rules=RULES, rsu_camera_action='stop')
    state, _ = run(events, settings=strict)
    assert (state.decision.action, state.decision.rule) == (ACTION_STOP,
                                                            'slow_hazard+rsu_camera')
    state, _ = run([PeersReceived(frozenset(), T0 + 2), TimePassed(T0 + 4.0)], state,
                   settings=strict)
    assert state.decision.action == ACTION_SLOW_DOWN
    state, _ = run([PeersReceived(frozenset(), T0 + 5, frozenset({'rsu_a'}))], State(),
                   settings=strict)
    assert state.decision.action == ACTION_NONE


@pytest.mark.parametrize('changes, parameter', [
    ({'slowdown_ratio': 1.5}, 'slowdown_ratio'),
    ({'slowdown_max_speed': -0.1}, 'slowdown_max_speed'),
    ({'hold_time_s': math.nan}, 'hold_time_s'),
    ({'rsu_stale_action': 'panic'}, 'rsu_stale_action'),
    ({'rsu_camera_action': 'panic'}, 'rsu_camera_action'),
    ({'rules': ()}, 'rules'),
])
def test_bad_policy_settings_name_the_parameter(changes, parameter):
    """Out-of-range policy settings raise ParameterError naming the parameter."""
    with pytest.raises(ParameterError) as info:
        PolicySettings(**{'rules': RULES, **changes})
    assert info.value.name == parameter


@pytest.mark.parametrize('bad', [
    # detection_time before 1970: its docs say negative times are dropped (not "unset")
    alert(detection=-5.0),
    # header stamp negative
    alert(stamp=-1.0),
])
def test_negative_or_nonfinite_times_are_dropped(bad):
    """An alert with a negative or non-finite time is dropped as invalid and never acts."""
    state, notes = run([AlertReceived(alert(kind=m.KIND_BLOCKAGE, distance=10.0,
                                            detection=bad.detection_time_ns / 1e9,
                                            stamp=bad.stamp_ns / 1e9),
                                      T0)])
    assert notes == ['invalid'] and state.decision.action == ACTION_NONE


_event = st.one_of(
    st.tuples(st.just('alert'), st.integers(1, 6), st.sampled_from(['rsu_a', 'rsu_b']),
              st.sampled_from([m.KIND_COLLISION, m.KIND_BLOCKAGE, m.KIND_FIRE]),
              st.floats(0, 800), st.booleans(), st.floats(0.5, 6.0), st.booleans(),
              st.sampled_from([m.SUGGEST_NONE, m.SUGGEST_STOP]), st.floats(-900, 900)),
    st.tuples(st.just('fix'), st.floats(-900, 900), st.floats(-900, 900)),
    st.tuples(st.just('peers'), st.booleans()),
    st.tuples(st.just('tick'), st.floats(0.0, 3.0)),
)


def _place(origin, north_m, east_m):
    """A point north_m / east_m from origin (longitude wrapped to -180..180)."""
    lat = origin[0] + north_m / DEG_M
    lon = origin[1] + east_m / (DEG_M * math.cos(math.radians(lat)))
    return lat, (lon + 180.0) % 360.0 - 180.0


@hsettings(max_examples=150, deadline=None)
@given(st.lists(_event, min_size=1, max_size=40), st.sampled_from(['keep', 'stop']),
       st.sampled_from([(10.0, 11.0), (0.0, 179.997), (70.0, -179.99)]))
def test_indexed_table_agrees_with_a_full_scan(events, stale_action, origin):
    """After any events (also across the antimeridian) the table's most restrictive alert
    is the full scan's."""
    from v2x_policy.policy import raw_decision
    settings = PolicySettings(rules=RULES, rsu_stale_action=stale_action, fix_timeout_s=1.0)
    state, now = State(), T0
    for ev in events:
        now += 0.25
        if ev[0] == 'alert':
            _, seq, source, kind, distance, positioned, validity, cancelled, suggest, east = ev
            lat, lon = (_place(origin, distance, east) if positioned
                        else (math.nan, math.nan))
            event = AlertReceived(alert(seq=seq, source=source, kind=kind, distance=distance,
                                        stamp=now, detection=now, validity=validity,
                                        cancelled=cancelled, lat=lat, lon=lon,
                                        suggest=suggest), now)
        elif ev[0] == 'fix':
            event = FixReceived(*_place(origin, ev[1], ev[2]), now)
        elif ev[0] == 'peers':
            event = PeersReceived(frozenset({'rsu_a'} if ev[1] else ()), now)
        else:
            now += ev[1]
            event = TimePassed(now)
        state, _ = step(state, event, settings)
        assert state.table.best() == raw_decision(state, settings, now)
        assert state.active_alerts() == sum(1 for e in state.alerts.values()
                                            if not e.alert.cancelled)


@pytest.mark.parametrize('corner', [(10, 100), (0, 0), (140, 5), (-3, 719)],
                         ids=['lat10', 'equator', 'lat70', 'antimeridian'])
@pytest.mark.parametrize('bearing', range(0, 360, 30))
def test_a_fix_moving_next_to_an_alert_finds_it_in_any_direction(corner, bearing):
    """A fix arriving near a cell corner of the grid finds an alert 480 m away on any side."""
    cell = 500.0 / DEG_M  # the grid's cell for the default rules (500 m reach)
    fix = (corner[0] * cell, corner[1] * cell - 180.0)
    north = 480.0 * math.cos(math.radians(bearing))
    east = 480.0 * math.sin(math.radians(bearing))
    lat, lon = _place(fix, north, east)
    far = _place(fix, 5000.0, 0.0)
    state, _ = run([FixReceived(*far, T0),
                    AlertReceived(alert(kind=m.KIND_COLLISION, lat=lat, lon=lon), T0),
                    FixReceived(*fix, T0 + 0.5)])
    assert state.decision.action == ACTION_SLOW_DOWN
    assert state.decision.distance_m == pytest.approx(480.0, abs=1.0)
