import csv
import math
import os
from pathlib import Path
import subprocess
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
import pytest
from rclpy.parameter import Parameter
from visualization_msgs.msg import Marker, MarkerArray
import yaml

from v2x_bridge.alert_gateway import PARAMETERS, AlertGateway
from v2x_common import qos
from v2x_common.diagnostics import ERROR, WARN, make_status
from v2x_common.params import ParameterError, defaults
from v2x_msgs.msg import Alert, Heartbeat, PeerArray
from v2x_protocol.io.state import OutboxFile

STRONG = 'test-key-0123456789abcdef'  # >= 16 bytes: short secrets are refused
CONFIG = Path(__file__).resolve().parents[3] / 'launch' / 'config'


def _params(**kw):
    return [Parameter(k, value=v) for k, v in kw.items()]


@pytest.fixture
def pair(ros, mcast, tmp_path, monkeypatch):
    """An RSU gateway (namespace rsu) and a vehicle gateway (namespace veh) on one link."""
    monkeypatch.setenv('V2X_KEY', 'test-secret-0123456789')
    common = dict(group=mcast['group'], port=mcast['port'], iface=mcast['iface'],
                  repeat_interval_s=0.2, heartbeat_period_s=0.3)

    def make(role, ns, **extra):
        node = AlertGateway(context=ros.context, namespace=ns,
                            parameter_overrides=_params(role=role, **{**common, **extra}))
        ros.add(node)
        return node

    rsu = make('rsu', 'rsu', state_dir=str(tmp_path / 'state'), station_id='rsu_server_01')
    veh = make('vehicle', 'veh', station_id='vehicle_01',
               csv_log=str(tmp_path / 'alerts.csv'), csv_max_bytes=600,
               csv_keep=2, origin_lat=37.0, origin_lon=127.0)
    got = {'alert': [], 'sent': [], 'hb': [], 'peers': [], 'markers': []}
    helper = ros.node('probe')
    helper.create_subscription(Alert, '/veh/v2x/alert', got['alert'].append, qos.ALERT)
    helper.create_subscription(Alert, '/rsu/v2x/alert_sent', got['sent'].append,
                               qos.ALERT_SENT)
    helper.create_subscription(Heartbeat, '/veh/v2x/heartbeat', got['hb'].append,
                               qos.HEARTBEAT)
    helper.create_subscription(PeerArray, '/veh/v2x/peers', got['peers'].append, qos.PEERS)
    helper.create_subscription(MarkerArray, '/veh/v2x/markers', got['markers'].append,
                               qos.MARKERS)
    pub = helper.create_publisher(Alert, '/rsu/v2x/alert_out', qos.ALERT_OUT)
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0, 20)
    return {'ros': ros, 'rsu': rsu, 'veh': veh, 'got': got, 'pub': pub, 'tmp': tmp_path}


