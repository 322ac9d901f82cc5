"""The console core and its action parsing: pure Python, no ROS, no HTTP."""

import base64
import html
import json
import math

import pytest

from v2x_common.params import ParameterError
from v2x_console.actions import (
    ActionError,
    Credentials,
    load_credentials,
    parse_clip_request,
    parse_inject,
)
from v2x_console.core import (
    ClipInput,
    ConsoleSettings,
    ConsoleState,
    DiagnosticInput,
    PeerInput,
    PolicyInput,
)
from v2x_console.held import MAX_DECIDED, HeldInput, HeldList
from v2x_protocol.wire import AlertData

NOW = 1_800_000_000.0


def alert(seq=1, src='rsu_a', stamp=NOW, severity=3, suggest=1, validity=60.0, **kw):
    values = dict(source_id=src, sequence=seq, kind=1, severity=severity, suggest=suggest,
                  stamp_ns=round(stamp * 1e9), detection_time_ns=round(NOW * 1e9),
                  validity_s=validity, cancelled=False, latitude=37.0, longitude=127.0,
                  road='A', distance_m=300.0, confidence=1.0, clip_requested=False,
                  clip_id='', path=1, authenticated=True)
    values.update(kw)
    return AlertData(**values)


def kinds(events):
    return [e.kind for e in events]


def test_alert_shown_updated_and_older_version_ignored():
    """A new alert is shown; a newer version replaces it; an older one changes nothing."""
    s = ConsoleState()
    assert kinds(s.alert(alert(road='A'), NOW)) == ['alert']
    assert kinds(s.alert(alert(stamp=NOW + 1, road='B'), NOW)) == ['alert']
    assert s.alert(alert(stamp=NOW - 1, road='C'), NOW) == []
    assert [a['road'] for a in s.alerts_json()] == ['B']
    assert s.counts['alerts_older'] == 1


def test_cancel_and_expiry_remove():
    """A cancellation removes the alert at once; expiry removes it at detection + validity."""
    s = ConsoleState()
    s.alert(alert(seq=1), NOW)
    s.alert(alert(seq=2, validity=10.0), NOW)
    events = s.alert(alert(seq=1, stamp=NOW + 1, cancelled=True), NOW)
    assert [e.data for e in events] == [{'id': 'rsu_a/1', 'reason': 'cancelled'}]
    assert [e.kind for e in s.expire(NOW + 9.9)] == ['counts']  # changed since: pushed once
    assert s.expire(NOW + 9.9) == []
    assert [e.data['id'] for e in s.expire(NOW + 10.0) if e.kind == 'alert_removed'] == \
        ['rsu_a/2']
    assert s.alerts_json() == []


def test_expired_on_arrival_is_not_shown():
    """A version that arrives already expired is counted, not shown."""
    s = ConsoleState()
    assert s.alert(alert(validity=1.0), NOW + 5) == []
    assert s.counts['alerts_late'] == 1


@pytest.mark.parametrize('fields', [
    {'validity_s': math.inf},        # hand-published on v2x/alert: never expires
    {'validity_s': math.nan},
    {'validity_s': -1.0},
])
def test_alert_with_unusable_times_is_counted_not_shown(fields):
    """Non-finite or negative times are counted as invalid; the snapshot stays strict JSON."""
    s = ConsoleState()
    events = s.alert(alert(**fields), NOW)
    assert [e.kind for e in events] == ['counts'] and s.counts['alerts_invalid'] == 1
    json.dumps(s.snapshot(NOW), allow_nan=False)


def test_most_severe_first_and_own_alerts():
    """High before medium, stop before slow down; only alerts heard on alert_sent are own."""
    s = ConsoleState()
    s.alert(alert(seq=1, severity=2), NOW)
    s.alert(alert(seq=2, severity=3, suggest=1), NOW)
    s.alert(alert(seq=3, severity=3, suggest=2), NOW, own=True)
    assert [a['sequence'] for a in s.alerts_json()] == [3, 2, 1]
    assert s.own_alert('rsu_a', 3) is not None
    assert s.own_alert('rsu_a', 2) is None


