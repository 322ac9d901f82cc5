"""Protocol v2 hardening (issue 18, with the identity rules of issue 12), in-process:
the replay window, counter jumps, the text filter, keys, clocks, identity and the store."""

import math
import os
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from v2x_protocol import keys, ranges, wire
from v2x_protocol.io import keys as keyfiles
from v2x_protocol.io.state import HighWaterFile, SentEvents, SequenceStore
from v2x_protocol.receiver import (
    MAX_COUNTER_JUMP,
    WINDOW,
    AlertDelivered,
    AlertRepeated,
    DatagramRejected,
    Receiver,
    ReplayWindow,
)
from v2x_protocol.sender import Outbox, Sender, UnknownEvent, fill_identity

S = 1_000_000_000
T = 1_800_000_000 * S
SECRET = b'hardening-secret-0123456789'
KEY = keys.HmacKey(SECRET)


def _alert(**kw):
    base = dict(source_id='rsu_server_01', sequence=1, kind=2, severity=3, suggest=2,
                stamp_ns=T, detection_time_ns=T, validity_s=60.0, latitude=37.1,
                longitude=127.1, road='segment_A', distance_m=40.0)
    base.update(kw)
    return wire.AlertData(**base)


# --- replay window ----------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(1, 300), st.integers(1, 2**64 - 1)), max_size=60))
def test_replay_window_matches_its_specification(counters):
    """Against a model that remembers every counter: accepted iff not seen, within 63 of
    the highest, and at most 2^32 above it; the state stays O(1) for any counter."""
    window, seen, highest = ReplayWindow(), set(), 0
    for c in counters:
        if c > highest + MAX_COUNTER_JUMP:
            expected = 'counter_jump'
        elif c in seen or c <= highest - WINDOW:
            expected = 'replayed'
        else:
            expected = ''
        assert window.check(c) == expected, (c, highest)
        if not expected:
            window.mark(c)
            seen.add(c)
            highest = max(highest, c)
        assert window.highest == highest and window.bitmap.bit_length() <= WINDOW


def test_counter_one_then_2_62_is_harmless():
    """The MemoryError reproduction (counter 1 then 2^62 in one session) is now a drop with
    its own reason, at once; a jump of 2^31 is accepted and keeps the bitmap 64 bits."""
    tx = Sender(KEY, session=7)
    rx = Receiver(keys.Keyring([KEY]))
    assert isinstance(rx.receive(tx.datagram(_alert(), T), T), AlertDelivered)
    tx.counter = 2**62 - 1
    start = time.process_time()
    got = rx.receive(tx.datagram(_alert(sequence=2), T), T)
    assert isinstance(got, DatagramRejected) and got.reason == 'counter_jump'
    tx.counter = 2**31
    assert isinstance(rx.receive(tx.datagram(_alert(sequence=3), T), T), AlertDelivered)
    (session,) = rx._sessions.values()
    assert session.window.bitmap.bit_length() <= WINDOW
    assert time.process_time() - start < 5.0  # no giant integers were built


class _Exploding:
    """A keyring whose verifier fails with a bug-like exception."""

    def verifier(self, auth, key_id):
        raise RuntimeError('boom')


def test_no_exception_leaves_the_receiver():
    """Anything unexpected is a counted drop (internal_error), never raised."""
    rx = Receiver(_Exploding())
    got = rx.receive(Sender(KEY).datagram(_alert(), T), T)
    assert isinstance(got, DatagramRejected) and got.reason == 'internal_error'
    assert rx.counters['internal_errors'] == 1


# --- text -------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_text_filter(text):
    """check_text refuses exactly the texts with C0/C1/DEL; printable() never leaves one."""
    controls = [c for c in text if ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f]
    try:
        ranges.check_text('road', text)
        refused = False
    except ranges.ControlCharacter:
        refused = True
    except ranges.FieldError:
        refused = None  # too long / surrogates: another verdict
    if refused is not None:
        assert refused == bool(controls)
    assert not ranges.has_control(ranges.printable(text))


@pytest.mark.parametrize('text', ['rsu_server_01\x00evil', '\x1b[2K[RECV] forged', 'a\x9bb',
                                  'tab\there', 'cr\rlf\n', 'del\x7f'])
def test_control_characters_never_reach_the_air(text):
    """Encoding refuses them (naming the field); decoding drops them as control_chars."""
    with pytest.raises(wire.InvalidMessage, match='source_id.*control character'):
        Sender(KEY).datagram(_alert(source_id=text), T)


# --- keys -------------------------------------------------------------------------------