def _collision(**kw):
    m = Alert()
    m.kind, m.severity = Alert.KIND_COLLISION, Alert.SEVERITY_HIGH
    m.suggest = Alert.SUGGEST_SLOW_DOWN
    m.latitude, m.longitude, m.road, m.distance_m = 37.001, 127.001, 'segment_A', 500.0
    m.clip_requested = True
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def test_one_alert_exactly_one_delivery_and_update_cancel(pair):
    """One alert -> one v2x/alert despite repeats; an update and a cancel are delivered too."""
    ros, got = pair['ros'], pair['got']
    pair['pub'].publish(_collision())
    assert ros.spin_until(lambda: got['alert'] and got['sent'], 20)
    sent = got['sent'][0]
    assert (sent.source_id, sent.sequence, sent.clip_id) == ('rsu_server_01', 1,
                                                             'rsu_server_01-1')
    assert sent.validity_s == 600.0 and sent.detection_time.sec > 0
    assert (sent.path, sent.authenticated) == (Alert.PATH_LOCAL, True)  # produced here
    # several repeat intervals pass: still exactly one delivery
    assert ros.spin_until(lambda: pair['veh'].counters()['repeats'] >= 3, 20)
    assert len(got['alert']) == 1
    a = got['alert'][0]
    assert (a.source_id, a.sequence, a.kind, a.road) == ('rsu_server_01', 1,
                                                         Alert.KIND_COLLISION, 'segment_A')
    assert math.isclose(a.distance_m, 500.0) and a.clip_id == 'rsu_server_01-1'
    assert (a.path, a.authenticated) == (Alert.PATH_RADIO, True)  # heard and verified

    update = _collision(source_id='rsu_server_01', sequence=1, severity=Alert.SEVERITY_MEDIUM,
                        detection_time=sent.detection_time, validity_s=600.0)
    update.header.stamp.sec = sent.header.stamp.sec + 1
    pair['pub'].publish(update)
    assert ros.spin_until(lambda: len(got['alert']) >= 2, 20)
    assert got['alert'][1].severity == Alert.SEVERITY_MEDIUM
    cancel = _collision(source_id='rsu_server_01', sequence=1, cancelled=True,
                        detection_time=sent.detection_time, validity_s=600.0)
    cancel.header.stamp.sec = sent.header.stamp.sec + 2
    pair['pub'].publish(cancel)
    assert ros.spin_until(lambda: len(got['alert']) >= 3, 20)
    assert got['alert'][2].cancelled
    assert ros.spin_until(lambda: pair['veh'].counters()['repeats'] >= 8, 20)
    assert len(got['alert']) == 3
    assert not any(k.startswith('dropped_') for k in pair['veh'].counters())


class _FailingReader:
    """The real BatchReader, but its first read raises (a fault injected in the loop)."""

    def __init__(self, real):
        self.real, self.failed = real, False

    def read(self, wait_s):
        if not self.failed:
            self.failed = True
            raise RuntimeError('injected reader fault')
        return self.real.read(wait_s)

    def __getattr__(self, name):  # kernel_drops and the rest: the real reader's
        return getattr(self.real, name)


def test_receive_worker_failure_is_error_and_it_restarts(pair):
    """An error escaping the receive loop is counted and shown as ERROR in diagnostics;
    the supervised worker restarts the loop and the next alert is still delivered."""
    ros, got, veh = pair['ros'], pair['got'], pair['veh']
    veh._reader = _FailingReader(veh._reader)
    assert ros.spin_until(lambda: veh._rx_worker.errors == 1, 20)
    level, message, values = veh._health()
    assert level == ERROR and 'receive worker' in message
    assert 'injected reader fault' in message and values['v2x_rx_errors'] == 1
    pair['pub'].publish(_collision(road='after_restart'))
    assert ros.spin_until(lambda: any(a.road == 'after_restart' for a in got['alert']), 20)
    assert veh._rx_worker.state == 'running'


def _times(**kw):
    """Set header.stamp / detection_time fields (sec, nanosec) on a fresh collision."""
    m = _collision()
    for name, (sec, nanosec) in kw.items():
        t = m.header.stamp if name == 'stamp' else getattr(m, name)
        t.sec, t.nanosec = sec, nanosec
    return m


@pytest.mark.parametrize('bad', [
    _collision(validity_s=math.inf), _collision(validity_s=-math.inf),
    _collision(validity_s=math.nan), _collision(validity_s=-1.0),
    _collision(validity_s=1e300), _collision(validity_s=3e9),
    _times(detection_time=(-5, 0)), _times(detection_time=(1, 4_000_000_000)),
    _times(stamp=(-1, 0)),
], ids=['inf', '-inf', 'nan', 'negative', '1e300', 'beyond_2^31s', 'detection_before_1970',
        'detection_nanosec_overflow', 'stamp_before_1970'])
def test_hostile_alert_out_is_dropped_and_gateway_keeps_sending(pair, bad):
    """An alert whose validity or times the ns arithmetic cannot take is dropped with a
    counted reason; the RSU keeps running and sends the next good alert."""
    ros, got, rsu = pair['ros'], pair['got'], pair['rsu']
    pair['pub'].publish(bad)
    assert ros.spin_until(lambda: rsu.counters()['invalid_input'] >= 1, 20)
    pair['pub'].publish(_collision(road='after'))
    assert ros.spin_until(lambda: got['alert'] and got['sent'], 20)
    assert [a.road for a in got['sent']] == ['after'] and got['alert'][0].road == 'after'
    assert got['sent'][0].sequence == 1  # the bad alert took no sequence number
    c = rsu.counters()
    assert (c['invalid_input'], c.get('dropped_alert_out_bad_time'), c['internal_errors']) \
        == (1, 1, 0)


