"""Bench federation through mosquitto: latency beside a bare relay, and a 1,000-vehicle fan-out.

One mosquitto (TLS with a test CA, per-station passwords, the deploy/ ACL) on loopback.

1. Latency /v2x/alert_out (RSU domain) -> /v2x/alert (vehicle domain) at --rate alerts/s,
   p50/p99, all paths up at once and fed in rotating blocks:
   ours:     alert_gateway rsu (process; signs, multicasts, publishes QoS 1 retained with
             expiry, repeats) -> mosquitto -> alert_gateway vehicle (process, on another
             multicast group: broker only; verifies, dedups) -> subscriber;
   baseline: a bare relay with the same ROS hops: an rclpy subscriber publishing the same
             number of bytes with paho (QoS 1, retained, same expiry) -> mosquitto -> a
             paho subscriber publishing an Alert into rclpy -> subscriber;
   radio:    for reference, the same two gateways joined by UDP multicast, no broker.
2. Fan-out: --vehicles plain paho clients (not ROS) spread at random over a --city-km
   square, each running our tile subscription (3x3 tiles at zoom 14 around its position,
   TileSubscriptions) and its own Receiver core, in --procs processes; a publisher process
   sends --fanout-alerts signed alerts at random places in the city at --fanout-rate/s
   (our RsuPublisher topics at zoom 18). Reports delivery latency (publisher's send time
   -> Receiver delivered) p50/p99, per-vehicle delivery counts against the exact expected
   set (wrong, missing, duplicate), and CPU seconds of the broker, the clients and the
   publisher.

Usage (inside scripts/env.sh):  python bench/bench_federation.py [--alerts 1000]
    [--vehicles 1000] [--fanout-alerts 1000] [--fanout-rate 100] [--skip-latency]
"""

import argparse
import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile
import time

import _path  # noqa: F401  (tests/support: the test harness)
from bench_bridge import Ends, _fresh_domain, _procs, _stop, percentile
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import psutil
import rclpy

from v2x_common import qos
from v2x_common.timeutil import NS_PER_S
from v2x_federation import quadkey, topics
from v2x_federation.publish import RsuPublisher
import v2x_mosquitto as mq
from v2x_msgs.msg import Alert
from v2x_protocol import keys
from v2x_protocol.receiver import AlertDelivered, Receiver
from v2x_protocol.sender import Sender
from v2x_protocol.wire import AlertData
from v2x_testing import random_group

SECRET = 'bench-federation-secret'
LABELS = ('baseline', 'ours', 'radio')  # bare relay via broker, gateways via broker, via UDP
VALIDITY_S = 2.0
REPEAT_S = float(os.environ.get('BENCH_REPEAT_S', '1.0'))  # the gateways' repeat interval
CITY_CENTRE = (37.5665, 126.9780)  # Seoul city hall
ZOOM_PUB, ZOOM_SUB = 18, 14
USERS = {'rsu_1': 'pw-rsu', 'veh_1': 'pw-veh', 'relay': 'pw-relay', 'fleet': 'pw-fleet'}


# --- the broker ---------------------------------------------------------------------------

def start_broker(tmp: str) -> tuple[mq.Mosquitto, dict]:
    tls = mq.make_ca(os.path.join(tmp, 'ca'))
    passwords = mq.make_passwords(os.path.join(tmp, 'passwd'), USERS)
    acl = mq.make_acl(os.path.join(tmp, 'acl'), 'v2x', ['rsu_1', 'relay'])
    broker = mq.Mosquitto(os.path.join(tmp, 'broker'), tls=tls, passwords=passwords,
                          acl=acl).start()
    creds = {u: str(mq.credentials_file(os.path.join(tmp, f'{u}.cred'), u, p))
             for u, p in USERS.items()}
    return broker, {'ca': str(tls['ca']), 'creds': creds, 'url': broker.url,
                    'port': broker.port}


def client(info: dict, user: str, client_id: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=mqtt.MQTTv5)
    c.username_pw_set(user, USERS[user])
    c.tls_set(ca_certs=info['ca'])
    return c


# --- baseline relay processes (bare rclpy <-> paho) ---------------------------------------