def test_overflow_is_counted_not_silent():
    """Beyond max_alerts a new alert is counted as overflow and the count is pushed."""
    s = ConsoleState(ConsoleSettings(max_alerts=1))
    s.alert(alert(seq=1), NOW)
    events = s.alert(alert(seq=2), NOW)
    assert kinds(events) == ['counts'] and events[0].data['alerts_overflow'] == 1


def test_clip_state_follows_clip_messages():
    """An alert with clip_requested shows 'requested', then 'ready' or the failure."""
    s = ConsoleState()
    s.alert(alert(clip_requested=True, clip_id='rsu_a-1'), NOW)
    assert s.alerts_json()[0]['clip_state'] == 'requested'
    events = s.clip(ClipInput('rsu_a-1', NOW, '/a.mp4', 'ab', 600.0, (), ''))
    assert events[0].data['clip_state'] == 'ready'
    s.clip(ClipInput('rsu_a-1', NOW, '', '', 0.0, (), 'no footage'))
    assert s.alerts_json()[0]['clip_state'] == 'failed: no footage'


def test_diagnostics_drops_and_cmd_rates():
    """dropped_* values become drop counters; speed_policy's cmd_in/out become rates."""
    s = ConsoleState()
    s.policy(PolicyInput(NOW, 1, 2.5, 'near', 'rsu_a', 1, 100.0, True))
    s.diagnostics([DiagnosticInput('veh/speed_policy', 0, 'ok', {'cmd_in': '10',
                                                                 'cmd_out': '10'})], NOW)
    s.diagnostics([DiagnosticInput('alert_gateway', 1, 'w', {'dropped_bad_signature': '4'})],
                  NOW)
    events = s.diagnostics([DiagnosticInput('veh/speed_policy', 0, 'ok',
                                            {'cmd_in': '30', 'cmd_out': '20'})], NOW + 2)
    assert kinds(events) == ['diagnostics', 'policy']
    assert events[1].data['cmd_in_hz'] == 10.0 and events[1].data['cmd_out_hz'] == 5.0
    snap = s.snapshot(NOW)
    assert {d['name']: d['drops'] for d in snap['diagnostics']}['alert_gateway'] == \
        {'bad_signature': 4.0}


def test_snapshot_is_strict_json():
    """NaN positions and distances become null: the snapshot is valid JSON (no NaN)."""
    s = ConsoleState(ConsoleSettings(site_lat=math.nan, site_lon=math.nan))
    s.alert(alert(latitude=math.nan, longitude=math.nan, distance_m=math.nan), NOW)
    s.peers([PeerInput('veh', 2, NOW - 3, False, 0, math.nan, 1, True)], NOW)
    text = json.dumps(s.snapshot(NOW), allow_nan=False)
    snap = json.loads(text)
    assert snap['alerts'][0]['latitude'] is None and snap['site']['lat'] is None
    assert snap['peers'][0]['age_s'] == 3.0


def test_peers_carry_their_heartbeat_status():
    """A peer's heartbeat status and message (an RSU whose camera cannot see) are its
    health and status in the peers table; stale wins over any status."""
    s = ConsoleState(ConsoleSettings())
    s.peers([PeerInput('rsu_a', 1, NOW - 1, False, 0, 0.0, 1, True, 2,
                       'rsu degraded: camera frozen'),
             PeerInput('rsu_b', 1, NOW - 40, True, 0, 0.0, 1, True, 1, 'busy'),
             PeerInput('veh', 2, NOW - 1, False, 0, 0.0, 1, True)], NOW)
    assert [(p['health'], p['status_message']) for p in s.snapshot(NOW)['peers']] == [
        ('error', 'rsu degraded: camera frozen'), ('stale', 'busy'), ('ok', '')]


def test_inject_defaults_are_v2x_injects():
    """An empty body is v2x_inject's defaults: collision, high, slow_down, 500 m, segment_A."""
    r = parse_inject({})
    assert (r.kind, r.severity, r.suggest, r.distance_m, r.road, r.validity_s) == \
        (1, 3, 1, 500.0, 'segment_A', 0.0)
    assert math.isnan(r.latitude) and not r.clip_requested