def test_csv_rotation_and_markers(pair):
    """Deliveries are logged to a rotated CSV and live alerts appear as markers in map."""
    ros, got = pair['ros'], pair['got']
    for _ in range(8):
        pair['pub'].publish(_collision())
    assert ros.spin_until(lambda: len(got['alert']) >= 8, 30)
    log = pair['tmp'] / 'alerts.csv'
    last = got['alert'][-1].sequence

    def logged():  # the gateway publishes first, then appends the row
        return {int(r[2]) for p in pair['tmp'].glob('alerts.csv*') for r in
                list(csv.reader(p.open()))[1:]}

    # rows are appended in delivery order: once the last one is there, all were written
    assert ros.spin_until(lambda: last in logged(), 10)
    assert (pair['tmp'] / 'alerts.csv.1').exists()
    assert not (pair['tmp'] / 'alerts.csv.3').exists()
    rows = list(csv.reader(log.open()))
    assert rows[0][:4] == ['received_at', 'source_id', 'sequence', 'event']
    assert rows[1][3:7] == ['new', 'collision', 'high', 'slow_down']
    seqs = logged()
    assert seqs <= set(range(1, 9)) and 8 in seqs
    def spheres():
        found = [m for m in (got['markers'][-1].markers if got['markers'] else [])
                 if m.type == Marker.SPHERE_LIST]
        return found[0] if found and len(found[0].points) == 8 else None

    assert ros.spin_until(spheres, 10)
    s = spheres()
    assert s.header.frame_id == 'map' and len(s.colors) == 8
    assert 80 < s.points[0].x < 100 and 100 < s.points[0].y < 120  # ENU from (37, 127)
    labels = [m for m in got['markers'][-1].markers if m.type == Marker.TEXT_VIEW_FACING]
    assert len(labels) == 8 and labels[0].text.startswith('collision rsu_server_01#')


def test_heartbeats_peers_and_staleness(pair):
    """The vehicle hears RSU heartbeats, lists it as a fresh peer (with the status of its
    heartbeat: ERROR 'rsu degraded: camera frozen' once the RSU's detector says so on
    /diagnostics), then stale once it stops."""
    ros, got = pair['ros'], pair['got']

    def rsu_peer():
        if not got['peers']:
            return None
        return next((p for p in got['peers'][-1].peers if p.source_id == 'rsu_server_01'), None)

    assert ros.spin_until(lambda: got['hb'] and rsu_peer() is not None, 20)
    assert got['hb'][0].role == Heartbeat.ROLE_RSU
    rsu_peers = []
    ros.node('probe2').create_subscription(PeerArray, '/rsu/v2x/peers', rsu_peers.append,
                                           qos.PEERS)
    assert ros.spin_until(lambda: rsu_peers and [p.source_id for p in rsu_peers[-1].peers]
                          == ['vehicle_01'], 20)  # the RSU hears the vehicle's heartbeats
    peer = rsu_peer()
    assert not peer.stale and abs(peer.clock_offset_s) < 1.0
    assert (peer.status, peer.status_message) == (Heartbeat.STATUS_OK, 'rsu rsu_server_01')
    diag = ros.node('probe2').create_publisher(DiagnosticArray, '/diagnostics',
                                               qos.DIAGNOSTICS)
    frozen = make_status('rsu/hazard_detector', ERROR, 'camera frozen: ...',
                         {'camera': 'frozen'})

    def degraded():
        diag.publish(DiagnosticArray(status=[frozen]))
        p = rsu_peer()
        return (p.status, p.status_message) == (Heartbeat.STATUS_ERROR,
                                                'rsu degraded: camera frozen')
    assert ros.spin_until(degraded, 20)
    assert got['hb'][-1].status_message == 'rsu degraded: camera frozen'
    start = time.monotonic()  # before the removal: its last heartbeat is no later than this
    ros.remove(pair['rsu'])
    assert ros.spin_until(lambda: rsu_peer().stale, 20)
    assert time.monotonic() - start >= 0.5  # not before 3 periods of 0.3 s (minus one tick)


