"""The MQTT broker's own figures ($SYS/broker/#) into the metrics book.

mosquitto publishes its state under ``$SYS/broker/`` every ``sys_interval`` seconds:
clients connected, messages and bytes received and sent, retained messages, subscriptions,
load averages. Each payload is a bare number (or a number and a unit: ``"120 seconds"``),
not JSON, which is why Debian's prometheus-mqtt-exporter 0.1.7 (JSON objects only) cannot
export them (docs/metrics.md). :func:`sys_sample` turns one such message into a sample
(pure); :class:`BrokerSysLink` subscribes with paho-mqtt and feeds the book. The broker's
ACL must let the exporter's user read ``$SYS/#`` (deploy/mosquitto/acl.example).
"""

import re
import ssl
import threading
import time
from urllib.parse import urlsplit

from v2x_metrics.book import MetricsBook, metric_part

SYS_TOPIC = '$SYS/broker/#'
_PREFIX = '$SYS/broker/'
_NUMBER = re.compile(r'^\s*(-?\d+(?:\.\d+)?)')


def sys_sample(topic: str, payload: bytes) -> tuple[str, float] | None:
    """(metric name, value) of one $SYS message, or None when it holds no number (the
    version string) or is outside $SYS/broker/."""
    if not topic.startswith(_PREFIX):
        return None
    match = _NUMBER.match(payload[:64].decode('utf-8', 'replace'))
    if match is None:
        return None
    return f'v2x_broker_{metric_part(topic[len(_PREFIX):])}', float(match.group(1))


class BrokerSysLink:
    """A paho-mqtt client reading the broker's $SYS tree into ``book`` (under ``lock``).

    url: mqtt://host[:port] or mqtts://host[:port] (then ca_file, '' = the system's CAs);
    username '' connects anonymously; password is read by the caller from a private file.
    """

    def __init__(self, book: MetricsBook, lock: threading.Lock, url: str, *,
                 username: str = '', password: str = '', ca_file: str = '',
                 clock=time.time):
        import paho.mqtt.client as mqtt  # only where a broker is watched
        parts = urlsplit(url)
        if parts.scheme not in ('mqtt', 'mqtts') or not parts.hostname:
            raise ValueError(f'{url!r} is not mqtt://host[:port] or mqtts://host[:port]')
        self.book, self.lock, self._clock = book, lock, clock
        self.host = parts.hostname
        self.port = parts.port or (8883 if parts.scheme == 'mqtts' else 1883)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        if parts.scheme == 'mqtts':
            self.client.tls_set(ca_certs=ca_file or None, cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 30)

    def start(self) -> 'BrokerSysLink':
        """Connect in the background (paho's thread retries until the broker answers)."""
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties=None):
        if not reason_code.is_failure:
            client.subscribe(SYS_TOPIC, qos=0)
        with self.lock:
            self.book.on_broker_connected(not reason_code.is_failure, self._clock())

    def _on_disconnect(self, _client, _userdata, _flags, _reason_code, _properties=None):
        with self.lock:
            self.book.on_broker_connected(False, self._clock())

    def _on_message(self, _client, _userdata, message) -> None:
        sample = sys_sample(message.topic, message.payload)
        if sample is not None:
            with self.lock:
                self.book.on_broker_sys(*sample, self._clock())
