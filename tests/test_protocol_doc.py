"""The answers of docs/protocol.md to the 31 ambiguities of issue 24 item 9, where a test
can check them ("Resolved ambiguities" names this file). Pure: the receiver core, the
trust-store parser, the state files, the CSV row and the CLI's text; nothing is started."""

import base64
from dataclasses import replace
import json
import math
from pathlib import Path
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import pytest

from v2x_bridge import cli, csvlog, v2x_alert_server
from v2x_protocol import keys, ranges, wire
from v2x_protocol.io.state import SequenceStore
from v2x_protocol.receiver import (
    AlertDelivered,
    AlertRepeated,
    HeartbeatReceived,
    Receiver,
    classify,
)
from v2x_protocol.sender import Sender

DOC = Path(__file__).resolve().parents[1] / 'docs' / 'protocol.md'
S = 1_000_000_000
T = 1_800_000_000 * S
KEY = keys.HmacKey(b'doc-answers-secret-0123456789abc')
SEED = bytes(range(32))


BASE = wire.AlertData('rsu_server_01', 1, 1, 3, 1, T, T, 600.0, latitude=37.1,
                      longitude=127.1, road='segment_A', distance_m=500.0)


def _alert(**kw):
    return replace(BASE, **kw)


def _raw(alert, counter=1, signer=KEY, header=None, lat_bits=None, lon_bits=None):
    """A datagram built field by field, without the sender's checks (hostile input)."""
    def text(s):
        b = s.encode()
        return bytes([len(b)]) + b
    flags = (1 if alert.cancelled else 0) | (2 if alert.clip_requested else 0)
    body = bytearray(text(alert.source_id) + wire._ALERT_FIXED.pack(
        alert.sequence, alert.kind, alert.severity, alert.suggest, flags, alert.stamp_ns,
        alert.detection_time_ns, alert.validity_s, alert.latitude, alert.longitude,
        alert.distance_m, alert.confidence) + text(alert.road) + text(alert.clip_id))
    off = 1 + len(alert.source_id.encode()) + 4 + 4 + 8 + 8 + 4
    if lat_bits is not None:
        body[off:off + 8] = struct.pack('>Q', lat_bits)
    if lon_bits is not None:
        body[off + 8:off + 16] = struct.pack('>Q', lon_bits)
    fields = dict(magic=b'VX', version=2, type=1, auth=signer.auth, reserved=0,
                  body_len=len(body), key_id=signer.key_id, origin=1, session=9,
                  counter=counter, send=T)
    fields.update(header or {})
    head = wire._HEADER.pack(*fields.values())
    return head + bytes(body) + signer.sign(head + bytes(body))


def _reason(data, rx=None, now=T):
    got = (rx or Receiver(keys.Keyring([KEY]))).receive(data, now)
    return getattr(got, 'reason', type(got).__name__)


@pytest.mark.parametrize('change,reason', [
    (dict(data=b'VX' + bytes(40)), 'malformed'),                  # shorter than 48
    (dict(data=bytes(1201)), 'oversized'),                         # size first
    (dict(magic=b'XX', version=1), 'malformed'),                   # magic before version
    (dict(version=1), 'unknown_version'),
    (dict(type=3), 'malformed'),
    (dict(auth=3), 'malformed'),
    (dict(reserved=1), 'malformed'),
    (dict(counter=0), 'malformed'),
    (dict(body_len=10), 'malformed'),                              # length mismatch
])
def test_step_one_reasons_and_order(change, reason):
    """Step 1: oversized, then malformed for every structural fault but the version."""
    data = change.pop('data', None) or _raw(_alert(), header=change)
    assert _reason(data) == reason


def test_none_with_key_id_is_malformed_and_a_signed_datagram_at_an_insecure_receiver():
    """auth 0 with a key id is malformed; a signed datagram at an insecure receiver is
    unknown_key."""
    signed = Sender(KEY).datagram(_alert(), T)
    assert _reason(signed, Receiver(keys.Keyring(allow_none=True))) == 'unknown_key'


