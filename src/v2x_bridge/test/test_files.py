import csv
import math
import os

import pytest

from v2x_bridge.cli import describe
from v2x_bridge.csvlog import COLUMNS, RotatingCsv, cell, row
from v2x_protocol import wire
from v2x_protocol.io import keys
from v2x_protocol.io.state import SequenceStore
from v2x_protocol.sender import MAX_VALIDITY_S, InvalidTiming, Outbox, fill_identity

S = 1_000_000_000
T = 1_800_000_000 * S


def _alert(**kw):
    base = dict(source_id='', sequence=0, kind=1, severity=3, suggest=1, stamp_ns=0,
                detection_time_ns=0, validity_s=0.0, road='segment_A', distance_m=500.0)
    base.update(kw)
    return wire.AlertData(**base)


def test_sequence_persists_across_restarts(tmp_path):
    """A restarted store continues the count per source id."""
    store = SequenceStore(tmp_path, block=1)
    assert [store.next('rsu_server_01') for _ in range(3)] == [1, 2, 3]
    assert store.next('other') == 1
    again = SequenceStore(tmp_path, block=1)
    assert again.next('rsu_server_01') == 4


def test_sequence_block_reservation_never_reuses(tmp_path):
    """With blocks, a restart (even a crash mid-block) continues above all handed out."""
    store = SequenceStore(tmp_path, block=8)
    handed = [store.next('r') for _ in range(11)]
    assert handed == list(range(1, 12))
    again = SequenceStore(tmp_path, block=8)
    assert again.next('r') == 17  # above the reserved ceiling 16


def test_corrupt_state_file_is_reported(tmp_path):
    """An unreadable state file raises ValueError naming it, instead of restarting at 1."""
    for bad in ('{not json', '[1, 2]', '{"r": "x"}'):
        (tmp_path / SequenceStore.FILE).write_text(bad)
        with pytest.raises(ValueError, match='sequence.json'):
            SequenceStore(tmp_path)


def test_fill_identity_defaults(tmp_path):
    """Empty source, sequence 0, zero times and validity get the gateway's values."""
    store = SequenceStore(tmp_path)
    a = fill_identity(_alert(clip_requested=True), station_id='rsu_server_01', now_ns=T,
                      default_validity_s=600.0, next_sequence=store.next)
    assert (a.source_id, a.sequence, a.stamp_ns, a.detection_time_ns, a.validity_s) == (
        'rsu_server_01', 1, T, T, 600.0)
    assert a.clip_id == 'rsu_server_01-1'


def test_fill_identity_keeps_producer_identity():
    """A producer that owns its sequence keeps source, sequence, times and validity."""
    a = _alert(source_id='cam_01', sequence=7, stamp_ns=T - S, detection_time_ns=T - 2 * S,
               validity_s=30.0)
    out = fill_identity(a, station_id='rsu_server_01', now_ns=T, default_validity_s=600.0,
                        next_sequence=lambda s: pytest.fail('must not assign'))
    assert out == a


