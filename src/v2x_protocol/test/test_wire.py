import math
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from v2x_protocol import keys, wire

KEY = keys.HmacKey(b'test-secret-0123456789abcdef')
RING = keys.Keyring([KEY])
T = 1_800_000_000_000_000_000

f32s = st.floats(width=32, allow_nan=False, allow_infinity=False)
#: printable text (no C0/C1/DEL, no bidi control: the range table refuses those)
BIDI = '\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069'
texts = st.text(st.characters(blacklist_categories=('Cs', 'Cc'), blacklist_characters=BIDI),
                max_size=60)
ids = st.text(st.characters(blacklist_categories=('Cs', 'Cc'),
                            blacklist_characters=BIDI + '@'), min_size=1, max_size=40)
unit = st.floats(0.0, 1.0, width=32)
alerts = st.builds(
    wire.AlertData,
    source_id=ids,
    sequence=st.integers(1, 2**32 - 1),
    kind=st.integers(0, 3), severity=st.integers(1, 3), suggest=st.integers(0, 2),
    stamp_ns=st.integers(0, wire.MAX_TIME_NS - 1),
    detection_time_ns=st.integers(0, wire.MAX_TIME_NS - 1),
    validity_s=st.floats(min_value=0.5, max_value=86400.0, width=32),
    cancelled=st.booleans(),
    latitude=st.floats(-90, 90), longitude=st.floats(-180, 180),
    road=texts, distance_m=st.floats(0.0, 1e6, width=32), confidence=unit,
    clip_requested=st.booleans(), clip_id=texts)
heartbeats = st.builds(
    wire.HeartbeatData, source_id=ids, role=st.integers(1, 2),
    status=st.integers(0, 2), status_message=texts, active_alerts=st.integers(0, 65535),
    uptime_s=st.floats(0.0, 1e9, width=32), period_s=st.floats(min_value=0.5, max_value=1024.0,
                                                             width=32))


def _alert(**kw):
    base = dict(source_id='rsu_server_01', sequence=1, kind=1, severity=3, suggest=1,
                stamp_ns=T, detection_time_ns=T, validity_s=600.0, latitude=37.1,
                longitude=127.1, road='segment_A', distance_m=500.0)
    base.update(kw)
    return wire.AlertData(**base)


def _dg(payload=None, signer=KEY, counter=1):
    return wire.encode(payload or _alert(), signer=signer, session=42, counter=counter,
                       send_time_ns=T)


@settings(max_examples=300, deadline=None)
@given(payload=st.one_of(alerts, heartbeats), session=st.integers(0, 2**64 - 1),
       counter=st.integers(1, 2**64 - 1), send=st.integers(-2**63, 2**63 - 1))
def test_round_trip_any_message(payload, session, counter, send):
    """Any encodable alert or heartbeat decodes back to itself with its envelope."""
    data = wire.encode(payload, signer=KEY, session=session, counter=counter,
                       send_time_ns=send)
    assert len(data) <= wire.MAX_DATAGRAM
    dg = wire.decode(data, RING)
    assert dg.payload == payload
    assert (dg.envelope.session, dg.envelope.counter, dg.envelope.send_time_ns) == (
        session, counter, send)


def test_nan_position_survives():
    """NaN latitude/longitude/distance (unknown) come back as NaN."""
    a = _alert(latitude=math.nan, longitude=math.nan, distance_m=math.nan)
    got = wire.decode(_dg(a), RING).payload
    assert math.isnan(got.latitude) and math.isnan(got.longitude) and math.isnan(got.distance_m)


def test_local_fields_stay_off_the_wire():
    """authenticated and path (how this station got an alert) are not encoded: the bytes
    are the same and a decoded alert has the defaults; an unauthenticated key is apart."""
    local = _alert(authenticated=False, path=3)
    assert _dg(local) == _dg(_alert())
    got = wire.decode(_dg(local), RING).payload
    assert (got.authenticated, got.path) == (True, 0) and got == _alert()
    assert local.key != got.key and got.key == ('rsu_server_01', 1)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=1300))
def test_garbage_only_raises_wire_errors(data):
    """Random bytes never crash the decoder: they raise a WireError or decode."""
    try:
        wire.decode(data, keys.Keyring([KEY], allow_none=True))
    except wire.WireError:
        pass


@settings(max_examples=200, deadline=None)
@given(index=st.integers(0, 163), bit=st.integers(0, 7))
def test_any_bit_flip_is_rejected(index, bit):
    """Flipping any single bit of a signed datagram makes it fail to decode."""
    data = bytearray(_dg())
    data[index % len(data)] ^= 1 << bit
    with pytest.raises(wire.WireError):
        wire.decode(bytes(data), RING)


GOOD = _dg()
HEADER = '>2sBBBBH8sQQQq'


def _with_header(**fields):
    """GOOD with header fields replaced (tag left as it was)."""
    names = ['magic', 'version', 'type', 'auth', 'reserved', 'body_len', 'key_id',
             'origin', 'session', 'counter', 'send']
    values = dict(zip(names, struct.unpack_from(HEADER, GOOD), strict=True))
    values.update(fields)
    return struct.pack(HEADER, *values.values()) + GOOD[wire.HEADER_LEN:]


