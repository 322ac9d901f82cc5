"""Subscribes a node to what the host's nodes publish and feeds a MetricsBook.

Used by v2x_metrics_exporter and by v2x_console (its /metrics). Relative topic names (the
launch file places them): /diagnostics, v2x/peers, v2x/policy_state, v2x/alert_out,
v2x/alert_sent, v2x/alert, cmd_vel. Every reader is a reader only: it never delays a
publisher (the alert topics' readers keep the writers' reliability and durability, so
they match; no writer waits on them). Callbacks convert to plain values and take the lock
for a dictionary update, nothing more.
"""

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist

from v2x_common import qos
from v2x_metrics.book import AlertSeen, MetricsBook, NodeReport, PeerReport
from v2x_msgs.msg import Alert, PeerArray, PolicyState

_LEVEL_NAMES = {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _level(level) -> str:
    if isinstance(level, (bytes, bytearray)):
        level = level[0] if level else 3
    return _LEVEL_NAMES.get(int(level), 'STALE')


def alert_seen(msg: Alert) -> AlertSeen:
    """The fields of an Alert the book times."""
    return AlertSeen(source_id=msg.source_id, sequence=int(msg.sequence),
                     stamp=_seconds(msg.header.stamp), path=int(msg.path),
                     authenticated=bool(msg.authenticated), kind=int(msg.kind),
                     cancelled=bool(msg.cancelled))


class MetricsFeed:
    """The subscriptions of ``node`` that keep ``book`` current (under ``lock``).

    ``shared=False``: a node that already reads /diagnostics, v2x/peers,
    v2x/policy_state, v2x/alert and v2x/alert_sent (the console) calls ``diagnostics``,
    ``peers``, ``policy`` and ``alert`` from its own callbacks instead, so each message is
    taken and deserialized once; only cmd_vel and alert_out (as asked) get readers here.
    """

    def __init__(self, node, book: MetricsBook, lock=None,
                 clock=time.time, cmd_vel: bool = True, raised: bool = True,
                 shared: bool = True):
        self.book = book
        self.lock = lock or threading.Lock()
        self._clock = clock
        topics = []
        if shared:
            node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics,
                                     qos.DIAGNOSTICS)
            node.create_subscription(PeerArray, 'v2x/peers', self.peers, qos.PEERS)
            node.create_subscription(PolicyState, 'v2x/policy_state', self.policy,
                                     qos.POLICY_STATE)
            topics += [('v2x/alert_sent', qos.ALERT_SENT), ('v2x/alert', qos.ALERT_READER)]
        if raised:  # the 'raised' stage: a reader of v2x/alert_out (see v2x_inject)
            topics.append(('v2x/alert_out', qos.ALERT_OUT_READER))
        for topic, profile in topics:
            node.create_subscription(Alert, topic,
                                     lambda msg, topic=topic: self.alert(topic, msg), profile)
        if cmd_vel:
            node.create_subscription(Twist, 'cmd_vel', self.cmd_vel, qos.CMD_VEL)

    def diagnostics(self, msg: DiagnosticArray) -> None:
        """A /diagnostics message: each node's level, message and values."""
        reports = [NodeReport(s.name, _level(s.level), s.message,
                              {kv.key: kv.value for kv in s.values}) for s in msg.status]
        now = self._clock()
        with self.lock:
            self.book.on_diagnostics(reports, now)

    def peers(self, msg: PeerArray) -> None:
        """A v2x/peers message."""
        peers = [PeerReport(p.source_id, int(p.role), _seconds(p.last_heard), bool(p.stale),
                            int(p.active_alerts), float(p.clock_offset_s), int(p.path),
                            bool(p.authenticated)) for p in msg.peers]
        now = self._clock()
        with self.lock:
            self.book.on_peers(peers, now)

    def policy(self, msg: PolicyState) -> None:
        """A v2x/policy_state message."""
        now = self._clock()
        with self.lock:
            self.book.on_policy(int(msg.action), float(msg.speed_limit), bool(msg.enabled),
                                msg.source_id, int(msg.sequence),
                                _seconds(msg.header.stamp), now)

    def alert(self, topic: str, msg: Alert) -> None:
        """An Alert seen on topic (v2x/alert_out, v2x/alert_sent or v2x/alert)."""
        now = self._clock()
        seen = alert_seen(msg)
        with self.lock:
            self.book.on_alert(topic, seen, now)

    def cmd_vel(self, msg: Twist) -> None:
        """A cmd_vel command (the last stage of an alert's latency)."""
        now = self._clock()
        with self.lock:
            self.book.on_cmd_vel(float(msg.linear.x), float(msg.angular.z), now)