def test_outbox_repeats_until_expiry():
    """An alert is due every interval and is dropped once expired."""
    box = Outbox(repeat_interval_s=1.0)
    a = _alert(source_id='r', sequence=1, detection_time_ns=T, validity_s=3.0, stamp_ns=T)
    box.put(a, T)
    assert box.due(T + S // 2) == []
    assert box.due(T + S) == [a]
    assert box.due(T + 2 * S) == [a]
    assert box.due(T + 3 * S) == [] and len(box) == 0


def test_outbox_skips_missed_slots_at_once():
    """After a long stall an alert is due once, then on its cadence again."""
    box = Outbox(repeat_interval_s=1.0)
    a = _alert(source_id='r', sequence=1, detection_time_ns=T, validity_s=1e6, stamp_ns=T)
    box.put(a, T, due_now=True)
    assert box.due(T) == [a]
    assert box.due(T + 100_000 * S + S // 2) == [a]
    assert box.due(T + 100_000 * S + S * 3 // 4) == []
    assert box.due(T + 100_001 * S) == [a]


def test_outbox_update_replaces_version():
    """A newer version of an event replaces the one being repeated."""
    box = Outbox(1.0)
    a = _alert(source_id='r', sequence=1, detection_time_ns=T, validity_s=60.0, stamp_ns=T)
    b = _alert(source_id='r', sequence=1, detection_time_ns=T, validity_s=60.0,
               stamp_ns=T + 1, cancelled=True)
    box.put(a, T)
    box.put(b, T)
    assert box.due(T + S) == [b]


def test_csv_rotation_keeps_n_files(tmp_path):
    """Rows go to the file with a header; beyond max_bytes it rotates keeping `keep` files."""
    log = RotatingCsv(tmp_path / 'alerts.csv', max_bytes=400, keep=2)
    a = _alert(source_id='rsu_server_01', sequence=1, detection_time_ns=T, validity_s=600.0,
               latitude=37.1, longitude=127.1)
    for i in range(20):
        log.append(row(a, 'new', T / S + i))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ['alerts.csv', 'alerts.csv.1', 'alerts.csv.2']
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 400
        rows = list(csv.reader(p.open()))
        assert tuple(rows[0]) == COLUMNS
        assert rows[1][4:7] == ['collision', 'high', 'slow_down']


def test_hmac_key_sources(tmp_path):
    """Literal, file (newline stripped) and $V2X_KEY give the same key id."""
    f = tmp_path / 'k'
    f.write_text('files-secret-0123456789\n')
    f.chmod(0o600)
    ids = {keys.hmac_from_sources('files-secret-0123456789').key_id,
           keys.hmac_from_sources(key_file=str(f)).key_id,
           keys.hmac_from_sources(env={'V2X_KEY': 'files-secret-0123456789'}).key_id}
    assert len(ids) == 1
    assert keys.hmac_from_sources(env={}) is None


def test_no_key_message_says_how(tmp_path):
    """Without a key and without insecure, the error says how to give one."""
    with pytest.raises(keys.KeyConfigError, match='V2X_KEY'):
        keys.make_keyring('hmac', env={})
    with pytest.raises(keys.KeyConfigError, match='insecure'):
        keys.make_keyring('none')


def test_secret_not_in_repr():
    """repr() of a key shows its id, never the secret."""
    assert 'repr-secret-0123456789' not in repr(keys.HmacKey(b'repr-secret-0123456789'))


@pytest.mark.parametrize('content,match', [
    ('rsu_1 ed25519 notbase64!!\n', 'base64'),
    ('rsu_1 rsa AAAA\n', 'expected'),
    ('# only a comment\n', 'no keys'),
])
def test_bad_trust_store(tmp_path, content, match):
    """Bad trust-store files raise KeyConfigError with the line at fault."""
    p = tmp_path / 'trust'
    p.write_text(content)
    with pytest.raises(keys.KeyConfigError, match=match):
        keys.load_trust_store(p)


def test_state_file_write_is_atomic(tmp_path):
    """No temp file is left behind after assignments."""
    store = SequenceStore(tmp_path)
    store.next('a')
    assert sorted(os.listdir(tmp_path)) == [SequenceStore.FILE, SequenceStore.LOCK]


def test_update_keeps_event_times_from_previous_version():
    """A cancellation with zero times inherits detection_time/validity of the event."""
    box = Outbox(1.0)
    first = _alert(source_id='rsu_server_01', sequence=4, detection_time_ns=T - S,
                   validity_s=30.0, stamp_ns=T - S)
    box.put(first, T - S)
    cancel = fill_identity(_alert(sequence=4, cancelled=True), station_id='rsu_server_01',
                           now_ns=T, default_validity_s=600.0, next_sequence=None,
                           previous=box.get)
    assert (cancel.detection_time_ns, cancel.validity_s, cancel.stamp_ns) == (T - S, 30.0, T)


def test_cancel_without_sequence_is_refused():
    """A cancellation must name its event."""
    with pytest.raises(wire.InvalidMessage, match='sequence'):
        fill_identity(_alert(cancelled=True), station_id='r', now_ns=T,
                      default_validity_s=600.0, next_sequence=lambda s: 1)


@pytest.mark.parametrize('validity', [math.inf, -math.inf, math.nan, -1.0,
                                      MAX_VALIDITY_S * 2, 1e300])
def test_validity_the_time_math_cannot_take_is_refused(validity):
    """inf / nan / negative / huge validity_s raise InvalidTiming, not OverflowError later
    in expires_ns; 0 (the default) and the largest accepted value still work."""
    with pytest.raises(InvalidTiming, match='validity_s'):
        fill_identity(_alert(validity_s=validity), station_id='r', now_ns=T,
                      default_validity_s=600.0, next_sequence=lambda s: 1)
    with pytest.raises(InvalidTiming, match='validity_s'):
        fill_identity(_alert(), station_id='r', now_ns=T, default_validity_s=validity,
                      next_sequence=lambda s: 1)
    big = fill_identity(_alert(validity_s=MAX_VALIDITY_S), station_id='r', now_ns=T,
                        default_validity_s=600.0, next_sequence=lambda s: 1)
    assert big.expires_ns == T + int(MAX_VALIDITY_S) * S


def test_outbox_file_round_trip_skips_expired(tmp_path):
    """Saved live alerts come back (NaN position included); expired ones do not."""
    from v2x_protocol.io.state import OutboxFile
    live = _alert(source_id='r', sequence=1, detection_time_ns=T, validity_s=60.0, stamp_ns=T)
    dead = _alert(source_id='r', sequence=2, detection_time_ns=T - 100 * S, validity_s=60.0,
                  stamp_ns=T)
    f = OutboxFile(tmp_path)
    f.save([live, dead])
    back = f.load(T)
    assert len(back) == 1 and back[0].key == live.key and back[0].road == live.road
    (tmp_path / OutboxFile.FILE).write_text('[{"bogus": 1}, 5]')
    assert OutboxFile(tmp_path).load(T) == []


@pytest.mark.parametrize('text,written', [
    ('=HYPERLINK("http://x","click")', '\'=HYPERLINK("http://x","click")'),
    ('+1', "'+1"), ('-1', "'-1"), ('@SUM(A1)', "'@SUM(A1)"),
    ('\tx', "'\\x09x"), ('\rx', "'\\x0dx"),
    ('segment_A', 'segment_A'), ('a=b', 'a=b'),
])
def test_csv_cells_are_never_formulas(text, written):
    """A text cell starting with = + - @ TAB or CR gets a leading apostrophe; control
    characters are shown, never written (decode refuses them anyway: defence in depth)."""
    assert cell(text) == written


def test_printed_and_logged_text_cannot_move_the_cursor(tmp_path):
    """describe() and the CSV row show ESC / NUL / CR as \\xNN, so a forged source id can
    neither erase the [RECV] line nor cut the id short."""
    a = _alert(source_id='rsu\x1b[2K\r[RECV] fake\x00evil', sequence=1, road='=1+1',
               stamp_ns=T, detection_time_ns=T, validity_s=10.0)
    line = describe(a)
    assert '\x1b' not in line and '\r' not in line and '\x00' not in line
    assert 'src=rsu\\x1b[2K\\x0d[RECV] fake\\x00evil' in line
    log = RotatingCsv(tmp_path / 'a.csv')
    log.append(row(a, 'new', T / S))
    rows = list(csv.reader((tmp_path / 'a.csv').open()))
    assert rows[1][1] == 'rsu\\x1b[2K\\x0d[RECV] fake\\x00evil' and rows[1][8] == "'=1+1"


def test_keygen_makes_a_proper_hmac_key(tmp_path, capsys):
    """v2x_keygen --hmac: 32 random bytes as hex, mode 0600, loadable; never overwritten."""
    from v2x_bridge import v2x_keygen
    assert v2x_keygen.main(['--hmac', '--out-dir', str(tmp_path)]) == 0
    path = tmp_path / 'hmac.key'
    assert oct(path.stat().st_mode & 0o777) == '0o600'
    assert len(keys.read_secret_file(path)) == 64
    assert keys.hmac_from_sources(key_file=str(path)) is not None
    assert v2x_keygen.main(['--hmac', '--out-dir', str(tmp_path)]) == 1
    assert 'exists' in capsys.readouterr().err
