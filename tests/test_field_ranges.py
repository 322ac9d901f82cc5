"""One field-range table (v2x_protocol/ranges.py), the same verdicts at every entry point:
v2x_alert_server's flags, v2x_inject, event_intake (file and HTTP), the gateway's
v2x/alert_out input and the receiver. In-process: one pass over a table of values, no
process per value."""

import json
import math
import struct
import time
import warnings

from fastapi.testclient import TestClient
import pytest

from v2x_bridge import v2x_alert_server, v2x_inject
from v2x_conversion.alert import alert_from_msg
from v2x_intake.core import FileRejected, Intake, IntakeSettings
from v2x_intake.http_api import create_app
from v2x_intake.ledger import Ledger
from v2x_protocol import keys, wire
from v2x_protocol.receiver import DatagramRejected, Receiver
from v2x_protocol.sender import Outbox, Sender, fill_identity

KEY = keys.HmacKey(b'ranges-test-key-0123456789')
NOW = time.time()

# (field, bad value, name of the field at the CLI flag / intake / Alert message)
CASES = [
    ('distance_m', -500.0),
    ('distance_m', math.inf),
    ('latitude', 137.0),
    ('longitude', 500.0),
    ('confidence', 5.0),
    ('road', '€' * 128),          # 384 bytes of UTF-8: over the wire's 255
    ('road', 'a\x1b[2Kb'),        # a control character
    ('validity_s', 1e6),          # beyond one day
]
FLAG = {'distance_m': '--distance-m', 'latitude': '--lat', 'longitude': '--lon',
        'confidence': '--confidence', 'road': '--road', 'validity_s': '--ttl-s'}
INTAKE = {'distance_m': 'distance_m', 'latitude': 'lat', 'longitude': 'lon',
          'confidence': 'confidence', 'road': 'road', 'validity_s': 'ttl_s'}
IDS = [f'{f}={v!r:.12}' for f, v in CASES]


def _cli(field, value):
    return [FLAG[field], str(value)]


def _intake_doc(field=None, value=None):
    doc = {'ts': time.time() - 1.0, 'type': 'fire', 'severity': 'high', 'lat': 37.1, 'lon': 127.1,
           'road': 'A', 'distance_m': 40, 'clip_hint': False, 'ttl_s': 3600}
    if field:
        doc[INTAKE[field]] = value
    return json.dumps(doc, allow_nan=True).encode()


