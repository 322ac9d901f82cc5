"""The broker link: a paho-mqtt 2.x client (MQTT v5) with TLS, credentials, reconnects.

paho's network thread (loop_start) connects, reconnects (0.5..5 s back-off) and calls
back; on_message(topic, payload) is called on THAT thread, so the caller must hand the
payload on thread-safely. publish() and set_filters() may be called from any thread.
The broker is asked (MaximumPacketSize) never to send a packet over MAX_PACKET_BYTES, and a
payload over MAX_PAYLOAD_BYTES (one datagram) is dropped before anyone parses it and
counted as ``oversized``, in case a broker in the path ignores the request.

Ordering on the broker matters (the retained copy must be the newest version), so one
lock (`_order`) orders every publish against the reconnect flush: while disconnected
publications go to the OfflineQueue (latest per topic); on connect, what the client still
had in flight is taken back from paho (drop_out_messages), queued behind newer ones, and
the queue is flushed before any new publish goes out. paho calls on_publish holding its
own message mutex, so the callbacks other than on_connect take only `_state`, a lock
never held across a call into paho (else: deadlock against a publish holding `_order`).
"""

import ssl
import threading
import time
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from v2x_federation.config import BrokerConfig
from v2x_federation.publish import OfflineQueue, Publication
from v2x_protocol.wire import MAX_DATAGRAM

QOS = 1
KEEPALIVE_S = 10
INFLIGHT = 1000
#: The largest payload the link hands on: one datagram of the protocol (wire.MAX_DATAGRAM).
MAX_PAYLOAD_BYTES = MAX_DATAGRAM
#: MaximumPacketSize sent on connect: the broker must not send this client a larger
#: packet (MQTT v5 3.1.2.11.4; mosquitto drops it for this client). A datagram plus its
#: topic and properties fits well within it; deploy/mosquitto sets the same max_packet_size.
MAX_PACKET_BYTES = 4096


def _properties(pub: Publication, now_ns: int) -> Properties | None:
    expiry = pub.expiry_interval_s(now_ns)
    if expiry is None:
        return None
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = max(1, expiry)
    return props


