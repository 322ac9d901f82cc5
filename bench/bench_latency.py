"""Every alert's latency hop by hop beside the bare hop, and what the metrics exporter costs.

One run, one host, each stack on its own ROS_DOMAIN_ID (as separate machines would be):
the RSU (alert_gateway; the alert stamped when it is raised on v2x/alert_out), vehicle 1
joined by loopback multicast, vehicle 2 on another group reached only through a mosquitto
broker; both vehicles drive (cmd_vel_in at 20 Hz) through speed_policy. Each cycle raises
one collision alert, waits until both vehicles changed /cmd_vel, cancels it and waits for
the release. The bench's observers are MetricsBooks (v2x_metrics, what the exporter and
the console run) on each domain, so the stages are the ones /metrics exports:

  raised -> sent          RSU: alert_out read by the gateway, signed, sent, alert_sent
  sent -> delivered       radio (multicast) or broker (MQTT relay), verified, v2x/alert
  delivered -> decided    speed_policy's new PolicyState
  decided -> cmd_vel      the first changed /cmd_vel
  raised -> cmd_vel       end to end

Bare baselines, measured in the same run on the same machine:
  rclpy   one Alert publish -> callback across two DDS participants (the ALERT profile)
  udp     one 200-byte datagram over loopback multicast
  mqtt    one 200-byte publish -> message through the same mosquitto (QoS 1)
  model   one YOLOv8n onnxruntime inference on a 640x272 frame (the detector's own hop:
          frame -> raised; bench_detector.py measures the detector's pipeline)
Each hop is printed beside the baseline it is made of (e.g. sent -> delivered radio: udp +
rclpy, since the observer reads alert_sent and v2x/alert over DDS).

--exporter-cost: rounds of the same cycles with a v2x_metrics_exporter process on each
stack (scraped every second) and without, interleaved; prints the alert path's latency
(raised -> delivered radio, observed over DDS) and the exporters' CPU.

Usage (inside scripts/env.sh):
  python bench/bench_latency.py [--cycles 40] [--exporter-cost] [--rounds 2]
"""

import argparse
import copy
import os
from pathlib import Path
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from urllib.request import urlopen

import _path  # noqa: F401  (tests/support)
from geometry_msgs.msg import Twist
import psutil
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from v2x_common import qos
from v2x_metrics.book import MetricsBook
from v2x_metrics.feed import MetricsFeed
from v2x_msgs.msg import Alert
from v2x_testing import random_group

WS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(WS / 'scripts'))
import demo  # noqa: E402  (scripts/demo.py: Stack)
import demo_federation  # noqa: E402  (scripts/demo_federation.py: Broker)

DOMAINS = (71, 72, 73)  # RSU, vehicle 1 (radio), vehicle 2 (broker)


def pct(values, q):
    """Nearest-rank q-quantile in milliseconds ('-' when there is nothing)."""
    if not values:
        return float('nan')
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))] * 1e3


class Domains:
    """One rclpy context, node and spinning executor per domain."""

    def __init__(self, domains):
        self.items = []
        for domain in domains:
            ctx = Context()
            rclpy.init(context=ctx, domain_id=domain)
            node = rclpy.create_node(f'bench_latency_{domain}', context=ctx)
            ex = SingleThreadedExecutor(context=ctx)
            ex.add_node(node)
            self.items.append((ctx, node, ex))
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._spin, args=(ex,), daemon=True)
                         for _, _, ex in self.items]
        for t in self._threads:
            t.start()

    def node(self, i):
        return self.items[i][1]

    def _spin(self, ex):
        while not self._stop.is_set():
            try:
                ex.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 (context shut down while spinning)
                return

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        for ctx, node, ex in self.items:
            ex.remove_node(node)
            node.destroy_node()
            ex.shutdown()
            rclpy.try_shutdown(context=ctx)


def wait(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.002)
    return False


