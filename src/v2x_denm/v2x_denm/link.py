"""BTP-B (EN 302 636-5-1) and GeoNetworking (EN 302 636-4-1) framing; pure, no sockets.

Sent: an unsecured GeoBroadcast to a circle around the event (basic + common + GBC
extended header, 56 bytes), or a single-hop broadcast (SHB, 40 bytes) when the event has
no position; then BTP-B (4 bytes: destination port 2002 = DEN, destination port info 0);
then the UPER DENM. ``ethernet_frame`` puts it behind an Ethernet header of ethertype
0x8947, which is what an ITS-G5 interface carries and Wireshark dissects natively.
Received: ``parse_gn`` accepts unsecured GBC, GAC, SHB and TSB packets and returns the
transport payload; everything else raises MalformedFrame (secured packets: ``unsecured``).
"""

from dataclasses import dataclass
import math
import struct

ETHERTYPE_GN = 0x8947
BROADCAST_MAC = b'\xff' * 6
BTP_PORT_DENM = 2002

GN_VERSION = 1
NH_ANY, NH_COMMON, NH_SECURED = 0, 1, 2        # basic header next header
NH_BTP_A, NH_BTP_B = 1, 2                      # common header next header
HT_GEO_ANYCAST, HT_GEO_BROADCAST, HT_TSB = 3, 4, 5
HST_CIRCLE = 0
HST_SINGLE_HOP = 0                             # with HT_TSB: SHB
STATION_TYPE_RSU = 15

_BASIC = struct.Struct('>BBBB')                # version|NH, reserved, lifetime, RHL
_COMMON = struct.Struct('>BBBBHBB')            # NH|res, HT|HST, TC, flags, PL, MHL, res
_LPV = struct.Struct('>8sIiiHH')               # GN_ADDR, TST, lat, lon, PAI|speed, heading
_GBC = struct.Struct('>HH24siiHHHH')           # SN, res, SO PV, lat, lon, a, b, angle, res
_SHB = struct.Struct('>24sI')                  # SO PV, media-dependent data
_TSB = struct.Struct('>HH24s')                 # SN, res, SO PV
_BTP_B = struct.Struct('>HH')                  # destination port, destination port info
BASIC_LEN, COMMON_LEN = _BASIC.size, _COMMON.size
GBC_LEN = BASIC_LEN + COMMON_LEN + _GBC.size   # 56
SHB_LEN = BASIC_LEN + COMMON_LEN + _SHB.size   # 40
BTP_LEN = _BTP_B.size
ETH_LEN = 14


class MalformedFrame(Exception):
    """A frame or packet that is not an unsecured GN/BTP-B DENM; `reason` names why."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        super().__init__(detail)


# --- BTP-B --------------------------------------------------------------------------------

def btp_b(payload: bytes, port: int = BTP_PORT_DENM, port_info: int = 0) -> bytes:
    """BTP-B header + payload (the UDP form's datagram, the GN packet's payload)."""
    return _BTP_B.pack(port, port_info) + payload


def parse_btp_b(data: bytes, port: int = BTP_PORT_DENM) -> bytes:
    """The payload of a BTP-B packet to `port`; raises MalformedFrame."""
    if len(data) < BTP_LEN:
        raise MalformedFrame('truncated', f'{len(data)} bytes is shorter than a BTP-B header')
    dst, _info = _BTP_B.unpack_from(data)
    if dst != port:
        raise MalformedFrame('not_denm', f'BTP destination port {dst}, not {port}')
    return bytes(data[BTP_LEN:])


# --- GeoNetworking ------------------------------------------------------------------------

def lifetime_byte(seconds: float) -> int:
    """GN lifetime field: multiplier (6 bits) x base (50 ms, 1 s, 10 s, 100 s)."""
    for base_code, base_s in ((0, 0.05), (1, 1.0), (2, 10.0), (3, 100.0)):
        multiplier = math.ceil(seconds / base_s)
        if multiplier <= 63:
            return (max(multiplier, 1) << 2) | base_code
    return (63 << 2) | 3


def gn_address(mac: bytes, station_type: int = STATION_TYPE_RSU) -> bytes:
    """GN_ADDR: M=0, ST (5 bits), 10 reserved bits, then the 48-bit MAC as MID."""
    if len(mac) != 6:
        raise ValueError(f'MAC must be 6 bytes, got {len(mac)}')
    return struct.pack('>H', (station_type & 0x1F) << 10) + bytes(mac)


@dataclass(frozen=True)
class Position:
    """Where, in 1e-7 degrees (GN), and when (TAI ms since 2004 mod 2^32)."""

    lat_e7: int
    lon_e7: int
    tst_ms: int


def _pv(addr: bytes, pos: Position) -> bytes:
    # PAI 0, speed 0, heading 0: a roadside unit standing still
    return _LPV.pack(addr, pos.tst_ms & 0xFFFFFFFF, pos.lat_e7, pos.lon_e7, 0, 0)


def gn_packet(payload: bytes, *, source: bytes, sender: Position, sequence: int,
              centre: tuple[int, int] | None, radius_m: int, lifetime_s: float = 60.0,
              hop_limit: int = 10, station_type: int = STATION_TYPE_RSU) -> bytes:
    """Unsecured GN packet carrying a BTP-B payload: GeoBroadcast to the circle of
    radius_m around centre (lat_e7, lon_e7), or a single-hop broadcast when centre is None.
    source: the sender's MAC (6 bytes)."""
    addr = gn_address(source, station_type)
    pv = _pv(addr, sender)
    if centre is None:
        ht_hst, ext = (HT_TSB << 4) | HST_SINGLE_HOP, _SHB.pack(pv, 0)
        hop_limit = 1
    else:
        radius = max(1, min(int(radius_m), 0xFFFF))
        ht_hst = (HT_GEO_BROADCAST << 4) | HST_CIRCLE
        ext = _GBC.pack(sequence & 0xFFFF, 0, pv, centre[0], centre[1], radius, 0, 0, 0)
    basic = _BASIC.pack((GN_VERSION << 4) | NH_COMMON, 0, lifetime_byte(lifetime_s),
                        hop_limit)
    common = _COMMON.pack(NH_BTP_B << 4, ht_hst, 0, 0, len(payload), hop_limit, 0)
    return basic + common + ext + payload


