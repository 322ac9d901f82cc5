"""Bench v2x_console: what the console costs, and that it adds nothing to the alert path.

1. Console CPU and memory (its process, from /proc) over --window-s seconds:
   idle (no client, no alert) beside loaded (--clients live-stream clients, plain HTTP,
   and --rate alerts/s through a real RSU gateway), with what the clients received.
2. Chromium (headless, the Debian package): navigation -> first contentful paint of the
   page with an active alert (is the alert in the DOM at first paint?), and publish ->
   row visible for alerts pushed live (MutationObserver in the page; one clock).
3. Alert-path latency /v2x/alert_out -> RSU gateway -> loopback multicast -> vehicle
   gateway -> /v2x/alert, p50/p99 over --alerts alerts, with the console off, on (with
   the stream clients connected) and off again, in the same run.
4. Refused streams (issue 24 item 4): --flood idle live streams from 127.0.0.2 and other
   loopback addresses (never read; each refused one reconnects after 1 s, as a browser
   would), against the same console without them, in the same run: console CPU and RSS,
   the operator's GET / latency from 127.0.0.1 (p50/p99), how long its own live stream
   takes to deliver the snapshot, and what the console refused.

Usage (inside scripts/env.sh):  python bench/bench_console.py [--window-s 20] [--alerts 300]
                                [--sections resources,chromium,latency,flood] [--flood 300]
"""

import argparse
import http.client
import json
import os
from pathlib import Path
import selectors
import socket
import tempfile
import threading
import time

import _path  # noqa: F401  (tests/support on sys.path)
from bench_bridge import percentile

from v2x_common import qos
from v2x_common.timeutil import fill_stamp, to_seconds
from v2x_msgs.msg import Alert
from v2x_testing import (
    RosHarness,
    free_tcp_port,
    random_domain_id,
    random_group,
    start_node,
    stop_process,
)

WS = Path(__file__).resolve().parents[1]
CONFIG = WS / 'launch/config'
TICK = os.sysconf('SC_CLK_TCK')


def cpu_s(pid: int) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    return float('nan')


