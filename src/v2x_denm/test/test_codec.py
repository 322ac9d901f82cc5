from datetime import datetime, timezone
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrate_asn1dir import ITS_DENM_3
import pytest

from v2x_common import mappings
from v2x_denm import codec
from v2x_protocol.wire import AlertData

STATION = codec.Station(1234, source_id='rsu_server_01')
T0_NS = 1_796_179_074_423_000_000  # 2026-12-02T02:37:54.423Z, whole ms


def _alert(**kw) -> AlertData:
    base = dict(source_id='rsu_server_01', sequence=9, kind=mappings.KIND_COLLISION,
                severity=mappings.SEVERITY_HIGH, suggest=mappings.SUGGEST_NONE,
                stamp_ns=T0_NS + 5_000_000, detection_time_ns=T0_NS, validity_s=600.0,
                latitude=37.5, longitude=127.0, distance_m=500.0, confidence=1.0)
    base.update(kw)
    return AlertData(**base)


def _unix_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def test_leap_second_2016_counts_in_timestamp_its():
    """The leap second 2016-12-31T23:59:60 is counted: 23:59:59 -> 00:00:00 is 2000 ms."""
    before = codec.unix_ms_to_its(_unix_ms('2016-12-31T23:59:59'))
    after = codec.unix_ms_to_its(_unix_ms('2017-01-01T00:00:00'))
    assert after - before == 2000
    # 2004-01-01 .. 2017-01-01 is 4749 days plus the 5 leap seconds since 2004
    assert after == 4749 * 86_400_000 + 5000
    assert codec.unix_ms_to_its(_unix_ms('2004-01-01T00:00:00')) == 0


def test_leap_second_inverse():
    """Back to Unix ms: both sides of the leap exact; inside 23:59:60 -> the midnight after."""
    for text in ('2016-12-31T23:59:59', '2017-01-01T00:00:00', '2004-01-01T00:00:00',
                 '2026-12-02T02:37:54.423'):
        ms = _unix_ms(text)
        assert codec.its_to_unix_ms(codec.unix_ms_to_its(ms)) == ms
    midnight = _unix_ms('2017-01-01T00:00:00')
    leap = codec.unix_ms_to_its(midnight) - 500  # 2016-12-31T23:59:60.5
    assert codec.its_to_unix_ms(leap) == midnight


def test_before_2004_is_refused():
    """A time before the ITS epoch names the field."""
    with pytest.raises(codec.InvalidAlert) as info:
        codec.alert_to_denm(_alert(detection_time_ns=0), STATION)
    assert info.value.field == 'detection_time'


@pytest.mark.parametrize('kind', sorted(codec.KIND_TO_CAUSE))
def test_every_kind_round_trips(kind):
    """Each kind goes out as its cause code and comes back as the same kind."""
    a = _alert(kind=kind)
    d = codec.decode_alert(codec.encode_alert(a, STATION))
    assert d.alert.kind == kind
    assert (d.cause_code, d.sub_cause_code) == codec.KIND_TO_CAUSE[kind]
    assert d.alert.source_id == 'denm:1234' and d.alert.sequence == 9
    assert d.station_id == d.originating_station_id == 1234
    assert d.alert.latitude == 37.5 and d.alert.longitude == 127.0
    assert d.alert.detection_time_ns == T0_NS and d.alert.stamp_ns == T0_NS + 5_000_000
    assert d.alert.validity_s == 600.0 and d.alert.distance_m == 500.0
    assert not d.alert.cancelled and d.termination is None


def test_collision_is_accident():
    """collision -> causeCode accident (2)."""
    assert codec.KIND_TO_CAUSE[mappings.KIND_COLLISION] == (2, 0)


def test_every_cause_code_has_a_kind():
    """Every causeCode of the ASN.1 is in the table; unlisted codes decode as unknown."""
    names = ITS_DENM_3.ITS_Container.CauseCodeType._cont
    assert set(names.values()) == set(codec.CAUSE_TO_KIND)
    assert codec.kind_of_cause(250, 0) == mappings.KIND_UNKNOWN
    assert codec.kind_of_cause(18, 1) == mappings.KIND_UNKNOWN  # fog is no fire
    assert codec.kind_of_cause(18, 2) == mappings.KIND_FIRE


