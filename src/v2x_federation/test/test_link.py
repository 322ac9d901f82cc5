"""The broker link against real mosquitto brokers: deploy/mosquitto's examples as shipped
(paths substituted), the vehicles' read rights, and the packet size limits both ways.

One broker from the examples (TLS, passwords, ACL, max_packet_size) and one plain
anonymous broker without a size limit, for the module.
"""

import time

import paho.mqtt.client as mqtt
import pytest

from v2x_federation.config import make_config
from v2x_federation.link import MAX_PAYLOAD_BYTES, BrokerLink
import v2x_mosquitto as mq

pytestmark = pytest.mark.skipif(bool(mq.missing_tools()),
                                reason=f'needs {mq.missing_tools()} (make setup installs them)')

USERS = {'rsu_server_01': 'pw-rsu-0001', 'vehicle_01': 'pw-vehicle-01',
         'probe': 'pw-probe-0001'}
ALERT_TOPIC = 'v2x/alert/rsu_server_01/1/2/3/rsu_server_01:7'


class Brokers:
    def __init__(self, tmp):
        self.tmp = tmp
        self.tls = mq.make_ca(tmp / 'ca')
        passwords = mq.make_passwords(tmp / 'passwd', USERS)
        # the shipped ACL, and a probe (not in it) that may write anywhere under v2x
        acl = tmp / 'acl'
        acl.write_text((mq.EXAMPLES / 'acl.example').read_text()
                       + '\nuser probe\ntopic write v2x/#\n')
        self.shipped = mq.Mosquitto.from_examples(tmp / 'shipped', tls=self.tls,
                                                  passwords=passwords, acl=acl).start()
        self.plain = mq.Mosquitto(tmp / 'plain').start()  # no max_packet_size

    def link(self, broker, user=None):
        """A vehicle's BrokerLink and what it was handed (topic, payload)."""
        cred = mq.credentials_file(self.tmp / f'{user}.cred', user, USERS[user]) \
            if user else None
        config = make_config(broker.url, str(cred or ''),
                             str(self.tls['ca']) if user else '', 'v2x', 16)
        got = []
        link = BrokerLink(config, client_id='', on_message=lambda t, p: got.append((t, p)))
        link.start()
        assert link.wait_connected(10), broker.log.read_text()
        return link, got

    def client(self, broker, user=None):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if user:
            c.username_pw_set(user, USERS[user])
            c.tls_set(ca_certs=str(self.tls['ca']))
        c.disconnects = []
        c.on_disconnect = lambda cl, ud, flags, rc, props: c.disconnects.append(rc)
        c.connect('127.0.0.1', broker.port)
        c.loop_start()
        return c

    def close(self):
        self.shipped.stop()
        self.plain.stop()


@pytest.fixture(scope='module')
def brokers(tmp_path_factory):
    b = Brokers(tmp_path_factory.mktemp('brokers'))
    yield b
    b.close()


def until(predicate, timeout=10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not predicate():
        time.sleep(0.01)
    return bool(predicate())


def settled(link, filters) -> bool:
    link.set_filters(filters, [])
    return until(lambda: link.subscriptions_settled)


def test_vehicles_read_only_the_alert_and_status_trees(brokers):
    """Under the shipped ACL a vehicle subscribed to the whole prefix gets what is
    published in the alert and status trees, and nothing else under the prefix."""
    link, got = brokers.link(brokers.shipped, 'vehicle_01')
    probe = brokers.client(brokers.shipped, 'probe')
    try:
        assert settled(link, ['v2x/#'])
        for topic in ('v2x/other/rsu_server_01', 'v2x/alertx/1', 'v2x/alert/rsu_x/1',
                      'v2x/config/all', 'v2x/status/rsu_x'):
            probe.publish(topic, topic.encode(), qos=1).wait_for_publish(5)
        assert until(lambda: len(got) >= 2)
        time.sleep(0.2)  # nothing else is on its way (the broker sends in order)
        assert [t for t, _ in got] == ['v2x/alert/rsu_x/1', 'v2x/status/rsu_x']
    finally:
        probe.loop_stop()
        probe.disconnect()
        link.stop()


def test_oversized_payload_dropped_unread_and_counted(brokers):
    """A payload over one datagram that a broker passes (below its packet limit) is
    dropped by the link before anyone parses it, and counted as oversized."""
    link, got = brokers.link(brokers.shipped, 'vehicle_01')
    rsu = brokers.client(brokers.shipped, 'rsu_server_01')
    try:
        assert settled(link, ['v2x/alert/#'])
        rsu.publish(ALERT_TOPIC, b'x' * (MAX_PAYLOAD_BYTES + 1), qos=1).wait_for_publish(5)
        rsu.publish(ALERT_TOPIC, b'y' * MAX_PAYLOAD_BYTES, qos=1).wait_for_publish(5)
        assert until(lambda: got)
        assert [len(p) for _, p in got] == [MAX_PAYLOAD_BYTES]
        assert link.counts['oversized'] == 1
    finally:
        rsu.loop_stop()
        rsu.disconnect()
        link.stop()


def test_shipped_broker_refuses_a_huge_retained_message(brokers):
    """The shipped max_packet_size: an 8 MiB retained publish disconnects its sender, is
    not kept, and reaches no vehicle."""
    rsu = brokers.client(brokers.shipped, 'rsu_server_01')
    try:
        assert until(lambda: rsu.is_connected())
        rsu.publish(ALERT_TOPIC + 'big', b'z' * (8 << 20), qos=1, retain=True)
        assert until(lambda: rsu.disconnects, 20)  # closed by the broker
    finally:
        rsu.loop_stop()
    link, got = brokers.link(brokers.shipped, 'vehicle_01')
    try:
        marker = brokers.client(brokers.shipped, 'rsu_server_01')
        assert settled(link, ['v2x/alert/#'])
        marker.publish(ALERT_TOPIC, b'marker', qos=1).wait_for_publish(5)
        assert until(lambda: got)
        assert [p for _, p in got] == [b'marker'] and link.counts['oversized'] == 0
        marker.loop_stop()
        marker.disconnect()
    finally:
        link.stop()


def test_link_asks_the_broker_for_small_packets(brokers):
    """MaximumPacketSize on connect: a broker without any limit of its own still never
    sends the link an 8 KiB message (the link neither receives nor has to drop it)."""
    link, got = brokers.link(brokers.plain)
    pub = brokers.client(brokers.plain)
    try:
        assert settled(link, ['v2x/alert/#'])
        pub.publish(ALERT_TOPIC, b'q' * 8192, qos=1).wait_for_publish(5)
        pub.publish(ALERT_TOPIC, b'marker', qos=1).wait_for_publish(5)
        assert until(lambda: got)
        time.sleep(0.2)  # nothing else is on its way (the broker sends in order)
        assert [p for _, p in got] == [b'marker']
        assert link.counts['oversized'] == 0 and link.counts['received'] == 1
    finally:
        pub.loop_stop()
        pub.disconnect()
        link.stop()
