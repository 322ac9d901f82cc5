"""Publish a node's health on /diagnostics at 1 Hz from a dict of key values and a level.

Usage in a node::

    self.diag = Diagnostics(self, status_fn=self._health)   # called every period
    def _health(self):
        return OK, 'receiving', {'delivered': self.delivered, 'dropped_bad_signature': n}

or push style: ``self.diag.set(WARN, 'ffmpeg restarted', restarts=3)``.
rqt_robot_monitor shows the status under the node's fully qualified name.
"""

from typing import Callable, Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from v2x_common import qos


def _level_int(level) -> int:
    # DiagnosticStatus constants are bytes (b'\x01') in the generated Python.
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)


OK = _level_int(DiagnosticStatus.OK)
WARN = _level_int(DiagnosticStatus.WARN)
ERROR = _level_int(DiagnosticStatus.ERROR)
STALE = _level_int(DiagnosticStatus.STALE)

StatusFn = Callable[[], tuple[int, str, Mapping[str, object]]]


def _as_bytes_level(level: int) -> bytes:
    # DiagnosticStatus.level is a byte field: rclpy wants bytes of length 1.
    return bytes([_level_int(level)])


def make_status(name: str, level: int, message: str, values: Mapping[str, object],
                hardware_id: str = '') -> DiagnosticStatus:
    """A DiagnosticStatus from plain Python values (values are str()-ed, sorted by key)."""
    status = DiagnosticStatus()
    status.level = _as_bytes_level(level)
    status.name = name
    status.message = message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in sorted(values.items())]
    return status


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f'{value:.6g}'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


class Diagnostics:
    """1 Hz DiagnosticArray publisher owned by one node."""

    def __init__(self, node, status_fn: StatusFn | None = None, period_s: float = 1.0,
                 hardware_id: str = '', topic: str = '/diagnostics'):
        self._node = node
        self._status_fn = status_fn
        self._hardware_id = hardware_id
        self._level = OK
        self._message = 'starting'
        self._values: dict[str, object] = {}
        self._pub = node.create_publisher(DiagnosticArray, topic, qos.DIAGNOSTICS)
        self._timer = node.create_timer(period_s, self.publish)

    @property
    def name(self) -> str:
        return f'{self._node.get_fully_qualified_name().lstrip("/")}'

    def set(self, level: int, message: str, **values) -> None:
        """Record the current state (push style); published at the next tick."""
        self._level = level
        self._message = message
        self._values.update(values)

    def publish(self) -> DiagnosticArray:
        """Publish now (also called by the timer) and return what was sent."""
        if self._status_fn is not None:
            level, message, values = self._status_fn()
        else:
            level, message, values = self._level, self._message, self._values
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        array.status = [make_status(self.name, level, message, values, self._hardware_id)]
        self._pub.publish(array)
        return array

    def destroy(self) -> None:
        self._node.destroy_timer(self._timer)
        self._node.destroy_publisher(self._pub)
