"""Bench a vehicle gateway under a flood from a sender that holds no key.

The installed alert_gateway (role vehicle, HMAC) runs as its own process on its own
ROS_DOMAIN_ID, joined to a random multicast group on 127.0.0.1. In the same run, three
phases of --phase-s seconds each:

* baseline: no flood;
* garbage:  one process floods at --rate datagrams/s (or as fast as it can) cycling
            through bad magic, truncated and unknown-key datagrams;
* mac:      the same, every datagram carrying the receiver's key id and a random tag, so
            each one costs the gateway an HMAC-SHA256 before it is dropped.

In each phase a real RSU sender (v2x_protocol's Sender with the key, in this process)
sends --alert-rate new alerts/s and repeats each one every --repeat-interval s until it
is seen on /v2x/alert, like an RSU gateway. Printed per phase: the flood's sent rate, the
gateway's rejection rate by reason and its kernel receive-buffer drops (from its
/diagnostics counters), the alerts' first-delivery latency (first datagram sent ->
/v2x/alert) p50/p99/max, the gateway's RSS and CPU use, and its rejections per CPU-second
of its own (the rate it would reach on a core of its own: on a shared, loaded machine the
wall-clock rate says more about the other load than about the gateway).

Then a key holder heartbeats under --peer-ids source ids (20,000), each once in a 10 s
period, and the gateway's CPU share is measured while they come and while idle after,
with the length of /v2x/peers.

With --baseline-ref REF the whole bench runs first against a gateway whose v2x_protocol
and v2x_bridge come from git revision REF (the rest of the workspace as it is), then
against ours, and both tables are printed: the same run, the same machine load.

Usage (inside scripts/env.sh):
    python bench/bench_flood.py [--phase-s 10] [--rate 60000] [--alert-rate 3]
                                [--baseline-ref REF]
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import threading
import time

import _path  # noqa: F401  (tests/support: the test harness)
from bench_bridge import percentile  # bench/ is on sys.path when run as a script
from diagnostic_msgs.msg import DiagnosticArray
import rclpy
import v2x_hostile as hostile

from v2x_bridge import net
from v2x_common import qos
from v2x_msgs.msg import Alert, PeerArray
from v2x_protocol import keys
from v2x_protocol.sender import Sender
from v2x_protocol.wire import AlertData, HeartbeatData
from v2x_testing import RosHarness, random_domain_id, random_group

SECRET = 'bench-flood-secret'
PHASES = {'baseline': (), 'garbage': ('bad_magic', 'truncated', 'unknown_key'),
          'mac': ('bad_signature',)}


# --- the flooding process -------------------------------------------------------------

def flood(group: str, port: int, kinds: list[str], key_id: bytes, rate: float,
          seconds: float) -> None:
    """Send the kinds' datagrams in turn at rate/s (0 = flat out); print the count sent."""
    sock = net.open_sender(group, port, '127.0.0.1')
    data = hostile.pool(kinds, key_id)
    send, n, chunk = sock.send, 0, 200
    start = time.monotonic()
    end = start + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if rate and n > (now - start) * rate:
            time.sleep(min(0.001, end - now))
            continue
        for i in range(n, n + chunk):
            try:
                send(data[i % len(data)])
            except OSError:  # ENOBUFS: the local queue is full, go on
                pass
        n += chunk
    print(json.dumps({'sent': n, 'seconds': time.monotonic() - start}), flush=True)


# --- the RSU sender and the observer ---------------------------------------------------

class Rsu:
    """New alerts at a fixed rate, each repeated until seen delivered (in a thread)."""

    def __init__(self, group: str, port: int, repeat_interval: float):
        self.sender = Sender(keys.HmacKey(SECRET.encode()))
        self.sock = net.open_sender(group, port, '127.0.0.1')
        self.repeat_ns = int(repeat_interval * 1e9)
        self.lock = threading.Lock()
        self.first_sent = {}  # sequence -> monotonic time of its first datagram
        self.delivered = {}  # sequence -> monotonic time seen on /v2x/alert
        self.sequence = 0
        self.pending = {}  # sequence -> (alert, next repeat monotonic ns)

    def on_alert(self, msg: Alert) -> None:
        now = time.monotonic()
        with self.lock:
            self.delivered.setdefault(msg.sequence, now)

    def run(self, alert_rate: float, seconds: float, settle_s: float) -> tuple[int, int]:
        """Send for seconds, keep repeating for settle_s more; the sequence range sent."""
        first = self.sequence + 1
        pending = self.pending
        start = time.monotonic()
        next_new = start
        while True:
            now = time.monotonic()
            if now < start + seconds and now >= next_new:
                self.sequence += 1
                t = time.time_ns()
                alert = AlertData('bench_rsu', self.sequence, 3, 3, 2, t, t, 60.0,
                                  latitude=37.0, longitude=127.0, distance_m=50.0)
                pending[self.sequence] = (alert, time.monotonic_ns() + self.repeat_ns)
                with self.lock:
                    self.first_sent[self.sequence] = time.monotonic()
                self.sock.send(self.sender.datagram(alert, t))
                next_new += 1.0 / alert_rate
            with self.lock:
                for seq in [s for s in pending if s in self.delivered]:
                    del pending[seq]
            if now > start + seconds + settle_s or (now > start + seconds and not pending):
                break
            mono = time.monotonic_ns()
            for seq, (alert, due) in list(pending.items()):
                if due <= mono:
                    self.sock.send(self.sender.datagram(alert, time.time_ns()))
                    pending[seq] = (alert, due + self.repeat_ns)
            time.sleep(0.002)
        return first, self.sequence

    def latencies(self, first: int, last: int) -> tuple[list[float], int]:
        with self.lock:
            got = [self.delivered[s] - self.first_sent[s] for s in range(first, last + 1)
                   if s in self.delivered]
        return got, (last - first + 1) - len(got)


