"""What a gateway knows of its peers from their heartbeats (pure Python).

Bounded: at most ``max_peers`` entries (so /v2x/peers and the work per snapshot stay
bounded, whatever number of source ids heartbeats carry). A peer silent for longer than
``forget_after_s`` is forgotten. When the table is full, a heartbeat from an unknown
source takes the place of the peer heard longest ago if that one is stale; otherwise
the newcomer is refused and counted: peers already known and alive never lose their
place to new source ids.

Per signer too: the peers one signer (auth, key id) brings in are at most
``max_per_signer`` (half the table), so the fleet's shared heartbeat key, or one HMAC
key, can never fill it alone; and a source bound by the trust store to its own key (an
RSU) is never refused: there are only as many of those as the trust store lists.
"""

from collections import OrderedDict
from dataclasses import dataclass

from v2x_protocol.wire import HeartbeatData

__all__ = [
    'MAX_PEERS', 'CAMERA_DEGRADED', 'FORGET_AFTER_S', 'PeerInfo', 'PeerTable',
]

#: Entries the table holds at most.
MAX_PEERS = 1024
#: The start of an RSU heartbeat's status_message (status 2, ERROR) when its camera cannot
#: see; the reason follows (docs/protocol.md, "Camera health in the heartbeat").
CAMERA_DEGRADED = 'rsu degraded: camera '
#: A peer silent this long is forgotten (the gateway passes a longer age when its own
#: stale limit is longer).
FORGET_AFTER_S = 600.0


@dataclass(frozen=True)
class PeerInfo:
    """One peer as /v2x/peers reports it."""

    source_id: str
    role: int
    last_heard_ns: int
    stale: bool
    active_alerts: int
    clock_offset_s: float
    status: int = 0             # the peer's last heartbeat: 0 OK, 1 WARN, 2 ERROR
    status_message: str = ''    # and its message ('rsu degraded: camera ...': protocol.md)


class PeerTable:
    """source_id -> last heartbeat; stale after stale_after missed periods (the peer's own)."""

    def __init__(self, stale_after: int = 3, max_peers: int = MAX_PEERS,
                 forget_after_s: float = FORGET_AFTER_S, max_per_signer: int | None = None):
        self.stale_after = stale_after
        self.max_peers = max_peers
        self.max_per_signer = max_peers // 2 if max_per_signer is None else max_per_signer
        self.forget_after_ns = int(forget_after_s * 1e9)
        # least recently heard first: source_id -> (heartbeat, heard ns, offset, signer)
        self._peers: OrderedDict[str, tuple[HeartbeatData, int, float, object]] = OrderedDict()
        # signer -> its peers, least recently heard first (bound peers are not counted)
        self._by_signer: dict[object, OrderedDict[str, None]] = {}
        self.refused = 0  # heartbeats of unknown sources turned away: table full of live peers
        self.evicted = 0  # stale peers that made room for a new one
        self.forgotten = 0  # peers silent for longer than forget_after_s

    def __len__(self) -> int:
        return len(self._peers)

    def _stale(self, hb: HeartbeatData, heard_ns: int, now_ns: int) -> bool:
        return now_ns - heard_ns > self.stale_after * max(hb.period_s, 0.001) * 1e9

    def _drop(self, source_id: str) -> None:
        signer = self._peers.pop(source_id)[3]
        mine = self._by_signer.get(signer)
        if mine is not None:
            mine.pop(source_id, None)
            if not mine:
                del self._by_signer[signer]

    def _make_room(self, candidates, received_ns: int) -> bool:
        """Evict the least recently heard of candidates if it is stale; False if not."""
        oldest = next(iter(candidates))
        old_hb, old_heard, _, _ = self._peers[oldest]
        if not self._stale(old_hb, old_heard, received_ns):
            return False
        self._drop(oldest)
        self.evicted += 1
        return True

    def heard(self, hb: HeartbeatData, received_ns: int, clock_offset_s: float,
              signer=None, bound: bool = False) -> bool:
        """Record a heartbeat received at received_ns; False when it was refused.

        signer: who signed it ((auth, key id)); None: not known, no per-signer quota;
        bound: its source id is bound to that signer by the trust store (never refused).
        """
        peers = self._peers
        source_id = hb.source_id
        if source_id in peers:
            peers.move_to_end(source_id)
            signer = peers[source_id][3]
            mine = self._by_signer.get(signer)
            if mine is not None and source_id in mine:
                mine.move_to_end(source_id)
        elif not bound:
            mine = None if signer is None else self._by_signer.get(signer)
            if mine is not None and len(mine) >= self.max_per_signer and \
                    not self._make_room(mine, received_ns):
                self.refused += 1
                return False
            if len(peers) >= self.max_peers and not self._make_room(peers, received_ns):
                self.refused += 1
                return False
            if signer is not None:
                self._by_signer.setdefault(signer, OrderedDict())[source_id] = None
        peers[source_id] = (hb, received_ns, clock_offset_s, signer)
        return True

    def heard_event(self, event, received_ns: int) -> bool:
        """heard() for a receiver.HeartbeatReceived (its signer and binding)."""
        env = event.envelope
        return self.heard(event.heartbeat, received_ns, event.clock_offset_s,
                          (env.auth, env.key_id), event.bound)

    def prune(self, now_ns: int) -> None:
        """Forget the peers silent for longer than forget_after_s."""
        peers = self._peers
        while peers:
            source_id = next(iter(peers))
            if now_ns - peers[source_id][1] <= self.forget_after_ns:
                break
            self._drop(source_id)
            self.forgotten += 1

    def snapshot(self, now_ns: int) -> list[PeerInfo]:
        """Every peer held (after pruning), sorted by id, with its staleness at now_ns."""
        self.prune(now_ns)
        out = []
        for source_id in sorted(self._peers):
            hb, heard_ns, offset, _ = self._peers[source_id]
            out.append(PeerInfo(source_id, hb.role, heard_ns,
                                self._stale(hb, heard_ns, now_ns), hb.active_alerts, offset,
                                hb.status, hb.status_message))
        return out