class StreamClient(threading.Thread):
    """A plain HTTP client on /api/events counting bytes and alert events."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.bytes = 0
        self.alerts = 0
        self.conn = None
        self.ready = threading.Event()

    def run(self):
        self.conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=60)
        self.conn.request('GET', '/api/events')
        resp = self.conn.getresponse()
        self.ready.set()
        tail = b''
        try:
            while chunk := resp.read1(65536):
                self.bytes += len(chunk)
                data = tail + chunk
                self.alerts += data.count(b'event: alert\n')
                tail = data[-16:]
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # closed by close(), or the console stopped

    def close(self):
        if self.conn is not None and self.conn.sock is not None:
            self.conn.sock.shutdown(2)


class Bench:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.rsu_domain = random_domain_id()
        self.veh_domain = random_domain_id()
        while self.veh_domain == self.rsu_domain:
            self.veh_domain = random_domain_id()
        group, port = random_group()
        key = tmp / 'hmac.key'
        key.write_text('bench-console-key-0123456789\n')
        key.chmod(0o600)  # key files must be private (protocol v2)
        (tmp / 'token').write_text('bench-console-token-0123456789\n')
        (tmp / 'token').chmod(0o600)  # as key files, the token file must be private
        link = {'group': group, 'port': port, 'iface': '127.0.0.1', 'key_file': str(key),
                'repeat_interval_s': 1.0}
        self.gateways = [
            start_node('alert_gateway', self.rsu_domain, tmp / 'rsu.log',
                       {**link, 'state_dir': str(tmp / 'rsu')}, [CONFIG / 'alert_gateway.yaml']),
            start_node('alert_gateway', self.veh_domain, tmp / 'veh.log',
                       {**link, 'state_dir': str(tmp / 'veh')},
                       [CONFIG / 'alert_gateway_vehicle.yaml'])]
        self.console = None
        self.port = free_tcp_port()
        self.rsu = RosHarness(self.rsu_domain)
        self.veh = RosHarness(self.veh_domain)
        self.pub = self.rsu.node('bench_pub').create_publisher(Alert, '/v2x/alert_out',
                                                               qos.ALERT_OUT)
        self.received: dict[str, float] = {}
        self.veh.node('bench_sub').create_subscription(
            Alert, '/v2x/alert', self._on_alert, qos.ALERT)
        self._stop = threading.Event()
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()
        self.seq = 0
        deadline = time.monotonic() + 60
        while self.pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)

    def _spin(self):
        while not self._stop.is_set():
            self.veh.executor.spin_once(timeout_sec=0.05)

    def _on_alert(self, msg):
        if msg.road.startswith('bench-') and not msg.cancelled:
            self.received.setdefault(msg.road, time.time() - to_seconds(msg.header.stamp))

    def start_console(self):
        self.console = start_node('v2x_console', self.rsu_domain, self.tmp / 'console.log',
                                  {'console_port': self.port,
                                   'console_token_file': str(self.tmp / 'token'),
                                   'site_lat': 37.12345, 'site_lon': 127.12345})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=2)
                conn.request('GET', '/healthz')
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f'console did not start:\n{(self.tmp / "console.log").read_text()}')

    def stop_console(self):
        stop_process(self.console)
        self.console = None

    def publish(self, validity_s: float, tag: str = 'bench') -> str:
        self.seq += 1
        road = f'{tag}-{self.seq}'
        msg = Alert(kind=Alert.KIND_COLLISION, severity=Alert.SEVERITY_HIGH,
                    suggest=Alert.SUGGEST_SLOW_DOWN, validity_s=validity_s, road=road,
                    latitude=37.12345 + (self.seq % 50) * 1e-4, longitude=127.12345,
                    distance_m=300.0, confidence=1.0)
        fill_stamp(msg.header.stamp, time.time())
        self.pub.publish(msg)
        return road

    def drive(self, rate: float, seconds: float, validity_s: float) -> list[str]:
        roads = []
        period = 1.0 / rate
        start_t = time.monotonic()
        n = 0
        while time.monotonic() - start_t < seconds:
            roads.append(self.publish(validity_s))
            n += 1
            time.sleep(max(0.0, start_t + n * period - time.monotonic()))
        return roads

    def latency(self, count: int, rate: float) -> tuple[float, float, int]:
        roads = self.drive(rate, count / rate, 5.0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(r in self.received for r in roads):
            time.sleep(0.1)
        lat = [self.received[r] * 1000 for r in roads if r in self.received]
        return percentile(lat, 50), percentile(lat, 99), len(roads) - len(lat)

    def close(self):
        if self.console is not None:
            stop_process(self.console)
        for g in self.gateways:
            stop_process(g)
        self._stop.set()
        self._spinner.join()
        self.rsu.close()
        self.veh.close()


def measure(pid: int, seconds: float) -> tuple[float, float]:
    c0, t0 = cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_s(pid) - c0) / (time.monotonic() - t0), rss_mib(pid)


def resources(b: Bench, args) -> list[StreamClient]:
    if b.console is None:
        b.start_console()
    time.sleep(3.0)  # let start-up work (imports, first diagnostics) settle
    idle_cpu, idle_rss = measure(b.console.pid, args.window_s)
    clients = [StreamClient(b.port) for _ in range(args.clients)]
    for c in clients:
        c.start()
        c.ready.wait(10)
    result = {}

    def load():
        b.drive(args.rate, args.window_s + 2.0, args.validity_s)
    driver = threading.Thread(target=load)
    driver.start()
    time.sleep(1.0)
    result['cpu'], result['rss'] = measure(b.console.pid, args.window_s)
    driver.join()
    alerts = [c.alerts for c in clients]
    mib = sum(c.bytes for c in clients) / 2**20
    print(f'\n1. console process over {args.window_s:g} s (CPU % of one core, RSS):')
    print(f'   idle (no client, no alert):           CPU {idle_cpu:5.1f} %  RSS '
          f'{idle_rss:6.1f} MiB')
    print(f'   {args.clients} stream clients + {args.rate:g} alerts/s '
          f'(validity {args.validity_s:g} s): CPU {result["cpu"]:5.1f} %  RSS '
          f'{result["rss"]:6.1f} MiB')
    print(f'   clients received {min(alerts)}..{max(alerts)} alert events each '
          f'({mib:.1f} MiB in all)')
    return clients


def chromium(b: Bench) -> None:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        print('\n2. Chromium: selenium missing, skipped')
        return
    if not (os.path.exists('/usr/bin/chromium') and os.path.exists('/usr/bin/chromedriver')):
        print('\n2. Chromium: /usr/bin/chromium or chromedriver missing, skipped')
        return
    options = webdriver.ChromeOptions()
    options.binary_location = '/usr/bin/chromium'
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--window-size=1400,1000'):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=options)
    try:
        b.publish(120.0, tag='paint')
        time.sleep(1.0)
        fcp, dom = [], []
        for _ in range(5):
            driver.get(f'http://127.0.0.1:{b.port}/')
            timing = driver.execute_script("""
                const p = performance.getEntriesByName('first-contentful-paint')[0];
                const nav = performance.getEntriesByType('navigation')[0];
                return [p ? p.startTime : null, nav.domContentLoadedEventEnd,
                        document.querySelectorAll('#alerts tbody tr').length];""")
            if timing[0] is not None and timing[2] > 0:
                fcp.append(timing[0])
                dom.append(timing[1])
        conn = http.client.HTTPConnection('127.0.0.1', b.port, timeout=10)
        conn.request('GET', '/')
        served = conn.getresponse().read().decode()
        in_html = served.count('<tr class="sev-')
        print('\n2. Chromium, page with active alerts (5 loads):')
        print(f'   navigation -> first contentful paint p50 {percentile(fcp, 50):6.1f} ms '
              f'(DOMContentLoaded {percentile(dom, 50):6.1f} ms); the served HTML already '
              f'holds {in_html} alert rows, so they are visible at the first paint (0 ms after)')
        driver.execute_script("""
            window.seen = {};
            new MutationObserver(() => {
              for (const r of document.querySelectorAll('#alerts tbody tr')) {
                const road = r.children[4].textContent;
                if (!(road in window.seen))
                  window.seen[road] = performance.timeOrigin + performance.now();
              }
            }).observe(document.getElementById('alerts'), {childList: true, subtree: true});""")
        sent = {}
        for _ in range(20):
            road = b.publish(60.0, tag='live')
            sent[road] = time.time()
            time.sleep(0.25)
        time.sleep(2.0)
        seen = driver.execute_script('return window.seen;')
        lat = [seen[r] - sent[r] * 1000 for r in sent if r in seen]
        print(f'   publish on alert_out -> row in the DOM (live, via gateway + SSE): p50 '
              f'{percentile(lat, 50):6.1f} ms  p99 {percentile(lat, 99):6.1f} ms '
              f'({len(lat)}/{len(sent)} seen)')
    finally:
        driver.quit()


class Flood(threading.Thread):
    """n idle live streams from 127.0.0.2.. : each sends its request and reads only the
    status line; a refused one (429, or closed) reconnects after retry_s, an accepted one
    is held open and never read again."""

    def __init__(self, port: int, n: int, retry_s: float = 1.0):
        super().__init__(daemon=True)
        self.port, self.n, self.retry_s = port, n, retry_s
        self.refused = self.held = self.attempts = 0
        self._halt = threading.Event()
        self._open: list[socket.socket] = []

    def _connect(self, i: int, sel: selectors.BaseSelector) -> None:
        self.attempts += 1
        try:
            s = socket.create_connection(('127.0.0.1', self.port), timeout=5,
                                         source_address=(f'127.0.0.{2 + i % 75}', 0))
            s.sendall(b'GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
        except OSError:
            self.refused += 1
            return
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)

    def run(self):
        sel = selectors.DefaultSelector()
        due: dict[int, float] = {i: 0.0 for i in range(self.n)}
        while not self._halt.is_set():
            now = time.monotonic()
            for i, at in list(due.items()):
                if at <= now:
                    del due[i]
                    self._connect(i, sel)
            for key, _ in sel.select(timeout=0.05):
                s, i = key.fileobj, key.data
                sel.unregister(s)
                try:
                    head = s.recv(12)
                except OSError:
                    head = b''
                if head.startswith(b'HTTP/1.1 200'):
                    self.held += 1
                    self._open.append(s)  # held, never read again
                else:
                    self.refused += 1
                    s.close()
                    due[i] = time.monotonic() + self.retry_s
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        for s in self._open:
            s.close()

    def stop(self):
        self._halt.set()
        self.join(10)


def operator_view(port: int, requests: int = 40) -> dict:
    """GET / latency p50/p99 (ms) from 127.0.0.1, failures, and the time until the
    operator's own live stream delivers its snapshot."""
    lat, failed = [], 0
    for _ in range(requests):
        t0 = time.monotonic()
        try:
            conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
            conn.request('GET', '/')
            ok = conn.getresponse().status == 200
            conn.close()
        except (OSError, http.client.HTTPException):
            ok = False
        if ok:
            lat.append((time.monotonic() - t0) * 1000)
        else:
            failed += 1
        time.sleep(0.05)
    t0 = time.monotonic()
    stream_ms = None
    try:
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        conn.request('GET', '/api/events')
        resp = conn.getresponse()
        if resp.status == 200 and b'event: snapshot' in resp.read1(65536):
            stream_ms = (time.monotonic() - t0) * 1000
        conn.close()
    except (OSError, http.client.HTTPException):
        pass
    return {'p50': percentile(lat, 50), 'p99': percentile(lat, 99), 'failed': failed,
            'stream_ms': stream_ms}


