"""Messages <-> the policy core's values (nothing else happens here).

The alert's conversion is v2x_conversion.alert's (every node's); what an alert is trusted
for is the policy core's rule (policy.trusted).
"""

import math

from geometry_msgs.msg import Twist

from v2x_msgs.msg import Heartbeat, PolicyState
from v2x_policy.policy import Decision, Vector, speed_limit
from v2x_protocol.peers import CAMERA_DEGRADED


def stale_rsus_from_msg(msg) -> frozenset:
    """The source ids of the RSUs a PeerArray reports stale."""
    return frozenset(p.source_id for p in msg.peers
                     if p.stale and p.role == Heartbeat.ROLE_RSU)


def camera_degraded_rsus_from_msg(msg) -> frozenset:
    """The source ids of the RSUs whose last heartbeat says their camera cannot see."""
    return frozenset(p.source_id for p in msg.peers
                     if p.role == Heartbeat.ROLE_RSU and p.status == Heartbeat.STATUS_ERROR
                     and p.status_message.startswith(CAMERA_DEGRADED))


def state_to_msg(decision: Decision, enabled: bool, settings, stamp) -> PolicyState:
    """A PolicyState saying what the filter does (decision) and why."""
    msg = PolicyState()
    msg.header.stamp = stamp
    msg.action = decision.action
    msg.speed_limit = speed_limit(decision.action, settings)
    msg.rule = decision.rule
    msg.source_id = decision.source_id
    msg.sequence = decision.sequence
    msg.distance_m = decision.distance_m
    msg.enabled = enabled
    return msg


def twist_parts(twist: Twist) -> tuple[Vector, Vector]:
    """(linear, angular) of a Twist as plain tuples."""
    lin, ang = twist.linear, twist.angular
    return (lin.x, lin.y, lin.z), (ang.x, ang.y, ang.z)


def twist_is_finite(twist: Twist) -> bool:
    """True when no component is NaN or infinite."""
    linear, angular = twist_parts(twist)
    return all(math.isfinite(v) for v in linear + angular)


def fill_twist(twist: Twist, linear: Vector, angular: Vector) -> Twist:
    """Write (linear, angular) into a Twist in place and return it."""
    twist.linear.x, twist.linear.y, twist.linear.z = (float(v) for v in linear)
    twist.angular.x, twist.angular.y, twist.angular.z = (float(w) for w in angular)
    return twist
