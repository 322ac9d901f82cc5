"""The intake event schema: the seed format in, IntakeEvent out, typed errors naming fields."""

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from v2x_common import mappings
from v2x_intake.schema import (
    SEED_DEFAULTS,
    BadJson,
    Expired,
    IntakeEvent,
    InvalidField,
    parse_event,
)

NOW = 1_800_000_000.0


def seed_event(**changes) -> dict:
    """The seed's example event, fresh at NOW, with changes (None value = drop the key)."""
    doc = {'ts': NOW - 1.0, 'type': 'collision', 'severity': 'high', 'lat': 37.12,
           'lon': 127.12, 'road': 'A', 'distance_m': 500, 'clip_hint': True}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def test_seed_example_maps_to_alert_terms():
    """The seed's example becomes constants, seconds and the default validity of 600 s."""
    event = parse_event(json.dumps(seed_event()).encode(), NOW)
    assert event.kind == mappings.KIND_COLLISION
    assert event.severity == mappings.SEVERITY_HIGH
    assert event.suggest == mappings.SUGGEST_NONE
    assert (event.latitude, event.longitude, event.road) == (37.12, 127.12, 'A')
    assert event.distance_m == 500.0
    assert event.validity_s == 600.0
    assert event.clip_requested is True
    assert event.ts == NOW - 1.0
    assert event.event_id is None and event.extra == {}


def test_optional_fields_and_extras():
    """ttl_s, event_id, suggest, confidence are read; unknown fields are kept in extra."""
    event = parse_event(seed_event(ttl_s=30, event_id='cam7-1', suggest='slow_down',
                                   confidence=0.5, camera={'id': 7}, note='x'), NOW, 600.0)
    assert event.validity_s == 30.0
    assert event.event_id == 'cam7-1'
    assert event.suggest == mappings.SUGGEST_SLOW_DOWN
    assert event.confidence == 0.5
    assert event.extra == {'camera': {'id': 7}, 'note': 'x'}


def test_null_position_and_distance_mean_unknown():
    """lat/lon/distance_m may be null: unknown, not zero."""
    event = parse_event(seed_event(lat=None, lon=None) | {'lat': None, 'lon': None,
                                                         'distance_m': None}, NOW)
    assert event.latitude is None and event.longitude is None and event.distance_m is None


def test_default_validity_comes_from_the_caller():
    """Without ttl_s the node's default_validity_s applies."""
    assert parse_event(seed_event(), NOW, default_validity_s=42.0).validity_s == 42.0


@pytest.mark.parametrize('data, error, field', [
    (b'{"ts": 1', BadJson, ''),                      # truncated, as a half-written file
    (b'', BadJson, ''),                              # empty file
    (b'\xff\xfe{}', BadJson, ''),                    # not UTF-8
    (b'{"ts": NaN}', BadJson, ''),                   # Python's json would accept NaN
    (b'[1, 2]', InvalidField, ''),                   # not an object
    (b'"collision"', InvalidField, ''),              # a bare string
])
def test_not_an_event_object(data, error, field):
    """Bytes that are not one JSON object are rejected as the whole body's fault."""
    with pytest.raises(error) as info:
        parse_event(data, NOW)
    assert info.value.field == field


@pytest.mark.parametrize('changes, field, words', [
    ({'ts': '2026-01-01T00:00:00Z'}, 'ts', 'wrong type'),  # ts is epoch seconds
    ({'ts': True}, 'ts', 'wrong type'),                    # a bool is not a number
    ({'lat': '37.1'}, 'lat', 'wrong type'),
    ({'distance_m': [500]}, 'distance_m', 'wrong type'),
    ({'clip_hint': 1}, 'clip_hint', 'wrong type'),         # 1 is not true
    ({'road': 7}, 'road', 'wrong type'),
    ({'type': 5}, 'type', 'wrong type'),                   # type before enum
    ({'type': 'meteor'}, 'type', 'unknown value'),
    ({'severity': 'apocalyptic'}, 'severity', 'unknown value'),
    ({'suggest': 'fly'}, 'suggest', 'unknown value'),
    ({'lat': 91}, 'lat', 'maximum'),
    ({'lon': -180.5}, 'lon', 'minimum'),
    ({'distance_m': -1}, 'distance_m', 'minimum'),
    ({'ttl_s': 0.5}, 'ttl_s', 'minimum'),                  # under a second is no alert
    ({'ts': -5}, 'ts', 'less than or equal'),
    ({'event_id': ''}, 'event_id', 'non-empty'),
    ({'event_id': 'has space'}, 'event_id', 'match'),
    ({'confidence': 1.5}, 'confidence', 'maximum'),
])
def test_bad_field_is_named(changes, field, words):
    """Each schema violation raises InvalidField naming the field and the problem."""
    with pytest.raises(InvalidField) as info:
        parse_event(json.dumps(seed_event(**changes)), NOW)
    assert info.value.field == field
    assert words in info.value.reason
    assert info.value.as_dict()['field'] == field


def test_several_problems_name_the_first_and_list_the_rest():
    """The first field in schema order is named; the reason lists the others."""
    with pytest.raises(InvalidField) as info:
        parse_event(seed_event(ts='x', road=7, type='meteor'), NOW)
    assert info.value.field == 'ts'
    assert 'type: unknown value' in info.value.reason and 'road: wrong type' in info.value.reason


