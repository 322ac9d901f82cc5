"""event_intake under real rclpy: dropped files and HTTP posts become Alerts exactly once."""

import json
import math
import os
import secrets
import threading
import time

import httpx
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
import yaml

from v2x_common import mappings
from v2x_intake.event_intake import EventIntake
from v2x_msgs.msg import Alert

KEEP_ALL = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)
CONFIG = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'launch', 'config',
                      'event_intake.yaml')


def event(road='A', ts=None, **changes) -> dict:
    doc = {'ts': time.time() - 1.0 if ts is None else ts, 'type': 'collision',
           'severity': 'high', 'lat': 37.12, 'lon': 127.12, 'road': road, 'distance_m': 500,
           'clip_hint': True}
    doc.update(changes)
    return doc


class Rig:
    """Temporary dirs, a token, a listener on v2x/alert_out, and the node under test."""

    def __init__(self, ros, tmp_path, listen=True):
        self.ros = ros
        self.events = tmp_path / 'events'
        self.state = tmp_path / 'state'
        self.token = secrets.token_urlsafe(16)
        self.token_file = tmp_path / 'token'
        self.token_file.write_text(self.token + '\n')
        self.token_file.chmod(0o600)
        # The listener keeps every sample (KEEP_ALL): what is counted is what the node sent,
        # not what a depth-50 reader history kept while the test thread was busy.
        self.alerts: list[Alert] = []
        self.node = None
        if listen:
            self.listen()

    def listen(self) -> None:
        listener = self.ros.node(f'intake_listener_{secrets.token_hex(3)}')
        listener.create_subscription(Alert, 'v2x/alert_out', self.alerts.append, KEEP_ALL)

    def start(self, **params) -> EventIntake:
        values = {'events_dir': str(self.events), 'state_dir': str(self.state),
                  'http_port': 0, 'token_file': str(self.token_file), **params}
        overrides = [Parameter(k, value=v) for k, v in values.items()]
        self.node = EventIntake(context=self.ros.context, parameter_overrides=overrides)
        self.ros.add(self.node)
        if self.node.settings.http_enabled:
            assert self.ros.spin_until(lambda: self.node.http_ready, 20)
        return self.node

    def stop(self) -> None:
        self.ros.remove(self.node)
        self.node = None

    def drop(self, name: str, doc, via_rename=False) -> None:
        """Write a file the way other programs do: in place, or to a temp name + rename."""
        data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        target = self.events / name
        path = self.events / f'.{name}.tmp' if via_rename else target
        with open(path, 'wb') as f:
            f.write(data)
        if via_rename:
            os.rename(path, target)

    def wait_alerts(self, n: int, timeout: float = 30.0) -> list[Alert]:
        assert self.ros.spin_until(lambda: len(self.alerts) >= n, timeout), \
            f'{len(self.alerts)} of {n} alerts; ' + (
                f'node: {self.node._health_values()}, {self.node.intake.last_error}'
                if self.node else 'no node')
        return self.alerts

    def listing(self, sub: str = 'events') -> list[str]:
        """File names in events/ or in processed/ or failed/ beside it."""
        return sorted(os.listdir(self.events.parent / sub))

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=f'http://127.0.0.1:{self.node.http_port}', timeout=15)

    def auth(self, token=None) -> dict:
        return {'Authorization': f'Bearer {token or self.token}'}


@pytest.fixture
def rig(ros, tmp_path):
    r = Rig(ros, tmp_path)
    yield r
    if r.node is not None:
        r.stop()


