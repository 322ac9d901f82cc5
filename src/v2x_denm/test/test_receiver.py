import dataclasses

from v2x_common import mappings
from v2x_denm import codec, link
from v2x_denm.receiver import (
    DenmDelivered,
    DenmReceiver,
    DenmRejected,
    DenmRepeated,
    OwnDenmSkipped,
)
from v2x_protocol.wire import AlertData

T0 = 1_796_179_074_423_000_000
REMOTE = codec.Station(77, source_id='rsu_far')
S = 1_000_000_000


def _alert(**kw) -> AlertData:
    base = dict(source_id='rsu_far', sequence=3, kind=mappings.KIND_COLLISION,
                severity=3, suggest=0, stamp_ns=T0, detection_time_ns=T0,
                validity_s=60.0, latitude=37.5, longitude=127.0, distance_m=200.0)
    base.update(kw)
    return AlertData(**base)


def _btp(a: AlertData, station=REMOTE) -> bytes:
    return link.btp_b(codec.encode_alert(a, station))


def test_repetition_update_and_termination():
    """First copy new, same referenceTime repeat, newer update, older outdated, then
    termination cancels once and is final."""
    rx = DenmReceiver(own_station_id=1)
    a = _alert()
    first = rx.receive_btp(_btp(a), T0 + S)
    assert isinstance(first, DenmDelivered) and first.change == 'new'
    assert first.denm.alert.source_id == 'denm:77' and first.denm.alert.sequence == 3
    again = rx.receive_btp(_btp(a), T0 + 2 * S)
    assert isinstance(again, DenmRepeated) and again.change == 'repeat'
    newer = dataclasses.replace(a, stamp_ns=T0 + 5 * S)
    assert rx.receive_btp(_btp(newer), T0 + 6 * S).change == 'update'
    assert rx.receive_btp(_btp(a), T0 + 6 * S).change == 'outdated'
    cancel = dataclasses.replace(a, stamp_ns=T0 + 7 * S, cancelled=True)
    got = rx.receive_btp(_btp(cancel), T0 + 8 * S)
    assert isinstance(got, DenmDelivered) and got.change == 'cancel'
    assert got.denm.termination == 'isCancellation'
    later = dataclasses.replace(a, stamp_ns=T0 + 9 * S)
    assert isinstance(rx.receive_btp(_btp(later), T0 + 10 * S), DenmRepeated)
    assert isinstance(rx.receive_btp(_btp(cancel), T0 + 10 * S), DenmRepeated)


def test_negation_from_another_station_cancels():
    """A station negating another's event (isNegation) cancels it under that actionID."""
    rx = DenmReceiver(own_station_id=1)
    a = _alert(source_id='denm:55')
    assert rx.receive_btp(_btp(a), T0 + S).change == 'new'
    negation = dataclasses.replace(a, stamp_ns=T0 + 2 * S, cancelled=True)
    got = rx.receive_btp(_btp(negation), T0 + 3 * S)
    assert got.change == 'cancel' and got.denm.termination == 'isNegation'
    assert got.denm.alert.key == ('denm:55', 3)


def test_expiry_and_future():
    """Past detectionTime + validityDuration: expired; referenceTime beyond the skew:
    future_dated; after expiry the event is forgotten."""
    rx = DenmReceiver(own_station_id=1, max_clock_skew_s=5)
    a = _alert(validity_s=10.0)
    assert rx.receive_btp(_btp(a), T0 + S).change == 'new'
    late = rx.receive_btp(_btp(a), T0 + 11 * S)
    assert isinstance(late, DenmRejected) and late.reason == 'expired'
    assert rx.active_events == 0
    ahead = rx.receive_btp(_btp(_alert(stamp_ns=T0 + 60 * S, sequence=4)), T0)
    assert isinstance(ahead, DenmRejected) and ahead.reason == 'future_dated'


def test_own_station_skipped_and_garbage_rejected():
    """Our own DENM looped back is skipped; garbage is rejected with its reason."""
    rx = DenmReceiver(own_station_id=77)
    assert isinstance(rx.receive_btp(_btp(_alert()), T0 + S), OwnDenmSkipped)
    assert rx.receive_btp(b'\x07\xd2\x00\x00garbage', T0).reason == 'malformed'
    assert rx.receive_btp(b'\x07\xd1\x00\x00', T0).reason == 'not_denm'
    assert rx.receive_gn(b'\x12' + bytes(60), T0).reason == 'secured'


def test_gn_and_udp_forms_agree():
    """The same DENM via a GN packet and via the UDP form is one event."""
    rx = DenmReceiver(own_station_id=1)
    btp = _btp(_alert())
    pkt = link.gn_packet(btp, source=bytes(6), sender=link.Position(0, 0, 0), sequence=1,
                         centre=(375000000, 1270000000), radius_m=200)
    assert rx.receive_gn(pkt, T0 + S).change == 'new'
    assert rx.receive_btp(btp, T0 + S).change == 'repeat'


def test_bounded_table():
    """The event table holds at most max_events."""
    rx = DenmReceiver(own_station_id=1, max_events=3)
    for seq in range(5):
        rx.receive_btp(_btp(_alert(sequence=seq)), T0 + S)
    assert rx.active_events == 3


def test_termination_for_an_unknown_event_is_ignored_not_stored():
    """A termination for an actionID never heard is dropped ('unknown_event') and not
    kept: the event's first DENM afterwards is still delivered as new."""
    rx = DenmReceiver(own_station_id=1)
    a = _alert(sequence=40, stamp_ns=T0 + 5 * S)
    pre_cancel = dataclasses.replace(a, stamp_ns=T0 + 2 * S, cancelled=True)
    got = rx.receive_btp(_btp(pre_cancel), T0 + 3 * S)
    assert isinstance(got, DenmRejected) and got.reason == 'unknown_event'
    assert rx.active_events == 0
    first = rx.receive_btp(_btp(a), T0 + 6 * S)
    assert isinstance(first, DenmDelivered) and first.change == 'new'
    # the event known, a termination of it still cancels
    end = dataclasses.replace(a, stamp_ns=T0 + 7 * S, cancelled=True)
    assert rx.receive_btp(_btp(end), T0 + 8 * S).change == 'cancel'