@pytest.fixture(scope='module')
def intake(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('intake')
    for sub in ('events', 'processed', 'failed'):
        (tmp / sub).mkdir()
    settings = IntakeSettings(events_dir=str(tmp / 'events'), state_dir=str(tmp / 'state'))
    ledger = Ledger(settings.ledger_path)
    core = Intake(settings, ledger, lambda event: None)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        http = TestClient(create_app(lambda body, client: core.handle(body, 'http', client),
                                     None, dict))
    yield {'core': core, 'http': http, 'dir': tmp / 'events'}
    ledger.close()


def _raw_datagram(field, value):
    """An authentic datagram with the field set, bypassing the encoder's own check."""
    a = dict(source_id='rsu_x', sequence=1, kind=2, severity=3, suggest=2, flags=0,
             stamp_ns=int(NOW * 1e9), detection_time_ns=int(NOW * 1e9), validity_s=60.0,
             latitude=37.1, longitude=127.1, distance_m=40.0, confidence=1.0, road='A')
    a[field] = value

    def t(s):
        raw = s.encode()[:255]
        return bytes([len(raw)]) + raw
    body = (t(a['source_id']) + struct.pack(
        '>IBBBBqqfddff', a['sequence'], a['kind'], a['severity'], a['suggest'], a['flags'],
        a['stamp_ns'], a['detection_time_ns'], a['validity_s'], a['latitude'],
        a['longitude'], a['distance_m'], a['confidence']) + t(a['road']) + t(''))
    header = struct.pack('>2sBBBBH8sQQQq', b'VX', 2, 1, 1, 0, len(body), KEY.key_id, 5, 6,
                         1, int(NOW * 1e9))
    return header + body + KEY.sign(header + body)


@pytest.mark.parametrize('field,value', CASES, ids=IDS)
def test_every_entry_point_refuses_the_value_naming_the_field(field, value, intake, capsys,
                                                              tmp_path):
    """Each entry point refuses the value with a message naming the field."""
    # v2x_alert_server (its flags; nothing is sent)
    try:
        code = v2x_alert_server.main([*_cli(field, value), '--state-dir', str(tmp_path)],
                                     env={'V2X_KEY': 'ranges-test-key-0123456789'})
    except SystemExit as exc:  # argparse's own refusal (--ttl-s): exit 2 as well
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and FLAG[field] in err, err
    # v2x_inject (builds and checks the message before any ROS is started)
    args = v2x_inject.parser().parse_args(_cli(field, value))
    with pytest.raises(ValueError, match=field):
        v2x_inject.build(args)
    # the gateway's v2x/alert_out input (its conversion and fill_identity)
    msg = v2x_inject.from_flags(args)
    with pytest.raises(wire.InvalidMessage, match=field):
        fill_identity(alert_from_msg(msg, strict=True, provenance=False), station_id='rsu_x',
                      now_ns=time.time_ns(), default_validity_s=600.0,
                      next_sequence=lambda _: 1, previous=Outbox().get)
    # event_intake: a dropped file and an HTTP post
    if field != 'distance_m' or math.isfinite(value):  # JSON has no inf
        path = intake['dir'] / f'{field}.json'
        path.write_bytes(_intake_doc(field, value))
        outcome = intake['core'].process_file(str(path))
        assert isinstance(outcome, FileRejected) and outcome.error.field == INTAKE[field]
        answer = intake['http'].post('/events', content=_intake_doc(field, value))
        assert answer.status_code == 422 and answer.json()['field'] == INTAKE[field]
    # the receiver: an authentic datagram carrying it is dropped and counted (a str8
    # cannot carry more than 255 bytes: that limit is the wire's own)
    if not (field == 'road' and len(value.encode()) > 255):
        got = Receiver(keys.Keyring([KEY])).receive(_raw_datagram(field, value),
                                                    time.time_ns())
        reason = 'control_chars' if field == 'road' and '\x1b' in value else 'out_of_range'
        assert isinstance(got, DatagramRejected) and got.reason == reason, got
        assert field in got.detail


def test_a_good_alert_passes_every_entry_point(intake, tmp_path):
    """The same fields in range are accepted everywhere (so the refusals above are real)."""
    args = v2x_inject.parser().parse_args(['--distance-m', '0', '--lat', '-90', '--lon',
                                           '180', '--confidence', '1', '--road', '€' * 85])
    msg = v2x_inject.build(args)
    alert = fill_identity(alert_from_msg(msg, strict=True, provenance=False), station_id='rsu_x',
                          now_ns=time.time_ns(), default_validity_s=600.0,
                          next_sequence=lambda _: 1)
    data = Sender(KEY).datagram(alert, time.time_ns())
    assert Receiver(keys.Keyring([KEY])).receive(data, time.time_ns()).change == 'new'
    doc = json.loads(_intake_doc())
    doc.update(road='€' * 85, distance_m=0, lat=-90, lon=180, ttl_s=86400)
    answer = intake['http'].post('/events', content=json.dumps(doc).encode())
    assert answer.status_code == 202, answer.json()


@pytest.mark.parametrize('field,value', CASES, ids=IDS)
def test_denm_encode_refuses_the_same(field, value, capsys):
    """v2x_denm encode (docs/denm.md) refuses the same values, naming the same flag."""
    from v2x_denm import cli as denm_cli
    assert denm_cli.main(['encode', *_cli(field, value)]) == 2
    assert FLAG[field] in capsys.readouterr().err