def test_wrong_key_counts_rejections(ros, mcast, tmp_path, monkeypatch):
    """A vehicle with another key delivers nothing and counts bad datagrams by reason."""
    common = _params(group=mcast['group'], port=mcast['port'], iface=mcast['iface'],
                     repeat_interval_s=0.2, heartbeat_period_s=0.3)
    monkeypatch.setenv('V2X_KEY', 'rsu-secret-0123456789')
    rsu = ros.add(AlertGateway(context=ros.context, namespace='rsu', parameter_overrides=(
        common + _params(role='rsu', state_dir=str(tmp_path), station_id='rsu_server_01'))))
    monkeypatch.setenv('V2X_KEY', 'another-secret-0123456789')
    veh = ros.add(AlertGateway(context=ros.context, namespace='veh',
                               parameter_overrides=common + _params(role='vehicle')))
    helper = ros.node('probe')
    got = []
    helper.create_subscription(Alert, '/veh/v2x/alert', got.append, qos.ALERT)
    pub = helper.create_publisher(Alert, '/rsu/v2x/alert_out', qos.ALERT_OUT)
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0, 20)
    pub.publish(_collision())
    assert ros.spin_until(lambda: veh.counters().get('dropped_unknown_key', 0) >= 3, 20)
    assert got == [] and veh.counters()['delivered'] == 0
    assert rsu.counters()['sent'] >= 3
    level, message, values = veh._health()
    assert level == WARN and 'authentication' in message
    assert values['dropped_unknown_key'] >= 3


@pytest.mark.parametrize('overrides,name', [
    ({'role': 'car'}, 'role'),
    ({'auth_mode': 'none'}, 'auth_mode'),
    ({'group': '10.0.0.1'}, 'group'),
    ({'port': 70000}, 'port'),
    ({'auth_mode': 'ed25519', 'role': 'vehicle'}, 'trust_store'),
    ({'station_id': 'x' * 65}, 'station_id'),
    ({'repeat_interval_s': 0.0}, 'repeat_interval_s'),
    ({'csv_log': '/proc/no/such/dir/alerts.csv'}, 'csv_log'),
    # protocol v2: insecure with a key, and a key file others may read
    ({'insecure': True}, 'insecure'),
    ({'key_file': 'READABLE'}, 'key_file'),
])
def test_bad_parameter_names_it(ros, overrides, name, monkeypatch, tmp_path):
    """A bad parameter value stops start-up with an error naming the parameter."""
    monkeypatch.setenv('V2X_KEY', STRONG)
    if overrides.get('key_file') == 'READABLE':
        key = tmp_path / 'hmac.key'
        key.write_text(STRONG + '\n')
        key.chmod(0o644)
        overrides = {'key_file': str(key)}
    with pytest.raises(ParameterError, match=name):
        AlertGateway(context=ros.context, parameter_overrides=_params(**overrides))


