"""Bench event_intake: events/s and latency to /v2x/alert_out, beside a bare rclpy publish.

Everything runs in one process on one ROS domain of its own, measured in the same run:
  bare rclpy   a plain publisher on v2x/alert_out (QoS ALERT_OUT) -> the listener
  file         write + close a JSON file in events_dir -> Alert on the listener
  http         POST /events (keep-alive httpx client) -> Alert on the listener
Paced runs send one event at a time and time each (file close or HTTP response -> Alert
received; for HTTP the request start -> Alert too); burst runs send --events back to back
and report events/s from the first send to the last Alert. The listener keeps every
sample (KEEP_ALL) and runs in its own spinning thread.

Usage (inside scripts/env.sh):  python bench/bench_intake.py [--events 500] [--paced 200]
"""

import argparse
from concurrent.futures import ThreadPoolExecutor
import json
import os
import secrets
import statistics
import tempfile
import threading
import time

import _path  # noqa: F401  (tests/support: the test harness)
import httpx
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from v2x_common import qos
from v2x_intake.event_intake import EventIntake
from v2x_msgs.msg import Alert
from v2x_testing import RosHarness

KEEP_ALL = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


class Listener:
    """Receive time (perf_counter) of every Alert, by road."""

    def __init__(self, node):
        self.times: dict[str, float] = {}
        self._cond = threading.Condition()
        node.create_subscription(Alert, 'v2x/alert_out', self._on_alert, KEEP_ALL)

    def _on_alert(self, msg: Alert) -> None:
        t = time.perf_counter()
        with self._cond:
            self.times[msg.road] = t
            self._cond.notify_all()

    def wait(self, roads, timeout=60.0) -> float:
        """Block until every road arrived; returns the latest arrival time."""
        roads = list(roads)
        with self._cond:
            ok = self._cond.wait_for(lambda: all(r in self.times for r in roads), timeout)
            if not ok:
                missing = [r for r in roads if r not in self.times]
                raise TimeoutError(f'{len(missing)} alert(s) never arrived, e.g. {missing[:3]}')
            return max(self.times[r] for r in roads)


def event_doc(road: str) -> dict:
    return {'ts': time.time(), 'type': 'collision', 'severity': 'high', 'lat': 37.12,
            'lon': 127.12, 'road': road, 'distance_m': 500, 'clip_hint': False}


def write_file(events_dir: str, name: str, doc: dict) -> float:
    """Write and close like another program; returns the time of the close."""
    with open(os.path.join(events_dir, name), 'w', encoding='utf-8') as f:
        f.write(json.dumps(doc))
    return time.perf_counter()


