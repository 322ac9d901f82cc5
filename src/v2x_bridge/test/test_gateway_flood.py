"""The gateway under a flood (loopback, random group; a private namespace would add
nothing here: the flood only needs a socket no other test joins).

Scaled to CI: 12,000 hostile datagrams of four kinds from a sender without the key, then
20,000 heartbeats of distinct source ids from a key holder; the real alert's delivery,
the peer table's bound and the counters are checked, never timings
(bench/bench_flood.py measures those).
"""

import threading
import time

import pytest
from rclpy.parameter import Parameter
import v2x_hostile as hostile

from v2x_bridge import net
from v2x_bridge.alert_gateway import AlertGateway
from v2x_common import qos
from v2x_common.diagnostics import WARN
from v2x_msgs.msg import Alert, PeerArray
from v2x_protocol import keys
from v2x_protocol.peers import MAX_PEERS
from v2x_protocol.sender import Sender
from v2x_protocol.wire import AlertData, HeartbeatData
from v2x_testing import RosHarness, random_group

SECRET = 'flood-test-secret'
PER_KIND = 3000


def test_kernel_drops_are_counted():
    """A receive buffer overflowing is seen as a kernel drop count (SO_RXQ_OVFL)."""
    group, port = random_group()
    rx = net.open_receiver(group, port, '127.0.0.1', timeout_s=0.0, rcvbuf=4096)
    tx = net.open_sender(group, port, '127.0.0.1')
    try:
        reader = net.BatchReader(rx, max_batch=10_000)
        for _ in range(200):
            tx.send(bytes(500))
        first = reader.read(1.0)
        assert 0 < len(first) < 200  # the small buffer kept only some
        tx.send(b'after')  # queued after the drops: carries the count
        deadline = time.monotonic() + 5
        while reader.kernel_drops == 0 and time.monotonic() < deadline:
            reader.read(0.1)
        assert reader.kernel_drops == 200 - len(first)
    finally:
        rx.close()
        tx.close()


def test_batch_reader_drains_in_bounded_batches():
    """One wake-up reads what is queued, at most max_batch, in order; then waits."""
    group, port = random_group()
    rx = net.open_receiver(group, port, '127.0.0.1', timeout_s=0.0)
    tx = net.open_sender(group, port, '127.0.0.1')
    try:
        reader = net.BatchReader(rx, max_batch=4)
        sent = [bytes([i]) * 10 for i in range(10)]
        for data in sent:
            tx.send(data)
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 10 and time.monotonic() < deadline:
            batch = reader.read(0.5)
            assert len(batch) <= 4
            got += batch
        assert got == sent
        assert reader.read(0.05) == []
    finally:
        rx.close()
        tx.close()


@pytest.fixture(scope='module')
def flooded():
    """A vehicle gateway, a flood of every hostile kind, and one real alert sent mid-flood
    and repeated every 0.2 s until it is delivered."""
    ros = RosHarness()
    group, port = random_group()
    mp = pytest.MonkeyPatch()
    mp.setenv('V2X_KEY', SECRET)
    params = dict(role='vehicle', group=group, port=port, iface='127.0.0.1',
                  heartbeat_period_s=3600.0)
    gateway = AlertGateway(context=ros.context, namespace='veh', parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])
    ros.add(gateway)
    got = []
    probe = ros.node('probe')
    probe.create_subscription(Alert, '/veh/v2x/alert', got.append, qos.ALERT)
    tx = net.open_sender(group, port, '127.0.0.1')
    key = keys.HmacKey(SECRET.encode())
    garbage = hostile.pool(hostile.KINDS, key.key_id, per_kind=PER_KIND)
    done = threading.Event()

    def flood():
        for i in range(0, len(garbage), 100):
            for data in garbage[i:i + 100]:
                tx.send(data)
            time.sleep(0.001)
        done.set()
    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    rsu = Sender(key)
    now = time.time_ns()
    real = AlertData('rsu_real', 7, Alert.KIND_BLOCKAGE, Alert.SEVERITY_HIGH,
                     Alert.SUGGEST_STOP, now, now, 60.0, distance_m=40.0)
    repeats = 0
    end = time.monotonic() + 60
    while not (got and done.is_set()) and time.monotonic() < end:
        if not got:
            tx.send(rsu.datagram(real, time.time_ns()))
            repeats += 1
        ros.spin_for(0.2)
    flooder.join(timeout=30)
    yield {'ros': ros, 'gateway': gateway, 'got': got, 'tx': tx, 'repeats': repeats,
           'sent': len(garbage), 'probe': probe, 'key': key}
    tx.close()
    ros.close()
    mp.undo()


def test_real_alert_delivered_once_during_flood(flooded):
    """The real alert sent during the flood is delivered, once; nothing forged is."""
    ros, got = flooded['ros'], flooded['got']
    assert got, 'the real alert was not delivered during the flood'
    ros.spin_for(0.5)
    assert [(a.source_id, a.sequence) for a in got] == [('rsu_real', 7)]


def test_flood_is_counted_by_reason(flooded):
    """Every hostile datagram is counted: by reason when read, else as a kernel drop."""
    ros, gateway, tx = flooded['ros'], flooded['gateway'], flooded['tx']
    reasons = {f'dropped_{r}' for r in hostile.REASON.values()}

    def accounted():
        c = gateway.counters()
        return sum(c.get(r, 0) for r in reasons) + c['kernel_drops']

    deadline = time.monotonic() + 30
    while accounted() < flooded['sent'] and time.monotonic() < deadline:
        tx.send(hostile.make('bad_magic', b''))  # a later datagram brings the kernel count
        ros.spin_for(0.2)
    c = gateway.counters()
    assert accounted() >= flooded['sent'], c
    assert all(c.get(r, 0) > 0 for r in reasons), c
    assert c['delivered'] == 1 and c['internal_errors'] == 0, c
    assert c['received'] >= sum(c.get(r, 0) for r in reasons) + 1


def test_twenty_thousand_heartbeat_ids_keep_peers_bounded(flooded):
    """A key holder heartbeating under 20,000 source ids: /v2x/peers stays at one key's
    share of the table (half: one key never fills it), the peer heard before keeps its
    place, the newcomers beyond the cap are refused."""
    ros, gateway, tx = flooded['ros'], flooded['gateway'], flooded['tx']
    peers = []
    flooded['probe'].create_subscription(PeerArray, '/veh/v2x/peers', peers.append, qos.PEERS)
    holder = Sender(flooded['key'])
    tx.send(holder.datagram(HeartbeatData('rsu_real', 1, period_s=10.0), time.time_ns()))
    assert ros.spin_until(lambda: peers and any(p.source_id == 'rsu_real'
                                                for p in peers[-1].peers), 20)
    for start in range(0, 20_000, 200):
        for i in range(start, start + 200):
            tx.send(holder.datagram(HeartbeatData(f'flood_{i}', 2, period_s=10.0),
                                    time.time_ns()))
        ros.spin_for(0.005)
    share = MAX_PEERS // 2
    assert ros.spin_until(lambda: gateway.counters()['peers_refused'] > 0
                          and len(peers[-1].peers) == share, 30), gateway.counters()
    listed = {p.source_id for p in peers[-1].peers}
    assert 'rsu_real' in listed and len(listed) == share
    assert gateway.counters()['peers'] == share
    level, message, _ = gateway._health()  # what /diagnostics says now
    assert level == WARN and 'peer table full' in message, message
