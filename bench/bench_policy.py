"""Bench speed_policy: reaction latency from an Alert to the first changed cmd_vel.

Runs the installed speed_policy as its own process (own ROS_DOMAIN_ID), feeds cmd_vel_in
at 20 Hz as a teleop would and a GPS fix at 10 Hz (the vehicle creeping north), and
measures in the same run:

* pass-through: cmd_vel_in published -> the same command received on cmd_vel, no alert;
* reaction: an Alert (blockage at 100 m: stop) published at a random phase of the 20 Hz
  input -> the first cmd_vel that differs from the input; then the alert is cancelled
  (hold_time_s 0) and the next trial starts. Repeated with 0, 1,000 and 10,000 other
  alerts held (--held): blockages that match no rule, placed at random within 20 km of
  the vehicle, so every fix re-ranks the ones near it. The goal: reaction p99 within
  one input period (50 ms) whatever is held.
* a stop amid a burst: --burst far alerts at --burst-rate/s with the stop in the middle
  -> the first changed cmd_vel (the issue's scenario: 5,000 at 1,000/s).

Usage (inside scripts/env.sh):
    python bench/bench_policy.py [--trials 100] [--baseline-s 10] [--held 0,1000,10000]
"""

import argparse
import math
import os
import random
import statistics
import subprocess
import sys
import time

import _path  # noqa: F401  (tests/support: the test harness)
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import NavSatFix, NavSatStatus

from v2x_common import qos
from v2x_common.timeutil import fill_stamp
from v2x_msgs.msg import Alert
from v2x_testing import random_domain_id

RATE_HZ = 20.0
FIX_HZ = 10.0
ORIGIN = (48.137, 11.575)
DEG_M = 111_195.0  # metres per degree of latitude


def percentile(values, p: int) -> float:
    """The p-th percentile (1..99), linear interpolation between closest ranks."""
    if len(values) < 2:
        return values[0] if values else float('nan')
    return statistics.quantiles(values, n=100, method='inclusive')[p - 1]