# --- bare baselines -------------------------------------------------------------------------
def bare_rclpy(n=200):
    """Alert publish -> callback between two participants on one domain."""
    dom = Domains((DOMAINS[0] + 10, DOMAINS[0] + 10))
    got = []
    dom.node(1).create_subscription(Alert, 'bare', lambda m: got.append(time.time()),
                                    qos.ALERT_READER)
    pub = dom.node(0).create_publisher(Alert, 'bare', qos.ALERT)
    wait(lambda: pub.get_subscription_count() > 0, 10)
    out = []
    for _ in range(n):
        before = len(got)
        t0 = time.time()
        pub.publish(Alert(source_id='bare', road='x' * 40))
        if wait(lambda before=before: len(got) > before, 2):
            out.append(got[-1] - t0)
        time.sleep(0.005)
    dom.close()
    return out


def bare_udp(n=500):
    group, port = random_group()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    rx.bind(('', port))
    rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                  socket.inet_aton(group) + socket.inet_aton('127.0.0.1'))
    rx.settimeout(1)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('127.0.0.1'))
    out = []
    for _ in range(n):
        t0 = time.time()
        tx.sendto(bytes(200), (group, port))
        try:
            rx.recv(2048)
        except TimeoutError:
            continue
        out.append(time.time() - t0)
    rx.close()
    tx.close()
    return out


def bare_mqtt(broker_port, n=200):
    import paho.mqtt.client as mqtt
    got = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda c, u, m: got.set()
    sub.connect('127.0.0.1', broker_port)
    sub.subscribe('bench/bare', qos=1)
    sub.loop_start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect('127.0.0.1', broker_port)
    pub.loop_start()
    time.sleep(0.5)
    out = []
    for _ in range(n):
        got.clear()
        t0 = time.time()
        pub.publish('bench/bare', bytes(200), qos=1)
        if got.wait(2):
            out.append(time.time() - t0)
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()
    return out


def bare_model(n=30):
    import cv2

    from v2x_detector import assets
    from v2x_detector.pipeline import load_backend
    cap = cv2.VideoCapture(assets.sample_path('bikes.mp4'))
    ok, frame = cap.read()
    cap.release()
    backend = load_backend('onnx', assets.resolve_model().path)
    backend.detect(frame)
    out = []
    for _ in range(n):
        t0 = time.time()
        backend.detect(frame)
        out.append(time.time() - t0)
    return out


# --- the chain -----------------------------------------------------------------------------
def start_chain(work: Path, broker, exporters: bool):
    work.mkdir(parents=True, exist_ok=True)
    key = work / 'hmac.key'
    key.write_text(secrets.token_urlsafe(32) + '\n')
    key.chmod(0o600)
    profile = work / 'bench.yaml'
    profile.write_text((WS / 'launch/config/demo.yaml').read_text().replace(
        'hold_time_s: 2.0', 'hold_time_s: 0.0'))
    common = {'key_file': str(key), 'iface': '127.0.0.1', 'profile': str(profile)}
    group, port = random_group()
    stacks = [
        demo.Stack('rsu', 'rsu.launch.xml', DOMAINS[0], {
            **common, 'group': group, 'port': str(port), 'broker_url': broker.url,
            'enable_detector': 'false', 'enable_recorder': 'false', 'enable_intake': 'false',
            'enable_console': 'false', 'state_dir': str(work / 'rsu')}, work / 'rsu.log'),
        demo.Stack('veh1', 'vehicle.launch.xml', DOMAINS[1], {
            **common, 'group': group, 'port': str(port), 'state_dir': str(work / 'v1'),
            'csv_log': "''"}, work / 'veh1.log'),
        demo.Stack('veh2', 'vehicle.launch.xml', DOMAINS[2], {
            **common, 'group': group, 'port': str(port + 1), 'broker_url': broker.url,
            'station_id': 'vehicle_02', 'state_dir': str(work / 'v2'), 'csv_log': "''"},
            work / 'veh2.log'),
    ]
    procs = []
    if exporters:
        for i, domain in enumerate(DOMAINS):
            port_i = 9600 + i
            procs.append((subprocess.Popen(
                ['v2x_metrics_exporter', '--ros-args', '-p', f'metrics_port:={port_i}'],
                env=dict(os.environ, ROS_DOMAIN_ID=str(domain)), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL), port_i))
    return stacks, procs


