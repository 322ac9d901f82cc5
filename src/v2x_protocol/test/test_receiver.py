from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import pytest

from v2x_protocol import wire
from v2x_protocol.io import keys
from v2x_protocol.receiver import (
    AlertDelivered,
    AlertRepeated,
    DatagramRejected,
    HeartbeatReceived,
    OwnDatagramSkipped,
    Receiver,
    classify,
)
from v2x_protocol.sender import Sender

S = 1_000_000_000
T = 1_800_000_000 * S
KEY = keys.HmacKey(b'test-secret-0123456789abcdef')


def _alert(**kw):
    base = dict(source_id='rsu_server_01', sequence=1, kind=1, severity=3, suggest=1,
                stamp_ns=T, detection_time_ns=T, validity_s=10.0)
    base.update(kw)
    return wire.AlertData(**base)


@pytest.fixture
def rx():
    return Receiver(keys.Keyring([KEY]), max_clock_skew_s=5.0)


def test_new_then_repeats_not_delivered(rx):
    """The first datagram of an event is delivered as new; its repeats are not delivered."""
    tx = Sender(KEY)
    first = rx.receive(tx.datagram(_alert(), T), T)
    assert isinstance(first, AlertDelivered) and first.change == 'new'
    for i in range(1, 5):
        again = rx.receive(tx.datagram(_alert(), T + i * S), T + i * S)
        assert isinstance(again, AlertRepeated) and again.change == 'repeat'


def test_update_and_cancel_are_delivered(rx):
    """A newer stamp is an update, a cancellation is delivered, then the event is final."""
    tx = Sender(KEY)
    assert rx.receive(tx.datagram(_alert(), T), T).change == 'new'
    upd = rx.receive(tx.datagram(_alert(stamp_ns=T + S, severity=2), T + S), T + S)
    assert isinstance(upd, AlertDelivered) and upd.change == 'update'
    older = rx.receive(tx.datagram(_alert(), T + S), T + S)
    assert isinstance(older, AlertRepeated) and older.change == 'outdated'
    cancel = rx.receive(tx.datagram(_alert(stamp_ns=T + 2 * S, cancelled=True), T + 2 * S),
                        T + 2 * S)
    assert isinstance(cancel, AlertDelivered) and cancel.change == 'cancel'
    late = rx.receive(tx.datagram(_alert(stamp_ns=T + 3 * S), T + 3 * S), T + 3 * S)
    assert isinstance(late, AlertRepeated)


def test_replayed_datagram_is_rejected(rx):
    """The same bytes received twice: the second is a replay."""
    data = Sender(KEY).datagram(_alert(), T)
    assert isinstance(rx.receive(data, T), AlertDelivered)
    again = rx.receive(data, T + S)
    assert isinstance(again, DatagramRejected) and again.reason == 'replayed'


def test_replay_after_expiry_is_rejected():
    """A captured datagram replayed after detection_time + validity_s is expired."""
    rx = Receiver(keys.Keyring([KEY]), max_clock_skew_s=3600.0)
    data = Sender(KEY).datagram(_alert(validity_s=10.0), T)
    assert isinstance(rx.receive(data, T), AlertDelivered)
    fresh = Receiver(keys.Keyring([KEY]), max_clock_skew_s=3600.0)  # e.g. after a reboot
    for r in (rx, fresh):
        late = r.receive(data, T + 11 * S)
        assert isinstance(late, DatagramRejected) and late.reason == 'expired'


def test_replay_after_session_forgotten_fails_the_window(rx):
    """Once the session is pruned, a replay of its datagram is older than the skew window."""
    data = Sender(KEY).datagram(_alert(validity_s=600.0), T)
    assert isinstance(rx.receive(data, T), AlertDelivered)
    rx.receive(Sender(KEY).datagram(_alert(sequence=2, validity_s=600.0), T + 20 * S),
               T + 20 * S)  # triggers pruning
    late = rx.receive(data, T + 20 * S)
    assert isinstance(late, DatagramRejected) and late.reason == 'too_old'