def test_main_exits_nonzero_without_key(tmp_path):
    """The executable with no key and no insecure flag exits 2 saying how to give one."""
    env = {k: v for k, v in os.environ.items() if k != 'V2X_KEY'}
    proc = subprocess.run([sys.executable, '-m', 'v2x_bridge.alert_gateway', '--ros-args',
                           '-p', f'state_dir:={tmp_path}'], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert 'key_file' in proc.stderr and 'V2X_KEY' in proc.stderr
    assert '--hmac-key' not in proc.stderr  # a CLI option the node does not have


@pytest.mark.parametrize('name', ['alert_gateway.yaml', 'alert_gateway_vehicle.yaml'])
def test_config_yaml_keys_are_declared(name):
    """Every key of the launch config is a parameter the node declares, and all are there."""
    data = yaml.safe_load((CONFIG / name).read_text())
    params = data['/**']['ros__parameters']
    assert set(params) == set(defaults(PARAMETERS))
    for key, value in params.items():
        default = defaults(PARAMETERS)[key]
        assert isinstance(value, type(default)) or (
            isinstance(default, float) and isinstance(value, (int, float))), key


def test_ed25519_gateways_and_diagnostics(ros, mcast, tmp_path, monkeypatch):
    """RSU signs with its Ed25519 key, the vehicle verifies with its trust store; both
    report their counters on /diagnostics."""
    from diagnostic_msgs.msg import DiagnosticArray

    from v2x_bridge.v2x_keygen import main as keygen

    monkeypatch.delenv('V2X_KEY', raising=False)
    store = tmp_path / 'trust'
    assert keygen(['--out-dir', str(tmp_path), '--trust-store', str(store)]) == 0
    common = _params(group=mcast['group'], port=mcast['port'], iface=mcast['iface'],
                     repeat_interval_s=0.2, heartbeat_period_s=0.3)
    rsu = ros.add(AlertGateway(context=ros.context, namespace='rsu', parameter_overrides=(
        common + _params(role='rsu', auth_mode='ed25519', state_dir=str(tmp_path),
                         station_id='rsu_server_01',
                         key_file=str(tmp_path / 'rsu_server_01.key')))))  # no trust store
    ros.add(AlertGateway(context=ros.context, namespace='veh', parameter_overrides=(
        common + _params(role='vehicle', auth_mode='ed25519', trust_store=str(store),
                         key_file=''))))
    helper = ros.node('probe')
    got, diags = [], {}
    helper.create_subscription(Alert, '/veh/v2x/alert', got.append, qos.ALERT)
    helper.create_subscription(
        DiagnosticArray, '/diagnostics',
        lambda m: diags.update({s.name: {kv.key: kv.value for kv in s.values}
                                for s in m.status}), qos.DIAGNOSTICS)
    pub = helper.create_publisher(Alert, '/rsu/v2x/alert_out', qos.ALERT_OUT)
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0, 20)
    pub.publish(_collision())
    assert ros.spin_until(lambda: got, 20)
    assert got[0].source_id == 'rsu_server_01'
    assert ros.spin_until(lambda: diags.get('veh/alert_gateway', {}).get('delivered') == '1'
                          and 'rsu/alert_gateway' in diags, 20)
    assert int(diags['rsu/alert_gateway']['sent']) >= 1
    assert not any(k.startswith('dropped_') for k in rsu.counters())


def test_hostile_datagrams_are_counted_and_the_gateway_lives_on(ros, mcast, monkeypatch):
    """Garbage, oversized, expired, future-dated and replayed datagrams are counted by
    reason; a good alert sent afterwards is still delivered."""
    from v2x_bridge import net
    from v2x_protocol import keys, wire
    from v2x_protocol.sender import Sender

    monkeypatch.setenv('V2X_KEY', STRONG)
    veh = ros.add(AlertGateway(context=ros.context, parameter_overrides=_params(
        role='vehicle', group=mcast['group'], port=mcast['port'], iface=mcast['iface'],
        max_clock_skew_s=5.0)))
    got = []
    ros.node('probe').create_subscription(Alert, 'v2x/alert', got.append, qos.ALERT)
    tx = Sender(keys.HmacKey(STRONG.encode()))
    now = time.time_ns()

    def alert(seq, detection_ns=now):
        return wire.AlertData('rsu_x', seq, 1, 3, 1, detection_ns, detection_ns, 10.0)

    good = tx.datagram(alert(2), now)
    hostile = [b'garbage', bytes(1500), tx.datagram(alert(1, now - 60 * 10**9), now),
               tx.datagram(alert(3), now + 60 * 10**9), good, good]
    with net.open_sender(mcast['group'], mcast['port'], mcast['iface']) as sock:
        for data in hostile:
            sock.send(data)
    assert ros.spin_until(lambda: got and veh.counters().get('dropped_replayed'), 20)
    c = veh.counters()
    assert {k: c.get(k) for k in ('dropped_malformed', 'dropped_oversized', 'dropped_expired',
                                  'dropped_future_dated', 'dropped_replayed', 'delivered')} \
        == dict.fromkeys(('dropped_malformed', 'dropped_oversized', 'dropped_expired',
                          'dropped_future_dated', 'dropped_replayed', 'delivered'), 1)
    assert len(got) == 1 and got[0].sequence == 2