@pytest.mark.parametrize('fields,reason', [
    (dict(source_id='rsu\x1b[2K', latitude=137.0), 'control_chars'),  # source_id first
    (dict(latitude=137.0, road='seg\x1b[2K'), 'out_of_range'),         # latitude first
    (dict(road='segment_\u202eA'), 'control_chars'),                    # a bidi override
    (dict(source_id='a@b'), 'out_of_range'),                            # '@' is reserved
])
def test_range_table_order_and_new_rules(fields, reason):
    """The first failing field in wire order decides; bidi controls and '@' are refused."""
    assert _reason(_raw(_alert(**fields))) == reason


@pytest.mark.parametrize('fields', [
    dict(latitude=90.0, longitude=-180.0),              # bounds included
    dict(latitude=math.nan, longitude=127.1),           # each NaN on its own
    dict(source_id='r' * 255),                          # receivers take 255 bytes
    dict(road='zero\u200bwidth\u200djoiners\ufeff'),    # invisible but allowed
    dict(clip_requested=True, clip_id=''),              # clip not named yet
    dict(clip_requested=True, clip_id='cam_01-77'),     # not <source_id>-<sequence>
])
def test_values_a_receiver_accepts(fields):
    """Edge values the document accepts are delivered."""
    assert _reason(_raw(_alert(**fields))) == 'AlertDelivered'


def test_printable_escapes_invisible_and_control_characters():
    """Logs and the CLI show zero-width, bidi and control characters as escapes."""
    assert ranges.printable('a\u200bb\u202ec\x1bd') == 'a\\u200bb\\u202ec\\x1bd'


def test_any_nan_bit_pattern_is_unknown_and_senders_write_the_quiet_nan():
    """A negative NaN with a payload is an unknown position; a sender writes 7ff8..."""
    odd = _raw(_alert(latitude=math.nan, longitude=math.nan),
               lat_bits=0xfff8000000000001, lon_bits=0x7ff0000000000001)
    got = Receiver(keys.Keyring([KEY])).receive(odd, T)
    assert isinstance(got, AlertDelivered) and math.isnan(got.alert.latitude)
    body = wire.encode_alert_body(_alert(latitude=math.nan, longitude=math.nan))
    assert bytes.fromhex('7ff8000000000000' * 2) in body


def test_senders_check_before_float32_rounding():
    """A sender refuses confidence 1.00000001 (it would round to 1.0); the receiver takes
    the rounded 1.0 on the wire."""
    with pytest.raises(wire.InvalidMessage, match='confidence'):
        Sender(KEY).datagram(_alert(confidence=1.00000001), T)
    assert wire.f32(1.00000001) == 1.0
    assert _reason(_raw(_alert(confidence=1.00000001))) == 'AlertDelivered'


def test_station_id_of_64_bytes_is_a_tool_rule(capsys):
    """v2x_alert_server refuses a --source-id over 64 bytes, naming it."""
    code = v2x_alert_server.main(['--source-id', 'r' * 65, '--insecure'], env={})
    assert code == 2 and '--source-id' in capsys.readouterr().err


def _store_line(raw: bytes, *ids: str) -> str:
    return keys.trust_entry('rsu_a', raw, ids)


def test_trust_store_comments_canonical_base64_duplicates_and_whole_file():
    """A '#' starting a word starts a comment, inside a word it is text; base64 must be
    canonical; a key listed twice is refused; any bad line refuses the whole file, naming
    the line; one id under two keys is allowed."""
    one = keys.Ed25519Signer(Ed25519PrivateKey.from_private_bytes(SEED)).public_raw
    two = keys.Ed25519Signer(Ed25519PrivateKey.generate()).public_raw
    b64 = base64.b64encode(one).decode()
    (ok,) = keys.parse_trust_store(f'# RSUs\nrsu_a ed25519 {b64} det/cam#1 #x cam_9\n')
    assert ok.source_ids == {'rsu_a', 'det/cam#1'}
    sloppy = b64[:-2] + chr(ord(b64[-2]) + 1) + '='  # same bytes, unused bits set
    assert base64.b64decode(sloppy) == one
    bad_files = {
        'canonical': f'rsu_a ed25519 {sloppy}\n',
        'the same key': f'{_store_line(one)}\n{_store_line(one)}\n',
        'store:2': f'{_store_line(two)}\nrsu_b ed25519 not-base64!\n',
        'non-canonical encoding': 'rsu_a ed25519 ' + base64.b64encode(
            ((1 << 255) - 19).to_bytes(32, 'little')).decode() + '\n',
    }
    for words, text in bad_files.items():
        with pytest.raises(keys.KeyConfigError, match=words):
            keys.parse_trust_store(text, 'store')
    both = keys.parse_trust_store(f'{_store_line(one)}\nrsu_a2 ed25519 '
                                  f'{base64.b64encode(two).decode()} rsu_a\n')
    assert all('rsu_a' in k.source_ids for k in both)