def flood(b: Bench, args) -> None:
    """Section 4: the console with and without args.flood idle streams, same run."""
    if b.console is None:
        b.start_console()
    time.sleep(2.0)
    rows = []
    for label, n in (('no flood', 0), (f'{args.flood} idle streams', args.flood),
                     ('no flood again', 0)):
        attack = Flood(b.port, n) if n else None
        if attack:
            attack.start()
            time.sleep(3.0)  # the first wave answered
        c0, t0 = cpu_s(b.console.pid), time.monotonic()
        view = operator_view(b.port)
        time.sleep(max(0.0, args.flood_window_s - (time.monotonic() - t0)))
        cpu = 100.0 * (cpu_s(b.console.pid) - c0) / (time.monotonic() - t0)
        rss = rss_mib(b.console.pid)
        try:
            conn = http.client.HTTPConnection('127.0.0.1', b.port, timeout=10)
            conn.request('GET', '/healthz')
            health = json.loads(conn.getresponse().read())
            conn.close()
        except (OSError, http.client.HTTPException):  # refused: every connection taken
            health = {'stream_clients': 'unknown (/healthz refused)'}
        if attack:
            attack.stop()
        rows.append((label, cpu, rss, view, health, attack))
    print(f'\n4. refused streams: the console with and without {args.flood} idle live streams '
          f'from 127.0.0.2..127.0.0.76 (refused ones reconnect after 1 s), '
          f'{args.flood_window_s:g} s each:')
    for label, cpu, rss, view, health, attack in rows:
        stream = f"{view['stream_ms']:.1f} ms" if view['stream_ms'] is not None else 'FAILED'
        extra = (f'; attack: {attack.attempts} attempts, {attack.refused} refused, '
                 f'{attack.held} held' if attack else '')
        print(f'   {label:<22} CPU {cpu:5.1f} %  RSS {rss:6.1f} MiB  operator GET / p50 '
              f"{view['p50']:6.2f} ms p99 {view['p99']:6.2f} ms failed {view['failed']}; "
              f'own stream snapshot in {stream}; console streams {health["stream_clients"]}, '
              f'refused {health.get("streams_refused", "?")}{extra}')