class Chain:
    """The bench's observers and drivers on the three domains."""

    def __init__(self):
        self.dom = Domains(DOMAINS)
        self.books = [MetricsBook(name) for name in ('rsu', 'veh1', 'veh2')]
        self.feeds = [MetricsFeed(self.dom.node(i), book) for i, book in enumerate(self.books)]
        self.sent = []
        self.dom.node(0).create_subscription(Alert, 'v2x/alert_sent', self.sent.append,
                                             qos.ALERT_SENT)
        self.out = self.dom.node(0).create_publisher(Alert, 'v2x/alert_out', qos.ALERT_OUT)
        self.cmds = [[], []]
        for i in (1, 2):
            node = self.dom.node(i)
            node.create_subscription(Twist, 'cmd_vel',
                                     lambda m, i=i: self.cmds[i - 1].append(m.linear.x),
                                     qos.CMD_VEL)
            teleop = node.create_publisher(Twist, 'cmd_vel_in', qos.CMD_VEL)
            drive = Twist()
            drive.linear.x = 2.0
            node.create_timer(0.05, lambda p=teleop, d=drive: p.publish(d))

    def stage(self, i, key, stage):
        with self.feeds[i].lock:
            return self.books[i].stages(*key).get(stage)

    def cycle(self, timeout=20.0):
        """Raise, wait for both vehicles' changed cmd_vel, cancel, wait for the release;
        the alert's (source_id, sequence) or None."""
        msg = Alert(kind=Alert.KIND_COLLISION, severity=Alert.SEVERITY_HIGH,
                    suggest=Alert.SUGGEST_SLOW_DOWN, distance_m=100.0,
                    road='bench', validity_s=60.0, latitude=37.12345, longitude=127.12345)
        msg.header.stamp = self.dom.node(0).get_clock().now().to_msg()
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)

        def mine():
            return [m for m in list(self.sent) if not m.cancelled and
                    (m.header.stamp.sec, m.header.stamp.nanosec) == stamp]
        self.out.publish(msg)
        if not wait(mine, timeout):
            return None
        sent = mine()[0]
        key = (sent.source_id, sent.sequence)
        wait(lambda: all(self.stage(i, key, 'cmd_vel') for i in (1, 2)), timeout)
        cancel = copy.deepcopy(sent)   # the event's own fields, withdrawn
        cancel.cancelled = True
        cancel.header.stamp = self.dom.node(0).get_clock().now().to_msg()
        self.out.publish(cancel)
        wait(lambda: all(c and c[-1] == 2.0 for c in self.cmds), timeout)
        return key

    def hops(self, keys):
        rows = {}

        def add(name, value):
            if value is not None:
                rows.setdefault(name, []).append(value)

        for key in keys:
            r = self.stage(0, key, 'raised')
            s = self.stage(0, key, 'sent')
            for i, path in ((1, 'radio'), (2, 'broker')):
                d = self.stage(i, key, 'delivered')
                dc = self.stage(i, key, 'decided')
                c = self.stage(i, key, 'cmd_vel')
                if s is not None and d is not None:
                    add(f'sent -> delivered ({path})', d - s)
                if d is not None and dc is not None:
                    add(f'delivered -> decided ({path})', max(0.0, dc - d))
                if dc is not None and c is not None:
                    add(f'decided -> cmd_vel ({path})', c - dc)
                if r is not None and c is not None:
                    add(f'raised -> cmd_vel ({path}), end to end', c - r)
                if r is not None and d is not None:
                    add(f'raised -> delivered ({path})', d - r)
            if r is not None and s is not None:
                add('raised -> sent', s - r)
        return rows

    def close(self):
        self.dom.close()


def scrape(ports, done: threading.Event, period_s: float = 1.0):
    """GET every exporter's /metrics each period, as Prometheus would."""
    while not done.wait(period_s):
        for port in ports:
            try:
                with urlopen(f'http://127.0.0.1:{port}/metrics', timeout=5) as reply:
                    reply.read()
            except OSError:
                pass