@pytest.mark.parametrize('send_offset_s,reason', [
    (6.0, 'future_dated'),   # beyond the 5 s window ahead
    (-6.0, 'too_old'),       # beyond the 5 s window behind
])
def test_generation_time_window(rx, send_offset_s, reason):
    """Datagrams generated outside the clock-skew window are rejected."""
    data = Sender(KEY).datagram(_alert(), T + int(send_offset_s * S))
    event = rx.receive(data, T)
    assert isinstance(event, DatagramRejected) and event.reason == reason


def test_within_window_is_accepted(rx):
    """A sender 4 s ahead (inside the window) is accepted."""
    assert isinstance(rx.receive(Sender(KEY).datagram(_alert(), T + 4 * S), T), AlertDelivered)


def test_restarted_sender_is_not_locked_out(rx):
    """A new session (counter back at 1) delivers its new events; known ones stay repeats."""
    first = Sender(KEY)
    for i in range(3):
        rx.receive(first.datagram(_alert(), T + i * S), T + i * S)
    restarted = Sender(KEY)
    assert restarted.session != first.session
    same = rx.receive(restarted.datagram(_alert(), T + 3 * S), T + 3 * S)
    assert isinstance(same, AlertRepeated)
    new = rx.receive(restarted.datagram(_alert(sequence=2, stamp_ns=T + 3 * S), T + 3 * S),
                     T + 3 * S)
    assert isinstance(new, AlertDelivered) and new.change == 'new'


def test_out_of_order_counters_within_window_accepted(rx):
    """Multicast may reorder: an older unseen counter is accepted once."""
    tx = Sender(KEY)
    d1 = tx.datagram(_alert(sequence=1), T)
    d2 = tx.datagram(_alert(sequence=2), T)
    assert rx.receive(d2, T).change == 'new'
    assert rx.receive(d1, T).change == 'new'
    assert rx.receive(d1, T).reason == 'replayed'


def test_heartbeat_reports_clock_offset(rx):
    """A heartbeat sent 1.5 s ahead of our clock gives clock_offset_s = 1.5."""
    hb = wire.HeartbeatData('rsu_server_01', 1, active_alerts=2)
    event = rx.receive(Sender(KEY).datagram(hb, T + 1_500_000_000), T)
    assert isinstance(event, HeartbeatReceived)
    assert event.clock_offset_s == pytest.approx(1.5)


def test_own_session_is_skipped():
    """Datagrams of our own session (multicast loopback) are neither delivered nor dropped."""
    tx = Sender(KEY)
    rx = Receiver(keys.Keyring([KEY]), own_sessions=[tx.session])
    assert isinstance(rx.receive(tx.datagram(_alert(), T), T), OwnDatagramSkipped)


def test_key_rotation_accepts_old_and_new_keys():
    """A receiver holding two keys accepts either; a third is unknown."""
    old, new = keys.HmacKey(b'old-secret-0123456789'), keys.HmacKey(b'new-secret-0123456789')
    rx = Receiver(keys.Keyring([old, new]))
    assert isinstance(rx.receive(Sender(old).datagram(_alert(), T), T), AlertDelivered)
    assert isinstance(rx.receive(Sender(new).datagram(_alert(sequence=2), T), T),
                      AlertDelivered)
    third_key = keys.HmacKey(b'x-secret-0123456789abc')
    third = rx.receive(Sender(third_key).datagram(_alert(sequence=3), T), T)
    assert third.reason == 'unknown_key'


def test_ed25519_trust_store(tmp_path):
    """Trusted Ed25519 keys verify; an untrusted station's key is unknown."""
    trusted = keys.Ed25519Signer(Ed25519PrivateKey.generate())
    stranger = keys.Ed25519Signer(Ed25519PrivateKey.generate())
    store = tmp_path / 'trust'
    store.write_text('# RSUs\n' + keys.trust_entry('rsu_server_01', trusted.public_raw) + '\n')
    rx = Receiver(keys.Keyring(ed25519_keys=keys.load_trust_store(store)))
    assert isinstance(rx.receive(Sender(trusted).datagram(_alert(), T), T), AlertDelivered)
    assert rx.receive(Sender(stranger).datagram(_alert(), T), T).reason == 'unknown_key'