@pytest.mark.parametrize('field, value, expect', [
    ('latitude', 90.0, 90.0), ('latitude', -90.0, -90.0),
    ('longitude', 180.0, 180.0), ('longitude', -180.0, -180.0),
    ('latitude', 1e-7, 1e-7), ('longitude', -123.4567891, -123.4567891),
    ('latitude', math.nan, math.nan), ('longitude', math.nan, math.nan),
    ('sequence', 0, 0), ('sequence', 65535, 65535),
    ('validity_s', 1.0, 1.0), ('validity_s', 86400.0, 86400.0),
    ('validity_s', 0.2, 1.0),      # rounded up to whole seconds: never shorter
    ('validity_s', 0.0, 600.0),    # our 0 = the default 600
    ('distance_m', 0.0, 50.0), ('distance_m', 50.0, 50.0), ('distance_m', 50.5, 100.0),
    ('distance_m', 10000.0, 10000.0), ('distance_m', 1e6, 10000.0),  # over10km
    ('distance_m', math.nan, math.nan),  # relevanceDistance left out
])
def test_edge_values(field, value, expect):
    """Edge values of each mapped field come back as the table says."""
    d = codec.decode_alert(codec.encode_alert(_alert(**{field: value}), STATION))
    got = getattr(d.alert, field)
    assert (math.isnan(got) and math.isnan(expect)) if isinstance(expect, float) and \
        math.isnan(expect) else got == pytest.approx(expect, abs=1e-9)


@pytest.mark.parametrize('severity, confidence, iq, back', [
    (mappings.SEVERITY_LOW, 0.1, 1, (mappings.SEVERITY_LOW, 0.25)),
    (mappings.SEVERITY_LOW, 1.0, 2, (mappings.SEVERITY_LOW, 0.75)),
    (mappings.SEVERITY_MEDIUM, 0.49, 3, (mappings.SEVERITY_MEDIUM, 0.25)),
    (mappings.SEVERITY_MEDIUM, 0.5, 4, (mappings.SEVERITY_MEDIUM, 0.75)),
    (mappings.SEVERITY_HIGH, 0.0, 5, (mappings.SEVERITY_HIGH, 0.25)),
    (mappings.SEVERITY_HIGH, 0.9, 6, (mappings.SEVERITY_HIGH, 0.75)),
    (mappings.SEVERITY_HIGH, 1.0, 7, (mappings.SEVERITY_HIGH, 1.0)),
])
def test_information_quality(severity, confidence, iq, back):
    """Severity survives exactly; confidence in two bands (7 for high and >= 0.95)."""
    d = codec.decode_alert(codec.encode_alert(
        _alert(severity=severity, confidence=confidence), STATION))
    assert d.information_quality == iq
    assert (d.alert.severity, d.alert.confidence) == back


def test_own_cancellation_and_foreign_negation():
    """Our own event cancelled -> isCancellation; another station's -> isNegation; both
    are management-only DENMs that decode as cancelled."""
    own = codec.decode_alert(codec.encode_alert(_alert(cancelled=True), STATION))
    assert own.termination == 'isCancellation' and own.alert.cancelled
    assert own.cause_code is None  # a termination DENM has no situation container
    foreign = codec.decode_alert(codec.encode_alert(
        _alert(source_id='denm:77', cancelled=True), STATION))
    assert foreign.termination == 'isNegation' and foreign.alert.cancelled
    assert foreign.originating_station_id == 77 and foreign.station_id == 1234
    assert foreign.alert.source_id == 'denm:77'


def test_station_id_derivation():
    """Default station id: first 4 bytes of SHA-256 of the source id; 'denm:N' -> N."""
    assert codec.station_id_of('rsu_server_01') == int.from_bytes(
        __import__('hashlib').sha256(b'rsu_server_01').digest()[:4], 'big')
    assert codec.station_id_of('denm:4294967295') == 4294967295
    assert codec.station_id_of('denm:4294967296') != 4294967296  # out of range: hashed
    other = codec.decode_alert(codec.encode_alert(_alert(source_id='detector_1'), STATION))
    assert other.originating_station_id == codec.station_id_of('detector_1')


def test_lossy_fields_are_dropped():
    """suggest, road, clip request and clip id are not carried (docs/denm.md lists them)."""
    a = _alert(suggest=mappings.SUGGEST_STOP, road='segment_A', clip_requested=True,
               clip_id='rsu-9')
    d = codec.decode_alert(codec.encode_alert(a, STATION)).alert
    assert (d.suggest, d.road, d.clip_requested, d.clip_id) == (
        mappings.SUGGEST_NONE, '', False, '')


@pytest.mark.parametrize('field, value', [
    ('latitude', 90.0000001),      # beyond the pole
    ('longitude', -180.5),         # beyond the antimeridian
    ('sequence', 65536),           # actionID.sequenceNumber is 16 bits
    ('validity_s', 86401.0),       # ValidityDuration is at most a day
    ('validity_s', -1.0),          # negative
    ('validity_s', math.nan),      # not a number
    ('distance_m', -1.0),          # negative distance
    ('confidence', 1.5),           # confidence is 0..1
    ('confidence', math.nan),      # the range table wants a confidence
    ('distance_m', 2e6),           # beyond the range table's 1000 km
    ('road', 'A\x1b[2J'),          # a control character (terminal escape)
    ('kind', 9),                   # no such kind
    ('severity', 0),               # no such severity
    ('stamp_ns', 10**9),           # 1970: before the ITS epoch
])
def test_invalid_alerts_name_the_field(field, value):
    """An alert a DENM cannot carry raises InvalidAlert naming the field."""
    with pytest.raises(codec.InvalidAlert) as info:
        codec.encode_alert(_alert(**{field: value}), STATION)
    assert info.value.field == ('stamp' if field == 'stamp_ns' else field)