@pytest.mark.parametrize('secret', [b'a', b'SECRET', b'mysecret', b'0123456789abcde'])
def test_short_secrets_are_refused_saying_how_to_make_one(secret, tmp_path):
    """Under 16 bytes: refused as literal, $V2X_KEY and file, each telling what to run."""
    f = tmp_path / 'k'
    f.write_bytes(secret + b'\n')
    f.chmod(0o600)
    for kwargs in ({'key': secret.decode()}, {'env': {'V2X_KEY': secret.decode()}},
                   {'key_file': str(f)}):
        with pytest.raises(keys.KeyConfigError, match='v2x_keygen --hmac'):
            keyfiles.hmac_from_sources(**kwargs)


def test_key_id_is_hkdf_not_a_fingerprint():
    """The key id and the MAC key come from HKDF under separate labels."""
    import hashlib
    assert KEY.key_id != hashlib.sha256(SECRET).digest()[:8]
    assert KEY.key_id == keys.hkdf(SECRET, keys.LABEL_KEY_ID, 8)
    assert keys.hkdf(SECRET, keys.LABEL_MAC, 8) != KEY.key_id


def test_key_file_trimming(tmp_path):
    """Exactly one trailing LF or CRLF is removed; other whitespace is part of the key."""
    base = b'trim-secret-0123456789'
    ids = set()
    for content in (base, base + b'\n', base + b'\r\n'):
        f = tmp_path / f'k{len(content)}'
        f.write_bytes(content)
        f.chmod(0o600)
        ids.add(keys.HmacKey(keyfiles.read_secret_file(f)).key_id)
    assert len(ids) == 1
    f = tmp_path / 'two'
    f.write_bytes(base + b'\n\n')
    f.chmod(0o600)
    assert keys.HmacKey(keyfiles.read_secret_file(f)).key_id not in ids


def test_key_confusions_are_refused(tmp_path):
    """PEM where HMAC is expected and the reverse; insecure with a key; readable files."""
    from cryptography.hazmat.primitives import serialization
    pem = tmp_path / 'ed.key'
    pem.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    pem.chmod(0o600)
    hmac_file = tmp_path / 'hmac.key'
    hmac_file.write_text('confusion-secret-0123456789\n')
    hmac_file.chmod(0o600)
    with pytest.raises(keys.KeyConfigError, match='PEM'):
        keyfiles.make_signer('hmac', key_file=str(pem))
    with pytest.raises(keys.KeyConfigError, match='not a PEM'):
        keyfiles.make_signer('ed25519', key_file=str(hmac_file))
    with pytest.raises(keys.KeyConfigError, match='insecure'):
        keyfiles.make_keyring('hmac', key_file=str(hmac_file), insecure=True)
    with pytest.raises(keys.KeyConfigError, match='insecure'):
        keyfiles.make_keyring('none', key_file=str(hmac_file), insecure=True)
    hmac_file.chmod(0o640)
    with pytest.raises(keys.KeyConfigError, match=f'chmod 600 {hmac_file}'):
        keyfiles.read_secret_file(hmac_file)
    with pytest.raises(keys.KeyConfigError, match='chmod 600'):
        keyfiles.check_private_file(hmac_file, 'token file')


