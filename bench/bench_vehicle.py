"""Bench the vehicle stack: two processes (alert_gateway + speed_policy) vs one (vehicle_stack).

For each mode, in the same run, with the installed executables and the launch configs
(config/alert_gateway_vehicle.yaml, config/speed_policy.yaml), on its own ROS_DOMAIN_ID
and multicast group on the loopback interface:

* memory: RSS and PSS (psutil; PSS shares the libraries two processes map once) summed
  over the stack's processes, after start-up has settled;
* idle CPU: % of one core the stack uses while nothing comes in;
* cmd_vel pass-through latency (cmd_vel_in published -> cmd_vel received, 20 Hz teleop,
  no alert) quiet, and while a separate process floods the gateway's multicast port with
  garbage datagrams (the receive thread works flat out; in one process it shares the GIL
  with the filter);
* the flood the gateway took: datagrams sent per second by the flooder.

The latency includes the bench's own rclpy node on both ends, the same in both modes.
``--size`` also prints the installed size of what a vehicle needs (the Python
distributions behind v2x_protocol/v2x_bridge/v2x_policy/v2x_common, found from their
metadata) against the set the vehicle needed when v2x_bridge held event_intake (FastAPI,
uvicorn, watchdog).

Usage (inside scripts/env.sh):  python bench/bench_vehicle.py [--seconds 8] [--size]
"""

import argparse
from importlib import metadata
import os
from pathlib import Path
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import _path  # noqa: F401  (tests/support: the test harness)
from geometry_msgs.msg import Twist
import psutil
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from v2x_common import qos
from v2x_testing import random_domain_id, random_group

WS = Path(__file__).resolve().parents[1]
CONFIG = WS / 'launch' / 'config'
RATE_HZ = 20.0
FLOODER = r"""
import os, socket, sys, time
group, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('127.0.0.1'))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
junk = [os.urandom(n) for n in (40, 120, 400, 1200)]
n, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    for j in junk:
        try:
            s.sendto(j, (group, port)); n += 1
        except OSError:
            pass
print(n / seconds, flush=True)
"""


def percentile(values, p: int) -> float:
    """The p-th percentile (1..99), linear interpolation between closest ranks."""
    if len(values) < 2:
        return values[0] if values else float('nan')
    return statistics.quantiles(values, n=100, method='inclusive')[p - 1]


class Teleop:
    """Publishes cmd_vel_in at 20 Hz (sequence in linear.y) and times each cmd_vel back."""

    def __init__(self, context):
        self.node = rclpy.create_node('bench_vehicle', context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.pub = self.node.create_publisher(Twist, 'cmd_vel_in', qos.CMD_VEL)
        self.node.create_subscription(Twist, 'cmd_vel', self._on_out, qos.CMD_VEL)
        self.timer = self.node.create_timer(1.0 / RATE_HZ, self._send)
        self.seq = 0
        self.sent_at = {}
        self.latencies = []

    def _send(self):
        self.seq += 1
        msg = Twist()
        msg.linear.x, msg.linear.y = 0.5, float(self.seq)
        self.sent_at[self.seq] = time.perf_counter()
        self.pub.publish(msg)

    def _on_out(self, msg):
        sent = self.sent_at.pop(int(msg.linear.y), None)
        if sent is not None:
            self.latencies.append(time.perf_counter() - sent)

    def spin_for(self, seconds: float):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def measure(self, seconds: float) -> list[float]:
        self.latencies = []
        self.sent_at.clear()
        self.spin_for(seconds)
        return list(self.latencies)


def start_stack(mode: str, group: str, port: int, tmp: str, env: dict) -> list:
    common = ['-p', 'iface:=127.0.0.1', '-p', f'group:={group}', '-p', f'port:={port}',
              '-p', f'state_dir:={tmp}/state', '-p', "csv_log:=''", '-p', 'station_id:=bench']
    gw = ['--params-file', str(CONFIG / 'alert_gateway_vehicle.yaml')]
    pol = ['--params-file', str(CONFIG / 'speed_policy.yaml')]
    if mode == 'composed':
        argv = [[shutil.which('vehicle_stack'), '--ros-args', *gw, *pol, *common]]
    else:
        argv = [[shutil.which('alert_gateway'), '--ros-args', *gw, *common],
                [shutil.which('speed_policy'), '--ros-args', *pol]]
    return [subprocess.Popen(a, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True) for a in argv]


def memory(procs) -> tuple[float, float]:
    """(RSS, PSS) in MB summed over the processes."""
    rss = pss = 0
    for p in procs:
        info = psutil.Process(p.pid).memory_full_info()
        rss += info.rss
        pss += getattr(info, 'pss', info.rss)
    return rss / 1e6, pss / 1e6


def cpu_seconds(procs) -> float:
    total = 0.0
    for p in procs:
        t = psutil.Process(p.pid).cpu_times()
        total += t.user + t.system
    return total


def run_mode(mode: str, seconds: float) -> dict:
    domain = random_domain_id()
    group, port = random_group()
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), V2X_KEY='bench-key-0123456789abcdef')
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    context = Context()
    rclpy.init(context=context)
    with tempfile.TemporaryDirectory() as tmp:
        procs = start_stack(mode, group, port, tmp, env)
        teleop = Teleop(context)
        try:
            end = time.monotonic() + 60
            while not teleop.latencies and time.monotonic() < end:
                teleop.spin_for(0.5)
                for p in procs:
                    if p.poll() is not None:
                        raise RuntimeError(f'{mode}: exited {p.returncode}: '
                                           f'{p.stderr.read()[-2000:]}')
            if not teleop.latencies:
                raise RuntimeError(f'{mode}: no cmd_vel came through')
            teleop.spin_for(3.0)  # settle: discovery, first allocations
            # idle: no teleop (its timer is part of the bench) -> stop publishing meanwhile
            teleop.timer.cancel()
            cpu0, t0 = cpu_seconds(procs), time.monotonic()
            teleop.spin_for(seconds)
            idle_cpu = 100.0 * (cpu_seconds(procs) - cpu0) / (time.monotonic() - t0)
            rss, pss = memory(procs)
            teleop.timer.reset()
            teleop.spin_for(1.0)
            quiet = teleop.measure(seconds)
            flooder = subprocess.Popen([sys.executable, '-c', FLOODER, group, str(port),
                                        str(seconds + 1.0)], stdout=subprocess.PIPE,
                                       text=True)
            teleop.spin_for(1.0)
            flooded = teleop.measure(seconds - 0.5)
            rate = float(flooder.communicate(timeout=60)[0] or 0.0)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(2)
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
            teleop.node.destroy_node()
            rclpy.shutdown(context=context)
    sent = RATE_HZ * (seconds - 0.5)
    return {'rss': rss, 'pss': pss, 'idle_cpu': idle_cpu, 'quiet': quiet,
            'flooded': flooded, 'flood_rate': rate,
            'flood_lost': max(0.0, 1 - len(flooded) / sent)}


