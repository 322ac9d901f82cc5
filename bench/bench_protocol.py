"""The receiver pipeline's cost per datagram (sans-IO, one process, no sockets).

Prints datagrams/s for: repeats of a signed alert (HMAC check, range table, replay window,
event table), garbage (bad magic), an unknown key id, a counter jump of 2^62 (refused in
O(1)), and the range table's fast path against its field-by-field check. Best of --runs.
Usage: python bench/bench_protocol.py [--n 20000] [--runs 5]
"""

import argparse
import time

from v2x_protocol import keys, ranges, wire
from v2x_protocol.receiver import Receiver
from v2x_protocol.sender import Sender

T = 1_800_000_000 * 10**9
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


def main() -> None:
    """Print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=20000)
    p.add_argument('--runs', type=int, default=5)
    args = p.parse_args()
    tx = Sender(KEY)
    signed = [tx.datagram(ALERT, T) for _ in range(args.n)]
    other = Sender(keys.HmacKey(b'another-bench-secret-0123456789')).datagram(ALERT, T)
    jump = Sender(KEY, session=tx.session)
    jump.counter = 2**62
    jumped = jump.datagram(ALERT, T)
    rx = Receiver(keys.Keyring([KEY]))
    rx.receive(signed[0], T)

    def receive(data):
        rx.receive(data, T)
    figures = {
        'signed repeats (MAC, ranges, replay, event table)': _rate(receive, signed, args.runs),
        'garbage (bad magic)': _rate(receive, [b'\0' * 60] * args.n, args.runs),
        'unknown key id': _rate(receive, [other] * args.n, args.runs),
        'counter jump of 2^62 (refused)': _rate(receive, [jumped] * args.n, args.runs),
        'range table, fast path': _rate(lambda a: ranges.check_alert_fields(a),
                                        [ALERT] * args.n, args.runs),
        'range table, field by field': _rate(lambda a: ranges._check_alert_each(a, True),
                                             [ALERT] * args.n, args.runs),
    }
    for name, rate in figures.items():
        print(f'{name:52s} {rate:12,.0f} /s')


if __name__ == '__main__':
    main()
