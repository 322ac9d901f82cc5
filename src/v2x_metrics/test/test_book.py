"""The metrics book: what the nodes publish in, Prometheus families out (no ROS)."""

import math
import threading

from prometheus_client.parser import text_string_to_metric_families

from v2x_metrics.book import (
    AlertSeen,
    MetricsBook,
    NodeReport,
    PeerReport,
    component_of,
    metric_part,
    number,
)
from v2x_metrics.exposition import Exposition


def samples(book, now=100.0):
    """name -> {labels tuple: value} of the book's text exposition, parsed back."""
    body, _ = Exposition(book, threading.Lock(), clock=lambda: now).render()
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != 'station'))
            out.setdefault(s.name, {})[labels] = s.value
    return out


def alert(seq, stamp, path=1, source='rsu-1', cancelled=False):
    return AlertSeen(source, seq, stamp, path, True, 1, cancelled)


def test_diagnostic_values_become_named_counters_gauges_and_drops_by_reason():
    """Running counts are counters, drops carry their reason, the rest are gauges; text
    values are left out."""
    book = MetricsBook('veh-7')
    book.on_diagnostics([NodeReport('/veh/alert_gateway: vehicle veh-7', 'WARN', 'x', {
        'delivered': '3', 'dropped_bad_signature': '2', 'live_alerts': '1',
        'rcvbuf_bytes': '212992', 'role': 'vehicle'})], now=90.0)
    s = samples(book)
    node = (('node', '/veh/alert_gateway'),)
    assert s['v2x_alert_gateway_delivered_total'][node] == 3
    assert s['v2x_alert_gateway_dropped_total'][node + (('reason', 'bad_signature'),)] == 2
    assert s['v2x_alert_gateway_live_alerts'][node] == 1
    assert s['v2x_node_level'][node] == 1
    assert s['v2x_node_report_age_seconds'][node] == 10
    assert not any('role' in name for name in s)


def test_peers_are_labelled_by_peer_and_path_with_heartbeat_age():
    """Each peer's heartbeat age is measured at scrape time; stale is 0/1."""
    book = MetricsBook('rsu')
    book.on_peers([PeerReport('veh-a', 2, 95.5, False, 0, -0.25, 2, True)], now=96.0)
    s = samples(book, now=100.0)
    labels = (('path', 'broker'), ('peer', 'veh-a'))
    assert s['v2x_peer_heartbeat_age_seconds'][labels] == 4.5
    assert s['v2x_peer_clock_offset_seconds'][labels] == -0.25
    assert s['v2x_peer_stale'][labels] == 0


def test_an_alert_is_timed_at_every_stage_and_hop_once():
    """raised -> sent -> delivered -> decided -> cmd_vel: latencies since capture, hops
    between stages on this host; repeats and updates of the same alert do not count."""
    book = MetricsBook('one-host')
    book.on_alert('v2x/alert_out', alert(0, 10.0, path=0), now=10.100)
    book.on_alert('v2x/alert_sent', alert(5, 10.0, path=0), now=10.104)
    book.on_alert('v2x/alert', alert(5, 10.0), now=10.110)
    book.on_alert('v2x/alert', alert(5, 10.0), now=11.0)          # a repeat
    book.on_cmd_vel(2.0, 0.0, now=10.111)
    book.on_policy(1, 1.0, True, 'rsu-1', 5, 10.115, now=10.116)
    book.on_cmd_vel(2.0, 0.0, now=10.117)                         # not changed yet
    book.on_cmd_vel(1.0, 0.0, now=10.130)
    s = samples(book)
    count = s['v2x_alert_latency_seconds_count']
    assert count[(('path', 'local'), ('stage', 'raised'))] == 1
    assert count[(('path', 'radio'), ('stage', 'delivered'))] == 1
    total = s['v2x_alert_latency_seconds_sum']
    assert math.isclose(total[(('path', 'radio'), ('stage', 'delivered'))], 0.110)
    assert math.isclose(total[(('path', 'radio'), ('stage', 'cmd_vel'))], 0.130)
    hops = s['v2x_alert_hop_seconds_sum']
    assert math.isclose(hops[(('hop', 'raise_to_send'), ('path', 'local'))], 0.004)
    assert math.isclose(hops[(('hop', 'deliver_to_decide'), ('path', 'radio'))], 0.005)
    assert math.isclose(hops[(('hop', 'decide_to_cmd_vel'), ('path', 'radio'))], 0.015)
    assert s['v2x_alert_messages_total'][(('authenticated', 'true'), ('path', 'radio'),
                                          ('topic', 'v2x/alert'))] == 2
    assert s['v2x_policy_decisions_total'][(('action', 'slow_down'),)] == 1
    buckets = s['v2x_alert_latency_seconds_bucket']
    assert buckets[(('le', '0.1'), ('path', 'radio'), ('stage', 'delivered'))] == 0
    assert buckets[(('le', '0.2'), ('path', 'radio'), ('stage', 'delivered'))] == 1


def test_latency_table_gives_p50_and_p99_per_stage():
    """The console's table: nearest-rank quantiles of the recent values."""
    book = MetricsBook('x')
    for i in range(1, 101):
        book.on_alert('v2x/alert', alert(i, 0.0), now=i / 1000)
    row = next(r for r in book.latency_table() if r['what'] == 'capture->delivered')
    assert (row['count'], row['p50_ms'], row['p99_ms']) == (100, 50.0, 99.0)


def test_cancellations_and_unassigned_sequences_are_not_timed():
    """A cancellation is counted as a message but starts no latency record."""
    book = MetricsBook('x')
    book.on_alert('v2x/alert', alert(3, 1.0, cancelled=True), now=2.0)
    book.on_alert('v2x/alert', alert(0, 1.0), now=2.0)
    assert book.latency_table() == []


def test_names_are_valid_metric_names():
    """Node names and keys become [a-z0-9_] pieces; values parse like diagnostics text."""
    assert component_of('/rsu/ns/hazard_detector: 8 fps') == 'hazard_detector'
    assert metric_part('frames/s') == 'frames_s'
    assert number('1.5') == 1.5 and number('True') == 1.0
    assert number('nan') is None and number('/var/rec') is None


def test_a_decision_seen_before_its_alert_still_times_decided_and_cmd_vel():
    """Policy state and the alert come on two topics: either may reach the book first."""
    book = MetricsBook('x')
    book.on_cmd_vel(2.0, 0.0, now=9.0)
    book.on_policy(2, 0.0, True, 'rsu-1', 8, 10.020, now=10.021)
    book.on_cmd_vel(0.0, 0.0, now=10.030)
    book.on_alert('v2x/alert', alert(8, 10.0), now=10.040)
    stages = {r['what']: r for r in book.latency_table()}
    assert stages['capture->decided']['count'] == 1
    assert stages['capture->cmd_vel']['count'] == 1
    assert math.isclose(stages['capture->cmd_vel']['p50_ms'], 30.0)