def relay_pub(info: dict, size: int) -> None:
    """Baseline hop 1: alert_out -> the same number of bytes, paho QoS 1, retained, expiring."""
    rclpy.init()
    node = rclpy.create_node('bench_mqtt_relay_pub')
    c = client(info, 'relay', 'relay_pub')
    c.connect('127.0.0.1', info['port'])
    c.loop_start()
    pad = bytes(max(0, size - 8))
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = int(VALIDITY_S)

    def on_alert(msg):
        ns = msg.header.stamp.sec * NS_PER_S + msg.header.stamp.nanosec
        c.publish(f'v2x/alert/relay/{ns % 1000}', struct.pack('>q', ns) + pad, qos=1,
                  retain=True, properties=props)
    node.create_subscription(Alert, 'v2x/alert_out', on_alert, qos.ALERT_OUT)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        c.loop_stop()
        node.destroy_node()
        rclpy.try_shutdown()


def relay_sub(info: dict) -> None:
    """Baseline hop 2: paho subscriber -> an Alert on v2x/alert carrying the original stamp."""
    rclpy.init()
    node = rclpy.create_node('bench_mqtt_relay_sub')
    pub = node.create_publisher(Alert, 'v2x/alert', qos.ALERT)

    def on_message(cl, ud, m):
        if m.retain:  # a stale retained copy from before this subscriber
            return
        ns = struct.unpack_from('>q', m.payload)[0]
        a = Alert()
        a.header.stamp.sec, a.header.stamp.nanosec = divmod(ns, NS_PER_S)
        pub.publish(a)
    c = client(info, 'veh_1', 'relay_sub')
    c.on_message = on_message
    c.on_connect = lambda cl, ud, fl, rc, pr: cl.subscribe('v2x/alert/relay/#', qos=1)
    c.connect('127.0.0.1', info['port'])
    c.loop_start()
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        c.loop_stop()
        node.destroy_node()
        rclpy.try_shutdown()


