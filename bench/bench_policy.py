"""Bench speed_policy: reaction latency from an Alert to the first changed cmd_vel.

Runs the installed speed_policy as its own process (own ROS_DOMAIN_ID), feeds cmd_vel_in
at 20 Hz as a teleop would, and measures in the same run:

* pass-through: cmd_vel_in published -> the same command received on cmd_vel, no alert;
* reaction: an Alert (blockage at 100 m: stop) published at a random phase of the 20 Hz
  input -> the first cmd_vel that differs from the input; then the alert is cancelled
  (hold_time_s 0) and the next trial starts.

Usage (inside scripts/env.sh):  python bench/bench_policy.py [--trials 200] [--baseline-s 10]
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import time

import _path  # noqa: F401  (tests/support: the test harness)
from geometry_msgs.msg import Twist
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from v2x_common import qos
from v2x_common.timeutil import fill_stamp
from v2x_msgs.msg import Alert
from v2x_testing import random_domain_id

RATE_HZ = 20.0


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
        self.node.create_subscription(Twist, 'cmd_vel', self._on_out, qos.CMD_VEL)
        self.node.create_timer(1.0 / RATE_HZ, self._send)
        self.seq = 0
        self.sent_at = {}  # seq (in linear.y) -> perf_counter at publish
        self.passthrough = []  # seconds, while no alert is in force
        self.measuring = False
        self.alert_at = None  # perf_counter when the current alert was published
        self.reaction = None  # seconds to the first changed command
        self.last_out_x = None

    def _send(self):
        self.seq += 1
        msg = Twist()
        msg.linear.x, msg.linear.y, msg.angular.z = 1.0, float(self.seq), 0.4
        self.sent_at[self.seq] = time.perf_counter()
        self.cmd_pub.publish(msg)

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


def row(name, values_s):
    ms = [v * 1000.0 for v in values_s]
    return (f'{name:<34} {percentile(ms, 50):8.2f} {percentile(ms, 99):8.2f} '
            f'{max(ms) if ms else float("nan"):8.2f} {len(ms):6d}')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--trials', type=int, default=200, help='alerts to react to')
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

        reactions, missed = [], 0
        rnd = random.Random(5)
        for trial in range(1, args.trials + 1):
            bench.spin_for(rnd.uniform(0.0, 1.0 / RATE_HZ))  # random phase to the input
            bench.reaction, bench.alert_at = None, time.perf_counter()
            bench.alert(trial)
            if bench.spin_until(lambda: bench.reaction is not None, 5.0):
                reactions.append(bench.reaction)
            else:
                missed += 1
            bench.alert_at = None
            bench.alert(trial, cancelled=True)
            bench.spin_until(lambda: bench.last_out_x == 1.0, 5.0)
            bench.spin_for(0.06)

        print(f'speed_policy bench: cmd_vel_in at {RATE_HZ:g} Hz (period '
              f'{1000 / RATE_HZ:.0f} ms), {args.trials} alerts, Twist, domain {domain}, '
              f'{os.cpu_count()} CPUs')
        print(f'{"latency":<34} {"p50 ms":>8} {"p99 ms":>8} {"max ms":>8} {"n":>6}')
        print(row('pass-through, no alert (baseline)', bench.passthrough))
        print(row('alert -> first changed cmd_vel', reactions))
        if reactions and bench.passthrough:
            extra = statistics.median(reactions) - statistics.median(bench.passthrough)
            print(f'reaction p50 minus pass-through p50: {extra * 1e3:.2f} ms')
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
