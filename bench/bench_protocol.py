"""The receiver pipeline's cost per datagram (sans-IO, one process, no sockets), and what
the two silencing floods of issue 24 item 3 do to an RSU's stop.

Rates (datagrams/s, best of --runs): repeats of a signed alert (HMAC check, range table,
replay window, event table), garbage (bad magic), an unknown key id, a counter jump of
2^62 (refused in O(1)), new events refused while the table or the key's quota is full
(state_full), heartbeats of new sessions 25 s in the future (sessions forgotten for
room), alerts signed with the fleet heartbeat key (refused before the MAC), and the range
table's fast path against its field-by-field check.

Attacks (simulated clocks, shared HMAC key: the lab deployment, the worst case): a key
holder's 15,000 alerts of 24 h under 15 made-up ids, then an RSU heard by heartbeat and
holding no live event raises a stop; a key holder's heartbeats from 20,000 new sessions
25 s in the future under the RSU's own id and origin, then the RSU's new stop is repeated
every second. Printed: the seconds from its first datagram to its delivery.

With --baseline-ref REF (e.g. the commit before a change), the same figures are measured
for v2x_protocol at REF in the same run (child processes take turns) and printed beside.
Usage: python bench/bench_protocol.py [--n 20000] [--runs 5] [--baseline-ref REF]
"""

import argparse
import json
import os
import subprocess
import sys
import time

from v2x_protocol import keys, ranges, wire
from v2x_protocol.receiver import AlertDelivered, Receiver
from v2x_protocol.sender import Sender

S = 1_000_000_000
T = 1_800_000_000 * S
KEY = keys.HmacKey(b'bench-protocol-secret-0123456789')
ALERT = wire.AlertData('rsu_server_01', 1, 1, 3, 1, T, T, 600.0, latitude=37.1,
                       longitude=127.1, road='segment_A', distance_m=500.0)


def _rate(fn, items, runs: int) -> float:
    best = 0.0
    for _ in range(runs):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = max(best, len(items) / (time.perf_counter() - start))
    return best


def _stop(sequence: int, at: int) -> wire.AlertData:
    return wire.AlertData('rsu_site7', sequence, 3, 3, 2, at, at, 60.0, latitude=37.0,
                          longitude=127.0, distance_m=40.0)


def _delay_until_delivered(rx, rsu, sequence: int, start: int) -> float:
    """The RSU repeats a new stop every second from start: seconds until it is delivered
    (120 = still refused after two minutes)."""
    for i in range(121):
        now = start + i * S
        if isinstance(rx.receive(rsu.datagram(_stop(sequence, start), now), now),
                      AlertDelivered):
            return float(i)
    return 120.0


def event_flood_attack() -> tuple[float, list[bytes], Receiver]:
    """15,000 alerts of 24 h under 15 made-up ids, then a heard RSU's stop: its delay."""
    rx = Receiver(keys.Keyring([KEY]))
    rsu = Sender(KEY, origin=7)
    rx.receive(rsu.datagram(wire.HeartbeatData('rsu_site7', 1), T), T)
    tx = Sender(KEY)
    for i in range(15_000):
        a = wire.AlertData(f'made_up_{i // 1000}', i % 1000 + 1, 3, 3, 2, T, T, 86400.0)
        rx.receive(tx.datagram(a, T + S), T + S)
    more = [tx.datagram(wire.AlertData(f'made_up_{i // 1000}', i % 1000 + 1, 3, 3, 2, T, T,
                                       86400.0), T + S) for i in range(15_000, 35_000)]
    return _delay_until_delivered(rx, rsu, 1, T + 2 * S), more, rx


def session_flood_attack() -> tuple[float, float]:
    """Heartbeats of 20,000 new sessions 25 s ahead under the RSU's id and origin, then its
    new stop: its delay; and the flood's rate (heartbeats/s)."""
    rx = Receiver(keys.Keyring([KEY]))
    rsu = Sender(KEY, origin=7)
    rx.receive(rsu.datagram(wire.HeartbeatData('rsu_site7', 1), T), T)
    flood = [wire.encode(wire.HeartbeatData('rsu_site7', 1), signer=KEY, session=1000 + i,
                         counter=1, send_time_ns=T + S + i * 50_000 + 25 * S, origin=7)
             for i in range(20_000)]
    start = time.perf_counter()
    for i, data in enumerate(flood):
        rx.receive(data, T + S + i * 50_000)
    rate = len(flood) / (time.perf_counter() - start)
    return _delay_until_delivered(rx, rsu, 1, T + 2 * S), rate


