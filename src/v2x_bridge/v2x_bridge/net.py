"""UDP multicast sockets for the gateway and the CLI tools (the only socket code).

iface is an IPv4 address ('127.0.0.1', '192.168.1.20'), an interface name ('wlan0'),
or '' for the kernel's choice. Both sockets set SO_REUSEADDR so the gateway, the CLI
client and a capture tool coexist on one port.

Under a flood the receiver's kernel buffer is what absorbs bursts: open_receiver asks for
RCVBUF_BYTES (SO_RCVBUFFORCE when the process may exceed net.core.rmem_max, else
SO_RCVBUF, which the kernel caps at rmem_max) and turns on SO_RXQ_OVFL, so that
recv_batch() learns how many datagrams the kernel dropped because the buffer was full.
"""

import ipaddress
import select
import socket
import struct

DEFAULT_GROUP = '239.20.20.20'
DEFAULT_PORT = 5520
#: Receive buffer asked for; the kernel doubles it for its bookkeeping and then holds
#: about 5,000 datagrams of 150 bytes (~830 bytes each with the kernel's overhead on
#: loopback): 0.1 s of a 60,000/s flood, 0.3 s of work for a gateway that checks 15,000
#: MACs/s. Enough to ride out a scheduling stall; larger would only queue garbage ahead
#: of a real alert for longer when the gateway falls behind (measured: a 16 MiB buffer
#: held real alerts back by 0.5-1.2 s under a flood the gateway could not keep up with,
#: where a lost first datagram costs one repeat interval).
RCVBUF_BYTES = 2 << 20
#: Linux socket options (not all exported by Python's socket module).
SO_RCVBUFFORCE = getattr(socket, 'SO_RCVBUFFORCE', 33)
SO_RXQ_OVFL = getattr(socket, 'SO_RXQ_OVFL', 40)
_U32 = struct.Struct('@I')
_ANC_SPACE = socket.CMSG_SPACE(_U32.size)


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
        raise ValueError(f'no network interface named {iface!r}') from None
    return socket.inet_aton(group) + socket.inet_aton('0.0.0.0') + struct.pack('@i', index)


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


def _set_rcvbuf(sock: socket.socket, rcvbuf: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)  # needs CAP_NET_ADMIN
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # capped at rmem_max
        except OSError:
            pass  # a smaller buffer still works


def open_receiver(group: str, port: int, iface: str = '', timeout_s: float | None = 0.2,
                  rcvbuf: int = RCVBUF_BYTES) -> socket.socket:
    """A socket joined to group on iface, bound to (group, port), counting kernel drops.

    timeout_s 0 makes it non-blocking (for recv_batch with a poll-based wait)."""
    check_group(group, port)
    mreq = _mreqn(group, iface)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _set_rcvbuf(sock, rcvbuf)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        except OSError:
            pass  # not Linux: kernel drops go uncounted
        sock.bind((group, port))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        sock.settimeout(timeout_s)
    except OSError:
        sock.close()
        raise
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
    except OSError:
        sock.close()
        raise
    return sock


def rcvbuf_bytes(sock: socket.socket) -> int:
    """The receive buffer the kernel granted (what getsockopt reports)."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


class BatchReader:
    """Drains a non-blocking receiver: wait up to wait_s for one datagram, then read all
    that are queued (at most max_batch) without waiting; keeps the kernel's drop count.

    kernel_drops is the latest SO_RXQ_OVFL figure: datagrams the kernel discarded since
    the socket opened because its receive buffer was full (a cumulative u32)."""

    def __init__(self, sock: socket.socket, max_batch: int = 256, bufsize: int = 2048):
        sock.setblocking(False)
        self.sock = sock
        self.max_batch = max_batch
        self.bufsize = bufsize
        self.kernel_drops = 0
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)

    def read(self, wait_s: float) -> list[bytes]:
        """The datagrams queued now, waiting up to wait_s for the first; [] on timeout.

        The first is read with recvmsg (its ancillary data carries the kernel's drop
        count), the rest with the cheaper recv. Raises OSError when the socket fails."""
        if not self._poll.poll(wait_s * 1000.0):
            return []
        try:
            data, anc, _flags, _addr = self.sock.recvmsg(self.bufsize, _ANC_SPACE)
        except BlockingIOError:
            return []
        if anc:
            self._ancillary(anc)
        out = [data]
        recv, bufsize = self.sock.recv, self.bufsize
        for _ in range(self.max_batch - 1):
            try:
                out.append(recv(bufsize))
            except BlockingIOError:
                break
        return out

    def _ancillary(self, anc) -> None:
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                self.kernel_drops = _U32.unpack_from(value)[0]
