"""What a gateway knows of its peers from their heartbeats (pure Python)."""

from dataclasses import dataclass

from v2x_protocol.wire import HeartbeatData


@dataclass(frozen=True)
class PeerInfo:
    """One peer as /v2x/peers reports it."""

    source_id: str
    role: int
    last_heard_ns: int
    stale: bool
    active_alerts: int
    clock_offset_s: float


class PeerTable:
    """source_id -> last heartbeat; stale after stale_after missed periods (the peer's own)."""

    def __init__(self, stale_after: int = 3):
        self.stale_after = stale_after
        self._peers: dict[str, tuple[HeartbeatData, int, float]] = {}

    def heard(self, hb: HeartbeatData, received_ns: int, clock_offset_s: float) -> None:
        """Record a heartbeat received at received_ns."""
        self._peers[hb.source_id] = (hb, received_ns, clock_offset_s)

    def snapshot(self, now_ns: int) -> list[PeerInfo]:
        """Every peer ever heard, sorted by id, with its staleness at now_ns."""
        out = []
        for source_id in sorted(self._peers):
            hb, heard_ns, offset = self._peers[source_id]
            limit_ns = self.stale_after * max(hb.period_s, 0.001) * 1e9
            out.append(PeerInfo(source_id, hb.role, heard_ns, now_ns - heard_ns > limit_ns,
                                hb.active_alerts, offset))
        return out
