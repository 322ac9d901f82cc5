"""v2x_msgs / diagnostic_msgs -> the console core's inputs (the messages only the console
reads). The alert's conversion, both ways, is v2x_conversion.alert (every node's)."""

from v2x_common.timeutil import to_seconds
from v2x_console.core import (
    ClipInput,
    DiagnosticInput,
    PeerInput,
    PolicyInput,
)
from v2x_console.held import HeldInput
from v2x_conversion.alert import alert_from_msg


def peer_inputs(m) -> list[PeerInput]:
    """A PeerArray message."""
    return [PeerInput(source_id=p.source_id, role=p.role, last_heard=to_seconds(p.last_heard),
                      stale=p.stale, active_alerts=p.active_alerts,
                      clock_offset_s=float(p.clock_offset_s), path=p.path,
                      authenticated=p.authenticated, status=p.status,
                      status_message=p.status_message) for p in m.peers]


def policy_input(m) -> PolicyInput:
    """A PolicyState message."""
    return PolicyInput(stamp=to_seconds(m.header.stamp), action=m.action,
                       speed_limit=float(m.speed_limit), rule=m.rule, source_id=m.source_id,
                       sequence=m.sequence, distance_m=float(m.distance_m), enabled=m.enabled)


def _level(level) -> int:
    # DiagnosticStatus.level is a byte field (b'\x01') in the generated Python.
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)


def diagnostic_inputs(m) -> list[DiagnosticInput]:
    """A DiagnosticArray message."""
    return [DiagnosticInput(name=s.name, level=_level(s.level), message=s.message,
                            values={kv.key: kv.value for kv in s.values}) for s in m.status]


def clip_input(m) -> ClipInput:
    """A Clip message."""
    return ClipInput(clip_id=m.clip_id, t0=to_seconds(m.t0), path=m.path, sha256=m.sha256,
                     duration_s=float(m.duration_s), gaps=tuple(m.gaps), error=m.error)


def held_input(m) -> HeldInput:
    """A HeldEvent message (hazard_detector's operator confirmation)."""
    return HeldInput(hold_id=m.hold_id, state=m.state, alert=alert_from_msg(m.alert),
                     threshold=float(m.threshold), deadline=to_seconds(m.deadline),
                     boxes=tuple(float(v) for v in m.boxes), width=int(m.width),
                     height=int(m.height), jpeg=bytes(m.jpeg), note=m.note)
