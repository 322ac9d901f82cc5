"""Pieces shared by the bridge's command-line tools: link and key flags, alert lines.

Exit statuses are v2x_common.exit_codes' one table; the alert flags are
v2x_common.alert_flags' (v2x_denm uses them too).

Each tool's main(argv=None, env=None) takes its arguments and environment as parameters
(httpie style) so tests can run them in-process or as real processes.
"""

import argparse
import math

from v2x_bridge import net
from v2x_common.mappings import kind_to_str, severity_to_str, suggest_to_str
from v2x_protocol import ranges
from v2x_protocol.io import keys
from v2x_protocol.wire import AlertData


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
