"""The gateway's decisions without ROS: two cores (an RSU and a vehicle) joined by a list
of datagrams, a fake clock, real HMAC keys. No rclpy, no sockets, no files."""

from dataclasses import replace
import math

import pytest

from v2x_bridge.gateway_core import (
    ERROR,
    HIGH_WATER_SAVE_S,
    OK,
    REASSERT_STEP_NS,
    WARN,
    AlertOutDropped,
    CoreSettings,
    Delivered,
    GatewayCore,
    HeardHeartbeat,
    Log,
    MarkersNow,
    PeersNow,
    Publish,
    SaveHighWater,
    SaveOutbox,
    Sent,
    Transmit,
    same_version,
)
from v2x_bridge.identity import FixedIdentity, Identity
from v2x_protocol import keys
from v2x_protocol.wire import AlertData

SECRET = b'core-test-secret-0123456789'
RADIO, BROKER = 1, 2  # the node's Alert.PATH_* values are opaque to the core
S = 10**9


class Clock:
    """time_ns / monotonic / monotonic_ns, moved by hand."""

    def __init__(self):
        self.wall, self.mono = 1_800_000_000 * S, 1000 * S

    def time_ns(self):
        return self.wall

    def monotonic_ns(self):
        return self.mono

    def monotonic(self):
        return self.mono / S

    def advance(self, seconds: float):
        self.wall += int(seconds * S)
        self.mono += int(seconds * S)


def _core(role, clock, station_id='', secret=SECRET, federated=False, origin=7,
          camera_stale_s=0.0):
    key = keys.HmacKey(secret)
    identity = Identity(role, station_id, signer=key, can_send=True, origin=origin)
    sequences = iter(range(1, 1000))
    settings = CoreSettings(role=role, heartbeat_role=1 if role == 'rsu' else 2,
                            repeat_interval_s=1.0, heartbeat_period_s=1.0, stale_after=3,
                            max_clock_skew_s=30.0, default_validity_s=600.0,
                            federated=federated, camera_stale_s=camera_stale_s)
    return GatewayCore(settings, identity, keys.Keyring([key]),
                       next_sequence=lambda _source: next(sequences), clock=clock)


def _alert(**kw):
    fields = dict(source_id='', sequence=0, kind=1, severity=3, suggest=1, stamp_ns=0,
                  detection_time_ns=0, validity_s=0.0, road='segment_A')
    fields.update(kw)
    return AlertData(**fields)


def _sent(actions):
    """The datagrams of the Transmit actions."""
    return [a.datagram for a in actions if isinstance(a, Transmit)]


@pytest.fixture
def link():
    clock = Clock()
    return clock, _core('rsu', clock, 'rsu_1'), _core('vehicle', clock, 'veh_1')


def test_an_alert_is_filled_signed_sent_and_delivered_once(link):
    """alert_out: the RSU identity's id, sequence 1, defaults; sent and on alert_sent. The
    vehicle delivers it once; the repeats that follow are counted, not delivered."""
    clock, rsu, veh = link
    actions = rsu.alert_out(_alert(clip_requested=True))
    assert [type(a) for a in actions] == [Transmit, Sent]
    sent = actions[1].alert
    assert (sent.source_id, sent.sequence, sent.clip_id) == ('rsu_1', 1, 'rsu_1-1')
    assert sent.validity_s == 600.0 and sent.detection_time_ns == clock.wall
    got = list(veh.ingest(_sent(actions), RADIO))
    assert [type(a) for a in got] == [Delivered]
    assert same_version(got[0].alert, sent) and got[0].alert.stamp_ns == sent.stamp_ns
    assert (got[0].path, got[0].authenticated, got[0].change) == (RADIO, True, 'new')
    clock.advance(1.0)
    repeats = rsu.due()
    assert len(repeats) == 1 and list(veh.ingest(_sent(repeats), RADIO)) == []
    c = veh.counters()
    assert (c['delivered'], c['repeats'], c['received'], c['live_alerts']) == (1, 1, 2, 1)


@pytest.mark.parametrize('alert,reason,next_sequence', [
    (_alert(validity_s=math.inf), 'bad_time', 1),             # no ns arithmetic takes it
    (_alert(kind=250), 'out_of_range', 1),                    # no such kind
    (_alert(cancelled=True, sequence=999), 'unknown_event', 1),  # never sent by this RSU
    (_alert(cancelled=True), 'invalid', 1),                   # names no event
    # 1970 + 5 s: gone; found once identity is filled in (its sequence is spent)
    (_alert(detection_time_ns=1 * S, validity_s=5.0), 'expired', 2),
])
def test_bad_alert_out_is_dropped_with_its_reason(link, alert, reason, next_sequence):
    """A refused alert is counted by reason and sends nothing; the next good alert is
    sent with the next free sequence."""
    _, rsu, _ = link
    actions = rsu.alert_out(alert)
    assert len(actions) == 1 and isinstance(actions[0], AlertOutDropped)
    assert actions[0].reason == reason and not actions[0].error
    c = rsu.counters()
    assert (c['invalid_input'], c[f'dropped_alert_out_{reason}'], c['internal_errors']) == \
        (1, 1, 0)
    assert rsu.alert_out(_alert())[1].alert.sequence == next_sequence


