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
from v2x_common.alert_flags import add_alert_flags
from v2x_common.exit_codes import ExitCode
from v2x_common.timeutil import iso
from v2x_conversion.alert import alert_from_flags
from v2x_protocol import ranges, wire
from v2x_protocol.io import keys
from v2x_protocol.io.state import OutboxFile, SentEvents, SequenceStore
from v2x_protocol.sender import MAX_VALIDITY_S, Sender, fill_identity
from v2x_protocol.wire import AlertData, InvalidMessage

#: shared with the gateway's default state_dir: one sequence store (and origin) per host
DEFAULT_STATE = '~/.local/state/v2x'
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
                   help='the station state (sequences, origin, sent events) shared with a '
                   'gateway using the same directory (default %(default)s)')
    p.add_argument('--mcast-ttl', type=int, default=1, help='multicast TTL (default 1)')
    add_alert_flags(p, ttl_default=10.0)
    cli.add_link_flags(p)
    cli.add_key_flags(p)
    p.add_argument('--auth', choices=('hmac', 'ed25519'), default=None,
                   help='default: ed25519 for a PEM --key-file, else hmac')
    return p


def _signer(args, env):
    """The signing key (None with --insecure and no key); raises KeyConfigError."""
    has_key = bool(args.hmac_key or args.key_file or env.get(keys.ENV_KEY))
    if args.insecure:
        if has_key:
            raise keys.KeyConfigError('--insecure together with a key: send signed or '
                                      'unsigned, not both')
        return None
    auth = args.auth or ('ed25519' if args.key_file and keys.is_pem_private_key(args.key_file)
                         else 'hmac')
    return keys.make_signer(auth, args.key_file, args.hmac_key, env)


class ConflictWatch:
    """Listens between sends for another station (another origin) using our source id."""

    def __init__(self, sock, signer, source_id: str, origin: int, session: int):
        self.sock = sock
        if signer is None:
            self.keyring = keys.Keyring(allow_none=True)
        elif signer.auth == wire.AUTH_HMAC:
            self.keyring = keys.Keyring([signer])
        else:
            self.keyring = keys.Keyring(ed25519_keys=[keys.Ed25519Verifier(signer.public_raw)])
        self.source_id, self.origin, self.session = source_id, origin, session
        self.warned: set[int] = set()

    def listen(self, stop: threading.Event, seconds: float) -> None:
        """Read datagrams for up to seconds (or until stop); warn once per other origin."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline:
            self.sock.settimeout(max(0.001, min(0.2, deadline - time.monotonic())))
            try:
                data = self.sock.recv(2048)
            except (TimeoutError, OSError):
                continue
            try:
                dg = wire.decode(data, self.keyring)
            except wire.WireError:
                continue
            except Exception:  # noqa: BLE001 -- a datagram must never end the tool
                continue
            env = dg.envelope
            if dg.payload.source_id == self.source_id and env.origin != self.origin and \
                    env.origin not in self.warned:
                self.warned.add(env.origin)
                print(f'v2x_alert_server: WARNING: another live station uses source id '
                      f'{self.source_id!r}: origin {env.origin:016x} session '
                      f'{env.session:016x} (this one: origin {self.origin:016x} session '
                      f'{self.session:016x}); give each station its own --source-id / '
                      'station_id', file=sys.stderr, flush=True)


def _known_event(state_dir: str, key, now: int) -> AlertData | None:
    """The live event key sent from this state directory (CLI record or gateway outbox)."""
    found = SentEvents(state_dir).lookup(key, now)
    if found is None:
        found = next((a for a in OutboxFile(state_dir).load(now) if a.key == key), None)
    return found


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
    base = alert_from_flags(args)
    try:
        ranges.check_text('source_id', args.source_id, required=True,
                          max_bytes=ranges.MAX_STATION_ID_BYTES)
        ranges.check_alert_fields(base, filled=False)
    except ranges.FieldError as exc:
        print(f'v2x_alert_server: argument --{exc.field.replace("_", "-")}: {exc}',
              file=sys.stderr)
        return ExitCode.USAGE
    try:
        signer = _signer(args, env)
    except keys.KeyConfigError as exc:
        msg = cli.NO_KEY_HELP if 'no HMAC key' in str(exc) else str(exc)
        print(f'v2x_alert_server: {msg}', file=sys.stderr)
        return ExitCode.USAGE
    state_dir = os.path.expanduser(args.state_dir)
    try:
        store = SequenceStore(state_dir, block=1)
    except (OSError, ValueError) as exc:
        print(f'v2x_alert_server: {exc}', file=sys.stderr)
        return ExitCode.ERROR
    now = time.time_ns()
    try:
        alert = fill_identity(base, station_id=args.source_id, now_ns=now,
                              default_validity_s=args.ttl_s, next_sequence=store.next,
                              previous=lambda key: _known_event(state_dir, key, now))
    except InvalidMessage as exc:
        print(f'v2x_alert_server: {exc} (state directory {state_dir})', file=sys.stderr)
        return ExitCode.USAGE
    try:
        sock = net.open_sender(args.group, args.port, args.iface, args.mcast_ttl)
        listen = net.open_receiver(args.group, args.port, args.iface)
    except (OSError, ValueError) as exc:
        print(f'v2x_alert_server: {exc}', file=sys.stderr)
        return ExitCode.ERROR
    sender = Sender(signer, origin=store.origin)
    watch = ConflictWatch(listen, signer, alert.source_id, store.origin, sender.session)
    events = SentEvents(state_dir)
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
                if sent == errors:  # the first datagram out: remember the event
                    try:
                        events.record(alert, t)
                    except OSError as exc:
                        print(f'v2x_alert_server: cannot record the event: {exc}',
                              file=sys.stderr)
                print(f'[SEND] {iso(t / 1e9)} {cli.describe(alert)}'
                      + (' cancel' if alert.cancelled else ''), flush=True)
            sent += 1
            if not args.repeat and sent >= args.count:
                break
            watch.listen(stop, args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        listen.close()
    print(f'[DONE] sent={sent - errors} errors={errors} origin={store.origin:016x} '
          f'session={sender.session:016x}', flush=True)
    return ExitCode.ERROR if sent and errors == sent else ExitCode.OK


if __name__ == '__main__':
    sys.exit(main())
