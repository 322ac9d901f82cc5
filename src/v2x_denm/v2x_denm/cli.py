"""v2x_denm: our alert as an ETSI DENM (UPER hex), and back.

    v2x_denm encode --type collision --severity high --lat 37.5 --lon 127.0 --sequence 9
    v2x_denm decode 0201000004d2...

encode takes the seed's alert flags (--type --severity --distance-m --suggest --road --lat
--lon --ttl-s) plus --source-id --sequence --its-station-id --cancel and prints the UPER DENM
as hex on stdout; detection and reference time are now. decode prints one JSON object:
{"denm": <the DENM as decoded>, "alert": <our alert: kind by name, degrees, ...>}.
Bad input: a message naming the field on stderr, exit status 2.
"""

import argparse
import binascii
from datetime import datetime, timezone
import json
import math
import sys
import time

from v2x_common.alert_flags import add_alert_flags
from v2x_common.exit_codes import ExitCode
from v2x_common.mappings import kind_to_str, severity_to_str, suggest_to_str
from v2x_conversion.alert import alert_from_flags
from v2x_denm import codec
from v2x_protocol.wire import AlertData


def _station_id(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
    if not 0 <= value <= codec.MAX_STATION_ID:
        raise argparse.ArgumentTypeError(f'{value} outside 0..{codec.MAX_STATION_ID}')
    return value


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog='v2x_denm', description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='command', required=True)
    enc = sub.add_parser('encode', help='alert flags -> UPER DENM hex on stdout')
    enc.add_argument('--source-id', default='',
                     help="the event's source id (default '': this station's own event)")
    enc.add_argument('--its-station-id', type=_station_id, default=None,
                     help='numeric ITS StationID of this station (default: derived from '
                     '--source-id, see docs/denm.md)')
    enc.add_argument('--station-id', type=_station_id, default=None, dest='old_station_id',
                     help='deprecated: the old name of --its-station-id')
    enc.add_argument('--station-type', type=int, default=codec.STATION_TYPE_RSU,
                     help='ITS StationType (default 15, roadSideUnit)')
    add_alert_flags(enc, ttl_default=float(codec.DEFAULT_VALIDITY_S))
    dec = sub.add_parser('decode', help='UPER DENM hex -> one JSON object on stdout')
    dec.add_argument('hex', metavar='HEX', help='the UPER DENM as hex (spaces allowed)')
    return p


def alert_from_args(args, now_ns: int) -> tuple[AlertData, codec.Station]:
    """The alert and station the encode flags describe; raises InvalidAlert."""
    source_id = args.source_id
    given = args.its_station_id if args.its_station_id is not None else args.old_station_id
    station_id = given if given is not None else codec.station_id_of(source_id or 'v2x_denm')
    station = codec.Station(station_id, args.station_type, source_id)
    alert = alert_from_flags(args, stamp_ns=now_ns, detection_time_ns=now_ns)
    return alert, station


def _iso(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 1_000_000 / 1000, tz=timezone.utc)
    return dt.strftime('%Y-%m-%dT%H:%M:%S.') + f'{dt.microsecond // 1000:03d}Z'


def _num(x: float):
    return None if math.isnan(x) else x


def alert_json(d: codec.DecodedDenm) -> dict:
    """Our alert as JSON: names for kind/severity/suggest, degrees, NaN as null."""
    a = d.alert
    return {
        'kind': kind_to_str(a.kind), 'severity': severity_to_str(a.severity),
        'suggest': suggest_to_str(a.suggest), 'source_id': a.source_id,
        'sequence': a.sequence, 'station_id': d.station_id,
        'originating_station_id': d.originating_station_id,
        'cancelled': a.cancelled, 'termination': d.termination,
        'latitude': _num(a.latitude), 'longitude': _num(a.longitude),
        'distance_m': _num(a.distance_m), 'confidence': a.confidence,
        'validity_s': a.validity_s,
        'detection_time': _iso(a.detection_time_ns), 'stamp': _iso(a.stamp_ns),
        'detection_time_ns': a.detection_time_ns, 'stamp_ns': a.stamp_ns,
        'cause_code': d.cause_code, 'sub_cause_code': d.sub_cause_code,
        'information_quality': d.information_quality,
    }


#: Alert fields -> the encode flag that sets them (for error messages).
FLAG_OF = {'latitude': '--lat', 'longitude': '--lon', 'validity_s': '--ttl-s',
           'distance_m': '--distance-m', 'sequence': '--sequence', 'kind': '--type',
           'severity': '--severity', 'confidence': '--confidence',
           'station_id': '--its-station-id', 'station_type': '--station-type',
           'road': '--road', 'source_id': '--source-id', 'suggest': '--suggest',
           'detection_time': 'the clock', 'stamp': 'the clock'}


def _error(text: str) -> int:
    print(f'v2x_denm: {text}', file=sys.stderr)
    return ExitCode.USAGE


def main(argv=None, env=None, now_ns=None) -> int:
    """Encode or decode; see --help."""
    args = parser().parse_args(argv)
    if args.command == 'encode' and args.old_station_id is not None:
        if args.its_station_id is not None:
            return _error('--station-id was renamed to --its-station-id: give only that')
        print('v2x_denm: warning: --station-id is deprecated: use --its-station-id (the old '
              'name works this release only)', file=sys.stderr)
    if args.command == 'encode':
        try:
            alert, station = alert_from_args(args, time.time_ns() if now_ns is None
                                             else now_ns)
            data = codec.encode_alert(alert, station)
        except codec.InvalidAlert as exc:
            return _error(f'{FLAG_OF.get(exc.field, exc.field)}: {exc.problem}')
        print(data.hex())
        return ExitCode.OK
    try:
        raw = binascii.unhexlify(''.join(args.hex.split()))
    except (binascii.Error, ValueError) as exc:
        return _error(f'HEX: not hexadecimal bytes ({exc})')
    try:
        value = codec.decode_uper(raw)
        decoded = codec.denm_to_alert(value)
    except codec.DenmError as exc:
        return _error(f'HEX: {exc}')
    print(json.dumps({'denm': codec.to_json_value(value), 'alert': alert_json(decoded)}))
    return ExitCode.OK


if __name__ == '__main__':
    sys.exit(main())