@dataclass(frozen=True)
class GnPacket:
    """What a received GN packet says about itself, and its transport payload."""

    header_type: int
    header_subtype: int
    source_mac: bytes
    station_type: int
    payload: bytes


def parse_gn(data: bytes) -> GnPacket:
    """An unsecured GN packet (GBC, GAC, SHB, TSB) carrying BTP-B; raises MalformedFrame."""
    if len(data) < BASIC_LEN + COMMON_LEN:
        raise MalformedFrame('truncated', f'{len(data)} bytes is shorter than the GN headers')
    version_nh, _res, _lt, _rhl = _BASIC.unpack_from(data)
    version, nh = version_nh >> 4, version_nh & 0x0F
    if version not in (0, 1):
        raise MalformedFrame('unknown_version', f'GN version {version}')
    if nh == NH_SECURED:
        raise MalformedFrame('secured', 'secured GN packet (TS 103 097): not supported')
    if nh != NH_COMMON:
        raise MalformedFrame('malformed', f'basic header next header {nh}')
    nh_common, ht_hst, _tc, _flags, pl, _mhl, _res2 = _COMMON.unpack_from(data, BASIC_LEN)
    if nh_common >> 4 != NH_BTP_B:
        raise MalformedFrame('not_denm', f'common header next header {nh_common >> 4}, '
                                         'not BTP-B')
    ht, hst = ht_hst >> 4, ht_hst & 0x0F
    if ht in (HT_GEO_ANYCAST, HT_GEO_BROADCAST):
        ext = _GBC
    elif ht == HT_TSB:
        ext = _SHB if hst == HST_SINGLE_HOP else _TSB
    else:
        raise MalformedFrame('not_denm', f'GN header type {ht}/{hst} carries no broadcast')
    start = BASIC_LEN + COMMON_LEN
    if len(data) < start + ext.size:
        raise MalformedFrame('truncated', 'GN extended header truncated')
    pv = ext.unpack_from(data, start)[0 if ext is _SHB else 2]
    payload = bytes(data[start + ext.size:])
    if len(payload) < pl:
        raise MalformedFrame('truncated', f'payload {len(payload)} bytes < length {pl}')
    return GnPacket(ht, hst, pv[2:8], (pv[0] >> 2) & 0x1F, payload[:pl])


# --- Ethernet -----------------------------------------------------------------------------

def ethernet_frame(packet: bytes, source_mac: bytes, dest_mac: bytes = BROADCAST_MAC) -> bytes:
    """Ethernet II frame of ethertype 0x8947 around a GN packet."""
    return bytes(dest_mac) + bytes(source_mac) + struct.pack('>H', ETHERTYPE_GN) + packet


def parse_ethernet(frame: bytes) -> bytes:
    """The GN packet inside an Ethernet frame of ethertype 0x8947; raises MalformedFrame."""
    if len(frame) < ETH_LEN:
        raise MalformedFrame('truncated', 'shorter than an Ethernet header')
    (ethertype,) = struct.unpack_from('>H', frame, 12)
    if ethertype != ETHERTYPE_GN:
        raise MalformedFrame('not_denm', f'ethertype 0x{ethertype:04x}')
    return bytes(frame[ETH_LEN:])
