"""Heartbeat <-> HeartbeatData and PeerArray <-> the peer table, every field."""

from v2x_conversion.heartbeat import heartbeat_from_msg, heartbeat_to_msg
from v2x_conversion.peers import peers_from_msg, peers_to_msg
from v2x_msgs.msg import Alert, Heartbeat, PeerStatus
from v2x_protocol.peers import PeerInfo
from v2x_protocol.wire import HeartbeatData

SENT_NS = 1_800_000_000_000_000_042


def test_heartbeat_round_trips():
    """Every Heartbeat field comes back; the send time is the header stamp; period_s (the
    datagram's, not the message's) is left out."""
    h = HeartbeatData(source_id='rsu_7', role=Heartbeat.ROLE_RSU,
                      status=Heartbeat.STATUS_WARN, status_message='camera stale',
                      active_alerts=12, uptime_s=3600.5)
    msg = heartbeat_to_msg(h, SENT_NS)
    assert set(Heartbeat.get_fields_and_field_types()) == {
        'header', 'source_id', 'role', 'status', 'status_message', 'active_alerts',
        'uptime_s'}
    assert heartbeat_from_msg(msg) == (h, SENT_NS)


def test_heartbeat_active_alerts_saturate():
    """More live alerts than a uint16 holds are reported as 65535, not wrapped."""
    msg = heartbeat_to_msg(HeartbeatData('v', Heartbeat.ROLE_VEHICLE, active_alerts=70000), 0)
    assert msg.active_alerts == 0xFFFF


def test_peers_round_trip_with_how_they_were_heard():
    """Every PeerStatus field comes back; path and authenticated come from the map given
    (a peer missing from it: radio, unverified)."""
    peers = [PeerInfo('rsu_7', Heartbeat.ROLE_RSU, SENT_NS, False, 3, -0.25,
                      Heartbeat.STATUS_ERROR, 'rsu degraded: camera frozen'),
             PeerInfo('car_2', Heartbeat.ROLE_VEHICLE, SENT_NS + 1, True, 0, 1.5)]
    msg = peers_to_msg(peers, {'rsu_7': (Alert.PATH_BROKER, True)})
    assert set(PeerStatus.get_fields_and_field_types()) == {
        'source_id', 'role', 'last_heard', 'stale', 'active_alerts', 'clock_offset_s',
        'path', 'authenticated', 'status', 'status_message'}
    assert peers_from_msg(msg) == [(peers[0], Alert.PATH_BROKER, True),
                                   (peers[1], Alert.PATH_RADIO, False)]
