"""v2x_alert_client: receive alerts on the multicast link and print them (no ROS needed).

Prints one line per delivered alert:
`[RECV] <time> seq=1 src=rsu_server_01 type=collision sev=high dist=500.0m suggest=slow_down`
(updates and cancellations end with ' update' / ' cancel'); --log appends the CSV log;
--ros2 also publishes v2x_msgs/Alert on /v2x/alert. On exit it prints what it dropped.
"""

import argparse
from collections import Counter
import os
import signal
import sys
import threading
import time

from v2x_bridge import cli, net
from v2x_bridge.csvlog import RotatingCsv, row
from v2x_common.exit_codes import ExitCode
from v2x_common.timeutil import iso
from v2x_protocol.io import keys
from v2x_protocol.ranges import printable
from v2x_protocol.receiver import AlertDelivered, AlertRepeated, DatagramRejected, Receiver


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog='v2x_alert_client', description=__doc__.split('\n')[0])
    p.add_argument('--log', default='', help='append delivered alerts to this CSV file')
    p.add_argument('--log-max-bytes', type=int, default=10_000_000, help='rotate beyond this')
    p.add_argument('--log-keep', type=int, default=5, help='rotated files kept')
    p.add_argument('--ros2', action='store_true', help='also publish v2x_msgs/Alert on /v2x/alert')
    p.add_argument('--trust-store', default='', help='Ed25519 trust store (v2x_keygen)')
    p.add_argument('--accept-key-file', action='append', default=[],
                   help='another HMAC secret file accepted (key rotation; repeatable)')
    p.add_argument('--max-clock-skew-s', type=float, default=30.0,
                   help='accepted difference of sender and local clocks (default 30)')
    p.add_argument('--count', type=int, default=0, help='exit after this many deliveries')
    p.add_argument('--timeout-s', type=float, default=0.0, help='exit after this long')
    cli.add_link_flags(p)
    cli.add_key_flags(p)
    return p


class _RosOut:
    """The --ros2 publisher (rclpy imported only when asked for)."""

    def __init__(self):
        import rclpy

        from v2x_common import qos
        from v2x_msgs.msg import Alert
        self._rclpy = rclpy
        rclpy.init()
        self.node = rclpy.create_node('v2x_alert_client')
        self.pub = self.node.create_publisher(Alert, 'v2x/alert', qos.ALERT)

    def publish(self, alert) -> None:
        from v2x_conversion.alert import alert_to_msg
        self.pub.publish(alert_to_msg(alert))

    def close(self) -> None:
        from rclpy.duration import Duration
        self.pub.wait_for_all_acked(Duration(seconds=2.0))  # let subscribers have it
        self.node.destroy_node()
        self._rclpy.try_shutdown()


def _keyring(args, env):
    if args.trust_store:
        mode = 'ed25519'
    elif args.hmac_key or args.key_file or env.get(keys.ENV_KEY) or args.accept_key_file:
        mode = 'hmac'
    else:
        mode = 'none'
    if args.insecure and mode != 'none':
        raise keys.KeyConfigError('--insecure together with a key: a receiver either checks '
                                  'signatures or runs insecure, not both')
    return keys.make_keyring(mode, key_file=args.key_file, hmac_key=args.hmac_key,
                             accept_key_files=args.accept_key_file,
                             trust_store=args.trust_store, insecure=args.insecure, env=env)


def main(argv=None, env=None) -> int:
    """Receive until interrupted (or --count / --timeout-s); see --help."""
    env = os.environ if env is None else env
    args = parser().parse_args(argv)
    try:
        keyring = _keyring(args, env)
    except keys.KeyConfigError as exc:
        text = str(exc)
        msg = cli.NO_KEY_HELP if ('no HMAC key' in text or 'needs the insecure' in text) \
            else text
        print(f'v2x_alert_client: {msg}', file=sys.stderr)
        return ExitCode.USAGE
    try:
        sock = net.open_receiver(args.group, args.port, args.iface)
        log = RotatingCsv(args.log, args.log_max_bytes, args.log_keep) if args.log else None
    except (OSError, ValueError) as exc:
        print(f'v2x_alert_client: {exc}', file=sys.stderr)
        return ExitCode.ERROR
    ros = _RosOut() if args.ros2 else None
    receiver = Receiver(keyring, args.max_clock_skew_s)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = time.monotonic() + args.timeout_s if args.timeout_s > 0 else None
    delivered, repeats, rejected = 0, 0, Counter()
    steps = 0
    print(f'[LISTEN] {args.group}:{args.port} iface={args.iface or "default"} '
          f'auth={"insecure" if keyring.allow_none else "on"} keys={len(keyring)}', flush=True)
    try:
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            try:
                now = time.time_ns()
                event = receiver.receive(data, now, time.monotonic_ns())
                for conflict in receiver.take_conflicts():
                    print(f'[CONFLICT] {conflict.describe()}', file=sys.stderr, flush=True)
                if receiver.counters['clock_steps'] != steps:
                    steps = receiver.counters['clock_steps']
                    print(f'[CLOCK] the wall clock stepped by {receiver.clock_step_s:+.3f} s '
                          '(replay and event state kept)', file=sys.stderr, flush=True)
                if isinstance(event, AlertDelivered):
                    delivered += 1
                    suffix = '' if event.change == 'new' else f' {event.change}'
                    print(f'[RECV] {iso(now / 1e9)} {cli.describe(event.alert)}{suffix}',
                          flush=True)
                    if log is not None:
                        try:
                            log.append(row(event.alert, event.change, now / 1e9))
                        except OSError as exc:
                            print(f'v2x_alert_client: CSV log: {exc}', file=sys.stderr)
                    if ros is not None:
                        ros.publish(event.alert)
                    if args.count and delivered >= args.count:
                        break
                elif isinstance(event, AlertRepeated):
                    repeats += 1
                elif isinstance(event, DatagramRejected):
                    if not rejected:
                        print(f'[DROP] {event.reason}: {printable(event.detail)}', file=sys.stderr,
                              flush=True)
                    rejected[event.reason] += 1
            except Exception as exc:  # noqa: BLE001 -- one datagram must not end the client
                if not rejected['internal_error']:
                    print(f'[DROP] internal_error: {type(exc).__name__}: {exc}',
                          file=sys.stderr, flush=True)
                rejected['internal_error'] += 1
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        if ros is not None:
            ros.close()
    reasons = ' '.join(f'{k}={v}' for k, v in sorted(rejected.items()))
    print(f'[STATS] delivered={delivered} repeats={repeats} '
          f'rejected={sum(rejected.values())}' + (f' ({reasons})' if reasons else '')
          + f' id_conflicts={receiver.counters["id_conflicts"]}', flush=True)
    return ExitCode.OK


if __name__ == '__main__':
    sys.exit(main())