def _fmt_ms(values, p):
    return f'{1000 * percentile(values, p):.1f}' if values else 'n/a'


def dist_closure(names) -> dict:
    """name -> bytes of each installed distribution needed by names (Requires-Dist, no extras)."""
    seen, todo = {}, list(names)
    while todo:
        name = re.split(r'[ ;<>=!~\[(]', todo.pop())[0].lower().replace('_', '-')
        if not name or name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        size = 0
        for f in dist.files or ():
            try:
                size += f.locate().stat().st_size
            except OSError:
                pass
        seen[name] = size
        for req in dist.requires or ():
            if 'extra ==' not in req:
                todo.append(req)
    return seen


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob('*') if f.is_file() and
               '__pycache__' not in f.parts and 'test' not in f.parts)


def print_size():
    ours = {pkg: tree_size(WS / 'src' / pkg / pkg) for pkg in
            ('v2x_protocol', 'v2x_bridge', 'v2x_policy', 'v2x_common', 'v2x_conversion',
             'v2x_stacks')}
    msgs = WS / 'install' / 'v2x_msgs'
    ours['v2x_msgs (install)'] = tree_size(msgs) if msgs.is_dir() else 0
    now = dist_closure(['cryptography', 'pyyaml'])
    before = dist_closure(['cryptography', 'pyyaml', 'fastapi', 'uvicorn', 'watchdog'])
    print('\ninstalled size of the vehicle stack (ROS 2 itself, rclpy and its wheels, '
          'is the same in both and not counted)')
    print(f'  workspace packages: {sum(ours.values()) / 1e6:.2f} MB '
          + ', '.join(f'{k} {v / 1e3:.0f} kB' for k, v in ours.items()))
    print(f'  Python deps now (cryptography, PyYAML): {sum(now.values()) / 1e6:.2f} MB '
          f'({", ".join(sorted(now))})')
    print(f'  Python deps before (v2x_bridge held event_intake: + fastapi, uvicorn, watchdog): '
          f'{sum(before.values()) / 1e6:.2f} MB ({", ".join(sorted(before))})')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=8.0, help='length of each phase')
    parser.add_argument('--size', action='store_true', help='also print installed sizes')
    args = parser.parse_args(argv)
    results = {mode: run_mode(mode, args.seconds) for mode in ('separate', 'composed')}
    s, c = results['separate'], results['composed']
    rows = [
        ('RSS, MB (sum)', f"{s['rss']:.0f}", f"{c['rss']:.0f}"),
        ('PSS, MB (sum)', f"{s['pss']:.0f}", f"{c['pss']:.0f}"),
        ('idle CPU, % of a core', f"{s['idle_cpu']:.1f}", f"{c['idle_cpu']:.1f}"),
        ('cmd_vel p50 / p99 ms, quiet',
         f"{_fmt_ms(s['quiet'], 50)} / {_fmt_ms(s['quiet'], 99)}",
         f"{_fmt_ms(c['quiet'], 50)} / {_fmt_ms(c['quiet'], 99)}"),
        ('cmd_vel p50 / p99 ms, flooded',
         f"{_fmt_ms(s['flooded'], 50)} / {_fmt_ms(s['flooded'], 99)}",
         f"{_fmt_ms(c['flooded'], 50)} / {_fmt_ms(c['flooded'], 99)}"),
        ('cmd_vel max ms, flooded', f"{1000 * max(s['flooded'] or [0]):.1f}",
         f"{1000 * max(c['flooded'] or [0]):.1f}"),
        ('cmd_vel not through, flooded', f"{100 * s['flood_lost']:.0f} %",
         f"{100 * c['flood_lost']:.0f} %"),
        ('flood, datagrams/s sent', f"{s['flood_rate']:.0f}", f"{c['flood_rate']:.0f}"),
    ]
    print(f'vehicle stack, {args.seconds:g} s per phase, {os.cpu_count()} CPUs')
    print(f"{'':34} {'separate (2 proc)':>20} {'composed (1 proc)':>20}")
    for name, a, b in rows:
        print(f'{name:34} {a:>20} {b:>20}')
    if args.size:
        print_size()
    return 0


if __name__ == '__main__':
    sys.exit(main())