def test_dropped_file_becomes_one_alert(rig):
    """A valid file is published once with every field mapped, then moved to processed/."""
    rig.start(http_enabled=False)
    doc = event(road='R1', ttl_s=120, distance_m=250.5, operator='kim')
    rig.drop('crash.json', doc)
    alert = rig.wait_alerts(1)[0]
    assert (alert.sequence, alert.source_id, alert.cancelled) == (0, '', False)
    assert alert.kind == Alert.KIND_COLLISION and alert.severity == Alert.SEVERITY_HIGH
    assert alert.suggest == Alert.SUGGEST_NONE
    assert alert.latitude == pytest.approx(37.12) and alert.longitude == pytest.approx(127.12)
    assert alert.road == 'R1' and alert.distance_m == pytest.approx(250.5)
    assert alert.validity_s == pytest.approx(120) and alert.clip_requested
    assert alert.detection_time.sec + alert.detection_time.nanosec * 1e-9 == \
        pytest.approx(doc['ts'], abs=1e-6)
    assert rig.ros.spin_until(lambda: rig.listing('processed') == ['crash.json'], 10)
    kept = json.loads((rig.events.parent / 'processed' / 'crash.json').read_text())
    assert kept['operator'] == 'kim'
    assert rig.listing() == []


def test_defaults_and_unknowns(rig):
    """No ttl_s -> default_validity_s (an int accepted); null -> NaN; fire/low mapped."""
    rig.start(http_enabled=False, default_validity_s=90)
    rig.drop('f.json', event(type='fire', severity='low', lat=None, lon=None, distance_m=None,
                             clip_hint=False), via_rename=True)
    alert = rig.wait_alerts(1)[0]
    assert alert.kind == mappings.KIND_FIRE and alert.severity == mappings.SEVERITY_LOW
    assert alert.validity_s == pytest.approx(90.0)
    assert math.isnan(alert.latitude) and math.isnan(alert.longitude)
    assert math.isnan(alert.distance_m) and not alert.clip_requested


BAD_FILES = [
    # name, content, field in .error.txt, word in .error.txt
    ('badjson.json', b'{"ts": 17, "type": "coll', '(whole file)', 'bad JSON'),
    ('types.json', event(ts='yesterday', lat='north'), 'ts', 'wrong type'),
    ('unknown.json', event(type='meteor'), 'type', 'unknown value'),
    ('expired.json', event(ts=1737930000.0), 'ts', 'expired'),  # the seed's example
    ('nullroad.json', event(road=None), 'road', 'wrong type'),
    ('array.json', [event()], '(whole file)', 'expected object'),  # was a TypeError
    ('deep.json', json.dumps(event(x=[])).replace('[]', '[' * 700 + ']' * 700).encode(),
     'x', 'nested more than'),  # was a RecursionError
    ('link.json', None, '(whole file)', 'symbolic link'),  # was ignored silently
]


def test_invalid_files_go_to_failed_with_reason(rig):
    """Bad JSON, wrong types, unknown type, expired, a null road, an array, deep nesting,
    a symlink: each goes to failed/ with its reason, no alert."""
    rig.start(http_enabled=False)
    for name, content, _, _ in BAD_FILES:
        if content is None:
            os.symlink(rig.events.parent / 'elsewhere.json', rig.events / name)
        else:
            rig.drop(name, content)
    rig.drop('sentinel.json', event(road='sentinel'))
    assert [a.road for a in rig.wait_alerts(1)] == ['sentinel']
    expected = sorted([n for n, *_ in BAD_FILES] + [f'{n}.error.txt' for n, *_ in BAD_FILES])
    assert rig.ros.spin_until(lambda: rig.listing('failed') == expected, 10)
    for name, _, field, word in BAD_FILES:
        text = (rig.events.parent / 'failed' / f'{name}.error.txt').read_text()
        assert f'field: {field}' in text and word in text, text
    rig.ros.spin_for(0.3)
    assert len(rig.alerts) == 1


def test_half_written_file_is_left_until_closed(rig):
    """A file still open for writing, or under a temporary name, is not touched."""
    rig.start(http_enabled=False)
    data = json.dumps(event(road='slow')).encode()
    with open(rig.events / 'slow.json', 'wb') as writer:
        writer.write(data[:20])
        writer.flush()
        (rig.events / 'part.json.tmp').write_bytes(data[:10])
        rig.drop('other.json', event(road='other'))
        assert [a.road for a in rig.wait_alerts(1)] == ['other']
        assert 'slow.json' in rig.listing() and rig.listing('failed') == []
        writer.write(data[20:])
    assert [a.road for a in rig.wait_alerts(2)] == ['other', 'slow']
    assert rig.ros.spin_until(lambda: rig.listing() == ['part.json.tmp'], 10)


