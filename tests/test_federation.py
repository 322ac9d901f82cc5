"""Federation through real mosquitto brokers (deploy/mosquitto's examples as shipped: TLS
with a test CA, per-station passwords, the ACL, persistence on, a bridge) and real
gateways (rclpy, multicast on loopback).

One stack for the module: broker A, broker B bridged to A, an RSU on A, and vehicles:
near (the RSU's multicast group + broker A), far (another group, broker A, fix near the
event), away (another group, broker A, fix 60 km away), bridged (another group, broker B,
a configured area). The cases run in order on it, each with its own alerts.
"""

import gc
import math
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import NavSatFix, NavSatStatus

from v2x_bridge.alert_gateway import AlertGateway
from v2x_common import qos
from v2x_common.params import ParameterError
from v2x_federation import quadkey, topics
import v2x_mosquitto as mq
from v2x_msgs.msg import Alert, PeerArray
from v2x_protocol.io import keys
from v2x_protocol.wire import decode
from v2x_testing import RosHarness, random_group

pytestmark = pytest.mark.skipif(bool(mq.missing_tools()),
                                reason=f'needs {mq.missing_tools()} (make setup installs them)')

SITE = (37.12345, 127.12345)
EVENT = (37.13000, 127.13000)       # ~900 m from the site
AWAY = (37.70000, 127.50000)        # ~70 km away
ZOOM_RSU, ZOOM_VEH = 18, 14
USERS = {'rsu_1': 'pw-rsu-1', 'rsu_2': 'pw-rsu-2', 'bridge_region_b': 'pw-bridge',
         'veh_near': 'pw-near', 'veh_far': 'pw-far', 'veh_away': 'pw-away',
         'veh_b': 'pw-b', 'veh_late': 'pw-late', 'veh_proc': 'pw-proc', 'rsu_3': 'pw-rsu-3'}
SECRET = 'federation-test-key-0123'


def _params(**kw):
    return [Parameter(k, value=v) for k, v in kw.items()]