class Bench:
    """Teleop at 20 Hz, an alert source and an observer of cmd_vel, in one node."""

    def __init__(self, context):
        self.node = rclpy.create_node('bench_policy', context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.cmd_pub = self.node.create_publisher(Twist, 'cmd_vel_in', qos.CMD_VEL)
        self.alert_pub = self.node.create_publisher(Alert, 'v2x/alert', qos.ALERT)
        self.fix_pub = self.node.create_publisher(NavSatFix, 'fix', qos.SENSOR_DATA)
        self.node.create_subscription(Twist, 'cmd_vel', self._on_out, qos.CMD_VEL)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag,
                                      qos.DIAGNOSTICS)
        self.node.create_timer(1.0 / RATE_HZ, self._send)
        self.node.create_timer(1.0 / FIX_HZ, self._send_fix)
        self.fixes = 0
        self.active_alerts = None  # as speed_policy's diagnostics last said
        self.seq = 0
        self.sent_at = {}  # seq (in linear.y) -> perf_counter at publish
        self.passthrough = []  # seconds, while no alert is in force
        self.measuring = False
        self.alert_at = None  # perf_counter when the current alert was published
        self.reaction = None  # seconds to the first changed command
        self.last_out_x = None
        self.held_seq = 0

    def _send(self):
        self.seq += 1
        msg = Twist()
        msg.linear.x, msg.linear.y, msg.angular.z = 1.0, float(self.seq), 0.4
        self.sent_at[self.seq] = time.perf_counter()
        self.cmd_pub.publish(msg)

    def _send_fix(self):
        self.fixes += 1
        fix = NavSatFix()
        fix.status.status = NavSatStatus.STATUS_FIX
        fix.latitude = ORIGIN[0] + (self.fixes % 600) * 0.1 / DEG_M  # 1 m/s north
        fix.longitude = ORIGIN[1]
        self.fix_pub.publish(fix)

    def _on_diag(self, msg):
        for status in msg.status:
            if status.name.endswith('speed_policy'):
                for kv in status.values:
                    if kv.key == 'active_alerts':
                        self.active_alerts = int(kv.value)

    def hold(self, count, rnd):
        """Publish count more alerts that match no rule, placed within 20 km; returns when
        the policy reports them held."""
        target = (self.active_alerts or 0) + count
        for i in range(count):
            self.far_alert(rnd)
            if i % 500 == 499:
                self.spin_for(0.2)  # 2,500/s: a gateway-sized burst
        return self.spin_until(lambda: (self.active_alerts or 0) >= target, 60.0)

    def far_alert(self, rnd):
        """Publish one blockage that matches no rule, at a random place within 20 km."""
        msg = Alert()
        now = self.node.get_clock().now().nanoseconds / 1e9
        fill_stamp(msg.header.stamp, now)
        fill_stamp(msg.detection_time, now)
        self.held_seq += 1
        msg.source_id, msg.sequence = 'bench_far', self.held_seq
        msg.kind, msg.severity = Alert.KIND_BLOCKAGE, Alert.SEVERITY_HIGH
        msg.validity_s = 3600.0
        north, east = rnd.uniform(-2e4, 2e4), rnd.uniform(-2e4, 2e4)
        if math.hypot(north, east) < 300.0:
            north += 1000.0  # a blockage nearer than 200 m would stop the vehicle
        msg.latitude = ORIGIN[0] + north / DEG_M
        msg.longitude = ORIGIN[1] + east / (DEG_M * math.cos(math.radians(ORIGIN[0])))
        msg.distance_m = math.nan
        self.alert_pub.publish(msg)

    def burst(self, count, rate, sequence, rnd):
        """count far alerts at rate/s with a real stop (bench_rsu/sequence) in the middle;
        the stop's reaction latency (None: none within 5 s)."""
        self.reaction, self.alert_at = None, None
        start = time.perf_counter()
        for i in range(count):
            due = start + i / rate
            while (wait := due - time.perf_counter()) > 0:
                self.executor.spin_once(timeout_sec=wait)
            if i == count // 2:
                self.alert_at = time.perf_counter()
                self.alert(sequence)
            else:
                self.far_alert(rnd)
        reacted = self.spin_until(lambda: self.reaction is not None, 5.0)
        self.alert_at = None
        self.alert(sequence, cancelled=True)
        self.spin_until(lambda: self.last_out_x == 1.0, 5.0)
        return self.reaction if reacted else None

    def _on_out(self, msg):
        now = time.perf_counter()
        self.last_out_x = msg.linear.x
        if self.alert_at is not None and self.reaction is None and msg.linear.x != 1.0:
            self.reaction = now - self.alert_at
        sent = self.sent_at.pop(int(msg.linear.y), None)
        if self.measuring and sent is not None and msg.linear.x == 1.0:
            self.passthrough.append(now - sent)

    def spin_until(self, predicate, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not predicate():
            self.executor.spin_once(timeout_sec=0.002)
        return predicate()

    def spin_for(self, seconds):
        self.spin_until(lambda: False, seconds)

    def alert(self, sequence, cancelled=False):
        msg = Alert()
        now = self.node.get_clock().now().nanoseconds / 1e9
        fill_stamp(msg.header.stamp, now)
        fill_stamp(msg.detection_time, now)
        msg.source_id, msg.sequence = 'bench_rsu', sequence
        msg.kind, msg.severity = Alert.KIND_BLOCKAGE, Alert.SEVERITY_HIGH
        msg.validity_s, msg.cancelled = 60.0, cancelled
        msg.latitude = msg.longitude = float('nan')
        msg.distance_m = 100.0
        self.alert_pub.publish(msg)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB."""
    with open(f'/proc/{pid}/status', encoding='ascii') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def row(name, values_s):
    ms = [v * 1000.0 for v in values_s]
    return (f'{name:<40} {percentile(ms, 50):8.2f} {percentile(ms, 99):8.2f} '
            f'{max(ms) if ms else float("nan"):8.2f} {len(ms):6d}')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--trials', type=int, default=100,
                        help='alerts to react to, per number held')
    parser.add_argument('--held', type=lambda v: [int(x) for x in v.split(',')],
                        default=[0, 1000, 10000],
                        help='numbers of other alerts held, ascending (comma-separated)')
    parser.add_argument('--burst', type=int, default=5000,
                        help='then: bursts of this many far alerts with a stop in the middle')
    parser.add_argument('--burst-rate', type=float, default=1000.0, help='alerts/s in a burst')
    parser.add_argument('--bursts', type=int, default=3, help='bursts (one stop each)')
    parser.add_argument('--baseline-s', type=float, default=10.0,
                        help='seconds of pass-through measured with no alert')
    args = parser.parse_args(argv)

    domain = random_domain_id()
    env = {**os.environ, 'ROS_DOMAIN_ID': str(domain)}
    policy = subprocess.Popen(
        ['speed_policy', '--ros-args', '-p', 'hold_time_s:=0.0', '-p', 'cmd_timeout_s:=1.0',
         '--log-level', 'warn'], env=env)
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    bench = Bench(context)
    try:
        if not bench.spin_until(lambda: bench.last_out_x == 1.0, 30.0):
            print('speed_policy did not answer on cmd_vel', file=sys.stderr)
            return 1
        bench.spin_for(1.0)  # settle discovery
        bench.measuring = True
        bench.spin_for(args.baseline_s)
        bench.measuring = False

        rnd = random.Random(5)
        levels, missed, sequence = [], 0, 0
        for held in args.held:
            if not bench.hold(held - (bench.active_alerts or 0), rnd):
                print(f'speed_policy did not report {held} alerts held', file=sys.stderr)
                return 1
            reactions = []
            for _ in range(args.trials):
                sequence += 1
                bench.spin_for(rnd.uniform(0.0, 1.0 / RATE_HZ))  # random phase to the input
                bench.reaction, bench.alert_at = None, time.perf_counter()
                bench.alert(sequence)
                if bench.spin_until(lambda: bench.reaction is not None, 5.0):
                    reactions.append(bench.reaction)
                else:
                    missed += 1
                bench.alert_at = None
                bench.alert(sequence, cancelled=True)
                bench.spin_until(lambda: bench.last_out_x == 1.0, 5.0)
                bench.spin_for(0.06)
            levels.append((held, reactions, rss_mb(policy.pid)))
        in_burst = []
        for _ in range(args.bursts):
            sequence += 1
            reaction = bench.burst(args.burst, args.burst_rate, sequence, rnd)
            if reaction is None:
                missed += 1
            else:
                in_burst.append(reaction)

        print(f'speed_policy bench: cmd_vel_in at {RATE_HZ:g} Hz (period '
              f'{1000 / RATE_HZ:.0f} ms), fix at {FIX_HZ:g} Hz, {args.trials} alerts per row, '
              f'Twist, domain {domain}, {os.cpu_count()} CPUs, '
              f'loadavg {os.getloadavg()[0]:.1f}')
        print(f'{"latency":<40} {"p50 ms":>8} {"p99 ms":>8} {"max ms":>8} {"n":>6}')
        print(row('pass-through, no alert (baseline)', bench.passthrough))
        for held, reactions, rss in levels:
            print(row(f'alert -> changed cmd_vel, {held} held', reactions)
                  + f'   (policy RSS {rss:.1f} MB)')
            if reactions and bench.passthrough:
                extra = statistics.median(reactions) - statistics.median(bench.passthrough)
                print(f'  reaction p50 minus pass-through p50: {extra * 1e3:.2f} ms')
        if in_burst:
            print(row(f'stop amid {args.burst} at {args.burst_rate:g}/s', in_burst)
                  + f'   (held after: {bench.active_alerts}, policy RSS '
                  f'{rss_mb(policy.pid):.1f} MB)')
        if missed:
            print(f'{missed} alerts got no changed cmd_vel within 5 s')
        return 0 if not missed else 1
    finally:
        bench.node.destroy_node()
        rclpy.try_shutdown(context=context)
        policy.terminate()
        try:
            policy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            policy.kill()


if __name__ == '__main__':
    sys.exit(main())