def test_restart_publishes_nothing_twice_and_catches_up(rig):
    """After a restart: processed files stay processed, files dropped while down go out."""
    rig.start(http_enabled=False)
    rig.drop('one.json', event(road='one'))
    rig.wait_alerts(1)
    assert rig.ros.spin_until(lambda: rig.listing('processed') == ['one.json'], 10)
    rig.stop()
    rig.drop('two.json', event(road='two'))
    # A crash between publishing and moving leaves the file where it was: put it back.
    os.replace(rig.events.parent / 'processed' / 'one.json', rig.events / 'one.json')
    rig.start(http_enabled=False)
    rig.wait_alerts(2)
    assert rig.ros.spin_until(lambda: rig.listing() == [], 10)
    rig.ros.spin_for(0.3)
    assert [a.road for a in rig.alerts] == ['one', 'two']
    assert rig.listing('processed') == ['one.json', 'two.json']


def test_burst_of_500_with_a_restart_in_the_middle(rig):
    """500 files, node restarted mid-burst: each valid one published once, each bad in failed/."""
    rig.start(http_enabled=False)
    bad = set(range(0, 500, 10))

    stopped, resumed = threading.Event(), threading.Event()

    def write_all():  # another program dropping files all the while
        for i in range(500):
            if i == 250:
                stopped.wait(60)  # the node is down now: the next files wait for its restart
            if i == 375:
                resumed.set()  # restart the node while files keep arriving
            content = b'{"ts": ' if i in bad else event(road=f'r{i}')
            rig.drop(f'e{i:03d}.json', content, via_rename=i % 2 == 1)

    writer = threading.Thread(target=write_all)
    writer.start()
    try:
        rig.wait_alerts(100, timeout=60)
        rig.stop()
        stopped.set()
        assert resumed.wait(60)
        in_the_middle = len(rig.alerts)
        rig.start(http_enabled=False)
    finally:
        stopped.set()
        writer.join()
    rig.wait_alerts(450, timeout=90)
    assert rig.ros.spin_until(lambda: rig.listing() == [], 20)
    rig.ros.spin_for(0.5)
    roads = [a.road for a in rig.alerts]
    assert in_the_middle < 450
    assert sorted(roads) == sorted(f'r{i}' for i in range(500) if i not in bad)
    assert len(rig.listing('processed')) == 450
    assert rig.listing('failed') == sorted(
        [f'e{i:03d}.json' for i in bad] + [f'e{i:03d}.json.error.txt' for i in bad])


def test_events_wait_for_a_subscriber(ros, tmp_path):
    """With nobody on v2x/alert_out events are held, then sent when a subscriber appears."""
    rig = Rig(ros, tmp_path, listen=False)
    rig.start(http_enabled=False)
    try:
        rig.drop('held.json', event(road='held'))
        assert ros.spin_until(lambda: rig.node.intake.held == 1, 20)
        rig.listen()
        assert [a.road for a in rig.wait_alerts(1)] == ['held']
    finally:
        rig.stop()


