"""Pieces shared by the command-line tools: exit codes, common flags, alert lines.

Each tool's main(argv=None, env=None) takes its arguments and environment as parameters
(httpie style) so tests can run them in-process or as real processes.
"""

import argparse
from enum import IntEnum
import math

from v2x_bridge import net
from v2x_common.mappings import (
    UnknownValue,
    kind_from_str,
    kind_to_str,
    severity_from_str,
    severity_to_str,
    suggest_from_str,
    suggest_to_str,
)
from v2x_protocol import ranges
from v2x_protocol.io import keys
from v2x_protocol.wire import AlertData

#: Alert fields that may be given by name ('collision', 'high', 'slow_down').
NAMED_FIELDS = {'kind': kind_from_str, 'severity': severity_from_str,
                'suggest': suggest_from_str}


class ExitCode(IntEnum):
    """Exit statuses of the CLI tools."""

    OK = 0
    ERROR = 1
    USAGE = 2          # bad flags, or no key and no --insecure
    NO_SUBSCRIBER = 3  # v2x_inject: nobody listened within --wait-s
    INTERRUPTED = 130


def _choice(parse):
    def convert(text: str) -> int:
        try:
            return parse(text)
        except UnknownValue as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def add_alert_flags(p: argparse.ArgumentParser, ttl_default: float) -> None:
    """The seed server's alert flags (--type --severity --distance-m ... --ttl-s)."""
    g = p.add_argument_group('alert')
    g.add_argument('--type', dest='kind', metavar='TYPE', type=_choice(kind_from_str),
                   default='collision',
                   help='collision | fire | blockage | unknown (default collision)')
    g.add_argument('--severity', type=_choice(severity_from_str), default='high',
                   help='low | medium | high (default high)')
    g.add_argument('--distance-m', type=float, default=500.0,
                   help='distance figure in metres (default 500)')
    g.add_argument('--suggest', type=_choice(suggest_from_str), default='slow_down',
                   help='none | slow_down | stop (default slow_down)')
    g.add_argument('--road', default='segment_A', help='road segment id (default segment_A)')
    g.add_argument('--lat', type=float, default=math.nan, help='latitude (WGS84 degrees)')
    g.add_argument('--lon', type=float, default=math.nan, help='longitude (WGS84 degrees)')
    g.add_argument('--ttl-s', type=float, default=ttl_default,
                   help=f'validity in seconds after detection (default {ttl_default:g}'
                   + (', 0 = the gateway default 600)' if ttl_default == 0 else ')'))
    g.add_argument('--confidence', type=float, default=1.0, help='0..1 (default 1)')
    g.add_argument('--clip', action='store_true', help='request an evidence clip')
    g.add_argument('--cancel', action='store_true', help='withdraw the event')
    g.add_argument('--sequence', type=int, default=0,
                   help='event sequence (default 0: the next one is assigned)')


def add_link_flags(p: argparse.ArgumentParser) -> None:
    """Group, port and interface."""
    g = p.add_argument_group('link')
    g.add_argument('--group', default=net.DEFAULT_GROUP,
                   help=f'multicast group (default {net.DEFAULT_GROUP})')
    g.add_argument('--port', type=int, default=net.DEFAULT_PORT,
                   help=f'UDP port (default {net.DEFAULT_PORT})')
    g.add_argument('--iface', default='', help='interface address or name (several NICs)')


def add_key_flags(p: argparse.ArgumentParser) -> None:
    """--hmac-key, --key-file, --insecure (the key may also come from $V2X_KEY)."""
    g = p.add_argument_group('authentication')
    g.add_argument('--hmac-key', default='',
                   help=f'shared HMAC secret (prefer ${keys.ENV_KEY} or --key-file: '
                   'command lines are visible to other users)')
    g.add_argument('--key-file', default='',
                   help='HMAC secret file, or an Ed25519 private key (PEM) from v2x_keygen')
    g.add_argument('--insecure', action='store_true',
                   help='send/accept unsigned datagrams (testing only)')


NO_KEY_HELP = (f'no key given: use --key-file FILE, set {keys.ENV_KEY} or --hmac-key SECRET'
               ' (the same on both sides; ' + keys.MAKE_SECRET_HELP + '); or pass '
               '--insecure to run without authentication')


def describe(a: AlertData) -> str:
    """'seq=1 src=rsu_server_01 type=collision sev=high dist=500.0m suggest=slow_down'
    (text fields printed so that nothing in them can move the terminal's cursor)."""
    dist = f'{a.distance_m:.1f}m' if math.isfinite(a.distance_m) else 'unknown'
    return (f'seq={a.sequence} src={ranges.printable(a.source_id)} type={kind_to_str(a.kind)} '
            f'sev={severity_to_str(a.severity)} dist={dist} suggest={suggest_to_str(a.suggest)}')
