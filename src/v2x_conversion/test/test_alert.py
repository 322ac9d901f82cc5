"""Alert <-> AlertData, every field both ways; the CLIs' flags -> AlertData."""

import argparse
import dataclasses
import math

from builtin_interfaces.msg import Time
import pytest

from v2x_common.alert_flags import add_alert_flags
from v2x_conversion.alert import PROVENANCE, alert_from_flags, alert_from_msg, alert_to_msg
from v2x_msgs.msg import Alert
from v2x_protocol.sender import InvalidTiming
from v2x_protocol.wire import AlertData

#: A value for every AlertData field, none of them its default.
FULL = AlertData(source_id='rsu_7', sequence=4_000_000_000, kind=Alert.KIND_FIRE,
                 severity=Alert.SEVERITY_MEDIUM, suggest=Alert.SUGGEST_STOP,
                 stamp_ns=1_800_000_000_123_456_789, detection_time_ns=1_799_999_999_500_000_000,
                 validity_s=90.5, cancelled=True, latitude=37.25, longitude=-127.125,
                 road='A1 north', distance_m=250.5, confidence=0.75, clip_requested=True,
                 clip_id='rsu_7-4000000000', authenticated=False, path=Alert.PATH_BROKER,
                 origin=0x0123_4567_89AB_CDEF)

#: AlertData fields -> the message field that carries each (the times are Time messages).
MSG_FIELD = {'stamp_ns': 'header', 'detection_time_ns': 'detection_time'}


def test_every_field_of_the_message_is_converted():
    """The message's fields are exactly AlertData's (times as Time): a field added to one
    and not the other fails here, so a new field cannot be left out of the conversion."""
    data_fields = {MSG_FIELD.get(f.name, f.name) for f in dataclasses.fields(AlertData)}
    assert set(Alert.get_fields_and_field_types()) == data_fields


def test_data_round_trips_through_the_message():
    """AlertData -> Alert -> AlertData gives back every field, path included (path is not
    part of AlertData's equality, so it is compared apart)."""
    back = alert_from_msg(alert_to_msg(FULL))
    for f in dataclasses.fields(AlertData):
        assert getattr(back, f.name) == getattr(FULL, f.name), f.name


def test_message_round_trips_through_the_data():
    """Alert -> AlertData -> Alert gives back every field of the message (frame_id given)."""
    msg = alert_to_msg(FULL, frame_id='site_9')
    again = alert_to_msg(alert_from_msg(msg), frame_id='site_9')
    for name in Alert.get_fields_and_field_types():
        assert getattr(again, name) == getattr(msg, name), name
    assert msg.header.stamp == Time(sec=1_800_000_000, nanosec=123_456_789)


def test_nan_fields_survive():
    """Unknown position and distance (NaN) stay NaN both ways."""
    unknown = dataclasses.replace(FULL, latitude=math.nan, longitude=math.nan,
                                  distance_m=math.nan)
    back = alert_from_msg(alert_to_msg(unknown))
    assert math.isnan(back.latitude) and math.isnan(back.longitude)
    assert math.isnan(back.distance_m)


def test_without_provenance_the_wire_view():
    """provenance=False leaves authenticated and path at AlertData's defaults (what a
    gateway signs or compares), every other field converted."""
    back = alert_from_msg(alert_to_msg(FULL), provenance=False)
    defaults = AlertData('', 0, 0, 0, 0, 0, 0, 0.0)
    assert {n: getattr(back, n) for n in PROVENANCE} == \
        {n: getattr(defaults, n) for n in PROVENANCE}
    assert dataclasses.replace(back, authenticated=False) == FULL


@pytest.mark.parametrize('change, field', [
    ({'validity_s': math.inf}, 'validity_s'),                    # never expires
    ({'validity_s': -1.0}, 'validity_s'),                        # negative
    ({'detection_time': Time(sec=-5)}, 'detection_time'),        # before 1970
])
def test_strict_refuses_times_the_arithmetic_cannot_take(change, field):
    """strict (alerts taken in to be sent) raises InvalidTiming naming the field; the
    lenient conversion takes the same message."""
    msg = alert_to_msg(dataclasses.replace(FULL, validity_s=60.0))
    for name, value in change.items():
        setattr(msg, name, value)
    with pytest.raises(InvalidTiming, match=field):
        alert_from_msg(msg, strict=True)
    alert_from_msg(msg)


def test_flags_make_the_alert_they_name():
    """Every alert flag lands in its field; identity and times stay 0 for the gateway unless
    given; a flags-made alert is produced here (path local, authenticated)."""
    p = argparse.ArgumentParser()
    p.add_argument('--source-id', default='')
    add_alert_flags(p, ttl_default=0.0)
    args = p.parse_args(['--type', 'fire', '--severity', 'medium', '--suggest', 'stop',
                         '--distance-m', '250.5', '--road', 'A1 north', '--lat', '37.25',
                         '--lon', '-127.125', '--ttl-s', '90.5', '--confidence', '0.75',
                         '--clip', '--cancel', '--sequence', '4000000000',
                         '--source-id', 'rsu_7'])
    got = alert_from_flags(args, stamp_ns=FULL.stamp_ns,
                           detection_time_ns=FULL.detection_time_ns)
    assert got == dataclasses.replace(FULL, clip_id='', authenticated=True, path=0)
    assert got.path == Alert.PATH_LOCAL
    bare = alert_from_flags(p.parse_args([]))
    assert (bare.source_id, bare.sequence, bare.stamp_ns, bare.detection_time_ns,
            bare.validity_s) == ('', 0, 0, 0, 0.0)


@pytest.mark.parametrize('path, authenticated', [
    (Alert.PATH_RADIO, True),    # a verified radio alert
    (Alert.PATH_DENM, False),    # a DENM: never authenticated
    (Alert.PATH_LOCAL, False),   # given False over the value's True
])
def test_how_it_was_heard_given_apart(path, authenticated):
    """path and authenticated given to alert_to_msg say how this station got the alert
    instead of the value's own; the other fields are the value's."""
    msg = alert_to_msg(FULL, path=path, authenticated=authenticated)
    assert (msg.path, msg.authenticated) == (path, authenticated)
    back = alert_from_msg(msg)
    assert dataclasses.replace(back, authenticated=FULL.authenticated) == FULL