@pytest.mark.parametrize('station_id, station_type', [(-1, 15), (2**32, 15), (1, 256)])
def test_invalid_station(station_id, station_type):
    """A station id or type outside the ASN.1 range is refused."""
    with pytest.raises(codec.InvalidAlert):
        codec.Station(station_id, station_type)


@pytest.mark.parametrize('data, why', [
    (b'', 'empty'),
    (b'\x02', 'one byte'),
    (bytes.fromhex('0202000004d2'), 'messageID cam(2), truncated'),
    (b'\xff' * 44, 'all ones'),
])
def test_garbage_is_malformed(data, why):
    """Bytes that are no DENM raise MalformedDenm, never anything else."""
    with pytest.raises(codec.MalformedDenm):
        codec.decode_alert(data)


def test_wrong_message_id_and_version():
    """A CAM header or a DENM v1 protocol version is refused by name."""
    value = codec.alert_to_denm(_alert(), STATION)
    value['header']['messageID'] = 2
    with pytest.raises(codec.MalformedDenm, match='messageID'):
        codec.decode_uper(codec.encode_uper(value))
    value['header'] = {'protocolVersion': 1, 'messageID': 1, 'stationID': 1}
    with pytest.raises(codec.MalformedDenm, match='protocolVersion'):
        codec.decode_uper(codec.encode_uper(value))


#: A mutated DENM (header kept, the rest random) on which pycrate raises NameError
#: ("name 'V' is not defined"): found by mutating encoded DENMs, about 1 in 15,000.
PYCRATE_NAME_ERROR = bytes.fromhex(
    '0201000004d2225be856a69ad3b2c0c7cb097372aa39511009fcd6fb391cd52bb5819bd5ef6fa072'
    '68ddfda69060daf2d32c7f88b49a78ba533f8d06a85accce')


def test_any_decoder_exception_is_malformed():
    """An exception pycrate's decoder was never meant to raise (here a NameError) is a
    malformed DENM, never an internal error."""
    with pytest.raises(codec.MalformedDenm, match='NameError'):
        codec.decode_alert(PYCRATE_NAME_ERROR)


@pytest.mark.parametrize('tail', [b'\x00', b'\xff', b'\x00' * 7, b'extra bytes'])
def test_trailing_bytes_after_a_denm_are_refused(tail):
    """A valid UPER DENM followed by anything (even zero bytes) is malformed: a DENM is
    the whole BTP payload."""
    data = codec.encode_alert(_alert(), STATION)
    assert codec.decode_alert(data).alert.sequence == 9
    with pytest.raises(codec.MalformedDenm, match=f'{len(tail)} byte'):
        codec.decode_alert(data + tail)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_decode_raises_only_malformed(data):
    """Random bytes decode or raise MalformedDenm; no other exception escapes."""
    try:
        codec.decode_alert(data)
    except codec.MalformedDenm:
        pass


_coord = st.one_of(st.just(math.nan), st.integers(-900_000_000, 900_000_000))


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(codec.KIND_TO_CAUSE)),
       severity=st.sampled_from([1, 2, 3]), sequence=st.integers(0, 65535),
       lat_e7=_coord, lon_e7=st.integers(-1_800_000_000, 1_800_000_000),
       detection_ms=st.integers(0, 10**12), age_ms=st.integers(0, 10**6),
       validity=st.integers(1, 86400), cancelled=st.booleans(),
       station=st.integers(0, 2**32 - 1))
def test_round_trip_property(kind, severity, sequence, lat_e7, lon_e7, detection_ms,
                             age_ms, validity, cancelled, station):
    """Every encodable alert (whole ms, 1e-7 degrees) comes back field for field."""
    base = codec.ITS_EPOCH_UNIX_S * 1000 + 5000
    lat = lat_e7 if isinstance(lat_e7, float) else lat_e7 / 1e7
    a = _alert(kind=kind, severity=severity, sequence=sequence, latitude=lat,
               longitude=lon_e7 / 1e7, detection_time_ns=(base + detection_ms) * 10**6,
               stamp_ns=(base + detection_ms + age_ms) * 10**6, validity_s=float(validity),
               cancelled=cancelled, source_id='')
    d = codec.decode_alert(codec.encode_alert(a, codec.Station(station)))
    b = d.alert
    assert (b.sequence, b.cancelled, b.validity_s) == (sequence, cancelled, validity)
    assert (b.detection_time_ns, b.stamp_ns) == (a.detection_time_ns, a.stamp_ns)
    assert b.longitude == lon_e7 / 1e7
    assert math.isnan(b.latitude) if math.isnan(lat) else b.latitude == lat
    assert d.originating_station_id == station and b.source_id == f'denm:{station}'
    if not cancelled:
        assert (b.kind, b.severity) == (kind, severity)
