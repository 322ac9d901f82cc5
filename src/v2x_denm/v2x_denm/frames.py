"""An alert as the bytes of the two link forms (pure): the UDP form (BTP-B + UPER DENM)
and the GeoNetworking frame (Ethernet + GN GeoBroadcast + the same BTP-B + DENM)."""

from dataclasses import dataclass
import math

from v2x_denm import codec, link
from v2x_protocol.wire import AlertData


@dataclass(frozen=True)
class GnSettings:
    """How GN frames are addressed: the circle's radius when the alert gives no distance,
    the packet lifetime and hop limit, and the sender's own position (NaN: the event's)."""

    default_radius_m: float = 1000.0
    lifetime_s: float = 60.0
    hop_limit: int = 10
    station_lat: float = math.nan
    station_lon: float = math.nan


def denm_btp(alert: AlertData, station: codec.Station) -> bytes:
    """The UDP form: BTP-B header (port 2002) + UPER DENM; raises codec.InvalidAlert."""
    return link.btp_b(codec.encode_alert(alert, station))


def _e7(value: float) -> int:
    return 0 if math.isnan(value) else round(value * 1e7)


def gn_frame(btp: bytes, alert: AlertData, *, mac: bytes, gn_sequence: int, now_ns: int,
             station: codec.Station, gn: GnSettings) -> bytes:
    """Ethernet frame (broadcast, ethertype 0x8947) carrying btp in an unsecured GN
    GeoBroadcast to the circle around the event (radius: distance_m, else the default),
    or a single-hop broadcast when the event has no position."""
    located = not (math.isnan(alert.latitude) or math.isnan(alert.longitude))
    centre = (_e7(alert.latitude), _e7(alert.longitude)) if located else None
    radius = alert.distance_m if math.isfinite(alert.distance_m) and alert.distance_m > 0 \
        else gn.default_radius_m
    own = not (math.isnan(gn.station_lat) or math.isnan(gn.station_lon))
    sender = link.Position(_e7(gn.station_lat if own else alert.latitude),
                           _e7(gn.station_lon if own else alert.longitude),
                           codec.unix_ms_to_its(now_ns // 1_000_000))
    packet = link.gn_packet(btp, source=mac, sender=sender, sequence=gn_sequence,
                            centre=centre, radius_m=math.ceil(radius),
                            lifetime_s=gn.lifetime_s, hop_limit=gn.hop_limit,
                            station_type=station.station_type)
    return link.ethernet_frame(packet, mac)
