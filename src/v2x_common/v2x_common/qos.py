"""QoS profiles of ARCHITECTURE.md, defined once for every node of the workspace."""

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)


def _profile(depth: int, durability: DurabilityPolicy) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=durability,
    )


#: /v2x/alert_out: producers -> RSU gateway.
ALERT_OUT = _profile(50, DurabilityPolicy.VOLATILE)
#: The RSU gateway's reader of /v2x/alert_out: the same contract (reliable, volatile, so it
#: matches every producer), with a deeper history so a burst from event_intake or the
#: detector is not overwritten in the reader's queue while the gateway is busy.
ALERT_OUT_READER = _profile(1000, DurabilityPolicy.VOLATILE)
#: /v2x/alert_sent, the readers that want live alerts only (v2x_console, denm_gateway,
#: v2x_inject): reliable, volatile. A volatile reader matches the transient-local writer.
ALERT_SENT = _profile(50, DurabilityPolicy.VOLATILE)
#: /v2x/alert_sent, the RSU gateway's writer: it keeps the last 1,000 alerts it sent, so
#: that an event_clipper that starts (or restarts, or is matched late by DDS) after an
#: alert went out still receives it.
ALERT_SENT_WRITER = _profile(1000, DurabilityPolicy.TRANSIENT_LOCAL)
#: event_clipper's reader of /v2x/alert_sent: transient-local (it gets the writer's
#: history when it joins; it clips each event once, keyed by source_id, origin, sequence).
ALERT_SENT_CLIPPER = _profile(1000, DurabilityPolicy.TRANSIENT_LOCAL)
#: /v2x/alert: receiving gateway -> speed_policy, rviz. Late joiners see live alerts (the
#: last 1,000 versions published); a reliable reader that falls behind by less than that
#: loses nothing.
ALERT = _profile(1000, DurabilityPolicy.TRANSIENT_LOCAL)
#: speed_policy's reader of /v2x/alert (and the gateway's own, to see forged changes): the
#: same contract with a deeper queue, so a burst the gateway delivers (10 s of 1,000/s)
#: waits while the reader is busy instead of being overwritten.
ALERT_READER = _profile(10_000, DurabilityPolicy.TRANSIENT_LOCAL)
#: /v2x/heartbeat: each heartbeat heard.
HEARTBEAT = _profile(10, DurabilityPolicy.VOLATILE)
#: /v2x/peers at 1 Hz.
PEERS = _profile(1, DurabilityPolicy.VOLATILE)
#: /v2x/markers for rviz.
MARKERS = _profile(1, DurabilityPolicy.TRANSIENT_LOCAL)
#: /v2x/clip: finished evidence clips.
CLIP = _profile(20, DurabilityPolicy.TRANSIENT_LOCAL)
#: /v2x/held_events: events held for an operator and their decisions (a console that
#: starts late still sees the last 50: the held ones among them).
HELD_EVENTS = _profile(50, DurabilityPolicy.TRANSIENT_LOCAL)
#: /v2x/policy_state: on change and 1 Hz.
POLICY_STATE = _profile(1, DurabilityPolicy.TRANSIENT_LOCAL)
#: /cmd_vel_in and /cmd_vel: never transient-local (a stale command must not replay).
CMD_VEL = _profile(1, DurabilityPolicy.VOLATILE)
#: /fix, camera images, /v2x/detections/image.
SENSOR_DATA = qos_profile_sensor_data
#: /diagnostics: the ROS default (reliable, volatile, depth 10).
DIAGNOSTICS = _profile(10, DurabilityPolicy.VOLATILE)
