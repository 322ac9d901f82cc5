"""Bench the DENM codec beside a baseline, in the same run.

Per alert, median of --rounds rounds of --n calls each (microseconds):
  ours:     codec.encode_alert (AlertData -> UPER DENM), codec.decode_alert (UPER -> our
            alert), frames.gn_frame (BTP-B bytes -> Ethernet/GN frame), and the receive
            rules (DenmReceiver.receive_btp: parse, decode, event table);
  baseline: pycrate alone on the same value (DENM.set_val + to_uper, from_uper + get_val),
            and our own wire codec (v2x_protocol.wire.encode_alert_body / decode_alert_body)
            for the same alert, so the cost of the mapping over the ASN.1 library and of
            DENM over our protocol can be read off.

Usage (inside scripts/env.sh):  python bench/bench_denm.py [--n 500] [--rounds 5]
"""

import argparse
import statistics
import time

from pycrate_asn1dir import ITS_DENM_3

from v2x_denm import codec, frames, link
from v2x_denm.receiver import DenmReceiver
from v2x_protocol import wire


def _median_us(fn, n: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=500)
    p.add_argument('--rounds', type=int, default=5)
    args = p.parse_args()
    now = time.time_ns() // 10**6 * 10**6
    alert = wire.AlertData('rsu_server_01', 9, 1, 3, 1, now, now, 600.0, False, 37.5, 127.0,
                           'segment_A', 500.0, 1.0)
    station = codec.Station(1234, source_id='rsu_server_01')
    value = codec.alert_to_denm(alert, station)
    uper = codec.encode_alert(alert, station)
    btp = link.btp_b(uper)
    body = wire.encode_alert_body(alert)
    pdu = ITS_DENM_3.DENM_PDU_Descriptions.DENM

    def raw_encode():
        pdu.set_val(value)
        pdu.to_uper()

    def raw_decode():
        pdu.from_uper(uper)
        pdu.get_val()

    rx = DenmReceiver(own_station_id=1)
    rows = [
        ('ours: encode_alert (AlertData -> UPER)', lambda: codec.encode_alert(alert, station)),
        ('baseline: pycrate set_val + to_uper', raw_encode),
        ('baseline: our wire encode_alert_body', lambda: wire.encode_alert_body(alert)),
        ('ours: decode_alert (UPER -> AlertData)', lambda: codec.decode_alert(uper)),
        ('baseline: pycrate from_uper + get_val', raw_decode),
        ('baseline: our wire decode_alert_body', lambda: wire.decode_alert_body(body)),
        ('ours: gn_frame (BTP-B -> Ethernet/GN)', lambda: frames.gn_frame(
            btp, alert, mac=bytes(6), gn_sequence=1, now_ns=now, station=station,
            gn=frames.GnSettings())),
        ('ours: DenmReceiver.receive_btp (repeat)', lambda: rx.receive_btp(btp, now)),
    ]
    print(f'DENM {len(uper)} bytes UPER (+4 BTP-B, +56 GN, +14 Ethernet); our wire body '
          f'{len(body)} bytes')
    for name, fn in rows:
        print(f'{name:44s} {_median_us(fn, args.n, args.rounds):9.1f} us')


if __name__ == '__main__':
    main()