def row(name, n, rate, lat_ms=None):
    if lat_ms:
        p99 = statistics.quantiles(lat_ms, n=100, method='inclusive')[98]
        lat = f'{statistics.median(lat_ms):8.2f} {p99:8.2f} {max(lat_ms):8.2f}'
    else:
        lat = f'{"-":>8} {"-":>8} {"-":>8}'
    rate_text = f'{rate:9.0f}' if rate else f'{"-":>9}'
    print(f'{name:<44} {n:>6} {rate_text} {lat}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--events', type=int, default=500, help='events per burst run')
    parser.add_argument('--paced', type=int, default=200, help='events per paced run')
    args = parser.parse_args()

    harness = RosHarness()
    os.environ['ROS_DOMAIN_ID'] = str(harness.domain_id)
    tmp = tempfile.mkdtemp(prefix='bench_intake_')
    events_dir = os.path.join(tmp, 'events')
    token = secrets.token_urlsafe(16)
    with open(os.path.join(tmp, 'token'), 'w', encoding='utf-8') as f:
        f.write(token)
    os.chmod(os.path.join(tmp, 'token'), 0o600)  # event_intake refuses a readable secret
    listener = Listener(harness.node('bench_listener'))
    bare_node = harness.node('bench_bare_publisher')
    bare = bare_node.create_publisher(Alert, 'v2x/alert_out', qos.ALERT_OUT)
    intake = EventIntake(context=harness.context, parameter_overrides=[
        Parameter('events_dir', value=events_dir), Parameter('http_port', value=0),
        Parameter('state_dir', value=os.path.join(tmp, 'state')),
        Parameter('token_file', value=os.path.join(tmp, 'token'))])
    harness.add(intake)
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            harness.executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    client = httpx.Client(base_url=f'http://127.0.0.1:{intake.http_port}', timeout=30,
                          headers={'Authorization': f'Bearer {token}'})
    try:
        deadline = time.monotonic() + 30
        while not (intake.http_ready and bare.get_subscription_count() > 0
                   and intake._pub.get_subscription_count() > 0):
            if time.monotonic() > deadline:
                raise TimeoutError('discovery or HTTP start-up took more than 30 s')
            time.sleep(0.05)
        # Warm up every path (imports, first connection, sqlite pages).
        bare.publish(Alert(road='warm-bare'))
        write_file(events_dir, 'warm.json', event_doc('warm-file'))
        client.post('/events', json=event_doc('warm-http'))
        listener.wait(['warm-bare', 'warm-file', 'warm-http'])

        print(f'event_intake bench: {args.paced} paced, {args.events} burst events; '
              f'domain {harness.domain_id}; {os.cpu_count()} CPUs')
        print(f'{"path":<44} {"events":>6} {"events/s":>9} {"p50 ms":>8} {"p99 ms":>8} '
              f'{"max ms":>8}')

        lat = []
        for i in range(args.paced):
            t0 = time.perf_counter()
            bare.publish(Alert(road=f'bp{i}'))
            lat.append((listener.wait([f'bp{i}']) - t0) * 1e3)
        row('bare rclpy publish -> alert (paced)', args.paced, None, lat)

        lat = []
        for i in range(args.paced):
            closed = write_file(events_dir, f'fp{i}.json', event_doc(f'fp{i}'))
            lat.append((listener.wait([f'fp{i}']) - closed) * 1e3)
        row('file close -> alert (paced)', args.paced, None, lat)

        after_response, after_request = [], []
        for i in range(args.paced):
            t0 = time.perf_counter()
            answer = client.post('/events', json=event_doc(f'hp{i}'))
            t1 = time.perf_counter()
            assert answer.status_code == 202, answer.text
            got = listener.wait([f'hp{i}'])
            after_response.append((got - t1) * 1e3)
            after_request.append((got - t0) * 1e3)
        row('HTTP response -> alert (paced; <0 = before)', args.paced, None, after_response)
        row('HTTP request start -> alert (paced)', args.paced, None, after_request)

        n = args.events
        t0 = time.perf_counter()
        for i in range(n):
            bare.publish(Alert(road=f'bb{i}'))
        row('bare rclpy publish (burst)', n, n / (listener.wait(
            [f'bb{i}' for i in range(n)]) - t0))

        t0 = time.perf_counter()
        for i in range(n):
            write_file(events_dir, f'fb{i}.json', event_doc(f'fb{i}'))
        row('file intake (burst)', n, n / (listener.wait([f'fb{i}' for i in range(n)]) - t0))

        t0 = time.perf_counter()
        for i in range(n):
            client.post('/events', json=event_doc(f'hs{i}'))
        row('HTTP intake (1 client, sequential)', n, n / (listener.wait(
            [f'hs{i}' for i in range(n)]) - t0))

        clients = [httpx.Client(base_url=client.base_url, headers=client.headers, timeout=30)
                   for _ in range(4)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: clients[i % 4].post('/events', json=event_doc(f'hc{i}')),
                          range(n)))
        row('HTTP intake (4 clients)', n, n / (listener.wait(
            [f'hc{i}' for i in range(n)]) - t0))
        for c in clients:
            c.close()
        print(f'intake counters: {dict(intake.intake.stats)}')
    finally:
        client.close()
        stop.set()
        spinner.join()
        harness.close()


if __name__ == '__main__':
    main()
