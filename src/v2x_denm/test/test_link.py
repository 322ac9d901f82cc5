import struct

import pytest

from v2x_denm import link

MAC = bytes.fromhex('020000000001')
SENDER = link.Position(375000000, 1270000000, 123456)
DENM = bytes(range(44))


def _gbc(payload=DENM, **kw) -> bytes:
    args = dict(source=MAC, sender=SENDER, sequence=7, centre=(375000000, 1270000000),
                radius_m=500)
    args.update(kw)
    return link.gn_packet(link.btp_b(payload), **args)


def test_btp_b_header():
    """BTP-B: destination port 2002, port info 0, then the payload."""
    assert link.btp_b(DENM)[:4] == bytes.fromhex('07d20000')
    assert link.parse_btp_b(link.btp_b(DENM)) == DENM


def test_gbc_layout():
    """GeoBroadcast circle: version 1, common header, BTP-B next, HT 4 / HST 0, 56 bytes."""
    pkt = _gbc()
    assert len(pkt) == link.GBC_LEN + 4 + len(DENM)
    assert pkt[0] == 0x11                        # version 1, next header common
    assert pkt[4] >> 4 == link.NH_BTP_B
    assert pkt[5] == 0x40                        # GeoBroadcast, circle
    assert struct.unpack_from('>H', pkt, 8)[0] == 4 + len(DENM)  # payload length
    centre_lat, centre_lon, radius = struct.unpack_from('>iiH', pkt, 12 + 28)
    assert (centre_lat, centre_lon, radius) == (375000000, 1270000000, 500)
    gn = link.parse_gn(pkt)
    assert (gn.header_type, gn.source_mac, gn.station_type) == (4, MAC, 15)
    assert link.parse_btp_b(gn.payload) == DENM


def test_shb_when_no_position():
    """No event position: a single-hop broadcast (HT 5 / HST 0), 40 bytes of GN headers."""
    pkt = _gbc(centre=None)
    assert pkt[5] == 0x50 and len(pkt) == link.SHB_LEN + 4 + len(DENM)
    assert link.parse_btp_b(link.parse_gn(pkt).payload) == DENM


def test_ethernet_frame():
    """Broadcast destination, our MAC, ethertype 0x8947."""
    frame = link.ethernet_frame(_gbc(), MAC)
    assert frame[:6] == b'\xff' * 6 and frame[6:12] == MAC and frame[12:14] == b'\x89\x47'
    assert link.parse_ethernet(frame) == _gbc()


@pytest.mark.parametrize('seconds, byte', [(60.0, (60 << 2) | 1), (0.05, (1 << 2) | 0),
                                           (600.0, (60 << 2) | 2), (1e9, (63 << 2) | 3)])
def test_lifetime(seconds, byte):
    """Lifetime: the smallest base whose multiplier fits 6 bits."""
    assert link.lifetime_byte(seconds) == byte


def _mutate(pkt: bytes, offset: int, value: int) -> bytes:
    return pkt[:offset] + bytes([value]) + pkt[offset + 1:]


@pytest.mark.parametrize('packet, reason', [
    (b'', 'truncated'),                                 # nothing
    (_gbc()[:20], 'truncated'),                         # extended header cut
    (_gbc()[:-1], 'truncated'),                         # payload shorter than its length
    (_mutate(_gbc(), 0, 0x12), 'secured'),              # next header: secured packet
    (_mutate(_gbc(), 0, 0x21), 'unknown_version'),      # GN version 2
    (_mutate(_gbc(), 0, 0x13), 'malformed'),            # unknown basic next header
    (_mutate(_gbc(), 4, 0x10), 'not_denm'),             # BTP-A, not BTP-B
    (_mutate(_gbc(), 5, 0x10), 'not_denm'),             # beacon
])
def test_hostile_gn(packet, reason):
    """Packets that are no unsecured GN + BTP-B raise MalformedFrame with a reason."""
    with pytest.raises(link.MalformedFrame) as info:
        link.parse_gn(packet)
    assert info.value.reason == reason


@pytest.mark.parametrize('data, reason', [
    (b'\x07', 'truncated'),                             # shorter than BTP-B
    (bytes.fromhex('07d1000000'), 'not_denm'),          # port 2001: a CAM
])
def test_hostile_btp(data, reason):
    """BTP-B to another port, or truncated, is refused."""
    with pytest.raises(link.MalformedFrame) as info:
        link.parse_btp_b(data)
    assert info.value.reason == reason


def test_not_gn_ethertype():
    """An IPv4 frame is not ours."""
    with pytest.raises(link.MalformedFrame):
        link.parse_ethernet(b'\xff' * 12 + b'\x08\x00' + b'x')