HOSTILE = [
    # nothing at all
    (b'', wire.MalformedDatagram),
    # cut inside the header
    (GOOD[:20], wire.MalformedDatagram),
    # cut inside the tag
    (GOOD[:-1], wire.MalformedDatagram),
    # one byte too many
    (GOOD + b'\x00', wire.MalformedDatagram),
    # larger than the limit, even if the prefix is fine
    (GOOD + bytes(1200), wire.OversizedDatagram),
    # not ours
    (b'GET / HTTP/1.1\r\n\r\n' + bytes(40), wire.MalformedDatagram),
    # the previous and a future version
    (_with_header(version=1), wire.UnsupportedVersion),
    (_with_header(version=3), wire.UnsupportedVersion),
    # unknown message type
    (_with_header(type=9), wire.MalformedDatagram),
    # unknown auth mode
    (_with_header(auth=7), wire.MalformedDatagram),
    # reserved byte set
    (_with_header(reserved=1), wire.MalformedDatagram),
    # auth downgraded to none without insecure
    (_with_header(auth=0, key_id=bytes(8))[:-32], wire.Unauthenticated),
    # auth none with a key id is against the spec, even in insecure mode
    (_with_header(auth=0)[:-32], wire.MalformedDatagram),
    # key id of a key we do not hold
    (_with_header(key_id=b'\x01' * 8), wire.UnknownKey),
    # counter changed after signing
    (_with_header(counter=2), wire.BadSignature),
    # wrong key, same key id cannot be forged: signed by another secret under our id
    (GOOD[:-32] + keys.HmacKey(b'other-secret-0123456789').sign(GOOD[:-32]), wire.BadSignature),
    # the tag zeroed
    (GOOD[:-32] + bytes(32), wire.BadSignature),
]


@pytest.mark.parametrize('data,error', HOSTILE)
def test_hostile_datagrams_raise_typed_errors(data, error):
    """Each hostile datagram is rejected with its own error type."""
    with pytest.raises(error):
        wire.decode(data, RING)


def test_wrong_key_is_unknown_key():
    """A datagram signed with another secret has another key id: unknown_key."""
    other = _dg(signer=keys.HmacKey(b'not-my-secret-0123456789'))
    with pytest.raises(wire.UnknownKey):
        wire.decode(other, RING)


def _time_patch(offset):
    # stamp_ns sits 8 bytes after the source id, detection_time 16: set one to -1
    def patch(b):
        at = 1 + b[0] + offset
        return b[:at] + struct.pack('>q', -1) + b[at + 8:]
    return patch


def _signed(body):
    header = struct.pack(HEADER, b'VX', 2, 1, 1, 0, len(body), KEY.key_id, 7, 1, 1, T)
    return header + body + KEY.sign(header + body)


@pytest.mark.parametrize('body_patch,what', [
    (lambda b: b[:-1], 'body one byte short'),
    (lambda b: b + b'x', 'trailing byte'),
    (lambda b: b'\x00' + b[b[0] + 1:], 'empty source id'),
    (lambda b: b[:1] + b'\xff' + b[2:], 'bad UTF-8 in source id'),
])
def test_signed_but_malformed_body_is_malformed(body_patch, what):
    """A correctly signed datagram whose body does not parse is malformed, not a crash."""
    body = body_patch(wire.encode_alert_body(_alert()))
    with pytest.raises(wire.MalformedDatagram):
        wire.decode(_signed(body), RING)


@pytest.mark.parametrize('body_patch,error', [
    # negative times: outside 0..2^31 s
    (_time_patch(8), wire.OutOfRange),
    (_time_patch(16), wire.OutOfRange),
    # ESC / NUL in source_id: control characters
    (lambda b: b'\x02\x1b[' + b[b[0] + 1:], wire.ControlChars),
    (lambda b: b'\x03a\x00b' + b[b[0] + 1:], wire.ControlChars),
    # a C1 control (U+009B, CSI) in UTF-8
    (lambda b: b'\x03a\xc2\x9b' + b[b[0] + 1:], wire.ControlChars),
])
def test_signed_body_outside_the_range_table(body_patch, error):
    """A correctly signed body with a value outside the range table: its own reason."""
    with pytest.raises(error):
        wire.decode(_signed(body_patch(wire.encode_alert_body(_alert()))), RING)


def test_unknown_flags_are_malformed():
    """Flag bits this version does not define are rejected."""
    body = bytearray(wire.encode_alert_body(_alert()))
    body[1 + len('rsu_server_01') + 7] |= 0x80
    with pytest.raises(wire.MalformedDatagram, match='flags'):
        wire.decode(_signed(bytes(body)), RING)


@pytest.mark.parametrize('alert,match', [
    (_alert(source_id=''), 'source_id'),
    (_alert(road='x' * 256), 'road'),
    (_alert(sequence=2**32), 'sequence'),
    (_alert(kind=256), 'kind'),
    (_alert(kind=4), 'kind'),
    (_alert(distance_m=1e39), 'distance_m'),
    (_alert(distance_m=-500.0), 'distance_m'),
    (_alert(latitude=137.0), 'latitude'),
    (_alert(longitude=500.0), 'longitude'),
    (_alert(confidence=5.0), 'confidence'),
    (_alert(validity_s=math.inf), 'validity_s'),
    (_alert(road='€' * 128), 'road'),
    (_alert(source_id='a\x1bb'), 'source_id'),
])
def test_local_misuse_raises_invalid_message(alert, match):
    """Fields that cannot be encoded raise InvalidMessage (our fault, not the peer's)."""
    with pytest.raises(wire.InvalidMessage, match=match):
        _dg(alert)


def test_largest_alert_fits_the_limit():
    """Every text at its 255-byte maximum still fits 1200 bytes with an Ed25519 tag."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    signer = keys.Ed25519Signer(Ed25519PrivateKey.generate())
    a = _alert(source_id='s' * 255, road='r' * 255, clip_id='c' * 255)
    assert len(_dg(a, signer=signer)) <= wire.MAX_DATAGRAM
