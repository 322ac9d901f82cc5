"""alert_gateway's broker side (issue 15): its broker_* parameters and the node glue.

The rules are in v2x_federation (pure core) and docs/protocol.md, "Federation over MQTT".
RSU: every datagram the gateway sends for an alert, and its heartbeat, is also published
(retained, expiring). Vehicle: subscribes to the 3x3 tiles around its `fix`
(sensor_msgs/NavSatFix), or broker_area / the tiles around origin_lat/origin_lon until a
fix arrives, and hands each payload to the gateway's `deliver(bytes)`, which runs it
through the same Receiver as the radio path. paho calls back on its own network thread:
`deliver` must be thread-safe (the gateway serialises its receive path).
"""

import math
import time
from typing import Callable

from sensor_msgs.msg import NavSatFix, NavSatStatus

from v2x_common import qos
from v2x_common.params import Param, ParameterError, in_range
from v2x_federation import quadkey, topics
from v2x_federation.config import make_config
from v2x_federation.duplicates import SeenDatagrams
from v2x_federation.link import BrokerLink
from v2x_federation.publish import OFFLINE, RsuPublisher
from v2x_protocol.wire import AlertData, HeartbeatData

#: the broker_* rows of alert_gateway's one parameter table (alert_gateway.PARAMETERS
#: ends with them); checked again, together, by v2x_federation.config.make_config
PARAMETERS = (
    Param('broker_url', '', "MQTT v5 broker ('' = off): mqtts://host:8883, or "
          'mqtt://127.0.0.1:1883 for a plain lab broker (warned)'),
    Param('broker_credentials_file', '', "file of username=... and password=... lines "
          "(never argv; '' = anonymous)"),
    Param('broker_ca_file', '', "CA bundle (PEM) that signed the broker's certificate "
          "('' = the system's)"),
    Param('broker_topic_prefix', 'v2x', 'first topic level(s) on the broker'),
    Param('broker_zoom', 16, 'quadkey zoom: of the RSU topics (>= every subscriber zoom) / '
          "of the vehicle's 3x3 subscription tiles", in_range(1, quadkey.MAX_ZOOM)),
    Param('broker_area', '', 'vehicle without a fix: comma-separated quadkeys to subscribe '
          "('' = the 3x3 tiles around origin_lat/origin_lon)"),
)
NAMES = tuple(row.name for row in PARAMETERS)