def figures(n: int, runs: int) -> dict:
    """Every figure of this bench for the v2x_protocol on sys.path."""
    tx = Sender(KEY)
    signed = [tx.datagram(ALERT, T) for _ in range(n)]
    other = Sender(keys.HmacKey(b'another-bench-secret-0123456789')).datagram(ALERT, T)
    jump = Sender(KEY, session=tx.session)
    jump.counter = 2**62
    jumped = jump.datagram(ALERT, T)
    rx = Receiver(keys.Keyring([KEY]))
    rx.receive(signed[0], T)

    def receive(data):
        rx.receive(data, T)
    event_delay, refused_new, full = event_flood_attack()
    session_delay, session_rate = session_flood_attack()
    out = {
        'signed repeats (MAC, ranges, replay, event table)': _rate(receive, signed, runs),
        'garbage (bad magic)': _rate(receive, [b'\0' * 60] * n, runs),
        'unknown key id': _rate(receive, [other] * n, runs),
        'counter jump of 2^62 (refused)': _rate(receive, [jumped] * n, runs),
        'new events refused, table/quota full (state_full)': _rate(
            lambda d: full.receive(d, T + S), refused_new, 1),
        'heartbeats of new sessions 25 s ahead (evictions)': session_rate,
        'range table, fast path': _rate(lambda a: ranges.check_alert_fields(a),
                                        [ALERT] * n, runs),
        'range table, field by field': _rate(lambda a: ranges._check_alert_each(a, True),
                                             [ALERT] * n, runs),
        'attack: event flood, RSU stop delayed (s)': event_delay,
        'attack: session flood, RSU stop delayed (s)': session_delay,
    }
    heartbeat_key = getattr(keys, 'HeartbeatKey', None)
    if heartbeat_key is not None:  # the fleet heartbeat key (not in older revisions)
        hb = heartbeat_key(b'bench-fleet-heartbeat-0123456789')
        ring = keys.Keyring([KEY], heartbeat_keys=[hb])
        fleet = Receiver(ring)
        forged = [wire.encode(ALERT, signer=hb, session=5, counter=i + 1, send_time_ns=T)
                  for i in range(n)]
        out['alerts under the heartbeat key (refused)'] = _rate(
            lambda d: fleet.receive(d, T), forged, runs)
    return out


def main() -> None:
    """Print the figures (and the baseline's beside them)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=20000)
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--baseline-ref', default='',
                   help='also measure v2x_protocol at this git revision, in the same run')
    p.add_argument('--json', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.json or not args.baseline_ref:
        got = figures(args.n, args.runs)
        if args.json:
            print(json.dumps(got))
            return
        for name, value in got.items():
            print(f'{name:52s} {value:12,.0f}')
        return
    import _baseline
    columns = {}
    with _baseline.baseline_tree(args.baseline_ref) as tree:
        env_base = {**os.environ,
                    'PYTHONPATH': tree + os.pathsep + os.environ.get('PYTHONPATH', '')}
        for label, env in (('baseline', env_base), ('ours', os.environ)) * 2:  # take turns
            out = subprocess.run([sys.executable, __file__, '--json', '--n', str(args.n),
                                  '--runs', str(max(1, args.runs // 2))], env=env,
                                 check=True, capture_output=True, text=True).stdout
            for name, value in json.loads(out).items():
                best = columns.setdefault(label, {}).get(name)
                worse_is_less = name.startswith('attack')
                if best is None or (value < best if worse_is_less else value > best):
                    columns[label][name] = value
    print(f'v2x_protocol receiver, {os.cpu_count()} CPUs, loadavg {os.getloadavg()[0]:.1f}; '
          f'baseline = {args.baseline_ref}; rates per second, best of the runs')
    print(f'{"":52s} {"baseline":>12s} {"ours":>12s}')
    for name in columns['ours']:
        base = columns['baseline'].get(name)
        shown = f'{base:12,.0f}' if base is not None else f'{"n/a":>12s}'
        print(f'{name:52s} {shown} {columns["ours"][name]:12,.0f}')


if __name__ == '__main__':
    main()
