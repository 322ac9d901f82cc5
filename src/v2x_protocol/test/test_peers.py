"""The peer table: bounded, stale peers pruned, known live peers never displaced."""

from v2x_protocol.peers import PeerTable
from v2x_protocol.wire import HeartbeatData

S = 1_000_000_000


def hb(source_id, period_s=10.0, role=1):
    return HeartbeatData(source_id, role, period_s=period_s)


def test_stale_after_missed_periods_and_forgotten_after_the_age():
    """Stale after stale_after of its own periods; forgotten after forget_after_s."""
    table = PeerTable(stale_after=3, forget_after_s=100.0)
    table.heard(hb('rsu', period_s=10.0), 0, 0.0)
    assert [p.stale for p in table.snapshot(30 * S)] == [False]
    assert [p.stale for p in table.snapshot(31 * S)] == [True]
    assert len(table.snapshot(100 * S)) == 1
    assert table.snapshot(101 * S) == [] and table.forgotten == 1


def test_full_table_refuses_newcomers_while_every_peer_is_alive():
    """When full, a new source id is refused (counted) and the known peers keep their place."""
    table = PeerTable(stale_after=3, max_peers=3)
    for i, name in enumerate(('rsu', 'veh_a', 'veh_b')):
        assert table.heard(hb(name), i * S, 0.0)
    assert not table.heard(hb('intruder'), 5 * S, 0.0)
    assert table.refused == 1
    assert [p.source_id for p in table.snapshot(5 * S)] == ['rsu', 'veh_a', 'veh_b']


def test_full_table_lets_a_newcomer_replace_the_stale_peer_heard_longest_ago():
    """When full, a new peer takes the place of the least recently heard one once it is stale."""
    table = PeerTable(stale_after=3, max_peers=2)
    table.heard(hb('old'), 0, 0.0)
    table.heard(hb('rsu'), 20 * S, 0.0)
    table.heard(hb('old'), 25 * S, 0.0)  # heard again: rsu is now the least recent
    assert not table.heard(hb('new'), 40 * S, 0.0)  # rsu silent 20 s: not stale yet
    assert table.heard(hb('new'), 51 * S, 0.0)  # rsu silent 31 s: stale, replaced
    assert [p.source_id for p in table.snapshot(51 * S)] == ['new', 'old']
    assert (table.evicted, table.refused) == (1, 1)


def test_twenty_thousand_source_ids_stay_bounded():
    """20,000 source ids: the table and its snapshot stay at the cap; the first peer stays."""
    table = PeerTable(stale_after=3, max_peers=1024)
    table.heard(hb('rsu_real'), 0, 0.0)
    for i in range(20_000):
        table.heard(hb(f'flood_{i}'), S + i * 1000, 0.0)
    peers = table.snapshot(2 * S)
    assert len(peers) == 1024 and peers[-1].source_id == 'rsu_real'
    assert table.refused == 20_000 - 1023