def test_a_failing_sequence_store_is_a_state_error(link):
    """The sequence store failing (disk) drops the alert as state_error, counted."""
    clock, _, _ = link
    rsu = _core('rsu', clock, 'rsu_1')

    def broken(_source):
        raise OSError('disk full')
    rsu._next_sequence = broken
    (dropped,) = rsu.alert_out(_alert())
    assert dropped.reason == 'state_error' and 'disk full' in dropped.text


def test_a_foreign_change_on_the_graph_is_answered_with_our_version(link):
    """A newer foreign cancel of an event we delivered: our version again, 1 ms newer than
    it; our own echo, an older version and an unknown event change nothing."""
    _, rsu, veh = link
    (delivered,) = veh.ingest(_sent(rsu.alert_out(_alert())), RADIO)
    ours = delivered.alert
    assert veh.seen(ours) is None  # our own message back
    assert veh.seen(replace(ours, stamp_ns=ours.stamp_ns - 1, cancelled=True)) is None
    forged = replace(ours, stamp_ns=ours.stamp_ns + S, cancelled=True)
    again = veh.seen(forged)
    assert isinstance(again, Publish) and (again.path, again.authenticated) == (RADIO, True)
    assert again.alert == replace(ours, stamp_ns=forged.stamp_ns + REASSERT_STEP_NS)
    assert veh.seen(again.alert) is None  # the re-asserted version, echoed: no change
    assert veh.seen(_alert(source_id='denm_9', sequence=4, stamp_ns=S)) is None
    c = veh.counters()
    assert (c['reasserted'], c['foreign_alerts']) == (1, 1)
    (line,) = [a for a in veh.tick() if isinstance(a, Log)]
    assert line.level == 'warn' and 'a cancellation this gateway did not publish' in line.text


def test_the_tick_saves_state_expires_alerts_and_lists_peers(link):
    """tick: the RSU's outbox to save when changed; the high-water marks at most every
    HIGH_WATER_SAVE_S; peers with the path they were heard on; markers when the live
    alerts changed, and again when one expires."""
    clock, rsu, veh = link
    out = _sent(rsu.alert_out(_alert(validity_s=5.0))) + _sent(rsu.heartbeat(OK, 'ok'))
    got = list(veh.ingest(out, BROKER))
    assert [type(a) for a in got] == [Delivered, HeardHeartbeat]
    assert got[1].heartbeat.source_id == 'rsu_1'
    assert [type(a) for a in rsu.tick() if isinstance(a, SaveOutbox)] == [SaveOutbox]
    assert not any(isinstance(a, SaveOutbox) for a in rsu.tick())  # unchanged: no save
    first = veh.tick()
    assert not any(isinstance(a, SaveHighWater) for a in first)  # not 10 s yet
    (peers,) = [a for a in first if isinstance(a, PeersNow)]
    assert [p.source_id for p in peers.peers] == ['rsu_1']
    assert peers.paths == {'rsu_1': (BROKER, True)}
    (markers,) = [a for a in first if isinstance(a, MarkersNow)]
    assert len(markers.alerts) == 1
    assert not any(isinstance(a, MarkersNow) for a in veh.tick())  # unchanged
    clock.advance(HIGH_WATER_SAVE_S)
    later = veh.tick()
    (marks,) = [a for a in later if isinstance(a, SaveHighWater)]
    assert list(marks.marks.values()) == [veh.receiver.high_water[('rsu_1', 1, keys.HmacKey(
        SECRET).key_id)]]
    assert [a.alerts for a in later if isinstance(a, MarkersNow)] == [[]]  # expired
    assert veh.counters()['live_alerts'] == 0


def test_federated_paths_deliver_a_datagram_once(link):
    """Federated: the same datagram by radio and by broker is delivered once and counted
    as a path duplicate, not as a replay."""
    clock, rsu, _ = link
    veh = _core('vehicle', clock, 'veh_2', federated=True)
    data = _sent(rsu.alert_out(_alert()))
    assert [type(a) for a in veh.ingest(data, RADIO)] == [Delivered]
    assert list(veh.ingest(data, BROKER)) == []
    c = veh.counters()
    assert (c['broker_path_duplicates'], c['delivered']) == (1, 1)
    assert 'dropped_replayed' not in c


def test_pseudonym_rotation_is_followed_everywhere(link):
    """A vehicle without a station id: rotation draws a new id, origin and session; the
    heartbeat and the Receiver's own ids follow it; the broker never learns it."""
    clock, rsu, _ = link
    veh = _core('vehicle', clock)
    ident = veh.identity
    assert ident.pseudonymous and ident.station_id.startswith('vehicle_')
    assert ident.broker_client_id == '' and rsu.identity.broker_client_id == 'rsu_1'
    old = (ident.station_id, ident.origin, ident.session)
    assert veh.receiver.own_ids == {old[0]: old[1:]}
    (log,) = veh.rotate_pseudonym()
    new = (ident.station_id, ident.origin, ident.session)
    assert all(a != b for a, b in zip(old, new, strict=True)) and new[0] in log.text
    assert veh.receiver.own_ids == {new[0]: new[1:]}
    (hb,) = veh.heartbeat(OK, 'fine')
    (heard,) = rsu.ingest([hb.datagram], RADIO)
    assert heard.heartbeat.source_id == new[0] and heard.heartbeat.role == 2
    assert veh.health(veh.counters()) == (OK, f'vehicle {new[0]}')
    with pytest.raises(FixedIdentity):
        rsu.identity.rotate()