class Stack:
    """The module's brokers, gateways and observed topics."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.tls = mq.make_ca(tmp / 'ca')
        self.passwords = mq.make_passwords(tmp / 'passwd', USERS)
        self.acl = mq.make_acl(tmp / 'acl', 'v2x', ['rsu_1', 'rsu_2', 'rsu_3'])
        self.key = tmp / 'hmac.key'
        self.key.write_text(SECRET + '\n')
        self.key.chmod(0o600)
        # both brokers as deploy/mosquitto ships them (only paths and ports substituted)
        self.a = mq.Mosquitto.from_examples(tmp / 'a', tls=self.tls, passwords=self.passwords,
                                            acl=self.acl).start()
        self.b = mq.Mosquitto.from_examples(
            tmp / 'b', tls=self.tls, passwords=self.passwords, acl=self.acl,
            bridge_to=self.a, bridge_password=USERS['bridge_region_b']).start()
        self.ros = RosHarness()
        self.groups = [random_group() for _ in range(5)]
        self.alerts: dict[str, list[Alert]] = {}
        self.peers: dict[str, list[PeerArray]] = {}
        self.probe = self.ros.node('fed_probe')
        self.nodes = {}
        self.out = self.probe.create_publisher(Alert, '/rsu/v2x/alert_out', qos.ALERT_OUT)
        self.sent: list[Alert] = []
        self.probe.create_subscription(Alert, '/rsu/v2x/alert_sent', self.sent.append,
                                       qos.ALERT_SENT)
        self.gateway('rsu', 'rsu', 'rsu_1', self.groups[0], self.a, zoom=ZOOM_RSU,
                     origin=SITE)
        self.gateway('near', 'vehicle', 'veh_near', self.groups[0], self.a, origin=EVENT)
        self.gateway('far', 'vehicle', 'veh_far', self.groups[1], self.a, origin=AWAY)
        self.gateway('away', 'vehicle', 'veh_away', self.groups[2], self.a, origin=SITE)
        self.gateway('bridged', 'vehicle', 'veh_b', self.groups[3], self.b, origin=AWAY,
                     area=quadkey.quadkey_of(*EVENT, ZOOM_VEH))
        # far starts around AWAY and moves to the event: its subscriptions follow the fix
        self.fix('far', *EVENT)
        self.fix('away', *AWAY)

    def gateway(self, ns, role, station, group, broker, zoom=ZOOM_VEH, origin=SITE,
                area=''):
        cred = mq.credentials_file(self.tmp / f'{station}.cred', station, USERS[station])
        params = dict(role=role, station_id=station, group=group[0], port=group[1],
                      iface='127.0.0.1', key_file=str(self.key), repeat_interval_s=0.3,
                      heartbeat_period_s=0.5, state_dir=str(self.tmp / ns),
                      origin_lat=origin[0], origin_lon=origin[1], broker_url=broker.url,
                      broker_credentials_file=str(cred), broker_ca_file=str(self.tls['ca']),
                      broker_topic_prefix='v2x', broker_zoom=zoom, broker_area=area)
        node = AlertGateway(context=self.ros.context, namespace=ns,
                            parameter_overrides=_params(**params))
        self.ros.add(node)
        self.nodes[ns] = node
        self.alerts[ns] = []
        self.peers[ns] = []
        self.probe.create_subscription(Alert, f'/{ns}/v2x/alert', self.alerts[ns].append,
                                       qos.ALERT)
        self.probe.create_subscription(PeerArray, f'/{ns}/v2x/peers', self.peers[ns].append,
                                       qos.PEERS)
        return node

    def fix(self, ns, lat, lon):
        pub = self.probe.create_publisher(NavSatFix, f'/{ns}/fix', qos.SENSOR_DATA)
        msg = NavSatFix(latitude=lat, longitude=lon)
        msg.status.status = NavSatStatus.STATUS_FIX
        node = self.nodes[ns]
        want = topics.tile_filter('v2x', quadkey.quadkey_of(lat, lon, ZOOM_VEH))
        link = node._federation.link
        assert self.until(lambda: pub.publish(msg) or (want in node._federation.filters
                                                       and link.subscriptions_settled), 20), \
            (f'{ns} never subscribed around its fix', link.connected, link._pending,
             want in node._federation.filters)

    def until(self, predicate, timeout=20.0) -> bool:
        return self.ros.spin_until(predicate, timeout)

    def send(self, road, **kw) -> Alert:
        """Publish an alert on the RSU's alert_out; returns it as sent (ids assigned)."""
        m = Alert()
        m.kind, m.severity, m.suggest = (Alert.KIND_COLLISION, Alert.SEVERITY_HIGH,
                                         Alert.SUGGEST_SLOW_DOWN)
        m.latitude, m.longitude, m.road, m.distance_m = *EVENT, road, 500.0
        for k, v in kw.items():
            setattr(m, k, v)
        self.out.publish(m)
        assert self.until(lambda: any(s.road == road for s in self.sent), 20), road
        return next(s for s in self.sent if s.road == road)

    def got(self, ns, road, cancelled=None) -> list[Alert]:
        return [a for a in self.alerts[ns] if a.road == road
                and (cancelled is None or a.cancelled == cancelled)]

    def counter(self, ns, name) -> int:
        return self.nodes[ns].counters().get(name, 0)

    def settle(self, *names, repeats=4) -> None:
        """Let several repeat intervals pass on the named vehicles (broker/radio repeats)."""
        start = {n: self.counter(n, 'repeats') for n in names}
        assert self.until(lambda: all(self.counter(n, 'repeats') >= start[n] + repeats
                                      for n in names), 30), 'repeats stopped arriving'

    def close(self):
        self.ros.close()
        self.b.stop()
        self.a.stop()


@pytest.fixture(scope='module')
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp('federation'))
    yield s
    s.close()


def raw_client(stack, user, broker=None):
    """A plain paho MQTT v5 client with a station's credentials (TLS, test CA)."""
    broker = broker or stack.a
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f'raw_{user}_{os.getpid()}',
                    protocol=mqtt.MQTTv5)
    c.username_pw_set(user, USERS[user])
    c.tls_set(ca_certs=str(stack.tls['ca']))
    c.received, c.acks, c.subacks = [], {}, []
    c.on_subscribe = lambda cl, ud, mid, rcs, props: c.subacks.append(mid)
    c.on_message = lambda cl, ud, m: c.received.append((m.topic, bytes(m.payload), m.retain))
    c.on_publish = lambda cl, ud, mid, rc, props: c.acks.__setitem__(mid, rc)
    c.connect('127.0.0.1', broker.port)
    c.loop_start()
    return c