def test_http_intake(rig):
    """POST /events: 202 and one alert; 4xx naming the field; 401 without the right token."""
    rig.start()
    with rig.http() as client:
        good = client.post('/events', json=event(road='web', event_id='web-1'),
                           headers=rig.auth())
        assert good.status_code == 202 and good.json() == {'status': 'accepted',
                                                            'key': 'id:web-1'}
        assert [a.road for a in rig.wait_alerts(1)] == ['web']
        bad = client.post('/events', json=event(distance_m='far'), headers=rig.auth())
        assert bad.status_code == 422 and bad.json()['field'] == 'distance_m'
        unknown = client.post('/events', json=event(type='meteor'), headers=rig.auth())
        assert unknown.status_code == 422 and unknown.json()['field'] == 'type'
        expired = client.post('/events', json=event(ts=1737930000.0), headers=rig.auth())
        assert expired.status_code == 422 and expired.json()['error'] == 'expired'
        garbage = client.post('/events', content=b'{"ts":', headers=rig.auth())
        assert garbage.status_code == 400 and garbage.json()['error'] == 'bad_json'
        huge = client.post('/events', content=b' ' * 70000, headers=rig.auth())
        assert huge.status_code == 413
        for content in (b'[1, 2]', json.dumps(event(x=[])).replace(
                '[]', '[' * 700 + ']' * 700).encode()):  # an array; nesting (was 503)
            odd = client.post('/events', content=content, headers=rig.auth())
            assert odd.status_code == 422, odd.text
        missing = client.post('/events', json=event())
        wrong = client.post('/events', json=event(), headers=rig.auth('not-the-token'))
        basic = client.post('/events', json=event(), headers={'Authorization': 'Basic eDp5'})
        for answer in (missing, wrong, basic):
            assert answer.status_code == 401
            assert answer.headers['www-authenticate'] == 'Bearer'
        health = client.get('/healthz')
        assert health.status_code == 200 and health.json()['status'] == 'ok'
        spec = client.get('/openapi.json').json()
        body = spec['paths']['/events']['post']['requestBody']['content']['application/json']
        assert body['schema']['required'] == []  # the seed's watcher defaulted every field
        assert body['schema']['properties']['road']['default'] == 'segment_A'
        assert 'HTTPBearer' in spec['components']['securitySchemes']
    rig.ros.spin_for(0.3)
    assert len(rig.alerts) == 1


def test_http_event_id_is_idempotent_across_restart(rig):
    """The same event_id posted twice, and again after a restart, is published once."""
    rig.start(events_dir='')
    doc = event(road='once', event_id='cam7-000123')
    with rig.http() as client:
        statuses = [client.post('/events', json=doc, headers=rig.auth()).json()['status']
                    for _ in range(2)]
    assert statuses == ['accepted', 'duplicate']
    rig.wait_alerts(1)
    old_port = rig.node.http_port
    rig.stop()
    with pytest.raises(httpx.ConnectError):  # uvicorn stopped with the node
        httpx.get(f'http://127.0.0.1:{old_port}/healthz', timeout=5)
    rig.start(events_dir='')
    with rig.http() as client:
        again = client.post('/events', json=doc, headers=rig.auth())
        other = client.post('/events', json=event(road='new', event_id='cam7-000124'),
                            headers=rig.auth())
    assert again.status_code == 202 and again.json()['status'] == 'duplicate'
    assert other.json()['status'] == 'accepted'
    rig.wait_alerts(2)
    rig.ros.spin_for(0.3)
    assert [a.road for a in rig.alerts] == ['once', 'new']


def test_file_and_http_share_event_ids(rig):
    """An event_id first seen in a file is a duplicate over HTTP (one ledger for both)."""
    rig.start()
    rig.drop('a.json', event(road='file', event_id='shared-1'))
    rig.wait_alerts(1)
    with rig.http() as client:
        answer = client.post('/events', json=event(road='http', event_id='shared-1'),
                             headers=rig.auth())
    assert answer.json()['status'] == 'duplicate'
    rig.ros.spin_for(0.3)
    assert [a.road for a in rig.alerts] == ['file']


def test_config_yaml_names_only_declared_parameters(rig):
    """Every key of launch/config/event_intake.yaml is a parameter the node declares."""
    with open(CONFIG, encoding='utf-8') as f:
        params = yaml.safe_load(f)['/**']['ros__parameters']
    node = rig.start(http_enabled=False)
    declared = set(node.get_parameters_by_prefix(''))
    assert set(params) <= declared
    assert set(params) >= declared - {'use_sim_time', 'start_type_description_service'}
    for name, value in params.items():
        assert type(value) is type(node.get_parameter(name).value), name