@pytest.mark.parametrize('body, field', [
    ([], 'body'),                               # not an object
    ({'type': 'meteor'}, 'type'),               # unknown kind
    ({'severity': 9}, 'severity'),              # a number where a name is expected
    ({'lat': 91}, 'lat'),                       # outside WGS84
    ({'lon': -180.5}, 'lon'),
    ({'ttl_s': -1}, 'ttl_s'),                   # negative validity
    ({'ttl_s': float('inf')}, 'ttl_s'),
    ({'ttl_s': 90000}, 'ttl_s'),                 # beyond the protocol's one day
    ({'distance_m': 2e6}, 'distance_m'),         # beyond the protocol's table
    ({'confidence': 1.5}, 'confidence'),
    ({'distance_m': 'far'}, 'distance_m'),      # not a number
    ({'distance_m': True}, 'distance_m'),       # bool is not a number
    ({'road': 'x' * 256}, 'road'),              # too long for the wire (str8)
    ({'road': 'A\x1b[2J'}, 'road'),             # a control character (terminal escape)
    ({'clip': 'yes'}, 'clip'),
    ({'sequence': 5}, 'sequence'),              # identity is the gateway's: no such field
])
def test_inject_refuses_bad_fields(body, field):
    """A bad inject body names the field at fault."""
    with pytest.raises(ActionError) as err:
        parse_inject(body)
    assert err.value.field == field


@pytest.mark.parametrize('body, field', [
    ({'t0': 0}, 't0'),                          # before 1970 + 1 s
    ({'t0': NOW + 7200}, 't0'),                 # far in the future: a wrong clock
    ({'pre_s': -5}, 'pre_s'),
    ({'post_s': 1e9}, 'post_s'),
    ({'clip_id': 7}, 'clip_id'),
])
def test_clip_request_refuses_bad_fields(body, field):
    """A bad clip request names the field at fault."""
    with pytest.raises(ActionError) as err:
        parse_clip_request(body, NOW)
    assert err.value.field == field


def test_credentials(tmp_path):
    """Bearer and basic are accepted only when exactly right; short secrets are refused."""
    (tmp_path / 'token').write_text('0123456789abcdef-token\n')
    (tmp_path / 'users').write_text('# operators\nalice:correct-horse\n')
    for name in ('token', 'users'):
        (tmp_path / name).chmod(0o600)
    creds = load_credentials(str(tmp_path / 'token'), str(tmp_path / 'users'))
    assert creds.check('Bearer 0123456789abcdef-token') == 'token'
    assert creds.check('Bearer 0123456789abcdef-tokeN') is None
    basic = base64.b64encode(b'alice:correct-horse').decode()
    assert creds.check(f'Basic {basic}') == 'alice'
    assert creds.check('Basic ' + base64.b64encode(b'alice:wrong').decode()) is None
    assert creds.check('Basic !!!') is None and creds.check(None) is None
    assert Credentials().check('Bearer anything') is None
    (tmp_path / 'short').write_text('abc\n')
    (tmp_path / 'short').chmod(0o600)
    with pytest.raises(ParameterError, match='console_token_file'):
        load_credentials(str(tmp_path / 'short'), '')
    with pytest.raises(ParameterError, match='console_password_file'):
        load_credentials('', str(tmp_path / 'missing'))
    (tmp_path / 'token').chmod(0o644)  # others may read it: refused, saying the chmod
    with pytest.raises(ParameterError, match='console_token_file.*chmod 600'):
        load_credentials(str(tmp_path / 'token'), '')


def test_page_renders_alert_rows_escaped():
    """The served page holds the alert rows, most severe first, with hostile text escaped."""
    from v2x_console.http_app import STATIC_DIR
    from v2x_console.page import render_page
    s = ConsoleState()
    s.alert(alert(seq=1, severity=1, road='<script>alert(1)</script>'), NOW)
    s.alert(alert(seq=2, severity=3, road='A'), NOW)
    page = render_page((STATIC_DIR / 'index.html').read_text(), s.snapshot(NOW + 5))
    assert page.index('data-id="rsu_a/2"') < page.index('data-id="rsu_a/1"')
    assert '<script>alert(1)</script>' not in page and '&lt;script&gt;alert(1)' in page
    assert '\\u003c/script\\u003e' in page  # the inline JSON cannot end its script element
    assert '>0:55<' in page and '__' not in page.replace('__init__', '')
    empty = render_page((STATIC_DIR / 'index.html').read_text(), ConsoleState().snapshot(NOW))
    assert '<table id="alerts" class="big" hidden>' in empty