def report(label: str, result: tuple[float, float, int]) -> None:
    p50, p99, lost = result
    print(f'   {label:<32} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  lost {lost}')


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--window-s', type=float, default=20.0)
    p.add_argument('--clients', type=int, default=10)
    p.add_argument('--rate', type=float, default=10.0, help='alerts/s under load')
    p.add_argument('--validity-s', type=float, default=10.0,
                   help='validity of the load alerts (active alerts ~ rate x validity)')
    p.add_argument('--alerts', type=int, default=300, help='alerts per latency run')
    p.add_argument('--latency-rate', type=float, default=20.0)
    p.add_argument('--sections', default='resources,chromium,latency,flood',
                   help='which sections to run (comma-separated)')
    p.add_argument('--flood', type=int, default=300, help='idle streams of section 4')
    p.add_argument('--flood-window-s', type=float, default=10.0)
    args = p.parse_args()
    sections = set(args.sections.split(','))
    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(Path(tmp))
        try:
            if 'flood' in sections:
                flood(b, args)
            clients = resources(b, args) if 'resources' in sections else []
            if 'chromium' in sections:
                chromium(b)
            if 'latency' not in sections:
                return
            time.sleep(args.validity_s)  # the load's alerts expire: no more repeats
            print(f'\n3. alert path /v2x/alert_out -> /v2x/alert (RSU gateway -> multicast -> '
                  f'vehicle gateway), {args.alerts} alerts at {args.latency_rate:g}/s per run, '
                  'runs interleaved after a warm-up run:')
            b.latency(args.alerts // 3, args.latency_rate)  # warm-up, not reported
            for run in range(4):
                on = run % 2 == 1
                if on:
                    b.start_console()
                    clients = [StreamClient(b.port) for _ in range(args.clients)]
                    for c in clients:
                        c.start()
                        c.ready.wait(10)
                else:
                    for c in clients:
                        c.close()
                    if b.console is not None:
                        b.stop_console()
                label = f'console ON, {args.clients} stream clients' if on else 'console OFF'
                report(label, b.latency(args.alerts, args.latency_rate))
        finally:
            b.close()


if __name__ == '__main__':
    main()
