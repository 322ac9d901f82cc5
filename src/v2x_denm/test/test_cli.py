import json
import subprocess

import pytest

from v2x_denm import cli

ENCODE = ['encode', '--type', 'collision', '--severity', 'medium', '--distance-m', '150',
          '--suggest', 'stop', '--road', 'A', '--lat', '37.5', '--lon', '127.0',
          '--ttl-s', '120', '--source-id', 'rsu_server_01', '--sequence', '9',
          '--its-station-id', '1234']


def test_encode_decode_as_processes():
    """The installed v2x_denm encodes to hex and decodes to one JSON object (two runs)."""
    enc = subprocess.run(['v2x_denm', *ENCODE], capture_output=True, text=True, timeout=60)
    assert enc.returncode == 0, enc.stderr
    hex_text = enc.stdout.strip()
    bytes.fromhex(hex_text)
    dec = subprocess.run(['v2x_denm', 'decode', hex_text], capture_output=True, text=True,
                         timeout=60)
    assert dec.returncode == 0, dec.stderr
    out = json.loads(dec.stdout)
    alert = out['alert']
    assert (alert['kind'], alert['sequence'], alert['latitude'], alert['longitude']) == (
        'collision', 9, 37.5, 127.0)
    assert (alert['severity'], alert['distance_m'], alert['validity_s']) == (
        'medium', 200.0, 120.0)
    assert alert['source_id'] == 'denm:1234' and not alert['cancelled']
    mgmt = out['denm']['denm']['management']
    assert out['denm']['header']['stationID'] == 1234
    assert mgmt['actionID'] == {'originatingStationID': 1234, 'sequenceNumber': 9}
    assert mgmt['eventPosition']['latitude'] == 375000000
    assert out['denm']['denm']['situation']['eventType']['causeCode'] == 2


def test_cancel_in_process(capsys):
    """--cancel of our own event decodes as isCancellation (in-process main)."""
    assert cli.main([*ENCODE, '--cancel'], now_ns=1_796_179_074_000_000_000) == 0
    hex_text = capsys.readouterr().out.strip()
    assert cli.main(['decode', hex_text]) == 0
    alert = json.loads(capsys.readouterr().out)['alert']
    assert alert['cancelled'] and alert['termination'] == 'isCancellation'
    assert alert['detection_time'] == '2026-12-02T02:37:54.000Z'


@pytest.mark.parametrize('argv, names', [
    (['encode', '--lat', '91'], '--lat'),                    # beyond the pole
    (['encode', '--lon', '-181'], '--lon'),                  # beyond the antimeridian
    (['encode', '--sequence', '65536'], '--sequence'),       # 16-bit sequenceNumber
    (['encode', '--ttl-s', '100000'], '--ttl-s'),            # more than a day
    (['encode', '--distance-m', '-5'], '--distance-m'),      # negative
    (['encode', '--confidence', '2'], '--confidence'),       # beyond 1
    (['encode', '--road', 'A\x1b[2J'], '--road'),            # a terminal escape
    (['decode', 'xyz'], 'HEX'),                              # not hex
    (['decode', '0201'], 'HEX'),                             # truncated DENM
])
def test_bad_input_names_the_field(argv, names, capsys):
    """Bad input: exit status 2 and a message naming the field."""
    assert cli.main(argv) == 2
    assert names in capsys.readouterr().err


@pytest.mark.parametrize('argv', [
    ['encode', '--type', 'meteor'],          # unknown kind name
    ['encode', '--its-station-id', '-1'],    # station id out of range
])
def test_bad_flags_exit_2(argv, capsys):
    """argparse refusals exit 2 naming the flag."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert argv[1] in capsys.readouterr().err


def test_old_station_id_flag_still_works(capsys):
    """--station-id (deprecated) still sets the StationID, with a warning; together with
    --its-station-id it is refused (exit 2)."""
    old = [*ENCODE[:-2], '--station-id', '1234']
    assert cli.main(old, now_ns=1_796_179_074_000_000_000) == 0
    captured = capsys.readouterr()
    assert 'deprecated' in captured.err and '--its-station-id' in captured.err
    assert captured.out.strip() == _encoded(capsys)
    assert cli.main([*ENCODE, '--station-id', '1'], now_ns=1) == 2
    assert 'give only' in capsys.readouterr().err


def _encoded(capsys) -> str:
    assert cli.main(ENCODE, now_ns=1_796_179_074_000_000_000) == 0
    return capsys.readouterr().out.strip()