@pytest.mark.parametrize('road', [
    '__INITIAL_STATE__',                      # a placeholder name as text
    '__ALERT_ROWS__ __ALERT_COUNT__',         # two of them
    '<!--<script>',                           # would put the script element in escape state
    '</script><meta http-equiv=refresh content=0;url=https://attacker.example/login>',
    '&lt;b&gt; & <b>',                        # entities and markup stay the bytes they were
])
def test_page_fills_placeholders_once_and_script_json_has_no_markup(road):
    """A value that reads like a placeholder stays text (one pass), and the inline JSON
    holds no <, > or & (\\u escapes) yet reads back as the same state."""
    from v2x_console.http_app import STATIC_DIR
    from v2x_console.page import render_page
    s = ConsoleState()
    s.alert(alert(seq=1, road=road, source_id=road, clip_id=road), NOW)
    page = render_page((STATIC_DIR / 'index.html').read_text(), s.snapshot(NOW + 5))
    start = page.index('<script id="initial-state" type="application/json">')
    script = page[start:].split('>', 1)[1].split('</script>', 1)[0]
    assert not set('<>&') & set(script)
    state = json.loads(script)
    assert state['alerts'][0]['road'] == road and state['alerts'][0]['source_id'] == road
    assert page.count('<script') == 2 and page.count('</script>') == 2
    assert page.count('<tr class="sev-') == 1 and page.count('"alerts":[') == 1
    assert f'<td>{html.escape(road)}</td>' in page  # the road cell holds the road itself


def test_unauthenticated_alert_never_replaces_or_removes_an_authenticated_one():
    """An unauthenticated update and cancel with the same id live apart (as speed_policy
    keys them): the authenticated alert stays shown, unchanged."""
    s = ConsoleState()
    s.alert(alert(seq=7, road='signed'), NOW)
    newer = alert(seq=7, road='forged', stamp=NOW + 1, path=3, authenticated=False)
    events = s.alert(newer, NOW)
    assert [e.data['id'] for e in events] == ['rsu_a/7/unauthenticated']
    s.alert(alert(seq=7, stamp=NOW + 2, path=3, authenticated=False, cancelled=True), NOW)
    shown = s.snapshot(NOW)['alerts']
    assert [(a['id'], a['road']) for a in shown] == [('rsu_a/7', 'signed')]
    # the authenticated cancellation still removes it; a local one counts as trusted
    s.alert(alert(seq=8, road='own', path=0, authenticated=False), NOW, own=True)
    assert s.own_alert('rsu_a', 8) is not None
    s.alert(alert(seq=7, stamp=NOW + 3, cancelled=True), NOW)
    assert [a['id'] for a in s.snapshot(NOW)['alerts']] == ['rsu_a/8']


def held(hold_id='h-1', state=0, deadline=NOW + 60, jpeg=b'\xff\xd8'):
    return HeldInput(hold_id=hold_id, state=state, alert=alert(kind=2, confidence=0.3),
                     threshold=0.5, deadline=deadline, boxes=(1.0, 2.0, 3.0, 4.0),
                     width=640, height=360, jpeg=jpeg, note='')


def test_held_events_decision_wins_and_snapshot_only_while_waiting():
    """A held event shows with its snapshot; its decision replaces it and drops the JPEG;
    a late replay of the held version does not bring it back; the newest 20 decided stay."""
    h = HeldList()
    [event] = h.update(held(), NOW)
    assert event.kind == 'held' and event.data['snapshot'] and event.data['kind'] == 'fire'
    assert h.jpeg('h-1') == b'\xff\xd8'
    [event] = h.update(held(state=2, jpeg=b''), NOW + 1)
    assert event.data['state'] == 'dismissed' and not event.data['waiting']
    assert h.jpeg('h-1') is None
    assert h.update(held(), NOW + 2) == []
    h.update(held('h-2', deadline=NOW + 5), NOW)
    for i in range(MAX_DECIDED + 3):
        h.update(held(f'd-{i}', state=1), NOW + 10 + i)
    shown = h.json()
    assert shown[0]['id'] == 'h-2' and len(shown) == 1 + MAX_DECIDED
    assert shown[1]['id'] == f'd-{MAX_DECIDED + 2}'