@pytest.mark.parametrize('ts, ttl, expired', [
    (NOW - 601, None, True),     # default validity 600 s is over
    (NOW - 599, None, False),
    (NOW - 11, 10, True),        # the seed's ttl of 10 s
    (NOW - 9, 10, False),
    (1737930000.0, None, True),  # the seed's example timestamp, long past
])
def test_expiry_is_ts_plus_ttl(ts, ttl, expired):
    """An event whose ts + ttl_s (or default validity) is past raises Expired on ts."""
    doc = seed_event(ts=ts, ttl_s=ttl)
    if expired:
        with pytest.raises(Expired) as info:
            parse_event(doc, NOW)
        assert info.value.field == 'ts' and 'expired' in info.value.reason
    else:
        assert parse_event(doc, NOW).expires_at > NOW


def test_far_future_ts_is_rejected():
    """A ts beyond the allowed clock skew is refused (a wrong clock or units)."""
    with pytest.raises(InvalidField) as info:
        parse_event(seed_event(ts=NOW + 301), NOW, max_clock_skew_s=300)
    assert info.value.field == 'ts' and 'future' in info.value.reason
    assert parse_event(seed_event(ts=NOW + 299), NOW, max_clock_skew_s=300).ts == NOW + 299


_finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(lat=st.one_of(st.none(), st.floats(-90, 90)),
       lon=st.one_of(st.none(), st.floats(-180, 180)),
       dist=st.one_of(st.none(), st.floats(0, 1e6)), ttl=st.floats(2, 86400),
       kind=st.sampled_from(sorted(mappings.KINDS)),
       road=st.text(st.characters(blacklist_categories=('Cs', 'Cc'),  # nor bidi controls
                                  blacklist_characters='\u061c\u200e\u200f\u202a\u202b'
                                  '\u202c\u202d\u202e\u2066\u2067\u2068\u2069'),
                    max_size=20),
       extra=st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k not in (
           'ts', 'type', 'severity', 'lat', 'lon', 'road', 'distance_m', 'clip_hint',
           'ttl_s', 'event_id', 'suggest', 'confidence')), st.integers(), max_size=3))
def test_record_round_trip(lat, lon, dist, ttl, kind, road, extra):
    """Any valid event survives the ledger's JSON record unchanged."""
    doc = seed_event(lat=lat, lon=lon, distance_m=dist, ttl_s=ttl, type=kind, road=road)
    doc.update({'lat': lat, 'lon': lon, 'distance_m': dist}, **extra)
    event = parse_event(json.dumps(doc), NOW)
    again = IntakeEvent.from_record(json.loads(json.dumps(event.to_record())))
    assert again == event
    assert again.extra == extra
    assert again.latitude is None or math.isfinite(again.latitude)


# The seed's watcher (watch_and_broadcast.py in /work/shared/seed) read each field with
# evt.get(name, default); what it wrote must still go through.
@pytest.mark.parametrize('doc', [
    {},                                              # nothing: the watcher's defaults
    {'type': 'fire'},                                # the watcher's minimum in practice
    {'type': 'collision', 'severity': 'high', 'distance_m': 500, 'road': 'segment_A'},
])
def test_seed_watcher_events_are_accepted_with_its_defaults(doc):
    """Missing fields take the watcher's defaults (type unknown, severity high, road
    segment_A, distance 500 m, no clip); missing ts is now; lat/lon unknown, not 0.0."""
    event = parse_event(json.dumps(doc), NOW)
    expected = {**SEED_DEFAULTS, **doc}
    assert event.kind == mappings.kind_from_str(expected['type'])
    assert event.severity == mappings.severity_from_str(expected['severity'])
    assert (event.road, event.distance_m) == (expected['road'], expected['distance_m'])
    assert event.clip_requested is False and event.ts == NOW
    assert event.latitude is None and event.longitude is None  # the policy uses distance_m
    assert event.extra == {}
    # what was filled in is said (event_intake logs it beside 'accepted')
    assert event.defaulted == tuple(sorted({*SEED_DEFAULTS, 'ts'} - set(doc)))
    assert IntakeEvent.from_record(json.loads(json.dumps(event.to_record()))).defaulted == \
        event.defaulted


def test_seed_guide_sample_is_refused_saying_how_old():
    """The guide's sample event (ts 1737930000.0, January 2025) is stale: refused, and the
    message says how old it is and how to fix it; without its ts it is accepted as now."""
    sample = {'ts': 1737930000.0, 'type': 'collision', 'severity': 'high', 'lat': 37.12,
              'lon': 127.12, 'road': 'A', 'distance_m': 500, 'clip_hint': True}
    with pytest.raises(Expired) as info:
        parse_event(json.dumps(sample), NOW)
    assert 'is 718 days old' in info.value.reason, info.value.reason
    assert 'default_validity_s' in info.value.reason and 'Leave ts out' in info.value.reason
    del sample['ts']
    assert parse_event(json.dumps(sample), NOW).ts == NOW


@pytest.mark.parametrize('age, text', [(42, '42 s'), (1020, '17 min'), (18180, '5 h 3 min'),
                                       (86400 * 3, '3 days')])
def test_age_is_said_in_units_a_person_reads(age, text):
    """An expired event's age is given in s, min, h or days."""
    with pytest.raises(Expired) as info:
        parse_event(seed_event(ts=NOW - age, ttl_s=1), NOW)
    assert f'is {text} old' in info.value.reason
