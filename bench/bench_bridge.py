"""Bench the bridge: end-to-end latency and receiver throughput, each beside a baseline.

1. Latency /v2x/alert_out -> /v2x/alert at --rate alerts/s (default 100), p50/p99:
   ours:     publisher (domain A) -> alert_gateway rsu (process) -> UDP multicast on
             127.0.0.1 -> alert_gateway vehicle (process) -> subscriber (domain B);
   baseline: the same path without our work: publisher -> bare rclpy relay process
             (sends the same number of bytes by raw UDP) -> bare receiving process
             (publishes an Alert) -> subscriber. Same run, same machine.
2. Receiver throughput, datagrams verified and decoded per second:
   core (Receiver.receive) and node (AlertGateway.handle_datagram: pipeline, conversion,
   publish) for HMAC and Ed25519, beside raw hmac.digest + compare_digest and raw
   cryptography Ed25519 verify of the same bytes.

Usage (inside scripts/env.sh):  python bench/bench_bridge.py [--alerts 1000] [--rate 100]
"""

import argparse
import hmac
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time

import _path  # noqa: F401  (tests/support: the test harness)
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
import rclpy
from rclpy.context import Context
from rclpy.parameter import Parameter

from v2x_bridge import net
from v2x_bridge.alert_gateway import AlertGateway
from v2x_common import qos
from v2x_common.timeutil import NS_PER_S
from v2x_msgs.msg import Alert
from v2x_protocol import keys, wire
from v2x_protocol.receiver import AlertDelivered, Receiver
from v2x_protocol.sender import Sender
from v2x_testing import RosHarness, random_domain_id, random_group

SECRET = 'bench-secret-0123456789abcdef'
VALIDITY_S = float(os.environ.get('BENCH_VALIDITY_S', '2.0'))


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float('nan')
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# --- baseline relay processes ----------------------------------------------------------

def relay_send(group: str, port: int, size: int) -> None:
    """Baseline hop 1: alert_out -> the same number of bytes by raw UDP (stamp inside)."""
    rclpy.init()
    node = rclpy.create_node('bench_relay_send')
    sock = net.open_sender(group, port, '127.0.0.1')
    pad = bytes(max(0, size - 8))

    def on_alert(msg):
        sock.send(struct.pack('>q', msg.header.stamp.sec * NS_PER_S + msg.header.stamp.nanosec)
                  + pad)
    node.create_subscription(Alert, 'v2x/alert_out', on_alert, qos.ALERT_OUT)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def relay_recv(group: str, port: int) -> None:
    """Baseline hop 2: raw UDP -> an Alert on v2x/alert carrying the original stamp."""
    rclpy.init()
    node = rclpy.create_node('bench_relay_recv')
    pub = node.create_publisher(Alert, 'v2x/alert', qos.ALERT)
    sock = net.open_receiver(group, port, '127.0.0.1')
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            ns = struct.unpack_from('>q', data)[0]
            m = Alert()
            m.header.stamp.sec, m.header.stamp.nanosec = divmod(ns, NS_PER_S)
            pub.publish(m)
    threading.Thread(target=loop, daemon=True).start()
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        node.destroy_node()
        rclpy.try_shutdown()


# --- latency --------------------------------------------------------------------------

