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
    """The subscriptions of ``node`` that keep ``book`` current (under ``lock``)."""

    def __init__(self, node, book: MetricsBook, lock=None,
                 clock=time.time, cmd_vel: bool = True):
        self.book = book
        self.lock = lock or threading.Lock()
        self._clock = clock
        node.create_subscription(DiagnosticArray, '/diagnostics', self._diagnostics,
                                 qos.DIAGNOSTICS)
        node.create_subscription(PeerArray, 'v2x/peers', self._peers, qos.PEERS)
        node.create_subscription(PolicyState, 'v2x/policy_state', self._policy,
                                 qos.POLICY_STATE)
        for topic, profile in (('v2x/alert_out', qos.ALERT_OUT_READER),
                               ('v2x/alert_sent', qos.ALERT_SENT),
                               ('v2x/alert', qos.ALERT_READER)):
            node.create_subscription(Alert, topic, self._alert_on(topic), profile)
        if cmd_vel:
            node.create_subscription(Twist, 'cmd_vel', self._cmd_vel, qos.CMD_VEL)

    def _diagnostics(self, msg: DiagnosticArray) -> None:
        reports = [NodeReport(s.name, _level(s.level), s.message,
                              {kv.key: kv.value for kv in s.values}) for s in msg.status]
        now = self._clock()
        with self.lock:
            self.book.on_diagnostics(reports, now)

    def _peers(self, msg: PeerArray) -> None:
        peers = [PeerReport(p.source_id, int(p.role), _seconds(p.last_heard), bool(p.stale),
                            int(p.active_alerts), float(p.clock_offset_s), int(p.path),
                            bool(p.authenticated)) for p in msg.peers]
        now = self._clock()
        with self.lock:
            self.book.on_peers(peers, now)

    def _policy(self, msg: PolicyState) -> None:
        now = self._clock()
        with self.lock:
            self.book.on_policy(int(msg.action), float(msg.speed_limit), bool(msg.enabled),
                                msg.source_id, int(msg.sequence),
                                _seconds(msg.header.stamp), now)

    def _alert_on(self, topic: str):
        def callback(msg: Alert) -> None:
            now = self._clock()
            seen = alert_seen(msg)
            with self.lock:
                self.book.on_alert(topic, seen, now)
        return callback

    def _cmd_vel(self, msg: Twist) -> None:
        now = self._clock()
        with self.lock:
            self.book.on_cmd_vel(float(msg.linear.x), float(msg.angular.z), now)
