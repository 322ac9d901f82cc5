"""Sockets of the two DENM faces: UDP (BTP-B + UPER DENM per datagram) and a raw
AF_PACKET socket for GeoNetworking frames (ethertype 0x8947; needs CAP_NET_RAW)."""

import socket

from v2x_denm.link import ETHERTYPE_GN

PACKET_OUTGOING = 4  # sll_pkttype of a frame this host sent (the kernel shows it to us too)


def parse_hostport(text: str, what: str) -> tuple[str, int]:
    """'host:port' -> (host, port); raises ValueError naming `what`."""
    host, sep, port = text.rpartition(':')
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'{what}: {text!r} is not host:port')
    return host, int(port)


def open_udp(bind: tuple[str, int] | None, timeout_s: float = 0.2) -> socket.socket:
    """A UDP socket, bound to (host, port) when given (receiving), else to an ephemeral
    port (sending only). SO_REUSEADDR so a capture tool or a second reader can coexist."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(bind or ('0.0.0.0', 0))
        s.settimeout(timeout_s)
    except OSError:
        s.close()
        raise
    return s


def open_gn(iface: str, timeout_s: float = 0.2) -> tuple[socket.socket, bytes]:
    """A raw socket on iface for ethertype 0x8947 and the interface's MAC address."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE_GN))
    try:
        s.bind((iface, ETHERTYPE_GN))
        s.settimeout(timeout_s)
        mac = s.getsockname()[4]
    except OSError:
        s.close()
        raise
    if len(mac) != 6:
        s.close()
        raise OSError(f'{iface} has no 6-byte MAC address (not an Ethernet-like link)')
    return s, bytes(mac)


def recv_gn(s: socket.socket) -> bytes | None:
    """One received frame (Ethernet header included), or None for one we sent ourselves."""
    frame, addr = s.recvfrom(65535)
    if addr[2] == PACKET_OUTGOING:
        return None
    return frame