@pytest.mark.parametrize('name,role', [('alert_gateway.yaml', 'rsu'),
                                       ('alert_gateway_vehicle.yaml', 'vehicle')])
def test_executable_starts_from_config_and_stops_cleanly(name, role, ros, mcast, tmp_path):
    """The executable accepts its launch config, runs, and exits 0 on SIGINT."""
    import signal

    from diagnostic_msgs.msg import DiagnosticArray

    diags = []
    ros.node('probe').create_subscription(DiagnosticArray, '/diagnostics', diags.append,
                                          qos.DIAGNOSTICS)

    proc = subprocess.Popen(
        [sys.executable, '-m', 'v2x_bridge.alert_gateway', '--ros-args', '--params-file',
         str(CONFIG / name), '-p', f'group:={mcast["group"]}', '-p', f'port:={mcast["port"]}',
         '-p', 'iface:=127.0.0.1', '-p', f'state_dir:={tmp_path}',
         '-p', f'csv_log:={tmp_path / "alerts.csv"}'],
        env={**os.environ, 'V2X_KEY': STRONG}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    line = proc.stdout.readline()
    assert f'{role} ' in line and f'{mcast["group"]}:{mcast["port"]}' in line, line
    assert ros.spin_until(lambda: diags, 20)  # spinning: its 1 Hz diagnostics arrive
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert 'Traceback' not in out


def test_restarted_rsu_continues_sequence_and_is_heard(pair):
    """An RSU restarted on the same state dir keeps repeating its live alert (not delivered
    again), is not locked out, and never reuses a sequence it may have sent."""
    ros, got = pair['ros'], pair['got']
    pair['pub'].publish(_collision())
    assert ros.spin_until(lambda: len(got['alert']) == 1, 20)
    seq = got['alert'][0].sequence
    saved = OutboxFile(pair['tmp'] / 'state')
    # the outbox is saved once a second by a helper thread: wait until it holds the alert
    assert ros.spin_until(lambda: [a.sequence for a in saved.load(time.time_ns())] == [seq],
                          20)
    old = pair['rsu']
    ros.remove(old)
    veh = pair['veh']
    new = ros.add(AlertGateway(context=ros.context, namespace='rsu', parameter_overrides=_params(
        role='rsu', station_id='rsu_server_01', group=veh.settings.group,
        port=veh.settings.port, iface='127.0.0.1',
        repeat_interval_s=0.2, state_dir=str(pair['tmp'] / 'state'))))
    assert ros.spin_until(lambda: pair['pub'].get_subscription_count() > 0, 20)
    # the first alert is still repeated by the new process (outbox kept in state_dir)
    assert ros.spin_until(lambda: new.counters()['sent'] >= 3, 20)
    assert new.counters()['outbox'] == 1 and len(got['alert']) == 1
    pair['pub'].publish(_collision())
    assert ros.spin_until(lambda: len(got['alert']) == 2, 20)
    assert got['alert'][1].sequence > got['alert'][0].sequence
    assert new.identity.station_id == got['alert'][1].source_id
    assert not any(k.startswith('dropped_') for k in veh.counters())


def test_high_water_file_round_trip_and_unreadable(tmp_path):
    """The replay marks saved (atomically, as JSON) load back as the Receiver holds them;
    a missing or unreadable file loads as no marks (start-up goes on)."""
    from v2x_bridge.alert_gateway import HighWaterFile
    from v2x_protocol import keys
    from v2x_protocol.receiver import Receiver

    marks = {('rsu_a', 1, b'\x01' * 8): 5 * 10**18, ('veh:x', 2, b'\x02' * 8): 7}
    store = HighWaterFile(tmp_path)
    assert store.load() == {}
    rx = Receiver(keys.Keyring(), high_water=marks)
    store.save(rx.high_water_state())
    assert store.load() == marks
    assert not list(tmp_path.glob('.*'))  # no temporary file left behind
    store.path.write_text('{not json')
    assert store.load() == {}