class GatewayFederation:
    """The gateway's broker link; `enabled` is False when broker_url is empty."""

    def __init__(self, node, *, role: str, station_id: str, site: tuple[float, float],
                 heartbeat_period_s: float, stale_after: int,
                 deliver: Callable[[bytes], None]):
        v = {name: node.get_parameter(name).value for name in NAMES}  # declared by the node
        self.config = make_config(v['broker_url'], v['broker_credentials_file'],
                                  v['broker_ca_file'], v['broker_topic_prefix'],
                                  v['broker_zoom'], v['broker_area'])
        self.enabled = self.config is not None
        self.link = None
        if not self.enabled:
            return
        try:
            topics.check_level(station_id)
        except topics.InvalidTopic as exc:
            raise ParameterError('station_id', str(exc)) from None
        self._node, self._role, self._deliver = node, role, deliver
        self._period_s, self._stale_after = heartbeat_period_s, stale_after
        self._dropped = {'offline_status': 0, 'foreign_topic': 0, 'empty': 0,
                         'path_duplicates': 0}
        self._seen = SeenDatagrams()
        self._logger = node.get_logger()
        for warning in self.config.warnings:
            self._logger.warning(warning)
        will = None
        if role == 'rsu':
            try:
                self._publisher = RsuPublisher(self.config.prefix, station_id,
                                               self.config.zoom, site)
            except quadkey.InvalidPosition as exc:
                raise ParameterError('origin_lat', f'the site position: {exc}') from None
            will = self._publisher.will()
        # an RSU's client id is its station id (one session per station); a vehicle's is
        # left to the broker, so it does not carry the vehicle's (pseudonymous) station id
        self.link = BrokerLink(self.config, client_id=station_id if role == 'rsu' else '',
                               on_message=self._on_message if role == 'vehicle' else None,
                               will=will, log=self._log)
        if role == 'vehicle':
            self._tiles = topics.TileSubscriptions(self.config.prefix, self.config.zoom,
                                                   self.config.area)
            if not self.config.area:
                self._tiles.moved_to(*site)
            self.link.set_filters(sorted(self._tiles.filters), [])
            node.create_subscription(NavSatFix, 'fix', self._on_fix, qos.SENSOR_DATA)
        self.link.start()
        self._logger.info(f'broker {self.config.url} prefix={self.config.prefix} '
                          f'zoom={self.config.zoom} as {self.config.username or "anonymous"}')

    def _log(self, level: str, text: str) -> None:
        # one call site per severity: rclpy refuses a severity change at one call site
        if level == 'info':
            self._logger.info(text)
        elif level == 'warn':
            self._logger.warning(text)
        else:
            self._logger.error(text)

    # --- RSU ------------------------------------------------------------------------
    def sent(self, payload, datagram: bytes) -> None:
        """The gateway sent datagram (an alert or a heartbeat): publish it too (RSU only)."""
        if not self.enabled or self._role != 'rsu':
            return
        now = time.time_ns()
        if isinstance(payload, AlertData):
            for pub in self._publisher.alert(payload, datagram, now):
                self.link.publish(pub, now)
        elif isinstance(payload, HeartbeatData):
            self.link.publish(self._publisher.heartbeat(datagram, now, self._period_s,
                                                        self._stale_after), now)

    # --- vehicle --------------------------------------------------------------------
    def _on_fix(self, msg: NavSatFix) -> None:
        if msg.status.status < NavSatStatus.STATUS_FIX or not (
                math.isfinite(msg.latitude) and math.isfinite(msg.longitude)):
            return
        try:
            added, removed = self._tiles.moved_to(msg.latitude, msg.longitude)
        except quadkey.InvalidPosition:
            return
        if added or removed:
            self.link.set_filters(added, removed)
            self._logger.info(f'broker tiles around {self._tiles.centre} '
                              f'(zoom {self.config.zoom})')

    def _on_message(self, topic: str, payload: bytes) -> None:
        """paho's thread: one message of our filters -> the gateway's receive path."""
        kind = topics.kind_of(self.config.prefix, topic)
        if not kind:
            self._dropped['foreign_topic'] += 1
        elif not payload:
            self._dropped['empty'] += 1  # a cleared retained copy
        elif kind == topics.STATUS and payload == OFFLINE:
            self._dropped['offline_status'] += 1  # the peer goes stale on its own
        else:
            self._deliver(payload)

    @property
    def filters(self) -> frozenset[str]:
        """The vehicle's current subscriptions."""
        return self._tiles.filters if self.enabled and self._role == 'vehicle' else frozenset()

    # --- both (called under the gateway's receive lock) ------------------------------
    def duplicate(self, data: bytes) -> bool:
        """True (and counted) when this exact datagram was accepted already by the other
        path: skip it before the Receiver, which would count it as a replay."""
        if not self.enabled or data not in self._seen:
            return False
        self._dropped['path_duplicates'] += 1
        return True

    def accepted(self, data: bytes) -> None:
        """The Receiver accepted data (delivered, repeat or heartbeat)."""
        if self.enabled:
            self._seen.add(data)

    # --- both -----------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        """broker_<name> counters for the gateway's diagnostics."""
        if not self.enabled:
            return {}
        out = {f'broker_{k}': v for k, v in self.link.counts.items()}
        out.update({f'broker_{k}': v for k, v in self._dropped.items()})
        out['broker_queue'] = self.link.queued
        out['broker_connected'] = int(self.link.connected)
        return out

    def close(self) -> None:
        """Disconnect; an RSU first marks itself offline (a crash leaves that to its will)."""
        if self.link is not None:
            self.link.stop(self._publisher.will() if self._role == 'rsu' else None)
            self.link = None
            self.enabled = False