@pytest.mark.parametrize('raw_hex,why', [
    ('01' + '00' * 31, 'small order'),      # the identity point
    ('00' * 32, 'small order'),             # order 4
    ('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'small order'),
    ('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'non-canonical'),
    ('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', 'small order'),
])
def test_trust_store_refuses_weak_public_keys(raw_hex, why, tmp_path):
    """Small-order and non-canonical keys (R = identity, S = 0 forgeries) are refused."""
    store = tmp_path / 'trust'
    store.write_text(keys.trust_entry('rsu_x', bytes.fromhex(raw_hex)) + '\n')
    with pytest.raises(keys.KeyConfigError, match=why):
        keyfiles.load_trust_store(store)


def test_ed25519_signer_speaks_only_for_its_listed_source_ids(tmp_path):
    """A trust-store line lists the source ids a key may sign for: others are forged."""
    rsu = keys.Ed25519Signer(Ed25519PrivateKey.generate())
    car = keys.Ed25519Signer(Ed25519PrivateKey.generate())
    store = tmp_path / 'trust'
    store.write_text(keys.trust_entry('rsu_a', rsu.public_raw, ['cam_7']) + '\n'
                     + keys.trust_entry('vehicle_9', car.public_raw) + '\n')
    rx = Receiver(keys.Keyring(ed25519_keys=keyfiles.load_trust_store(store)))
    for source, signer, verdict in (('rsu_a', rsu, 'ok'), ('cam_7', rsu, 'ok'),
                                    ('rsu_a', car, 'forged_source'),
                                    ('rsu_b', rsu, 'forged_source')):
        got = rx.receive(Sender(signer).datagram(_alert(source_id=source), T), T)
        assert getattr(got, 'reason', 'ok') == verdict, (source, got)


# --- time -------------------------------------------------------------------------------

def test_clock_step_never_wipes_state_nor_revives_a_cancelled_alert():
    """The reproduction: alert, cancel; the wall clock steps +1 h and back; a capture of
    the alert sent again is not delivered (the state aged on the monotonic clock)."""
    rx = Receiver(keys.Keyring([KEY]), max_clock_skew_s=30.0)
    tx = Sender(KEY)
    captured = tx.datagram(_alert(), T)
    mono = 5 * S
    assert rx.receive(captured, T, mono).change == 'new'
    cancel = tx.datagram(_alert(cancelled=True, stamp_ns=T + S), T + S)
    assert rx.receive(cancel, T + S, mono + S).change == 'cancel'
    # our clock jumps an hour ahead: a live sender's datagram looks old (dropped), and the
    # step is noted; nothing is forgotten
    live = Sender(KEY).datagram(_alert(sequence=9), T + 2 * S)
    assert rx.receive(live, T + 3600 * S, mono + 2 * S).reason == 'too_old'
    assert rx.counters['clock_steps'] == 1 and rx.clock_step_s == pytest.approx(3598.0)
    got = rx.receive(captured, T + 3 * S, mono + 3 * S)  # stepped back
    assert not isinstance(got, AlertDelivered)
    # even from a new session (header re-signed by a key holder: same event, cancelled)
    again = Sender(KEY).datagram(_alert(), T + 3 * S)
    assert isinstance(rx.receive(again, T + 3 * S, mono + 4 * S), AlertRepeated)
    assert rx.active_events == 1


def test_high_water_mark_survives_a_restart():
    """After a restart with the saved marks, a capture much older than the newest datagram
    of its sender is too_old even when the receiver's clock was set back to its time."""
    tx = Sender(KEY)
    old = tx.datagram(_alert(), T)
    first = Receiver(keys.Keyring([KEY]))
    assert isinstance(first.receive(tx.datagram(_alert(sequence=2, stamp_ns=T + 3600 * S,
                                                       detection_time_ns=T + 3600 * S),
                                                T + 3600 * S), T + 3600 * S), AlertDelivered)
    saved = Receiver.high_water_from_state(first.high_water_state())
    restarted = Receiver(keys.Keyring([KEY]), high_water=saved)
    got = restarted.receive(old, T)
    assert isinstance(got, DatagramRejected) and got.reason == 'too_old'
    fresh = Receiver(keys.Keyring([KEY]))
    assert isinstance(fresh.receive(old, T), AlertDelivered)  # what the mark prevents


def test_clock_offset_is_measured_before_the_skew_check_drops_it():
    """A peer 40 s ahead is dropped as future_dated, but its offset is known."""
    rx = Receiver(keys.Keyring([KEY]), max_clock_skew_s=30.0)
    got = rx.receive(Sender(KEY).datagram(_alert(), T + 40 * S), T)
    assert got.reason == 'future_dated'
    assert rx.clock_offsets['rsu_server_01'][0] == pytest.approx(40.0)


def test_heartbeat_period_is_capped():
    """A heartbeat period beyond 3600 s cannot be sent (and is out_of_range received)."""
    hb = wire.HeartbeatData('rsu_server_01', 1, period_s=7200.0)
    with pytest.raises(wire.InvalidMessage, match='period_s'):
        Sender(KEY).datagram(hb, T)


# --- identity and the sender's state -----------------------------------------------------

def test_cancellation_carries_the_events_fields_and_unknown_ones_are_refused():
    """fill_identity takes a cancellation's fields from the event it cancels."""
    box = Outbox(1.0)
    fire = _alert(sequence=4, kind=2, suggest=2, distance_m=40.0, road='segment_F')
    box.put(fire, T)
    bare = _alert(sequence=4, cancelled=True, kind=1, suggest=1, distance_m=500.0,
                  road='segment_A', stamp_ns=0, detection_time_ns=0, validity_s=0.0)
    cancel = fill_identity(bare, station_id='rsu_server_01', now_ns=T + S,
                           default_validity_s=600.0, next_sequence=None, previous=box.get)
    assert cancel.cancelled and (cancel.kind, cancel.suggest, cancel.distance_m,
                                 cancel.road) == (2, 2, 40.0, 'segment_F')
    assert cancel.stamp_ns == T + S and cancel.detection_time_ns == fire.detection_time_ns
    with pytest.raises(UnknownEvent, match='rsu_server_01#999'):
        fill_identity(_alert(sequence=999, cancelled=True), station_id='rsu_server_01',
                      now_ns=T, default_validity_s=600.0, next_sequence=None,
                      previous=box.get)


def test_processes_sharing_a_state_dir_never_share_a_sequence(tmp_path):
    """Two stores on one directory (the gateway and a CLI tool): one origin, and under the
    file lock no sequence is handed out twice, however their calls interleave."""
    gateway, cli_a = SequenceStore(tmp_path, block=8), SequenceStore(tmp_path, block=1)
    assert gateway.origin == cli_a.origin != 0
    got = []
    for i in range(40):
        got.append((gateway if i % 3 else cli_a).next('rsu_server_01'))
    assert len(got) == len(set(got))
    other = SequenceStore(tmp_path / 'other')
    assert other.origin != gateway.origin


def test_sent_events_record(tmp_path):
    """The CLI's record gives a later --cancel the event's fields until it expires."""
    events = SentEvents(tmp_path)
    SequenceStore(tmp_path)
    events.record(_alert(sequence=3, latitude=math.nan, longitude=math.nan), T)
    found = events.lookup(('rsu_server_01', 3), T + S)
    assert found is not None and found.kind == 2 and math.isnan(found.latitude)
    assert events.lookup(('rsu_server_01', 3), T + 61 * S) is None
    assert events.lookup(('rsu_server_01', 4), T) is None
    assert os.stat(tmp_path / SequenceStore.LOCK).st_mode & 0o077 == 0


@settings(max_examples=300, deadline=None)
@given(lat=st.one_of(st.floats(), st.integers(-200, 200)), dist=st.floats(),
       conf=st.floats(), validity=st.floats(), kind=st.integers(-1, 5),
       road=st.text(max_size=5), seq=st.integers(-1, 2**33))
def test_range_fast_path_never_passes_what_the_full_check_refuses(lat, dist, conf, validity,
                                                                   kind, road, seq):
    """The receiver's fast path accepts only alerts the field-by-field check accepts."""
    a = _alert(latitude=lat, distance_m=dist, confidence=conf, validity_s=validity,
               kind=kind, road=road, sequence=seq)
    if ranges._alert_fast(a, True):
        ranges._check_alert_each(a, True)  # must not raise


def test_a_forgotten_session_is_never_replayed():
    """With the session table full the oldest session is forgotten, but a replay of one of
    its datagrams (a heartbeat: no event table behind it) is refused; a newer session of
    any sender still gets in."""
    rx = Receiver(keys.Keyring([KEY]), max_sessions=2)
    hb = wire.HeartbeatData('rsu_server_01', 1, period_s=10.0)
    first = Sender(KEY).datagram(hb, T)
    assert rx.receive(first, T).__class__.__name__ == 'HeartbeatReceived'
    for i in (1, 2):  # two more senders push the first session out
        rx.receive(Sender(KEY).datagram(wire.HeartbeatData(f'rsu_{i}', 1), T + i * S),
                   T + i * S)
    assert rx.held_sessions == 2
    got = rx.receive(first, T + 3 * S)
    assert isinstance(got, DatagramRejected) and got.reason == 'state_full'
    fresh = Sender(KEY).datagram(hb, T + 4 * S)
    assert rx.receive(fresh, T + 4 * S).__class__.__name__ == 'HeartbeatReceived'


def test_own_id_from_another_origin_is_a_conflict():
    """The sending side: a receiver that knows its own (id, origin) reports another origin
    using that id at once, and delivers that station's alerts under another name."""
    rx = Receiver(keys.Keyring([KEY]))
    rx.own_ids['rsu_server_01'] = (111, 222)
    got = rx.receive(Sender(KEY, origin=333).datagram(_alert(), T), T)
    assert got.change == 'new' and got.alert.source_id == f'rsu_server_01@{333:016x}'
    (conflict,) = rx.take_conflicts()
    assert (conflict.origin, conflict.other_origin, conflict.other_session) == (333, 111, 222)


def test_origins_per_source_id_are_bounded():
    """A key holder inventing origins for one source id: the table stays bounded, every
    newcomer is delivered under its own name, never as the first station's events."""
    rx = Receiver(keys.Keyring([KEY]))
    assert rx.receive(Sender(KEY, origin=1).datagram(_alert(), T), T).change == 'new'
    names = set()
    for origin in range(2, 60):
        got = rx.receive(Sender(KEY, origin=origin).datagram(_alert(), T), T)
        assert got.change == 'new' and got.alert.source_id != 'rsu_server_01'
        names.add(got.alert.source_id)
    assert len(names) == 58 and len(rx._origins['rsu_server_01']) <= 16
    assert len(rx._names) <= 16


def test_high_water_file_round_trip(tmp_path):
    """The high-water marks saved by HighWaterFile come back as the receiver's marks; a
    broken file reads as none."""
    rx = Receiver(keys.Keyring([KEY]))
    rx.receive(Sender(KEY).datagram(wire.HeartbeatData('rsu_server_01', 1), T), T)
    store = HighWaterFile(tmp_path)
    store.save(rx)
    assert store.load() == rx.high_water == {('rsu_server_01', 1, KEY.key_id): T}
    store.path.write_text('{not json')
    assert store.load() == {}