def test_unsigned_only_when_insecure():
    """auth none is rejected unless the receiver allows it explicitly."""
    data = Sender(None).datagram(_alert(), T)
    assert Receiver(keys.Keyring([KEY])).receive(data, T).reason == 'unsigned'
    assert isinstance(Receiver(keys.Keyring(allow_none=True)).receive(data, T),
                      AlertDelivered)


def test_state_is_bounded_and_never_evicts_events():
    """Sessions beyond the cap are forgotten oldest first; events are never evicted: a new
    event beyond the cap is dropped as state_full, a held one stays a repeat."""
    rx = Receiver(keys.Keyring([KEY]), max_sessions=10, max_events=10)
    senders = [Sender(KEY) for _ in range(50)]
    for i, sender in enumerate(senders):
        got = rx.receive(sender.datagram(_alert(sequence=i + 1), T), T)
        if i < 10:
            assert isinstance(got, AlertDelivered)
        else:
            assert isinstance(got, DatagramRejected) and got.reason == 'state_full'
    assert rx.active_events == 10 and rx.held_sessions <= 10
    # a held event repeated by a new session is a repeat, never new again
    assert isinstance(rx.receive(Sender(KEY).datagram(_alert(sequence=1), T), T),
                      AlertRepeated)


def test_per_source_quota():
    """One source id cannot take the whole event table: its quota is refused first."""
    rx = Receiver(keys.Keyring([KEY]), max_events=100, max_events_per_source=5)
    tx = Sender(KEY)
    got = [rx.receive(tx.datagram(_alert(sequence=i), T), T) for i in range(1, 8)]
    assert [getattr(e, 'reason', 'ok') for e in got] == ['ok'] * 5 + ['state_full'] * 2
    other = rx.receive(tx.datagram(_alert(source_id='rsu_b'), T), T)
    assert isinstance(other, AlertDelivered)


def test_new_unknown_sources_lose_first():
    """A flood of new source ids fills 90% of the table; a source already holding an event
    still gets its next event in, a new source does not (one signer may fill the table
    here: its quota is lifted to show the table's own rule)."""
    rx = Receiver(keys.Keyring([KEY]), max_events=20, max_events_per_source=5,
                  max_events_per_signer=20)
    tx = Sender(KEY)
    assert isinstance(rx.receive(tx.datagram(_alert(source_id='rsu_real'), T), T),
                      AlertDelivered)
    flood = [rx.receive(tx.datagram(_alert(source_id=f'fake_{i}'), T), T) for i in range(30)]
    assert sum(isinstance(e, AlertDelivered) for e in flood) == 17  # up to 18 of 20 held
    assert rx.receive(tx.datagram(_alert(source_id='fake_new'), T), T).reason == 'state_full'
    assert isinstance(rx.receive(tx.datagram(_alert(source_id='rsu_real', sequence=2), T), T),
                      AlertDelivered)


@pytest.mark.parametrize('prev,incoming,expected', [
    (None, _alert(), 'new'),
    (None, _alert(cancelled=True), 'cancel'),
    ((T, False), _alert(), 'repeat'),
    ((T, False), _alert(stamp_ns=T + 1), 'update'),
    ((T, False), _alert(stamp_ns=T - 1), 'outdated'),
    ((T, False), _alert(cancelled=True), 'cancel'),
    ((T, True), _alert(stamp_ns=T + 1), 'repeat'),
])
def test_event_table(prev, incoming, expected):
    """The event table of docs/protocol.md."""
    assert classify(prev, incoming) == expected


def test_replace_keeps_identity():
    """An update keeps (source_id, sequence) as its key."""
    a = _alert()
    assert replace(a, stamp_ns=T + 1).key == a.key