def wait_for(predicate, timeout=10.0) -> bool:
    """Poll a condition set by paho's thread (no ROS involved)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not predicate():
        time.sleep(0.01)
    return bool(predicate())


def retained(stack, filt) -> list[tuple[str, bytes, bool]]:
    """The retained messages a fresh subscriber to filt gets: it also subscribes to
    rsu_2's status and, after the SUBACK, publishes a marker there; the broker queued the
    retained messages before the marker."""
    c = raw_client(stack, 'rsu_2')
    marker = f'marker-{time.monotonic_ns()}'.encode()
    try:
        c.subscribe([(filt, SubscribeOptions(qos=1)),
                     ('v2x/status/rsu_2', SubscribeOptions(qos=1))])
        assert wait_for(lambda: c.subacks), 'no SUBACK'
        c.publish('v2x/status/rsu_2', marker, qos=1)
        assert wait_for(lambda: any(m[1] == marker for m in c.received)), 'no marker'
        return [m for m in c.received if m[2] and m[0] != 'v2x/status/rsu_2']
    finally:
        c.loop_stop()
        c.disconnect()


def test_far_vehicle_gets_alert_via_broker_only(stack):
    """A vehicle on another multicast group, its fix near the event, gets the alert from
    the broker (path broker, authenticated), once; the RSU shows as a broker peer; a
    vehicle whose tiles do not cover the event gets nothing."""
    stack.send('A1')
    assert stack.until(lambda: stack.got('far', 'A1') and stack.got('near', 'A1')
                       and stack.got('bridged', 'A1'), 30), 'A1 not federated'
    stack.settle('far', 'near', 'bridged')
    [far] = stack.got('far', 'A1')
    assert far.path == Alert.PATH_BROKER and far.authenticated
    assert len(stack.got('near', 'A1')) == 1 and len(stack.got('bridged', 'A1')) == 1
    assert stack.got('away', 'A1') == [] and stack.counter('away', 'delivered') == 0
    assert stack.until(lambda: any(p.source_id == 'rsu_1' and p.path == Alert.PATH_BROKER
                                   for p in (stack.peers['far'][-1].peers
                                             if stack.peers['far'] else [])), 10), \
        (stack.nodes['far'].counters(), stack.peers['far'][-1:])
    assert stack.counter('far', 'dropped_bad_signature') == 0


def test_radio_and_broker_duplicates_delivered_once(stack):
    """The near vehicle hears A1 by radio and by broker (both counted), delivers it once."""
    assert stack.counter('near', 'broker_received') > 0
    stack.settle('near')
    assert len(stack.got('near', 'A1')) == 1
    assert stack.got('near', 'A1')[0].path in (Alert.PATH_RADIO, Alert.PATH_BROKER)


def test_bridged_broker_carries_alerts(stack):
    """A vehicle on broker B, bridged to the RSU's broker A, gets the alert with its
    signature intact (configured area, no fix)."""
    [b] = stack.got('bridged', 'A1')
    assert b.path == Alert.PATH_BROKER and b.authenticated
    assert stack.counter('bridged', 'dropped_bad_signature') == 0


def _tile_filter():
    return topics.tile_filter('v2x', quadkey.quadkey_of(*EVENT, ZOOM_VEH))


def test_tampered_datagram_on_broker_is_rejected(stack):
    """A datagram changed on the way (here: republished by another station with a byte of
    the body flipped) fails the signature check on the vehicle and is not delivered."""
    a1 = next(s for s in stack.sent if s.road == 'A1')
    copies = [m for m in retained(stack, _tile_filter())
              if m[0].endswith(f':{a1.sequence}') and m[0].split('/')[2] == 'rsu_1']
    assert copies, 'no retained copy of A1 on the broker'
    data = bytearray(copies[0][1])
    data[60] ^= 0x01  # inside the alert body (the HMAC covers it)
    before = stack.counter('far', 'dropped_bad_signature')
    delivered = stack.counter('far', 'delivered')
    c = raw_client(stack, 'rsu_2')
    try:
        topic = topics.alert_topic('v2x', 'rsu_2', quadkey.quadkey_of(*EVENT, ZOOM_RSU),
                                   'rsu_1', a1.sequence)
        c.publish(topic, bytes(data), qos=1).wait_for_publish(5)
        assert stack.until(lambda: stack.counter('far', 'dropped_bad_signature') > before)
    finally:
        c.publish(topic, b'', qos=1, retain=True).wait_for_publish(5)
        c.loop_stop()
        c.disconnect()
    assert stack.counter('far', 'delivered') == delivered


def test_vehicle_credentials_cannot_publish(stack):
    """The broker refuses a vehicle's publish (under its own id or an RSU's) and an RSU's
    publish under another station's id; subscribers never see them."""
    watcher = raw_client(stack, 'veh_late')
    veh, rsu2 = raw_client(stack, 'veh_far'), raw_client(stack, 'rsu_2')
    try:
        watcher.subscribe([('v2x/alert/#', SubscribeOptions(qos=1)),
                           ('v2x/status/#', SubscribeOptions(qos=1))])
        assert wait_for(lambda: watcher.subacks)
        key = quadkey.quadkey_of(*EVENT, ZOOM_RSU)
        forged = {veh: [topics.alert_topic('v2x', 'veh_far', key, 'veh_far', 1),
                        topics.alert_topic('v2x', 'rsu_1', key, 'rsu_1', 99)],
                  rsu2: [topics.alert_topic('v2x', 'rsu_1', key, 'rsu_1', 98)]}
        infos = [(client, client.publish(t, b'forged', qos=1))
                 for client, ts in forged.items() for t in ts]
        for _, info in infos:
            info.wait_for_publish(5)
        assert all(client.acks[info.mid].is_failure for client, info in infos), \
            [str(client.acks[info.mid]) for client, info in infos]
        marker = rsu2.publish('v2x/status/rsu_2', b'offline', qos=1, retain=False)
        marker.wait_for_publish(5)
        assert stack.until(lambda: any(m[0] == 'v2x/status/rsu_2' for m in watcher.received),
                           10)
        assert not any(m[1] == b'forged' for m in watcher.received)
    finally:
        for c in (watcher, veh, rsu2):
            c.loop_stop()
            c.disconnect()


