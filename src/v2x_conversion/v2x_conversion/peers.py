"""v2x_msgs/PeerArray <-> v2x_protocol's peer table (PeerInfo). Nothing else.

``path`` and ``authenticated`` of a PeerStatus (how the peer was last heard) are the
gateway's, not the peer table's: they come in (and go out) beside each PeerInfo.
"""

from typing import Iterable, Mapping

from v2x_conversion.heartbeat import MAX_ACTIVE_ALERTS
from v2x_conversion.times import ns_to_time, time_to_ns
from v2x_msgs.msg import Alert, PeerArray, PeerStatus
from v2x_protocol.peers import PeerInfo

#: How a peer not in the paths map was heard: radio, unverified.
DEFAULT_HOW = (Alert.PATH_RADIO, False)


def peers_to_msg(peers: Iterable[PeerInfo],
                 how: Mapping[str, tuple[int, bool]] | None = None) -> PeerArray:
    """The peer table -> PeerArray; how: source_id -> (Alert.PATH_*, authenticated)
    (left at the message's defaults when None)."""
    out = PeerArray()
    out.peers = [_status(p, how) for p in peers]
    return out


def _status(p: PeerInfo, how) -> PeerStatus:
    s = PeerStatus(source_id=p.source_id, role=p.role, last_heard=ns_to_time(p.last_heard_ns),
                   stale=p.stale, active_alerts=min(p.active_alerts, MAX_ACTIVE_ALERTS),
                   clock_offset_s=float(p.clock_offset_s), status=p.status,
                   status_message=p.status_message)
    if how is not None:
        s.path, s.authenticated = how.get(p.source_id, DEFAULT_HOW)
    return s


def peers_from_msg(msg: PeerArray) -> list[tuple[PeerInfo, int, bool]]:
    """A PeerArray -> (PeerInfo, path, authenticated) per peer."""
    return [(PeerInfo(source_id=s.source_id, role=int(s.role),
                      last_heard_ns=time_to_ns(s.last_heard), stale=bool(s.stale),
                      active_alerts=int(s.active_alerts),
                      clock_offset_s=float(s.clock_offset_s), status=int(s.status),
                      status_message=s.status_message),
             int(s.path), bool(s.authenticated)) for s in msg.peers]
