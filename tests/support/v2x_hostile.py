"""Hostile datagrams a sender without the key can make (bench/bench_flood.py and tests;
beside the test harness, never installed on a vehicle).

Each kind stops at a different step of the receiver: ``bad_magic`` and ``truncated`` at
the frame check, ``unknown_key`` at the key lookup, ``bad_signature`` only after an
HMAC-SHA256 over the whole datagram (the sender knows the key id: it is on the wire in
every signed datagram, so a listener learns it; it cannot make the tag).
"""

import os
import struct
import time

from v2x_protocol import wire
from v2x_protocol.wire import AlertData

KINDS = ('bad_magic', 'truncated', 'unknown_key', 'bad_signature')
#: What the receiver counts each kind as (the gateway's counter dropped_<reason>).
REASON = {'bad_magic': 'malformed', 'truncated': 'malformed', 'unknown_key': 'unknown_key',
          'bad_signature': 'bad_signature'}


class _ForgedTag:
    """Signs with random bytes under a chosen key id (what a no-key sender can do)."""

    auth = wire.AUTH_HMAC

    def __init__(self, key_id: bytes):
        self.key_id = key_id

    def sign(self, data: bytes) -> bytes:
        return os.urandom(32)


def _alert(n: int) -> AlertData:
    now = time.time_ns()
    return AlertData(f'flood_{n % 997}', n + 1, 3, 3, 2, now, now, 60.0,
                     latitude=37.0, longitude=127.0, road='segment_A', distance_m=10.0)


def make(kind: str, key_id: bytes, n: int = 0) -> bytes:
    """The n-th datagram of one kind; key_id is the receiver's (bad_signature) or any."""
    if kind == 'bad_magic':
        return b'XX' + os.urandom(62)
    if kind == 'unknown_key':
        key_id = bytes(b ^ 0xFF for b in key_id)
    elif kind not in ('truncated', 'bad_signature'):
        raise ValueError(f'unknown kind {kind!r}; expected one of {", ".join(KINDS)}')
    data = wire.encode(_alert(n), signer=_ForgedTag(key_id), session=n, counter=n + 1,
                       send_time_ns=time.time_ns())
    if kind == 'truncated':
        return data[:wire.HEADER_LEN + struct.unpack_from('>H', data, 6)[0] // 2]
    return data


def pool(kinds, key_id: bytes, per_kind: int = 64) -> list[bytes]:
    """per_kind datagrams of each kind, interleaved (a mixed flood cycles through it)."""
    return [make(kind, key_id, n) for n in range(per_kind) for kind in kinds]