def test_cancel_propagates_and_replaces_the_retained_copy(stack):
    """A cancellation reaches every vehicle holding the alert, and the broker's retained
    copy of the event becomes the cancellation."""
    a1 = next(s for s in stack.sent if s.road == 'A1')
    cancel = Alert(source_id='rsu_1', sequence=a1.sequence, cancelled=True, road='A1',
                   kind=a1.kind, severity=a1.severity, latitude=EVENT[0], longitude=EVENT[1],
                   detection_time=a1.detection_time, validity_s=a1.validity_s)
    cancel.header.stamp.sec = a1.header.stamp.sec + 1
    stack.out.publish(cancel)
    assert stack.until(lambda: all(stack.got(n, 'A1', cancelled=True)
                                   for n in ('far', 'near', 'bridged')), 30)
    keyring = keys.make_keyring('hmac', key_file=str(stack.key))
    copies = [m for m in retained(stack, _tile_filter())
              if m[0].endswith(f':{a1.sequence}')]
    assert len(copies) == 1
    assert decode(copies[0][1], keyring).payload.cancelled


def test_late_subscriber_gets_live_alert_not_expired(stack):
    """A vehicle that connects after an alert expired gets the live alerts of its tiles
    from the retained copies, and neither the broker nor the vehicle hands it the expired
    one."""
    short = stack.send('A2', validity_s=2.0)
    stack.send('A3', validity_s=600.0)
    expiry = short.detection_time.sec + short.detection_time.nanosec / 1e9 + 2.0
    assert stack.until(lambda: stack.got('far', 'A2') and stack.got('far', 'A3'), 20)
    assert stack.until(lambda: time.time() > expiry + 1.5, 10)
    held = [m for m in retained(stack, _tile_filter())
            if m[0].endswith(f':{short.sequence}')]
    assert held == [], 'the broker kept an expired alert'
    stack.gateway('late', 'vehicle', 'veh_late', stack.groups[4], stack.a, origin=EVENT)
    assert stack.until(lambda: stack.got('late', 'A3'), 30), 'late subscriber got nothing'
    stack.settle('late')
    assert stack.got('late', 'A2') == [] and len(stack.got('late', 'A3')) == 1
    assert stack.got('late', 'A3')[0].path == Alert.PATH_BROKER