def test_ed25519_signature_with_s_above_the_group_order_is_refused():
    """Ed25519: S + L (same S modulo L) is bad_signature, as RFC 8032 5.1.7 wants."""
    signer = keys.Ed25519Signer(Ed25519PrivateKey.from_private_bytes(SEED))
    ring = keys.Keyring(ed25519_keys=[keys.Ed25519Verifier(signer.public_raw, 'rsu_server_01')])
    data = Sender(signer).datagram(_alert(), T)
    order = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(data[-32:], 'little') + order
    assert _reason(data[:-32] + s.to_bytes(32, 'little'), Receiver(ring)) == 'bad_signature'


def test_pem_text_is_refused_as_an_hmac_secret():
    """A secret starting, after white space, with -----BEGIN is a PEM file: refused."""
    with pytest.raises(keys.KeyConfigError, match='PEM'):
        keys.parse_secret(b' \n-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n')


def test_high_water_mark_is_clamped_and_ignores_origin():
    """A datagram sent 20 s ahead moves the mark only to the receive time; the mark's key
    is (source_id, auth, key_id), whatever the origin."""
    rx = Receiver(keys.Keyring([KEY]))
    rx.receive(Sender(KEY, origin=5).datagram(_alert(), T + 20 * S), T)
    assert rx.high_water == {('rsu_server_01', 1, KEY.key_id): T}
    assert rx.high_water_state() == {f'1:{KEY.key_id.hex()}:rsu_server_01': T}


def test_state_full_does_not_consume_the_counter():
    """A datagram dropped as state_full is accepted later (not 'replayed') once there is
    room: its counter was not marked."""
    rx = Receiver(keys.Keyring([KEY]), max_events=1)
    tx = Sender(KEY)
    first = tx.datagram(_alert(validity_s=1.0), T)
    second = tx.datagram(_alert(sequence=2), T)
    assert isinstance(rx.receive(first, T, 0), AlertDelivered)
    assert rx.receive(second, T, 0).reason == 'state_full'
    later = rx.receive(second, T, 32 * S)  # the first event is gone (1 s + 30 s skew)
    assert isinstance(later, AlertDelivered), later


def test_quota_is_per_raw_source_id_and_the_tenth_rounds_down():
    """Two origins of one source id share its quota; with a table of 25 a new source is
    refused from 25 - floor(2.5) = 23 held events."""
    rx = Receiver(keys.Keyring([KEY]), max_events_per_source=2)
    got = [rx.receive(Sender(KEY, origin=o).datagram(_alert(), T), T) for o in (1, 2, 3)]
    assert [getattr(e, 'reason', None) or e.change for e in got] == ['new', 'new',
                                                                      'state_full']
    rx = Receiver(keys.Keyring([KEY]), max_events=25, max_events_per_source=1,
                  max_events_per_signer=25)
    tx = Sender(KEY)
    held = [rx.receive(tx.datagram(_alert(source_id=f's{i}'), T), T) for i in range(30)]
    assert sum(isinstance(e, AlertDelivered) for e in held) == 23


def test_the_last_delivered_version_sets_how_long_an_event_is_kept():
    """An update with a shorter validity shortens the event's life in the table."""
    rx = Receiver(keys.Keyring([KEY]))
    tx = Sender(KEY)
    rx.receive(tx.datagram(_alert(validity_s=600.0), T), T, 0)
    assert rx.receive(tx.datagram(_alert(validity_s=1.0, stamp_ns=T + 1), T), T, 0).change == \
        'update'
    rx.receive(tx.datagram(wire.HeartbeatData('other', 1), T), T, 32 * S)  # prunes
    assert rx.active_events == 0