def run_chain(args, work, broker, exporters):
    stacks, procs = start_chain(work, broker, exporters)
    chain = Chain()
    try:
        if not wait(lambda: all(c and c[-1] == 2.0 for c in chain.cmds), 60):
            raise SystemExit('bench: the vehicles never passed teleop (see the logs in '
                             f'{work})')
        chain.cycle()  # warm-up: DDS matching, the broker's first message
        cpu0 = [psutil.Process(p.pid).cpu_times() for p, _ in procs]
        done = threading.Event()
        scraper = threading.Thread(target=scrape, args=([port for _, port in procs], done),
                                   daemon=True)
        scraper.start()
        t0 = time.monotonic()
        keys = [k for k in (chain.cycle() for _ in range(args.cycles)) if k]
        wall = time.monotonic() - t0
        done.set()
        scraper.join()
        cpu = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) - sum(c[:2])
                  for (p, _), c in zip(procs, cpu0, strict=True))
        return chain.hops(keys[1:]), cpu / wall * 100 if procs else 0.0, len(keys)
    finally:
        chain.close()
        for p, _ in procs:
            p.terminate()
            p.wait(timeout=10)
        for s in stacks:
            s.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--cycles', type=int, default=40)
    parser.add_argument('--exporter-cost', action='store_true')
    parser.add_argument('--rounds', type=int, default=2)
    args = parser.parse_args(argv)
    # a timeout's SIGTERM still stops the stacks (they run in sessions of their own)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not demo_federation.available():
        raise SystemExit('bench: mosquitto is not installed (make setup as root)')
    work = Path(tempfile.mkdtemp(prefix='v2x_bench_latency_'))
    (work / 'logs').mkdir()
    broker = demo_federation.Broker(work)
    try:
        print('bare baselines (p50 / p99 ms):')
        bare = {'rclpy': bare_rclpy(), 'udp': bare_udp(),
                'mqtt': bare_mqtt(int(broker.url.rsplit(':', 1)[1])), 'model': bare_model()}
        for name, values in bare.items():
            print(f'  {name:6s} {pct(values, 0.5):8.2f} {pct(values, 0.99):8.2f}  '
                  f'(n={len(values)})')
        if args.exporter_cost:
            return exporter_cost(args, work, broker)
        rows, _, n = run_chain(args, work, broker, exporters=False)
        rclpy99, udp99, mqtt99 = (pct(bare[k], 0.99) for k in ('rclpy', 'udp', 'mqtt'))
        base = {'raised -> sent': ('2 x rclpy', 2 * rclpy99),
                'sent -> delivered (radio)': ('udp', udp99),
                'sent -> delivered (broker)': ('mqtt', mqtt99),
                'delivered -> decided (radio)': ('rclpy', rclpy99),
                'delivered -> decided (broker)': ('rclpy', rclpy99),
                'decided -> cmd_vel (radio)': ('rclpy', rclpy99),
                'decided -> cmd_vel (broker)': ('rclpy', rclpy99)}
        print(f'\nthe chain ({n} alerts; RSU, vehicle 1 by radio, vehicle 2 by broker):')
        print(f'  {"hop":42s} {"p50":>8s} {"p99":>8s}   {"bare p99":>8s} (of)   p99 - bare')
        for name, values in rows.items():
            b = base.get(name)
            extra = (f'   {b[1]:8.2f} ({b[0]})  {pct(values, 0.99) - b[1]:+7.2f}' if b
                     else '')
            print(f'  {name:42s} {pct(values, 0.5):8.2f} {pct(values, 0.99):8.2f}{extra}')
        return 0
    finally:
        broker.stop()


def exporter_cost(args, work, broker) -> int:
    """Interleaved rounds with and without an exporter on each stack."""
    results = {True: [], False: []}
    cpu = []
    for r in range(args.rounds):
        for on in (r % 2 == 0, r % 2 != 0):
            rows, exporter_cpu, _ = run_chain(args, work / f'r{r}{int(on)}', broker, on)
            results[on].extend(rows.get('raised -> delivered (radio)', []))
            if on:
                cpu.append(exporter_cpu)
    print('\nalert path raised -> delivered (radio), p50 / p99 ms:')
    for on in (False, True):
        print(f'  exporters {"on " if on else "off"} {pct(results[on], 0.5):8.2f} '
              f'{pct(results[on], 0.99):8.2f}  (n={len(results[on])})')
    print(f'  three exporters together: {statistics.mean(cpu):.1f} % of one core')
    return 0


if __name__ == '__main__':
    sys.exit(main())