def test_broker_restart_and_rsu_offline_queue(stack):
    """Broker A stops (persistence on) while the RSU sends A4 (long) and A5 (expires
    during the outage); after the restart every still-valid alert is delivered exactly
    once to the far and bridged vehicles and the expired one never."""
    stack.a.stop()
    assert stack.until(lambda: stack.counter('rsu', 'broker_connected') == 0, 20)
    a5 = stack.send('A5', validity_s=1.5)
    stack.send('A4', validity_s=600.0)
    assert stack.until(lambda: stack.counter('rsu', 'broker_queue') >= 2, 10)
    expiry = a5.detection_time.sec + a5.detection_time.nanosec / 1e9 + 1.5
    assert stack.until(lambda: time.time() > expiry + 0.5, 10)
    assert stack.got('far', 'A4') == []  # far has no radio: only the broker brings it
    stack.a.start()
    assert stack.until(lambda: stack.got('far', 'A4') and stack.got('bridged', 'A4'), 40), \
        'the queued alert never arrived after the restart'
    stack.settle('far', 'bridged')
    for ns in ('far', 'bridged'):
        roads = [a.road for a in stack.alerts[ns] if not a.cancelled]
        assert 'A5' not in roads
        for road in ('A1', 'A3', 'A4'):
            assert roads.count(road) == 1, (ns, roads)
    assert stack.counter('rsu', 'broker_connects') >= 2


def test_far_vehicle_positions_outside_event_tiles(stack):
    """Moving the far vehicle away re-subscribes its tiles: a new alert at the event is no
    longer delivered to it (while the near vehicle, by radio and broker, gets it)."""
    stack.fix('far', *AWAY)
    stack.send('A6')
    assert stack.until(lambda: stack.got('near', 'A6'), 20)
    stack.settle('near', 'bridged')
    assert stack.got('far', 'A6') == []
    assert math.isfinite(stack.got('near', 'A6')[0].latitude)



