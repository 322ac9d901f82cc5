"""The broker's $SYS figures reach the metrics book through a real mosquitto, for the
user acl.example lets read them and for nobody else."""

import threading
import time

import pytest

from v2x_metrics.book import MetricsBook
from v2x_metrics.broker_sys import BrokerSysLink, sys_sample


@pytest.mark.parametrize('topic, payload, sample', [
    ('$SYS/broker/clients/connected', b'3', ('v2x_broker_clients_connected', 3.0)),
    ('$SYS/broker/load/messages/received/1min', b'12.57',
     ('v2x_broker_load_messages_received_1min', 12.57)),
    ('$SYS/broker/uptime', b'120 seconds', ('v2x_broker_uptime', 120.0)),
    ('$SYS/broker/version', b'mosquitto version 2.0.11', None),   # no number
    ('v2x/status/rsu_1', b'3', None),                              # not the broker's tree
])
def test_sys_messages_become_samples(topic, payload, sample):
    """A bare number (or number and unit) is a figure; text and other trees are not."""
    assert sys_sample(topic, payload) == sample


def _figures(user, password, broker, wait_s):
    book, lock = MetricsBook('broker-host'), threading.Lock()
    link = BrokerSysLink(book, lock, broker.url, username=user, password=password).start()
    try:
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            with lock:
                names = {f.name for f in book.families(time.time())}
            if 'v2x_broker_clients_connected' in names:
                break
            time.sleep(0.1)
        return names
    finally:
        link.stop()


def test_the_metrics_user_reads_sys_and_a_vehicle_does_not(tmp_path):
    """With deploy/mosquitto/acl.example, v2x-metrics gets the broker's figures; a station
    user connects but reads none of them (sys_interval 1: two rounds at least)."""
    v2x_mosquitto = pytest.importorskip('v2x_mosquitto')
    if v2x_mosquitto.missing_tools():
        pytest.skip(f'not installed: {v2x_mosquitto.missing_tools()}')
    passwords = v2x_mosquitto.make_passwords(
        tmp_path / 'passwd', {'v2x-metrics': 'metrics-pass-0123', 'vehicle_01': 'veh-pass-0123'})
    acl = v2x_mosquitto.make_acl(tmp_path / 'acl', 'v2x', [])
    broker = v2x_mosquitto.Mosquitto(tmp_path / 'broker', passwords=passwords, acl=acl,
                                     extra='sys_interval 1').start()
    try:
        names = _figures('v2x-metrics', 'metrics-pass-0123', broker, 30)
        assert {'v2x_broker_up', 'v2x_broker_clients_connected'} <= names, names
        names = _figures('vehicle_01', 'veh-pass-0123', broker, 2.5)
        assert 'v2x_broker_up' in names and not any(
            n.startswith('v2x_broker_') and n != 'v2x_broker_up' for n in names), names
    finally:
        broker.stop()