class Counters:
    """The gateway's /diagnostics values, latest first."""

    def __init__(self):
        self.latest = None  # (monotonic time, {key: value})

    def on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith('alert_gateway'):
                values = {}
                for kv in status.values:
                    try:
                        values[kv.key] = int(kv.value)
                    except ValueError:
                        pass
                self.latest = (time.monotonic(), values)


def peer_flood(sock, pid: int, ids: int, idle_s: float, peer_lists, counters):
    """A key holder heartbeats under `ids` source ids, each once in a 10 s period; then
    nothing for idle_s. The gateway's CPU share in both, /v2x/peers' length, refusals."""
    holder = Sender(keys.HmacKey(SECRET.encode()))
    period = 10.0
    cpu0, t0, sent = cpu_s(pid), time.monotonic(), 0
    while sent < ids:
        target = min(ids, int((time.monotonic() - t0) * ids / period) + 1)
        while sent < target:
            sock.send(holder.datagram(HeartbeatData(f'peer_{sent}', 2, period_s=period),
                                      time.time_ns()))
            sent += 1
        time.sleep(0.002)
    cpu1, t1 = cpu_s(pid), time.monotonic()
    time.sleep(idle_s)
    cpu2, t2 = cpu_s(pid), time.monotonic()
    refused = counters.latest[1].get('peers_refused', 0) if counters.latest else 0
    return (sent, (cpu1 - cpu0) / (t1 - t0), (cpu2 - cpu1) / (t2 - t1),
            max(peer_lists[-3:], default=0), refused, rss_kb(pid))


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def rss_kb(pid: int) -> int:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--phase-s', type=float, default=10.0, help='seconds per phase')
    parser.add_argument('--rate', type=float, default=60000.0,
                        help='flood datagrams/s (0 = as fast as one process can)')
    parser.add_argument('--alert-rate', type=float, default=3.0, help='new real alerts/s')
    parser.add_argument('--repeat-interval', type=float, default=1.0,
                        help="the RSU's repeat interval (s): the first-delivery goal")
    parser.add_argument('--phases', default='baseline,garbage,mac')
    parser.add_argument('--peer-ids', type=int, default=20000,
                        help='then: heartbeats from this many source ids (0 = skip)')
    parser.add_argument('--idle-s', type=float, default=5.0,
                        help='seconds of idle CPU measured after the heartbeats')
    parser.add_argument('--gateway-nice', type=int, default=0,
                        help='run the gateway at this nice value (negative needs root), as a '
                             'vehicle would run its safety path ahead of other work')
    parser.add_argument('--baseline-ref', default='',
                        help="first run the gateway's v2x_protocol/v2x_bridge at this git "
                             'revision, then ours, in the same run')
    parser.add_argument('--flood-worker', nargs=5, metavar=('GROUP', 'PORT', 'KINDS', 'KEYID',
                                                            'SECONDS'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.flood_worker:
        group, port, kinds, key_id, seconds = args.flood_worker
        flood(group, int(port), kinds.split(','), bytes.fromhex(key_id), args.rate,
              float(seconds))
        return 0
    if not args.baseline_ref:
        return measure(args, 'ours', '')
    import _baseline
    with _baseline.baseline_tree(args.baseline_ref, ('v2x_protocol', 'v2x_bridge')) as tree:
        status = measure(args, f'baseline {args.baseline_ref}', tree)
    return status or measure(args, 'ours', '')


def measure(args, label: str, pythonpath: str) -> int:
    """One whole run against a gateway started with pythonpath first on its path."""
    domain = random_domain_id()
    group, port = random_group()
    key_id = keys.HmacKey(SECRET.encode()).key_id
    state = tempfile.mkdtemp(prefix='bench_flood_')
    env = {**os.environ, 'ROS_DOMAIN_ID': str(domain), 'V2X_KEY': SECRET}
    if pythonpath:
        env['PYTHONPATH'] = pythonpath + os.pathsep + env.get('PYTHONPATH', '')
    gateway = subprocess.Popen(
        ['nice', '-n', str(args.gateway_nice), 'alert_gateway', '--ros-args',
         '-p', 'role:=vehicle', '-p', f'group:={group}',
         '-p', f'port:={port}', '-p', 'iface:=127.0.0.1', '-p', f'state_dir:={state}',
         '--log-level', 'warn'], env=env)
    ros = RosHarness(domain)
    node = ros.node('bench_flood')
    rsu = Rsu(group, port, args.repeat_interval)
    counters = Counters()
    node.create_subscription(Alert, 'v2x/alert', rsu.on_alert, qos.ALERT)
    node.create_subscription(DiagnosticArray, '/diagnostics', counters.on_diag,
                             qos.DIAGNOSTICS)
    peer_lists = []  # the length of each /v2x/peers message
    node.create_subscription(PeerArray, 'v2x/peers', lambda m: peer_lists.append(len(m.peers)),
                             qos.PEERS)
    peers_row = None
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ros.executor.spin_once(timeout_sec=0.05)
    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    rows = []
    try:
        end = time.monotonic() + 30
        while counters.latest is None and time.monotonic() < end:
            time.sleep(0.1)
        if counters.latest is None:
            print('the gateway published no diagnostics within 30 s', file=sys.stderr)
            return 1
        for phase in args.phases.split(','):
            kinds = PHASES[phase]
            worker = None
            if kinds:
                worker = subprocess.Popen(
                    [sys.executable, __file__, '--rate', str(args.rate), '--flood-worker',
                     group, str(port), ','.join(kinds), key_id.hex(), str(args.phase_s + 1)],
                    stdout=subprocess.PIPE, text=True)
                time.sleep(1.0)  # the flood is at full rate before the first alert
            before, cpu_before = counters.latest, cpu_s(gateway.pid)
            first, last = rsu.run(args.alert_rate, args.phase_s - 1 if kinds else args.phase_s,
                                  settle_s=0.0)
            after, cpu_after = counters.latest, cpu_s(gateway.pid)
            sent = json.loads(worker.communicate(timeout=60)[0]) if worker else None
            rsu.run(args.alert_rate, 0, settle_s=3 * args.repeat_interval)  # stragglers
            latencies, lost = rsu.latencies(first, last)
            dt = max(after[0] - before[0], 1e-9)
            delta = {k: after[1].get(k, 0) - before[1].get(k, 0) for k in after[1]}
            rejected = {k[len('dropped_'):]: v / dt for k, v in delta.items()
                        if k.startswith('dropped_') and v}
            rows.append((phase, sent, rejected, delta.get('kernel_drops', 0) / dt,
                         latencies, lost, rss_kb(gateway.pid), (cpu_after - cpu_before) / dt))
        if args.peer_ids:
            peers_row = peer_flood(rsu.sock, gateway.pid, args.peer_ids, args.idle_s,
                                   peer_lists, counters)
    finally:
        stop.set()
        spinner.join(timeout=2)
        ros.executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ros.context)
        gateway.terminate()
        try:
            gateway.wait(timeout=10)
        except subprocess.TimeoutExpired:
            gateway.kill()

    print(f'[{label}] alert_gateway (vehicle, hmac, nice {args.gateway_nice}) under a '
          'no-key flood: '
          f'{os.cpu_count()} CPUs, loadavg {os.getloadavg()[0]:.1f}, '
          f'repeat interval {args.repeat_interval:g} s, '
          f'{args.alert_rate:g} real alerts/s, flood target {args.rate:g}/s')
    print(f'{"phase":<9} {"flood sent/s":>12} {"rejected/s":>11} {"kernel drop/s":>13} '
          f'{"p50 ms":>8} {"p99 ms":>8} {"max ms":>8} {"alerts":>6} {"lost":>4} {"RSS MB":>7} '
          f'{"CPU %":>6} {"rejected/CPU-s":>14}')
    for phase, sent, rejected, kdrops, lat, lost, rss, cpu in rows:
        rate = sent['sent'] / sent['seconds'] if sent else 0.0
        ms = [v * 1e3 for v in lat]
        print(f'{phase:<9} {rate:12.0f} {sum(rejected.values()):11.0f} {kdrops:13.0f} '
              f'{percentile(ms, 50):8.1f} {percentile(ms, 99):8.1f} '
              f'{max(ms) if ms else float("nan"):8.1f} {len(ms) + lost:6d} {lost:4d} '
              f'{rss / 1024:7.1f} {cpu * 100:6.0f} '
              f'{sum(rejected.values()) / max(cpu, 1e-9):14.0f}')
        if rejected:
            print('          rejected by reason /s: ' + ', '.join(
                f'{k} {v:.0f}' for k, v in sorted(rejected.items())))
    if peers_row:
        sent, busy, idle, listed, refused, rss = peers_row
        print(f'peers: {sent} heartbeats from as many source ids in one 10 s period: gateway '
              f'CPU {busy * 100:.0f}% while they came, {idle * 100:.1f}% idle after '
              f'(baseline row above: idle with one peer); /v2x/peers {listed} entries; '
              f'{refused} refused; RSS {rss / 1024:.1f} MB')
    worst = max((percentile(r[4], 99) for r in rows if r[1]), default=0.0)
    print(f'goals: rejection >= 50,000/s (garbage), >= 15,000/s (mac); first delivery p99 '
          f'<= {args.repeat_interval * 1e3:.0f} ms under flood (worst here: '
          f'{worst * 1e3:.1f} ms)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