def test_vehicle_stack_from_launch_file_gets_alerts_via_broker(stack):
    """vehicle.launch.xml started by the launch runner as real processes, with the broker_*
    launch arguments only (no multicast from the RSU: another group), delivers the live
    alerts of its tiles on its /v2x/alert with path broker."""
    ws = Path(__file__).resolve().parents[1]
    cred = mq.credentials_file(stack.tmp / 'veh_proc.cred', 'veh_proc', USERS['veh_proc'])
    group = random_group()
    args = {'key_file': stack.key, 'group': group[0], 'port': group[1], 'iface': '127.0.0.1',
            'station_id': 'veh_proc', 'state_dir': stack.tmp / 'proc', 'csv_log': "''",
            'profile': ws / 'launch/config/demo.yaml', 'broker_url': stack.a.url,
            'broker_credentials_file': cred, 'broker_ca_file': stack.tls['ca']}
    observer = RosHarness()
    env = dict(os.environ, ROS_DOMAIN_ID=str(observer.domain_id))
    log = open(stack.tmp / 'vehicle_stack.log', 'w')
    proc = subprocess.Popen([sys.executable, str(ws / 'scripts/v2x_launch.py'),
                             str(ws / 'launch/vehicle.launch.xml'),
                             *[f'{k}:={v}' for k, v in args.items()]],
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        got = []
        observer.node('proc_probe').create_subscription(Alert, '/v2x/alert', got.append,
                                                        qos.ALERT)
        assert observer.spin_until(lambda: {'A3', 'A4'} <= {a.road for a in got}, 60), \
            (stack.tmp / 'vehicle_stack.log').read_text()[-3000:]
        assert all(a.path == Alert.PATH_BROKER for a in got if a.road in ('A3', 'A4'))
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        observer.close()



def _status(stack, station):
    return [m[1] for m in retained(stack, 'v2x/status/#') if m[0].split('/')[2] == station]


def test_rsu_status_retained_and_last_will_marks_it_offline(stack):
    """An RSU's retained status is its signed heartbeat while it runs; killed (SIGKILL, no
    goodbye), the broker publishes its last will: the retained status becomes `offline`."""
    cred = mq.credentials_file(stack.tmp / 'rsu_3.cred', 'rsu_3', USERS['rsu_3'])
    group = random_group()
    argv = [sys.executable, '-m', 'v2x_bridge.alert_gateway', '--ros-args',
            '-p', 'role:=rsu', '-p', 'station_id:=rsu_3', '-p', f'group:={group[0]}',
            '-p', f'port:={group[1]}', '-p', 'iface:=127.0.0.1',
            '-p', f'key_file:={stack.key}', '-p', f'state_dir:={stack.tmp / "rsu_3"}',
            '-p', 'heartbeat_period_s:=0.5', '-p', f'broker_url:={stack.a.url}',
            '-p', f'broker_credentials_file:={cred}', '-p', f'broker_ca_file:={stack.tls["ca"]}']
    log = open(stack.tmp / 'rsu_3.log', 'w')
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        keyring = keys.make_keyring('hmac', key_file=str(stack.key))
        assert wait_for(lambda: any(s[:2] == b'VX' for s in _status(stack, 'rsu_3')), 30), \
            (stack.tmp / 'rsu_3.log').read_text()[-2000:]
        hb = decode(_status(stack, 'rsu_3')[0], keyring).payload
        assert hb.source_id == 'rsu_3'
        proc.kill()
        proc.wait(timeout=10)
        assert wait_for(lambda: _status(stack, 'rsu_3') == [b'offline'], 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_clean_shutdown_marks_the_rsu_offline(stack):
    """An RSU gateway that stops cleanly publishes `offline` as its retained status."""
    # (spinning: the heartbeat timer refreshes the status, which expires after 3 periods)
    assert stack.until(lambda: [s[:2] for s in _status(stack, 'rsu_1')] == [b'VX'], 20)
    stack.ros.remove(stack.nodes.pop('rsu'))
    assert wait_for(lambda: _status(stack, 'rsu_1') == [b'offline'], 10)



def test_broker_with_a_certificate_from_another_ca_is_refused(stack, tmp_path):
    """TLS is verified: a gateway given another CA never connects to the broker (counted
    as broker_connect_failures), so it cannot be fooled by a broker it does not trust."""
    other = mq.make_ca(tmp_path / 'other_ca')
    group = random_group()
    cred = mq.credentials_file(tmp_path / 'veh_far.cred', 'veh_far', USERS['veh_far'])
    params = _params(role='vehicle', station_id='veh_far', group=group[0], port=group[1],
                     iface='127.0.0.1', key_file=str(stack.key), state_dir=str(tmp_path / 's'),
                     broker_url=stack.a.url, broker_credentials_file=str(cred),
                     broker_ca_file=str(other['ca']))
    node = AlertGateway(context=stack.ros.context, namespace='wrong_ca',
                        parameter_overrides=params)
    try:
        stack.ros.add(node)
        assert stack.until(lambda: node.counters()['broker_connect_failures'] >= 1, 20)
        assert node.counters()['broker_connects'] == 0
    finally:
        stack.ros.remove(node)


@pytest.mark.parametrize('params,name', [
    ({'broker_url': 'http://broker'}, 'broker_url'),                 # not MQTT
    ({'broker_url': 'mqtts://u:pw@broker'}, 'broker_url'),           # secret on argv
    ({'broker_url': 'mqtts://b', 'broker_zoom': 30}, 'broker_zoom'),  # beyond 23
    ({'broker_url': 'mqtts://b', 'broker_topic_prefix': 'v2x/#'}, 'broker_topic_prefix'),
    ({'broker_url': 'mqtts://b', 'broker_ca_file': '/nonexistent.pem'}, 'broker_ca_file'),
    ({'broker_url': 'mqtts://b', 'broker_credentials_file': '/nonexistent'},
     'broker_credentials_file'),
    ({'broker_url': 'mqtts://b', 'broker_area': '0124'}, 'broker_area'),
    ({'broker_url': 'mqtts://b', 'station_id': 'a/b'}, 'station_id'),
])
def test_bad_broker_parameter_stops_the_gateway_naming_it(tmp_path, params, name):
    """A bad broker_* value stops the gateway at start-up with an error naming it."""
    ros = RosHarness()
    group = random_group()
    message = ''
    try:
        AlertGateway(context=ros.context, parameter_overrides=_params(
            role='vehicle', group=group[0], port=group[1], iface='127.0.0.1',
            state_dir=str(tmp_path), insecure=True, auth_mode='none', **params))
    except ParameterError as exc:
        message = str(exc)
    finally:
        gc.collect()  # the half-built node must be gone before the context shuts down
        ros.close()
    assert f"parameter '{name}'" in message, message
