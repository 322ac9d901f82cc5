"""alert_gateway's broker side (issue 15): its broker_* parameters and the node glue.

The rules are in v2x_federation (pure core) and docs/protocol.md, "Federation over MQTT".
RSU: every datagram the gateway sends for an alert, and its heartbeat, is also published
(retained, expiring). Vehicle: subscribes to the 3x3 tiles around its `fix`
(sensor_msgs/NavSatFix), or broker_area / the tiles around origin_lat/origin_lon until a
fix arrives, and hands each payload to the gateway's `deliver(bytes)`, which runs it
through the same Receiver as the radio path (the gateway core skips a datagram already
accepted on the other path). paho calls back on its own network thread: `deliver` must be
thread-safe (the gateway serialises its receive path). The station id on the RSU's topics
and its client id come from the gateway's one Identity (identity.py).
"""

import math
import time
from typing import Callable

from sensor_msgs.msg import NavSatFix, NavSatStatus

from v2x_bridge.identity import Identity
from v2x_common import qos
from v2x_common.params import Param, ParameterError, in_range
from v2x_federation import quadkey, topics
from v2x_federation.config import BrokerConfig, make_config
from v2x_federation.link import BrokerLink
from v2x_federation.publish import OFFLINE, RsuPublisher
from v2x_protocol.wire import AlertData, HeartbeatData

#: the broker_* rows of alert_gateway's one parameter table (alert_gateway.PARAMETERS
#: ends with them), read with the others and checked together by read_config
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


def read_config(values: dict) -> BrokerConfig | None:
    """The broker_* values (popped from the gateway's one parameter read) checked into
    a config; None when broker_url is empty (federation off). Raises ParameterError."""
    v = {row.name: values.pop(row.name) for row in PARAMETERS}
    config = make_config(v['broker_url'], v['broker_credentials_file'], v['broker_ca_file'],
                         v['broker_topic_prefix'], v['broker_zoom'], v['broker_area'])
    if config is not None and values.get('station_id'):
        try:  # the RSU's topics and client id carry it (a default id always fits)
            topics.check_level(values['station_id'])
        except topics.InvalidTopic as exc:
            raise ParameterError('station_id', str(exc)) from None
    return config


class GatewayFederation:
    """The gateway's broker link; `enabled` is False when there is no broker config."""

    def __init__(self, node, config: BrokerConfig | None, identity: Identity, *,
                 site: tuple[float, float], heartbeat_period_s: float, stale_after: int,
                 deliver: Callable[[bytes], None]):
        self.config = config
        self.enabled = config is not None
        self.link = None
        if not self.enabled:
            return
        role = identity.role
        self._node, self._role, self._deliver = node, role, deliver
        self._period_s, self._stale_after = heartbeat_period_s, stale_after
        self._dropped = {'offline_status': 0, 'foreign_topic': 0, 'empty': 0}
        self._logger = node.get_logger()
        for warning in config.warnings:
            self._logger.warning(warning)
        will = None
        if role == 'rsu':  # an RSU's identity is fixed: its topics name it for good
            try:
                self._publisher = RsuPublisher(config.prefix, identity.station_id,
                                               config.zoom, site)
            except quadkey.InvalidPosition as exc:
                raise ParameterError('origin_lat', f'the site position: {exc}') from None
            will = self._publisher.will()
        self.link = BrokerLink(config, client_id=identity.broker_client_id,
                               on_message=self._on_message if role == 'vehicle' else None,
                               will=will, log=self._log)
        if role == 'vehicle':
            self._tiles = topics.TileSubscriptions(config.prefix, config.zoom, config.area)
            if not config.area:
                self._tiles.moved_to(*site)
            self.link.set_filters(sorted(self._tiles.filters), [])
            node.create_subscription(NavSatFix, 'fix', self._on_fix, qos.SENSOR_DATA)
        self.link.start()
        self._logger.info(f'broker {config.url} prefix={config.prefix} '
                          f'zoom={config.zoom} as {config.username or "anonymous"}')

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
