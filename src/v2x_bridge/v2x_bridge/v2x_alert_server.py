"""v2x_alert_server: broadcast one alert from the command line (no ROS needed).

Seed-compatible: `v2x_alert_server --repeat --type collision --severity high
--distance-m 500 --suggest slow_down --road segment_A --lat 37.12345 --lon 127.12345`.
Without --repeat it sends once (or --count times, --interval apart); with --repeat it
resends every --interval until --ttl-s has passed, then exits 0.
"""

import argparse
import math
import os
import signal
import sys
import threading
import time

from v2x_bridge import cli, net
from v2x_bridge.cli import ExitCode
from v2x_common.timeutil import iso
from v2x_protocol import keys
from v2x_protocol.sender import MAX_VALIDITY_S, Sender, fill_identity
from v2x_protocol.state import SequenceStore
from v2x_protocol.wire import AlertData, InvalidMessage

DEFAULT_STATE = '~/.local/state/v2x_alert_server'
MAX_INTERVAL_S = 86400.0  # threading.Event.wait takes no inf; a day is plenty


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog='v2x_alert_server', description=__doc__.split('\n')[0])
    p.add_argument('--repeat', action='store_true',
                   help='resend every --interval until the ttl ends')
    p.add_argument('--interval', type=float, default=1.0, help='seconds between sends')
    p.add_argument('--count', type=int, default=1, help='sends without --repeat (default 1)')
    p.add_argument('--source-id', default='rsu_server_01', help='station id')
    p.add_argument('--state-dir', default=DEFAULT_STATE,
                   help='where the next sequence is kept (default %(default)s)')
    p.add_argument('--mcast-ttl', type=int, default=1, help='multicast TTL (default 1)')
    cli.add_alert_flags(p, ttl_default=10.0)
    cli.add_link_flags(p)
    cli.add_key_flags(p)
    p.add_argument('--auth', choices=('hmac', 'ed25519'), default=None,
                   help='default: ed25519 for a PEM --key-file, else hmac')
    return p


def main(argv=None, env=None) -> int:
    """Send the alert; see --help."""
    env = os.environ if env is None else env
    p = parser()
    args = p.parse_args(argv)
    for flag, value, top in (('--interval', args.interval, MAX_INTERVAL_S),
                             ('--ttl-s', args.ttl_s, MAX_VALIDITY_S)):
        if not (math.isfinite(value) and 0 < value <= top):
            p.error(f'argument {flag}: {value!r} is not a number of seconds in '
                    f'(0, {top:.0f}]')  # exits 2, argparse style
    if args.count < 1:
        p.error(f'argument --count: {args.count} is not >= 1')
    if args.cancel and not args.sequence:
        print('v2x_alert_server: --cancel needs --sequence N of the event to cancel',
              file=sys.stderr)
        return ExitCode.USAGE
    auth = args.auth or ('ed25519' if args.key_file and keys.is_pem_private_key(args.key_file)
                         else 'hmac')
    try:
        if args.insecure and not (args.hmac_key or args.key_file or env.get(keys.ENV_KEY)):
            signer = None
        else:
            signer = keys.make_signer(auth, args.key_file, args.hmac_key, env)
    except keys.KeyConfigError as exc:
        msg = cli.NO_KEY_HELP if 'no HMAC key' in str(exc) else str(exc)
        print(f'v2x_alert_server: {msg}', file=sys.stderr)
        return ExitCode.USAGE
    try:
        sock = net.open_sender(args.group, args.port, args.iface, args.mcast_ttl)
        store = SequenceStore(os.path.expanduser(args.state_dir), block=1)
    except (OSError, ValueError) as exc:
        print(f'v2x_alert_server: {exc}', file=sys.stderr)
        return ExitCode.ERROR
    now = time.time_ns()
    base = AlertData(args.source_id, args.sequence, args.kind, args.severity, args.suggest,
                     0, 0, args.ttl_s, args.cancel, args.lat, args.lon, args.road,
                     args.distance_m, args.confidence, args.clip)
    alert = fill_identity(base, station_id=args.source_id, now_ns=now,
                          default_validity_s=args.ttl_s, next_sequence=store.next)
    sender = Sender(signer)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sent, errors = 0, 0
    try:
        while not stop.is_set():
            t = time.time_ns()
            if args.repeat and t >= alert.expires_ns:
                break
            try:
                data = sender.datagram(alert, t)
            except InvalidMessage as exc:
                print(f'v2x_alert_server: {exc}', file=sys.stderr)
                return ExitCode.USAGE
            try:
                sock.send(data)
            except OSError as exc:  # e.g. link down or a firewall: keep repeating
                errors += 1
                if errors == 1:
                    print(f'v2x_alert_server: send failed: {exc.strerror}', file=sys.stderr)
            else:
                print(f'[SEND] {iso(t / 1e9)} {cli.describe(alert)}'
                      + (' cancel' if alert.cancelled else ''), flush=True)
            sent += 1
            if not args.repeat and sent >= args.count:
                break
            stop.wait(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print(f'[DONE] sent={sent - errors} errors={errors} session={sender.session:016x}',
          flush=True)
    return ExitCode.ERROR if sent and errors == sent else ExitCode.OK


if __name__ == '__main__':
    sys.exit(main())
