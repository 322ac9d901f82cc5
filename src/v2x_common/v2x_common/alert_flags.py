"""The alert flags of every command-line tool (the seed server's: --type --severity
--distance-m --suggest --road --lat --lon --ttl-s, plus --confidence --clip --cancel
--sequence), one definition for v2x_inject, v2x_alert_server and v2x_denm.

The flags become an alert through v2x_conversion.alert.alert_from_flags.
"""

import argparse
import math

from v2x_common.mappings import (
    UnknownValue,
    kind_from_str,
    severity_from_str,
    suggest_from_str,
)

#: Alert fields that may be given by name ('collision', 'high', 'slow_down').
NAMED_FIELDS = {'kind': kind_from_str, 'severity': severity_from_str,
                'suggest': suggest_from_str}


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