class Ends:
    """The publisher on domain A and the subscriber on domain B, spun in threads."""

    def __init__(self, domain_a: int, domain_b: int, label: str):
        self.latencies, self._stop = [], threading.Event()
        self.samples = []  # (send time s, latency ms) of every message, for --samples
        self.harnesses = [RosHarness(domain_a), RosHarness(domain_b)]
        self.pub_node = self.harnesses[0].node(f'bench_pub_{label}')
        self.sub_node = self.harnesses[1].node(f'bench_sub_{label}')
        self.pub = self.pub_node.create_publisher(Alert, 'v2x/alert_out', qos.ALERT_OUT)
        self.sub_node.create_subscription(Alert, 'v2x/alert', self._on_alert, qos.ALERT)
        self.threads = [threading.Thread(target=self._spin, args=(h.executor,), daemon=True)
                        for h in self.harnesses]
        for t in self.threads:
            t.start()

    def _spin(self, ex):
        while not self._stop.is_set():
            ex.spin_once(timeout_sec=0.05)

    def _on_alert(self, msg):
        now = time.time_ns()
        sent = msg.header.stamp.sec * NS_PER_S + msg.header.stamp.nanosec
        self.latencies.append((now - sent) / 1e6)
        self.samples.append((sent / 1e9, (now - sent) / 1e6))

    def ready(self, timeout=30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if (self.pub.get_subscription_count() > 0
                    and self.sub_node.count_publishers('/v2x/alert') > 0):
                return True
            time.sleep(0.05)
        return False

    def run(self, n: int, rate: float, warmup: int = 20) -> list[float]:
        period = 1.0 / rate
        start = time.monotonic()
        for i in range(n + warmup):
            target = start + i * period
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            m = Alert()
            m.kind, m.severity, m.suggest = (Alert.KIND_COLLISION, Alert.SEVERITY_HIGH,
                                             Alert.SUGGEST_SLOW_DOWN)
            m.validity_s = VALIDITY_S
            m.road, m.distance_m = 'segment_A', 500.0
            m.latitude = m.longitude = float('nan')
            now = time.time_ns()
            m.header.stamp.sec, m.header.stamp.nanosec = divmod(now, NS_PER_S)
            m.detection_time = m.header.stamp
            if i == warmup:
                self.latencies.clear()
            self.pub.publish(m)
        end = time.monotonic() + 5.0
        while len(self.latencies) < n and time.monotonic() < end:
            time.sleep(0.05)
        got = list(self.latencies)
        self.latencies.clear()
        return got

    def close(self):
        self._stop.set()
        for t in self.threads:
            t.join()
        for h in self.harnesses:
            h.close()


def _procs(cmds, env):
    return [subprocess.Popen(c, env={**os.environ, **e, **env}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for c, e in cmds]


def _stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def latency(n: int, rate: float, state_dir: str, rounds: int = 10) -> dict[str, list[float]]:
    """Both paths up at once, fed in alternating blocks (so machine noise hits both alike);
    returns latencies in ms."""
    size = len(Sender(keys.HmacKey(SECRET.encode())).datagram(wire.AlertData(
        'rsu_server_01', 1, 1, 3, 1, 1, 1, 2.0, road='segment_A', distance_m=500.0), 1))
    used = set()
    setups = {}
    try:
        for label in ('baseline', 'ours'):
            da, db = (_fresh_domain(used), _fresh_domain(used))
            group, port = random_group()
            a, b = {'ROS_DOMAIN_ID': str(da)}, {'ROS_DOMAIN_ID': str(db)}
            if label == 'baseline':
                me = [sys.executable, os.path.abspath(__file__)]
                cmds = [(me + ['--relay-send', group, str(port), str(size)], a),
                        (me + ['--relay-recv', group, str(port)], b)]
            else:
                gw = [sys.executable, '-m', 'v2x_bridge.alert_gateway', '--ros-args',
                      '-p', f'group:={group}', '-p', f'port:={port}', '-p', 'iface:=127.0.0.1',
                      '-p', f'state_dir:={state_dir}', '-p', 'heartbeat_period_s:=1.0']
                cmds = [(gw + ['-p', 'role:=rsu'], a), (gw + ['-p', 'role:=vehicle'], b)]
            procs = _procs(cmds, {'V2X_KEY': SECRET})
            setups[label] = (procs, Ends(da, db, label))
        for label, (procs, ends) in setups.items():
            if not ends.ready():
                raise SystemExit(f'{label}: processes did not come up: ' + ' | '.join(
                    p.stderr.read() if p.poll() is not None else 'running' for p in procs))
        time.sleep(0.5)
        out = {'baseline': [], 'ours': []}
        per = max(1, n // rounds)
        for r in range(rounds):
            order = ('baseline', 'ours') if r % 2 == 0 else ('ours', 'baseline')
            for label in order:
                out[label] += setups[label][1].run(per, rate, warmup=20 if r < 2 else 0)
        out['samples'] = {label: ends.samples for label, (_, ends) in setups.items()}
        return out
    finally:
        for procs, ends in setups.values():
            ends.close()
            _stop(procs)


def _fresh_domain(used: set) -> int:
    while True:
        d = random_domain_id()
        if d not in used:
            used.add(d)
            return d


# --- throughput -----------------------------------------------------------------------

def _datagrams(signer, n, now):
    tx = Sender(signer)
    base = wire.AlertData('rsu_server_01', 0, 1, 3, 1, now, now, 600.0, latitude=37.1,
                          longitude=127.1, road='segment_A', distance_m=500.0)
    return [tx.datagram(wire.AlertData(**{**base.__dict__, 'sequence': i + 1}), now)
            for i in range(n)]


def _rate(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return len(items) / (time.perf_counter() - start)


def throughput(n_hmac: int, n_ed: int) -> list[tuple[str, float, str, float]]:
    """(what, ours per s, baseline name, baseline per s) rows."""
    now = time.time_ns()
    hkey = keys.HmacKey(SECRET.encode())
    private = Ed25519PrivateKey.generate()
    ekey = keys.Ed25519Signer(private)
    public = Ed25519PublicKey.from_public_bytes(ekey.public_raw)
    rows = []
    for name, signer, n, ring in (
            ('HMAC', hkey, n_hmac, keys.Keyring([hkey])),
            ('Ed25519', ekey, n_ed, keys.Keyring(ed25519_keys=[
                keys.Ed25519Verifier(ekey.public_raw)]))):
        data = _datagrams(signer, n, now)
        tag = wire.TAG_LEN[signer.auth]
        if name == 'HMAC':
            secret = SECRET.encode()

            def raw(d, secret=secret, tag=tag):
                hmac.compare_digest(hmac.digest(secret, d[:-tag], 'sha256'), d[-tag:])
            base_name = 'hmac.digest+compare'
        else:
            def raw(d, tag=tag):
                public.verify(d[-tag:], d[:-tag])
            base_name = 'cryptography verify'
        baseline = _rate(raw, data)
        # every datagram is a new event of one source: room for all of them (the default
        # caps refuse a flood of new events as state_full, by design)
        rx = Receiver(ring, max_clock_skew_s=3600.0, max_events=n + 1,
                      max_events_per_source=n + 1)
        results = []
        core = _rate(lambda d, rx=rx, out=results: out.append(rx.receive(d, now)), data)
        assert all(isinstance(r, AlertDelivered) for r in results), results[:3]
        rows.append((f'core {name}', core, base_name, baseline))
        rows.append((f'node {name} (+publish)', _node_rate(ring, signer, data), base_name,
                     baseline))
    return rows


def _node_rate(ring, signer, data) -> float:
    ctx = Context()
    rclpy.init(context=ctx, domain_id=random_domain_id())
    group, port = random_group()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ['V2X_KEY'] = SECRET
        params = [Parameter('role', value='vehicle'), Parameter('group', value=group),
                  Parameter('port', value=port), Parameter('iface', value='127.0.0.1'),
                  Parameter('max_clock_skew_s', value=3600.0),
                  Parameter('state_dir', value=tmp)]
        if signer.auth == wire.AUTH_ED25519:
            store = os.path.join(tmp, 'trust')
            with open(store, 'w') as f:
                f.write(keys.trust_entry('rsu_server_01', signer.public_raw) + '\n')
            params += [Parameter('auth_mode', value='ed25519'),
                       Parameter('trust_store', value=store)]
        node = AlertGateway(context=ctx, parameter_overrides=params)
        rx = node.core.receiver
        rx.max_events = rx.max_events_per_source = len(data) + 1
        try:
            before = node.counters()['delivered']
            rate = _rate(node.handle_datagram, data)
            assert node.counters()['delivered'] - before == len(data)
        finally:
            node.destroy_node()
            rclpy.try_shutdown(context=ctx)
    return rate


def cpu_cost(n: int = 5000) -> tuple[float, float]:
    """Microseconds of our Python work per alert without I/O: RSU side (msg -> identity ->
    signed datagram -> outbox -> alert_sent msg) and vehicle side (datagram -> pipeline ->
    Alert msg)."""
    import v2x_conversion as conversions
    from v2x_protocol.io.state import SequenceStore
    from v2x_protocol.sender import Outbox, fill_identity

    key = keys.HmacKey(SECRET.encode())
    tx, box = Sender(key), Outbox(1.0)
    rx = Receiver(keys.Keyring([key]), max_events=n + 1, max_events_per_source=n + 1)
    msg = Alert()
    # valid long enough that none expires while the loop runs (2 s did on a loaded machine)
    msg.kind, msg.severity, msg.validity_s, msg.road = 1, 3, 60.0, 'segment_A'
    with tempfile.TemporaryDirectory() as tmp:
        store = SequenceStore(tmp)
        datagrams = []
        start = time.perf_counter()
        for _ in range(n):
            now = time.time_ns()
            a = fill_identity(conversions.alert_from_msg(msg, provenance=False),
                              station_id='rsu_server_01', now_ns=now,
                              default_validity_s=600.0, next_sequence=store.next,
                              previous=box.get)
            datagrams.append(tx.datagram(a, now))
            box.put(a, now)
            conversions.alert_to_msg(a)
        rsu = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for d in datagrams:
        conversions.alert_to_msg(rx.receive(d, time.time_ns()).alert)
    vehicle = (time.perf_counter() - start) / n * 1e6
    return rsu, vehicle


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--alerts', type=int, default=1000, help='latency samples per path')
    p.add_argument('--rate', type=float, default=100.0, help='alerts per second')
    p.add_argument('--hmac-n', type=int, default=50000)
    p.add_argument('--ed25519-n', type=int, default=5000)
    p.add_argument('--skip-latency', action='store_true')
    p.add_argument('--samples', default='', help='write (send time, latency ms) per message '
                   'of both paths to this JSON file (e.g. bench/results/bridge.json)')
    p.add_argument('--relay-send', nargs=3, metavar=('GROUP', 'PORT', 'SIZE'))
    p.add_argument('--relay-recv', nargs=2, metavar=('GROUP', 'PORT'))
    args = p.parse_args()
    if args.relay_send:
        relay_send(args.relay_send[0], int(args.relay_send[1]), int(args.relay_send[2]))
        return 0
    if args.relay_recv:
        relay_recv(args.relay_recv[0], int(args.relay_recv[1]))
        return 0
    load = ' '.join(f'{x:.2f}' for x in os.getloadavg())
    print(f'# bench_bridge on {os.cpu_count()} CPUs, python {sys.version.split()[0]}, '
          f'load average {load} (other work on the machine skews every figure)')
    print('\n## receiver throughput (datagrams verified+decoded per second)')
    print(f'{"path":28s} {"ours/s":>10s}   {"baseline":22s} {"baseline/s":>10s}')
    for what, ours, base_name, base in throughput(args.hmac_n, args.ed25519_n):
        print(f'{what:28s} {ours:10.0f}   {base_name:22s} {base:10.0f}')
    rsu_us, veh_us = cpu_cost()
    print(f'\n## our Python work per alert, no I/O: RSU {rsu_us:.1f} us, vehicle {veh_us:.1f} us'
          f' (sum {rsu_us + veh_us:.1f} us)')
    if args.skip_latency:
        return 0
    with tempfile.TemporaryDirectory() as state:
        lat = latency(args.alerts, args.rate, state)
    if args.samples:
        os.makedirs(os.path.dirname(os.path.abspath(args.samples)), exist_ok=True)
        with open(args.samples, 'w') as f:
            json.dump(lat['samples'], f)
    print(f'\n## latency /v2x/alert_out -> /v2x/alert at {args.rate:g} alerts/s '
          f'({args.alerts} samples per path, alternating blocks, validity {VALIDITY_S:g} s), '
          'ms')
    print(f'{"path":10s} {"n":>6s} {"p50":>8s} {"p99":>8s} {"max":>8s}')
    for label in ('baseline', 'ours'):
        v = lat[label]
        print(f'{label:10s} {len(v):6d} {percentile(v, 50):8.3f} {percentile(v, 99):8.3f} '
              f'{max(v) if v else float("nan"):8.3f}')
    b, o = lat['baseline'], lat['ours']
    print(f'{"added":10s} {"":6s} {percentile(o, 50) - percentile(b, 50):8.3f} '
          f'{percentile(o, 99) - percentile(b, 99):8.3f}   (target: p99 added < 1 ms)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
