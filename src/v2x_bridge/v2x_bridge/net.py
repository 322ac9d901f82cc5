"""UDP multicast sockets for the gateway and the CLI tools (the only socket code).

iface is an IPv4 address ('127.0.0.1', '192.168.1.20'), an interface name ('wlan0'),
or '' for the kernel's choice. Both sockets set SO_REUSEADDR so the gateway, the CLI
client and a capture tool coexist on one port.
"""

import errno
import ipaddress
import socket
import struct

DEFAULT_GROUP = '239.20.20.20'
DEFAULT_PORT = 5520


def _is_address(iface: str) -> bool:
    try:
        ipaddress.IPv4Address(iface)
    except ValueError:
        return False
    return True


def _mreqn(group: str, iface: str) -> bytes:
    """struct ip_mreqn (Linux): group, local address, interface index."""
    if not iface:
        return socket.inet_aton(group) + socket.inet_aton('0.0.0.0') + struct.pack('@i', 0)
    if _is_address(iface):
        return socket.inet_aton(group) + socket.inet_aton(iface) + struct.pack('@i', 0)
    try:
        index = socket.if_nametoindex(iface)
    except OSError:
        raise ValueError(f'no network interface named {iface!r}; this host has: '
                         f'{_interfaces()}') from None
    return socket.inet_aton(group) + socket.inet_aton('0.0.0.0') + struct.pack('@i', index)


def _interfaces() -> str:
    """'lo, eth0, wlan0' (the names `ip -br addr` shows with their addresses)."""
    try:
        return ', '.join(name for _, name in socket.if_nameindex())
    except OSError:
        return '(cannot list them)'


def _explain(exc: OSError, iface: str) -> Exception:
    """EADDRNOTAVAIL / ENODEV from a multicast option: name iface and list the choices."""
    if iface and exc.errno in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.EINVAL):
        return ValueError(f'iface {iface}: no interface of this host has that address '
                          f'({exc.strerror}); give an address of this host or an interface '
                          f'name: {_interfaces()} (`ip -br addr` shows their addresses)')
    return exc


def check_group(group: str, port: int) -> None:
    """Raise ValueError unless group is an IPv4 multicast address and port a UDP port."""
    try:
        addr = ipaddress.IPv4Address(group)
    except ValueError:
        raise ValueError(f'group {group!r} is not an IPv4 address') from None
    if not addr.is_multicast:
        raise ValueError(f'group {group} is not a multicast address (224.0.0.0/4)')
    if not 1 <= int(port) <= 65535:
        raise ValueError(f'port {port} outside 1..65535')


def open_receiver(group: str, port: int, iface: str = '', timeout_s: float | None = 0.2,
                  rcvbuf: int = 4 << 20) -> socket.socket:
    """A socket joined to group on iface, bound to (group, port)."""
    check_group(group, port)
    mreq = _mreqn(group, iface)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        except OSError:
            pass  # a smaller buffer still works
        sock.bind((group, port))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        sock.settimeout(timeout_s)
    except OSError as exc:
        sock.close()
        raise _explain(exc, iface) from None
    return sock


def open_sender(group: str, port: int, iface: str = '', ttl: int = 1,
                loop: bool = True) -> socket.socket:
    """A socket whose multicast goes out on iface with the given TTL (connected to group)."""
    check_group(group, port)
    if not 0 <= ttl <= 255:
        raise ValueError(f'ttl {ttl} outside 0..255')
    mreq = _mreqn(group, iface)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1 if loop else 0)
        if iface:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreq)
        sock.connect((group, port))
    except OSError as exc:
        sock.close()
        raise _explain(exc, iface) from None
    return sock
