"""The fleet's key model on a real gateway (issue 24 item 3): a vehicle alert_gateway with
the trust store of the RSUs' Ed25519 keys and the fleet heartbeat key, over loopback
multicast. Its own heartbeats are signed with the heartbeat key; a key holder with that
key floods forged stops and future-dated sessions; the RSU's stop is still delivered,
and nothing forged is. One gateway for the module; counters checked, never timings."""

import os
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import pytest
from rclpy.parameter import Parameter

from v2x_bridge import net
from v2x_bridge.alert_gateway import AlertGateway
from v2x_common import qos
from v2x_msgs.msg import Alert
from v2x_protocol import keys, wire
from v2x_protocol.receiver import HeartbeatReceived, Receiver
from v2x_protocol.sender import Sender
from v2x_testing import RosHarness, random_group

RSU = keys.Ed25519Signer(Ed25519PrivateKey.generate())
HEARTBEAT_SECRET = os.urandom(32).hex()
HEARTBEAT = keys.HeartbeatKey(HEARTBEAT_SECRET.encode())


def _private(path, text):
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


@pytest.fixture(scope='module')
def fleet(tmp_path_factory):
    """A vehicle gateway in the recommended deployment; a socket that hears the group."""
    tmp = tmp_path_factory.mktemp('fleet')
    store = _private(tmp / 'trust_store', keys.trust_entry('rsu_site7', RSU.public_raw) + '\n')
    hb_file = _private(tmp / 'heartbeat.key', HEARTBEAT_SECRET + '\n')
    ros = RosHarness()
    group, port = random_group()
    listen = net.open_receiver(group, port, '127.0.0.1', timeout_s=0.2)
    params = dict(role='vehicle', group=group, port=port, iface='127.0.0.1',
                  auth_mode='ed25519', trust_store=store, heartbeat_key_file=hb_file,
                  state_dir=str(tmp / 'state'), heartbeat_period_s=0.5)
    gateway = AlertGateway(context=ros.context, namespace='veh', parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])
    ros.add(gateway)
    got = []
    ros.node('probe').create_subscription(Alert, '/veh/v2x/alert', got.append, qos.ALERT)
    tx = net.open_sender(group, port, '127.0.0.1')
    yield {'ros': ros, 'gateway': gateway, 'got': got, 'tx': tx, 'listen': listen}
    tx.close()
    listen.close()
    ros.close()


def test_vehicle_heartbeats_are_signed_with_the_fleet_key(fleet):
    """The vehicle holds no alert key: its heartbeats verify under the fleet heartbeat key
    (and nothing else), role vehicle, under its pseudonym."""
    rx = Receiver(keys.Keyring(heartbeat_keys=[HEARTBEAT]))
    end = time.monotonic() + 20
    heard = None
    while heard is None and time.monotonic() < end:
        fleet['ros'].spin_for(0.1)
        try:
            data = fleet['listen'].recv(2048)
        except OSError:
            continue
        event = rx.receive(data, time.time_ns())
        if isinstance(event, HeartbeatReceived):
            heard = event
    assert heard is not None, 'no heartbeat verified under the fleet key'
    assert heard.heartbeat.role == 2 and heard.heartbeat.source_id.startswith('vehicle_')
    assert fleet['gateway'].identity._signer is None  # holds no alert key


def test_forged_stops_and_session_flood_do_not_delay_the_rsu(fleet):
    """2,000 stops signed with the heartbeat key and 3,000 vehicle heartbeats of new
    sessions 25 s ahead: none forged is delivered, they are counted as heartbeat_key, and
    the RSU's stop, repeated every 0.2 s, is delivered once."""
    ros, gateway, tx, got = fleet['ros'], fleet['gateway'], fleet['tx'], fleet['got']
    now = time.time_ns()
    forger = Sender(None, heartbeat_signer=HEARTBEAT)
    for i in range(2_000):
        stop = wire.AlertData(f'made_up_{i % 15}', i + 1, 3, 3, 2, now, now, 86400.0)
        tx.send(wire.encode(stop, signer=HEARTBEAT, session=forger.session, counter=i + 1,
                            send_time_ns=now))
        if i % 200 == 0:
            ros.spin_for(0.001)
    for i in range(3_000):
        hb = wire.HeartbeatData(f'vehicle_{i:08x}', 2)
        tx.send(wire.encode(hb, signer=HEARTBEAT, session=10_000 + i, counter=1,
                            send_time_ns=time.time_ns() + 25_000_000_000, origin=i))
        if i % 200 == 0:
            ros.spin_for(0.001)
    rsu = Sender(RSU, origin=7)
    t = time.time_ns()
    stop = wire.AlertData('rsu_site7', 1, 3, 3, 2, t, t, 60.0, distance_m=40.0)
    end = time.monotonic() + 30
    while not got and time.monotonic() < end:
        tx.send(rsu.datagram(stop, time.time_ns()))
        ros.spin_for(0.2)
    assert [(a.source_id, a.sequence) for a in got] == [('rsu_site7', 1)]
    assert ros.spin_until(lambda: gateway.counters().get('dropped_heartbeat_key', 0) > 0, 20)
    ros.spin_for(0.5)
    assert len(got) == 1, got