class BrokerLink:
    """One MQTT v5 connection. log(level, text): level 'info' | 'warn' | 'error'."""

    def __init__(self, config: BrokerConfig, client_id: str,
                 on_message: Callable[[str, bytes], None] | None = None,
                 will: Publication | None = None,
                 log: Callable[[str, str], None] | None = None,
                 queue_limit: int = 10000):
        self.config = config
        self._on_message_cb = on_message
        self._log = log or (lambda level, text: None)
        self._order = threading.Lock()
        self._state = threading.Lock()
        self._connected = False
        self._filters: set[str] = set()
        self._queue = OfflineQueue(queue_limit)
        self._inflight: dict[int, Publication] = {}
        self._pending: set[int] = set()  # (un)subscribe requests not acknowledged yet
        self._acked: set[int] = set()    # acknowledged before we noted them as pending
        self.counts = {'published': 0, 'queued': 0, 'received': 0, 'oversized': 0,
                       'connects': 0, 'disconnects': 0, 'connect_failures': 0,
                       'publish_refused': 0, 'subscribe_refused': 0}
        self._failing = False  # logged once per run of failed attempts
        self._stopping = False
        c = self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                       protocol=mqtt.MQTTv5)
        if config.username:
            c.username_pw_set(config.username, config.password)
        if config.tls:
            c.tls_set(ca_certs=config.ca_file or None, cert_reqs=ssl.CERT_REQUIRED,
                      tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if will is not None:
            c.will_set(will.topic, will.payload, qos=QOS, retain=will.retain)
        c.reconnect_delay_set(min_delay=1, max_delay=5)
        # paho's default of 20 unacknowledged QoS 1 messages queues an RSU's publishes
        # behind slow PUBACKs once repeats add up (100 alerts/s x repeats): allow more
        c.max_inflight_messages_set(INFLIGHT)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe

    # --- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (a broker down at start is retried, not an error)."""
        props = Properties(PacketTypes.CONNECT)
        props.MaximumPacketSize = MAX_PACKET_BYTES
        self._client.connect_async(self.config.host, self.config.port, keepalive=KEEPALIVE_S,
                                   clean_start=True, properties=props)
        self._client.loop_start()

    def stop(self, final: Publication | None = None, timeout: float = 2.0) -> None:
        """Publish final (e.g. the `offline` status) when connected, then disconnect."""
        with self._state:
            self._stopping = True
        if final is not None and self.connected:
            info = self._client.publish(final.topic, final.payload, qos=QOS,
                                        retain=final.retain)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        """True between a successful CONNACK and the next disconnect."""
        with self._state:
            return self._connected

    @property
    def queued(self) -> int:
        """Publications waiting for the broker."""
        with self._order:
            return len(self._queue)

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or timeout (tools and tests)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.connected:
                return True
            time.sleep(0.02)
        return self.connected

    # --- publishing -----------------------------------------------------------------
    def publish(self, pub: Publication, now_ns: int | None = None) -> None:
        """Publish now when connected, else queue (latest per topic)."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        if not pub.live(now_ns):
            return
        with self._order:
            if not self.connected:
                self._queue.put(pub)
                self._count('queued')
                return
            self._send_ordered(pub, now_ns)

    def _count(self, name: str, n: int = 1) -> None:
        with self._state:
            self.counts[name] += n

    def _send_ordered(self, pub: Publication, now_ns: int) -> None:
        # holds _order (not _state): paho may take its message mutex here
        info = self._client.publish(pub.topic, pub.payload, qos=QOS, retain=pub.retain,
                                    properties=_properties(pub, now_ns))
        with self._state:
            # kept until PUBACK; if the link dropped (rc != success) paho keeps its copy,
            # which on_connect takes back through drop_out_messages
            self._inflight[info.mid] = pub
            self.counts['published' if info.rc == mqtt.MQTT_ERR_SUCCESS else 'queued'] += 1

    # --- subscriptions --------------------------------------------------------------
    def set_filters(self, add: list[str], remove: list[str]) -> None:
        """Change the subscriptions (kept for re-subscribing after a reconnect)."""
        with self._order:
            self._filters.difference_update(remove)
            self._filters.update(add)
            if not self.connected:
                return
            if remove:
                self._note_pending(self._client.unsubscribe(list(remove))[1])
            if add:
                self._subscribe_ordered(add)

    def _subscribe_ordered(self, filters) -> None:
        self._note_pending(
            self._client.subscribe([(f, SubscribeOptions(qos=QOS)) for f in sorted(filters)])[1])

    def _note_pending(self, mid: int) -> None:
        with self._state:  # the SUBACK may have come already (paho's thread is quick)
            if mid in self._acked:
                self._acked.discard(mid)
            else:
                self._pending.add(mid)

    def _acknowledged(self, mid: int) -> None:
        # under _state
        if mid in self._pending:
            self._pending.discard(mid)
        else:
            self._acked.add(mid)

    @property
    def subscriptions_settled(self) -> bool:
        """Connected and every (un)subscribe acknowledged by the broker."""
        with self._state:
            return self._connected and not self._pending

    # --- paho callbacks (paho's network thread) ----------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._log('error', f'broker {self.config.url} refused the connection: '
                               f'{reason_code}')
            return
        now = time.time_ns()
        with self._order:
            dropped = client.drop_out_messages()
            with self._state:
                inflight, self._inflight = self._inflight, {}
                self._pending.clear()
                self._acked.clear()
            for msg in dropped:
                pub = inflight.get(msg.mid)
                if pub is not None:
                    self._queue.put_older(pub)
            if self._filters:
                self._subscribe_ordered(self._filters)
            backlog = self._queue.drain(now)
            for pub in backlog:
                self._send_ordered(pub, now)
            with self._state:
                self._connected = True
                self._failing = False
                self.counts['connects'] += 1
        self._log('info', f'connected to {self.config.url}'
                  + (f'; published {len(backlog)} queued' if backlog else ''))

    def _on_connect_fail(self, client, userdata) -> None:
        # unreachable, refused TCP, or TLS failed (wrong CA, name mismatch): paho retries
        with self._state:
            self.counts['connect_failures'] += 1
            first, self._failing = not self._failing, True
        if first:
            self._log('error', f'cannot connect to broker {self.config.url} (unreachable, or '
                               'TLS failed: check broker_ca_file and the name in broker_url); '
                               'retrying, counting broker_connect_failures')

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._state:
            was, self._connected = self._connected, False
            if was:
                self.counts['disconnects'] += 1
            stopping = self._stopping
        if was and not stopping:
            self._log('warn', f'lost broker {self.config.url} ({reason_code}); queueing '
                              'and reconnecting')

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._state:  # paho holds its message mutex here: never take _order
            self._inflight.pop(mid, None)
            if reason_code.is_failure:
                self.counts['publish_refused'] += 1
        if reason_code.is_failure:
            self._log('warn', f'broker refused a publish: {reason_code}')

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._state:
            self._acknowledged(mid)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [rc for rc in reason_codes if rc.is_failure]
        with self._state:
            self._acknowledged(mid)
            self.counts['subscribe_refused'] += len(refused)
        if refused:
            self._log('warn', f'broker refused a subscription: {refused[0]}')

    def _on_message(self, client, userdata, message) -> None:
        if len(message.payload) > MAX_PAYLOAD_BYTES:  # dropped unread, counted
            self._count('oversized')
            return
        self._count('received')
        if self._on_message_cb is not None:
            self._on_message_cb(message.topic, bytes(message.payload))