def test_health_says_conflicts_auth_failures_and_pressure(link):
    """Another origin under our id: ERROR for a minute; datagrams failing authentication
    and a receive buffer that overflowed: WARN while recent; then OK again."""
    clock, rsu, veh = link
    twin = _core('rsu', clock, 'rsu_1', origin=8)
    twin_hb = _sent(twin.heartbeat(OK, 'ok'))
    list(rsu.ingest(twin_hb, RADIO))
    assert any(isinstance(a, Log) and a.level == 'error' and 'two stations' in a.text
               for a in rsu.tick())
    assert rsu.health(rsu.counters())[0] == ERROR and rsu.counters()['id_conflicts'] == 1
    clock.advance(61)
    assert rsu.health(rsu.counters()) == (OK, 'rsu rsu_1')
    stranger = _core('rsu', clock, 'rsu_x', secret=b'another-secret-0123456789')
    list(veh.ingest(_sent(stranger.heartbeat(OK, 'ok')), RADIO))
    level, message = veh.health(veh.counters())
    assert level == WARN and 'authentication' in message
    assert veh.counters()['dropped_unknown_key'] == 1
    clock.advance(11)
    assert veh.health({**veh.counters(), 'kernel_drops': 5})[0] == WARN  # moved: pressure
    assert veh.health({**veh.counters(), 'kernel_drops': 5})[0] == WARN  # still recent
    clock.advance(11)
    assert veh.health({**veh.counters(), 'kernel_drops': 5})[0] == OK  # no longer moving


def test_dropped_datagrams_are_summarised_at_a_bounded_rate(link):
    """Garbage is counted by reason per datagram and summarised in one line per period."""
    clock, _, veh = link
    assert list(veh.ingest([b'garbage'] * 50, RADIO)) == []
    (line,) = [a for a in veh.tick(kernel_drops=3) if isinstance(a, Log)]
    assert line.level == 'warn' and 'dropped 53 datagrams' in line.text
    assert 'kernel_buffer_full 3' in line.text and 'malformed 50' in line.text
    list(veh.ingest([b'garbage'], RADIO))
    assert not any(isinstance(a, Log) for a in veh.tick(kernel_drops=3))  # within period
    clock.advance(10)
    (line,) = [a for a in veh.tick(kernel_drops=3) if isinstance(a, Log)]
    assert 'dropped 1 datagrams (malformed 1)' in line.text


def _peer_after(rsu, veh, clock, level=OK, message='ok'):
    """The vehicle's peer record of the RSU after one heartbeat of it."""
    clock.advance(1.0)
    list(veh.ingest(_sent(rsu.heartbeat(level, message)), RADIO))
    (peers,) = [a for a in veh.tick() if isinstance(a, PeersNow)]
    (peer,) = peers.peers
    return peer.status, peer.status_message


def test_a_degraded_camera_becomes_the_heartbeat_status_and_the_peer_record(link):
    """The detector's diagnostics (camera frozen: ERROR) -> the RSU's heartbeat says ERROR
    'rsu degraded: camera frozen' and the vehicle's peer record carries it; a camera that
    sees again -> the gateway's own status; the detector silent for camera_stale_s (dead or
    disabled) or failing in itself -> 'camera detector_down'; the gateway's own ERROR is
    said first; a vehicle watches no camera."""
    clock, _, veh = link
    rsu = _core('rsu', clock, 'rsu_9', camera_stale_s=15.0)
    assert _peer_after(rsu, veh, clock) == (0, 'ok')  # not heard yet, within 15 s of start
    rsu.camera_heard(ERROR, 'frozen')
    assert _peer_after(rsu, veh, clock, WARN, 'busy') == (2, 'rsu degraded: camera frozen')
    rsu.camera_heard(OK, 'ok')
    assert _peer_after(rsu, veh, clock, WARN, 'busy') == (1, 'busy')
    rsu.camera_heard(ERROR, 'ok')  # the detector's own failure (its worker died)
    assert _peer_after(rsu, veh, clock) == (2, 'rsu degraded: camera detector_down')
    rsu.camera_heard(OK, 'ok')
    clock.advance(15.0)  # then nothing: the detector died or was never started
    assert _peer_after(rsu, veh, clock) == (2, 'rsu degraded: camera detector_down')
    assert _peer_after(rsu, veh, clock, ERROR, 'id conflict') == (2, 'id conflict')
    assert _core('vehicle', clock, 'veh_9', camera_stale_s=15.0).camera is None