def test_conflict_naming_heartbeats_and_silence():
    """A heartbeat of a second origin raises the conflict but keeps the plain name; the
    alert is named <source_id>@<16 lowercase hex>; after 2 x skew of silence a new origin
    takes the plain name without a conflict."""
    rx = Receiver(keys.Keyring([KEY]))
    hb = wire.HeartbeatData('rsu_server_01', 1)
    rx.receive(Sender(KEY, origin=0xA).datagram(hb, T), T, 0)
    other = rx.receive(Sender(KEY, origin=0xB).datagram(hb, T), T, 0)
    assert isinstance(other, HeartbeatReceived) and other.heartbeat.source_id == \
        'rsu_server_01' and rx.counters['id_conflicts'] == 1
    named = rx.receive(Sender(KEY, origin=0xB).datagram(_alert(), T), T, 0)
    assert named.alert.source_id == 'rsu_server_01@000000000000000b'
    later = rx.receive(Sender(KEY, origin=0xC).datagram(hb, T + 61 * S), T + 61 * S, 61 * S)
    assert isinstance(later, HeartbeatReceived) and rx.counters['id_conflicts'] == 1
    fresh = rx.receive(Sender(KEY, origin=0xC).datagram(_alert(sequence=5), T + 61 * S),
                       T + 61 * S, 61 * S)
    assert fresh.alert.source_id == 'rsu_server_01'


def test_an_older_cancellation_does_not_cancel_a_newer_update():
    """Event table: a cancellation stamped before the live version is outdated."""
    live = (T + 5, False)
    assert classify(live, _alert(cancelled=True, stamp_ns=T)) == 'outdated'
    assert classify(live, _alert(cancelled=True, stamp_ns=T + 5)) == 'cancel'
    rx = Receiver(keys.Keyring([KEY]))
    tx = Sender(KEY)
    rx.receive(tx.datagram(_alert(stamp_ns=T + 5), T), T)
    assert isinstance(rx.receive(tx.datagram(_alert(cancelled=True), T), T), AlertRepeated)


def test_state_directory_example_is_what_the_store_reads(tmp_path):
    """The sequence.json example of the document: its origin is kept and sequences go on
    above its ceilings."""
    text = DOC.read_text(encoding='utf-8')
    example = text.split('## The state directory', 1)[1].split('```json\n', 1)[1]
    (tmp_path / 'sequence.json').write_text(example.split('```', 1)[0], encoding='utf-8')
    store = SequenceStore(tmp_path)
    assert store.origin == 0x1122334455667788
    assert (store.next('rsu_server_01'), store.next('cam_01'), store.next('new')) == (65, 129, 1)
    saved = json.loads((tmp_path / 'sequence.json').read_text(encoding='utf-8'))
    assert saved['origin'] == '1122334455667788' and saved['ceilings']['new'] == 64


def test_csv_prefix_is_for_text_cells_only():
    """A negative longitude stays a number; a road starting with '-' is neutralised."""
    row = dict(zip(csvlog.COLUMNS, csvlog.row(_alert(longitude=-122.5, road='-1+1'), 'new',
                                              T / 1e9), strict=True))
    assert row['longitude'] == '-122.5000000' and row['road'] == "'-1+1"


def test_recv_examples_are_what_the_client_prints():
    """The smoke test's [RECV] lines: the text after the time is the client's, with the
    change kind and the conflict name."""
    text = DOC.read_text(encoding='utf-8')
    lines = [ln.split('Z ', 1)[1] for ln in text.splitlines()
             if ln.strip().startswith('[RECV] ')]
    stop = _alert(kind=3, suggest=2, distance_m=40.0,
                  source_id='rsu_server_01@99aabbccddeeff00')
    assert lines == [cli.describe(_alert(latitude=37.12345, longitude=127.12345)),
                     cli.describe(_alert()) + ' cancel', cli.describe(stop)]