def latency(info: dict, n: int, rate: float, tmp: str) -> dict[str, list[float]]:
    size = len(Sender(keys.HmacKey(SECRET.encode())).datagram(AlertData(
        'rsu_1', 1, 1, 3, 1, 1, 1, VALIDITY_S, road='segment_A', distance_m=500.0), 1))
    used, setups = set(), {}
    me = [sys.executable, os.path.abspath(__file__), '--info', json.dumps(info)]
    try:
        for label in LABELS:
            da, db = _fresh_domain(used), _fresh_domain(used)
            a, b = {'ROS_DOMAIN_ID': str(da)}, {'ROS_DOMAIN_ID': str(db)}
            if label == 'baseline':
                cmds = [(me + ['--relay-pub', str(size)], a), (me + ['--relay-sub'], b)]
            else:
                def gw(role, station, group, broker=True, label=label):
                    argv = [sys.executable, '-m', 'v2x_bridge.alert_gateway', '--ros-args',
                            '-p', f'role:={role}', '-p', f'station_id:={station}',
                            '-p', f'group:={group[0]}', '-p', f'port:={group[1]}',
                            '-p', 'iface:=127.0.0.1', '-p', f'state_dir:={tmp}/{label}{role}',
                            '-p', 'heartbeat_period_s:=1.0',
                            '-p', f'repeat_interval_s:={REPEAT_S}']
                    if broker:
                        argv += ['-p', f'broker_url:={info["url"]}',
                                 '-p', f'broker_credentials_file:={info["creds"][station]}',
                                 '-p', f'broker_ca_file:={info["ca"]}',
                                 '-p', f'broker_zoom:={ZOOM_PUB if role == "rsu" else ZOOM_SUB}']
                    return argv
                if label == 'ours':  # two multicast groups: only the broker joins them
                    cmds = [(gw('rsu', 'rsu_1', random_group()), a),
                            (gw('vehicle', 'veh_1', random_group()), b)]
                else:  # 'radio': the same gateways joined by multicast only, no broker
                    group = random_group()
                    cmds = [(gw('rsu', 'rsu_1', group, False), a),
                            (gw('vehicle', 'veh_1', group, False), b)]
            procs = _procs(cmds, {'V2X_KEY': SECRET})
            setups[label] = (procs, Ends(da, db, label))
        for label, (procs, ends) in setups.items():
            if not ends.ready():
                raise SystemExit(f'{label}: processes did not come up: ' + ' | '.join(
                    p.stderr.read() if p.poll() is not None else 'running' for p in procs))
        time.sleep(1.0)  # broker connections and subscriptions
        out = {label: [] for label in LABELS}
        rounds = 12
        per = max(1, n // rounds)
        for r in range(rounds):
            order = LABELS[r % 3:] + LABELS[:r % 3]
            for label in order:
                out[label] += setups[label][1].run(per, rate, warmup=20 if r < 3 else 0)
        return out
    finally:
        for label, (procs, ends) in setups.items():
            ends.close()
            _stop(procs)
            if label != 'baseline':  # what the gateways dropped, if anything (their logs)
                for p in procs:
                    lines = [ln for ln in (p.stderr.read() or '').splitlines()
                             if 'dropped' in ln or 'broker' in ln.lower()]
                    for ln in lines[-4:]:
                        print(f'  [{label}] {ln[:200]}')


# --- fan-out ------------------------------------------------------------------------------

def positions(seed: int, count: int, city_km: float) -> list[tuple[float, float]]:
    """count random points in a city_km square around CITY_CENTRE (deterministic)."""
    rnd = random.Random(seed)
    dlat = city_km / 2 / 111.32
    dlon = dlat / max(0.1, math.cos(math.radians(CITY_CENTRE[0])))
    return [(CITY_CENTRE[0] + rnd.uniform(-dlat, dlat), CITY_CENTRE[1] + rnd.uniform(-dlon, dlon))
            for _ in range(count)]


def fleet_worker(info: dict, first: int, count: int, vehicles: int, city_km: float,
                 prefix: str) -> None:
    """Vehicles first..first+count-1: a paho client each, our tile subscription and a
    Receiver, all driven by ONE thread (a selector over the clients' sockets: paho's
    loop_read / loop_write / loop_misc); prints READY; then reads the number of deliveries
    to expect from stdin, waits for them (or 10 s without a new one) and prints the
    results as JSON."""
    import selectors
    spots = positions(1, vehicles, city_km)[first:first + count]
    ring = keys.Keyring([keys.HmacKey(SECRET.encode())])
    delivered: dict[int, list] = {i: [] for i in range(first, first + count)}
    rejected: dict[str, int] = {}
    subacks = []
    clients = []
    sel = selectors.DefaultSelector()
    for i, (lat, lon) in zip(range(first, first + count), spots, strict=True):
        rx = Receiver(ring)
        tiles = topics.TileSubscriptions(prefix, ZOOM_SUB)
        tiles.moved_to(lat, lon)

        def on_message(cl, ud, m, rx=rx, out=delivered[i]):
            now = time.time_ns()
            ev = rx.receive(bytes(m.payload), now)
            if isinstance(ev, AlertDelivered):
                out.append((ev.alert.sequence, (now - ev.envelope.send_time_ns) / 1e6))
            elif hasattr(ev, 'reason'):
                rejected[ev.reason] = rejected.get(ev.reason, 0) + 1
        c = client(info, 'fleet', f'fleet_{i}')
        c.on_message = on_message
        c.on_subscribe = lambda cl, ud, mid, rcs, pr: subacks.append(mid)
        filters = [(f, 1) for f in sorted(tiles.filters) if '/alert/' in f]
        c.on_connect = lambda cl, ud, fl, rc, pr, filters=filters: cl.subscribe(filters)
        c.connect('127.0.0.1', info['port'])
        sel.register(c.socket(), selectors.EVENT_READ, c)
        clients.append(c)
    stop = {'at': None, 'expect': None}

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for key, _ in sel.select(timeout=0.05):
                key.data.loop_read(max_packets=100)
            for c in clients:
                if c.want_write():
                    c.loop_write()
            if stop['misc'] < time.monotonic():
                for c in clients:
                    c.loop_misc()
                stop['misc'] = time.monotonic() + 1.0
    stop['misc'] = 0.0
    end = time.monotonic() + 120
    while len(subacks) < count and time.monotonic() < end:
        pump(0.1)
    print('READY' if len(subacks) >= count else f'NOT READY {len(subacks)}', flush=True)
    import threading
    line = []
    reader = threading.Thread(target=lambda: line.append(sys.stdin.readline()), daemon=True)
    reader.start()
    while not line:
        pump(0.1)
    expect = int(line[0])
    last, seen = time.monotonic(), -1
    while True:
        total = sum(len(v) for v in delivered.values())
        if total >= expect or time.monotonic() - last > 10.0:
            break
        if total != seen:
            last, seen = time.monotonic(), total
        pump(0.1)
    pump(0.5)  # anything beyond the expected (wrong or duplicate) shows up too
    cpu = psutil.Process().cpu_times()
    print(json.dumps({'delivered': delivered, 'cpu_s': cpu.user + cpu.system,
                      'rejected': rejected}), flush=True)
    os._exit(0)


def fanout(info: dict, vehicles: int, procs: int, alerts: int, rate: float,
           city_km: float) -> dict:
    prefix = 'v2x'  # the ACL lets rsu_1 write v2x/alert/rsu_1/#; a fresh broker per run
    me = [sys.executable, os.path.abspath(__file__), '--info', json.dumps(info)]
    per = -(-vehicles // procs)
    workers = []
    for k in range(procs):
        first = k * per
        count = min(per, vehicles - first)
        if count <= 0:
            break
        workers.append(subprocess.Popen(
            me + ['--fleet-worker', str(first), str(count), str(vehicles), str(city_km),
                  prefix], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for w in workers:
        line = w.stdout.readline().strip()
        if line != 'READY':
            raise SystemExit(f'fleet worker not ready: {line}')
    broker = psutil.Process(info['pid'])
    b0 = broker.cpu_times()
    # the publisher: our RSU core (topics at zoom 18, retained, expiry) + Sender, paho QoS 1
    spots = positions(2, alerts, city_km)
    signer = keys.HmacKey(SECRET.encode())
    tx = Sender(signer)
    pubcore = RsuPublisher(prefix, 'rsu_1', ZOOM_PUB, CITY_CENTRE)
    c = client(info, 'rsu_1', 'bench_rsu')
    acks = []
    c.on_publish = lambda cl, ud, mid, rc, pr: acks.append(rc)
    c.connect('127.0.0.1', info['port'])
    c.loop_start()
    p0 = psutil.Process().cpu_times()
    start = time.monotonic()
    for i, (lat, lon) in enumerate(spots):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.time_ns()
        a = AlertData('rsu_1', i + 1, 1, 3, 1, now, now, 60.0, latitude=lat, longitude=lon,
                      road='city')
        for pub in pubcore.alert(a, tx.datagram(a, now), now):
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = pub.expiry_interval_s(now)
            c.publish(pub.topic, pub.payload, qos=1, retain=pub.retain, properties=props)
    send_s = time.monotonic() - start
    end = time.monotonic() + 30
    while len(acks) < alerts and time.monotonic() < end:
        time.sleep(0.05)
    p1 = psutil.Process().cpu_times()
    alert_tiles = [quadkey.quadkey_of(lat, lon, ZOOM_SUB) for lat, lon in spots]
    expected_sets = []
    for lat, lon in positions(1, vehicles, city_km):
        hood = set(quadkey.neighbourhood(quadkey.quadkey_of(lat, lon, ZOOM_SUB)))
        expected_sets.append({i + 1 for i, t in enumerate(alert_tiles) if t in hood})
    results, client_cpu, rejected = {}, 0.0, {}
    for k, w in enumerate(workers):
        w.stdin.write(f'{sum(len(e) for e in expected_sets[k * per:(k + 1) * per])}\n')
        w.stdin.flush()
    for w in workers:
        out, _ = w.communicate(timeout=300)
        data = json.loads(out.strip().splitlines()[-1])
        results.update({int(k): v for k, v in data['delivered'].items()})
        client_cpu += data['cpu_s']
        for reason, n in data['rejected'].items():
            rejected[reason] = rejected.get(reason, 0) + n
    b1 = broker.cpu_times()
    c.loop_stop()
    c.disconnect()
    # exact expected set per vehicle: alerts whose zoom-14 tile is in its 3x3
    wrong = missing = dup = expected_total = 0
    lat_ms = []
    for v, expected in enumerate(expected_sets):
        got = [seq for seq, _ in results.get(v, [])]
        expected_total += len(expected)
        dup += len(got) - len(set(got))
        wrong += len(set(got) - expected)
        missing += len(expected - set(got))
        lat_ms += [ms for _, ms in results.get(v, [])]
    return {'lat': lat_ms, 'expected': expected_total, 'wrong': wrong, 'missing': missing,
            'dup': dup, 'send_s': send_s, 'acks': len(acks),
            'broker_cpu': (b1.user + b1.system) - (b0.user + b0.system),
            'client_cpu': client_cpu,
            'pub_cpu': (p1.user + p1.system) - (p0.user + p0.system),
            'workers': len(workers), 'rejected': rejected}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--alerts', type=int, default=1000, help='latency samples per path')
    p.add_argument('--rate', type=float, default=100.0, help='alerts per second (latency)')
    p.add_argument('--vehicles', type=int, default=1000)
    p.add_argument('--procs', type=int, default=2,
                   help='fleet processes (one thread each drives all its clients)')
    p.add_argument('--fanout-alerts', type=int, default=1000)
    p.add_argument('--fanout-rate', type=float, default=100.0)
    p.add_argument('--city-km', type=float, default=20.0)
    p.add_argument('--skip-latency', action='store_true')
    p.add_argument('--skip-fanout', action='store_true')
    p.add_argument('--info', help=argparse.SUPPRESS)
    p.add_argument('--relay-pub', type=int, help=argparse.SUPPRESS)
    p.add_argument('--relay-sub', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--fleet-worker', nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.relay_pub is not None:
        relay_pub(json.loads(args.info), args.relay_pub)
        return 0
    if args.relay_sub:
        relay_sub(json.loads(args.info))
        return 0
    if args.fleet_worker:
        first, count, vehicles, city_km, prefix = args.fleet_worker
        fleet_worker(json.loads(args.info), int(first), int(count), int(vehicles),
                     float(city_km), prefix)
        return 0
    if mq.missing_tools():
        raise SystemExit(f'needs {mq.missing_tools()}')
    load = ' '.join(f'{x:.2f}' for x in os.getloadavg())
    print(f'# bench_federation on {os.cpu_count()} CPUs, python {sys.version.split()[0]}, '
          f'load average {load} (other work on the machine skews every figure); mosquitto '
          'with TLS, passwords and ACL on 127.0.0.1')
    with tempfile.TemporaryDirectory() as tmp:
        broker, info = start_broker(tmp)
        info['pid'] = broker.proc.pid
        try:
            if not args.skip_latency:
                lat = latency(info, args.alerts, args.rate, tmp)
                print(f'\n## latency /v2x/alert_out -> /v2x/alert through the broker at '
                      f'{args.rate:g} alerts/s ({args.alerts} samples per path, alternating '
                      f'blocks, validity {VALIDITY_S:g} s), ms')
                print(f'{"path":10s} {"n":>6s} {"p50":>8s} {"p99":>8s} {"max":>8s}')
                for label in LABELS:
                    v = lat[label]
                    print(f'{label:10s} {len(v):6d} {percentile(v, 50):8.3f} '
                          f'{percentile(v, 99):8.3f} {max(v) if v else float("nan"):8.3f}')
                b, o = lat['baseline'], lat['ours']
                print(f'{"added":10s} {"":6s} {percentile(o, 50) - percentile(b, 50):8.3f} '
                      f'{percentile(o, 99) - percentile(b, 99):8.3f}   '
                      '(target: p99 added < 2 ms)')
                print('(radio: the same two gateways joined by multicast instead: what the '
                      'gateways cost without the broker)')
            if not args.skip_fanout:
                f = fanout(info, args.vehicles, args.procs, args.fanout_alerts,
                           args.fanout_rate, args.city_km)
                v = f['lat']
                print(f'\n## fan-out: {args.vehicles} vehicles ({f["workers"]} processes of one '
                      f'thread; a paho client + Receiver each, 3x3 tiles at zoom {ZOOM_SUB}) over '
                      f'{args.city_km:g} km x {args.city_km:g} km, {args.fanout_alerts} alerts '
                      f'at {args.fanout_rate:g}/s (sent in {f["send_s"]:.1f} s, '
                      f'{f["acks"]} PUBACKs)')
                print(f'deliveries {len(v)} of {f["expected"]} expected: wrong {f["wrong"]}, '
                      f'missing {f["missing"]}, duplicate {f["dup"]}; receivers rejected '
                      f'{f["rejected"] or "nothing"}')
                print(f'latency send -> delivered, ms: p50 {percentile(v, 50):.2f}  '
                      f'p99 {percentile(v, 99):.2f}  max {max(v) if v else float("nan"):.2f}')
                print(f'CPU seconds: broker {f["broker_cpu"]:.2f}, clients {f["client_cpu"]:.2f}'
                      f' (all {f["workers"]} processes, incl. TLS set-up), publisher '
                      f'{f["pub_cpu"]:.2f}')
        finally:
            broker.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
