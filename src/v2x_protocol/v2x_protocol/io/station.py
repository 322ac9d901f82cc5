"""Default station ids (reads the host name): one derivation for every node.

An RSU's default id is 'rsu_<host>' so that two RSUs never share a default (issue 12);
a vehicle's is a random pseudonym 'vehicle_<8 hex digits>' (issue 18: vehicles must not
be trackable by a fixed id). alert_gateway and denm_gateway both use these, so the DENM
face numbers the same station as the gateway when neither is configured.
"""

import re
import secrets
import socket

from v2x_protocol.ranges import MAX_STATION_ID_BYTES

__all__ = ['MAX_STATION_ID_BYTES', 'default_station_id', 'pseudonym']


def default_station_id(role: str) -> str:
    """'rsu_<host>' for an RSU; a fresh pseudonym() for anything else."""
    if role != 'rsu':
        return pseudonym()
    host = re.sub(r'[^A-Za-z0-9_-]', '_', socket.gethostname().split('.')[0]) or 'host'
    return f'rsu_{host}'[:MAX_STATION_ID_BYTES]


def pseudonym() -> str:
    """A vehicle's random station id, 'vehicle_<8 hex digits>'."""
    return f'vehicle_{secrets.token_hex(4)}'
