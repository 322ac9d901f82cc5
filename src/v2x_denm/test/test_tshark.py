"""An independent decoder checks our bytes: Wireshark's ITS dissectors (tshark) capture our
GeoNetworking + BTP-B + DENM frames on a veth pair and print the alert's fields back."""

import shutil
import subprocess
import threading
import time

import pytest

from v2x_common import mappings
from v2x_denm import codec, frames, link, net
from v2x_protocol.wire import AlertData

pytestmark = pytest.mark.root

FIELDS = ('frame.protocols', 'its.stationID', 'its.originatingStationID',
          'its.sequenceNumber', 'its.latitude', 'its.longitude', 'its.causeCode',
          'denm.termination', 'denm.detectionTime', 'geonw.ch.htype', 'geonw.gxc.radius',
          'btpb.dstport')
STATION = codec.Station(3_000_000_123, source_id='rsu_server_01')
NOW_NS = time.time_ns() // 1_000_000 * 1_000_000


def _alert(**kw) -> AlertData:
    base = dict(source_id='rsu_server_01', sequence=9, kind=mappings.KIND_COLLISION,
                severity=3, suggest=1, stamp_ns=NOW_NS, detection_time_ns=NOW_NS,
                validity_s=600.0, latitude=37.5, longitude=127.0, distance_m=300.0)
    base.update(kw)
    return AlertData(**base)


@pytest.fixture(scope='module')
def tshark_veth(veth):
    """The shared veth pair, when tshark is installed."""
    if not shutil.which('tshark'):
        pytest.skip('needs tshark (Debian package tshark)')
    return veth


def _capture(iface: str, count: int, send) -> list[dict]:
    """Run tshark on iface until it has `count` GN frames, calling send() until then."""
    cmd = ['tshark', '-l', '-n', '-i', iface, '-f', 'ether proto 0x8947', '-c', str(count),
           '-a', 'duration:90', '-T', 'fields', '-E', 'separator=|', '-E', 'occurrence=f']
    for f in FIELDS:
        cmd += ['-e', f]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = threading.Event()

    def watch_stderr():
        for line in proc.stderr:
            if 'Capturing on' in line:
                started.set()
    threading.Thread(target=watch_stderr, daemon=True).start()
    try:
        assert started.wait(60), 'tshark did not start capturing'
        while proc.poll() is None:  # send until tshark has its frames
            send()
            try:
                proc.wait(0.3)
            except subprocess.TimeoutExpired:
                pass
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    rows = [dict(zip(FIELDS, line.split('|'), strict=True))
            for line in out.splitlines() if line.strip()]
    assert len(rows) == count, out
    return rows


def test_tshark_decodes_our_gn_btp_denm_frames(tshark_veth):
    """tshark decodes GN/BTP-B/DENM: stationID, actionID, position and cause code are the
    alert's; a cancellation shows as termination; the UDP form is the GN payload."""
    a_dev, b_dev = tshark_veth
    sock, mac = net.open_gn(a_dev)
    gn = frames.GnSettings()
    alerts = {9: _alert(), 10: _alert(sequence=10, kind=mappings.KIND_FIRE,
                                      latitude=-33.8688197, longitude=151.2092955),
              11: _alert(sequence=11, cancelled=True, stamp_ns=NOW_NS + 1_000_000)}
    sent = {}
    for i, (seq, alert) in enumerate(alerts.items()):
        btp = frames.denm_btp(alert, STATION)
        frame = frames.gn_frame(btp, alert, mac=mac, gn_sequence=i, now_ns=NOW_NS,
                                station=STATION, gn=gn)
        # the UDP form carries exactly the BTP-B + DENM bytes of the GN frame
        assert link.parse_gn(link.parse_ethernet(frame)).payload == btp
        sent[seq] = frame
    try:
        rows = _capture(b_dev, 6, lambda: [sock.send(f) for f in sent.values()])
    finally:
        sock.close()
    by_seq = {int(r['its.sequenceNumber']): r for r in rows}
    assert set(by_seq) == set(alerts)
    for seq, r in by_seq.items():
        alert = alerts[seq]
        assert r['frame.protocols'] == 'eth:ethertype:gnw:btpb:its'
        assert int(r['btpb.dstport']) == 2002
        assert int(r['its.stationID']) == STATION.station_id
        assert int(r['its.originatingStationID']) == STATION.station_id
        assert int(r['its.latitude']) == round(alert.latitude * 1e7)
        assert int(r['its.longitude']) == round(alert.longitude * 1e7)
        assert r['geonw.ch.htype'] == '0x40'  # GeoBroadcast, circle
        assert int(r['geonw.gxc.radius']) == 300
        assert int(r['denm.detectionTime']) == codec.unix_ms_to_its(NOW_NS // 1_000_000)
        if alert.cancelled:
            assert r['denm.termination'] in ('0', 'isCancellation')
            assert r['its.causeCode'] == ''
        else:
            assert int(r['its.causeCode']) == codec.KIND_TO_CAUSE[alert.kind][0]
            assert r['denm.termination'] == ''
