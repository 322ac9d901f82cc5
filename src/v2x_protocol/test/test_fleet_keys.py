"""The fleet's key model and the two silencing attacks of issue 24 item 3, against the
receiver core (sans-IO: simulated clocks, real cryptography).

Recommended deployment: each RSU signs with its own Ed25519 key, bound by the trust store
to its source ids; every vehicle holds the fleet heartbeat key, which signs vehicle
heartbeats only. Lab deployment: one shared HMAC key. In both, a key holder's flood of
long-lived alerts under made-up ids, or of future-dated sessions, must not delay an RSU's
stop: it is delivered at its first datagram.
"""

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import pytest

from v2x_protocol import wire
from v2x_protocol.io import keys
from v2x_protocol.peers import PeerTable
from v2x_protocol.receiver import AlertDelivered, DatagramRejected, HeartbeatReceived, Receiver
from v2x_protocol.sender import Sender

S = 1_000_000_000
T = 1_800_000_000 * S
RSU_KEY = keys.Ed25519Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
HEARTBEAT = keys.HeartbeatKey(b'fleet-heartbeat-secret-0123456789')
LAB = keys.HmacKey(b'lab-shared-hmac-secret-0123456789')


def _alert(source='rsu_site7', sequence=1, validity_s=86400.0, suggest=2, at=T):
    return wire.AlertData(source, sequence, 3, 3, suggest, at, at, validity_s,
                          latitude=37.0, longitude=127.0, distance_m=40.0)


def _fleet_ring(*extra_hmac):
    """A vehicle's keyring in the recommended deployment (plus HMAC keys, for migration)."""
    trusted = keys.Ed25519Verifier(RSU_KEY.public_raw, 'rsu_site7', ['cam_01'])
    return keys.Keyring(list(extra_hmac), [trusted], heartbeat_keys=[HEARTBEAT])


def test_heartbeat_key_signs_only_vehicle_heartbeats():
    """The fleet heartbeat key: the Sender refuses to sign an alert with it; a receiver
    drops an alert signed with it, and a heartbeat claiming an RSU's role or an RSU's
    bound id; it accepts a vehicle's heartbeat under any pseudonym."""
    rx = Receiver(_fleet_ring())
    with pytest.raises(wire.InvalidMessage, match='heartbeat-only'):
        Sender(HEARTBEAT).datagram(_alert('vehicle_1234abcd'), T)
    forged = wire.encode(_alert('vehicle_1234abcd'), signer=HEARTBEAT, session=1, counter=1,
                         send_time_ns=T)
    as_rsu = wire.encode(wire.HeartbeatData('fake_rsu', 1), signer=HEARTBEAT, session=2,
                         counter=1, send_time_ns=T)
    bound = wire.encode(wire.HeartbeatData('rsu_site7', 2), signer=HEARTBEAT, session=3,
                        counter=1, send_time_ns=T)
    reasons = [rx.receive(d, T).reason for d in (forged, as_rsu, bound)]
    assert reasons == ['heartbeat_key', 'heartbeat_key', 'forged_source']
    vehicle = Sender(None, heartbeat_signer=HEARTBEAT)
    got = rx.receive(vehicle.datagram(wire.HeartbeatData('vehicle_1234abcd', 2), T), T)
    assert isinstance(got, HeartbeatReceived) and not got.bound


def test_bound_source_ids_belong_to_their_key_only():
    """An HMAC key (lab or migration) cannot speak for a source id the trust store binds to
    an RSU's Ed25519 key; the RSU's key speaks for its listed ids only."""
    rx = Receiver(_fleet_ring(LAB))
    for source in ('rsu_site7', 'cam_01'):
        got = rx.receive(Sender(LAB).datagram(_alert(source), T), T)
        assert got.reason == 'forged_source'
        assert isinstance(rx.receive(Sender(RSU_KEY).datagram(_alert(source), T), T),
                          AlertDelivered)
    assert rx.receive(Sender(RSU_KEY).datagram(_alert('rsu_other'), T), T).reason == \
        'forged_source'
    assert isinstance(rx.receive(Sender(LAB).datagram(_alert('lab_rsu'), T), T),
                      AlertDelivered)


def _flood_alerts(rx, signer, numbers, at):
    """Long-lived alerts (24 h), 1000 under each made-up source id (below its quota, so
    every id holds events); how many were delivered."""
    tx = Sender(signer)
    delivered = 0
    for i in numbers:
        alert = _alert(f'made_up_{i // 1000}', sequence=i % 1000 + 1, at=at)
        got = rx.receive(wire.encode(alert, signer=signer,
                                     session=tx.session, counter=i + 1, send_time_ns=at), at)
        delivered += isinstance(got, AlertDelivered)
    return delivered


@pytest.mark.parametrize('deployment', ['fleet', 'migration', 'lab'])
def test_event_flood_does_not_silence_an_rsu_holding_no_event(deployment):
    """15,000 long-lived alerts under 15 made-up ids (6,000 under 6: past any quota) from a
    key holder (fleet: a vehicle's heartbeat key, all refused; migration: an HMAC key
    beside the trust store; lab: the shared HMAC key): an RSU holding no live event, and a
    new RSU first heard during the flood, still get their stop delivered at its first
    datagram."""
    ring = {'fleet': _fleet_ring(), 'migration': _fleet_ring(LAB),
            'lab': keys.Keyring([LAB])}[deployment]
    attacker = {'fleet': HEARTBEAT, 'migration': LAB, 'lab': LAB}[deployment]
    rsu_key = LAB if deployment == 'lab' else RSU_KEY
    rx = Receiver(ring)
    rsu = Sender(rsu_key, origin=7)
    hb = rx.receive(rsu.datagram(wire.HeartbeatData('rsu_site7', 1), T), T)  # heard, no event
    assert isinstance(hb, HeartbeatReceived)
    size = 15_000 if deployment == 'lab' else 6_000  # the flood; past the quota
    first = _flood_alerts(rx, attacker, range(size // 2), T + S)
    newcomer = Sender(rsu_key, origin=8)  # a new RSU heard mid-flood (lab: by heartbeat)
    source_new = 'cam_01' if deployment != 'lab' else 'rsu_new'
    if deployment == 'lab':
        rx.receive(newcomer.datagram(wire.HeartbeatData(source_new, 1), T + S), T + S)
    second = _flood_alerts(rx, attacker, range(size // 2, size), T + 2 * S)
    if deployment == 'fleet':
        assert first + second == 0
    else:  # the attacker's signer holds its quota at most
        assert first + second <= rx.signer_quota
    for sender, source in ((rsu, 'rsu_site7'), (newcomer, source_new)):
        stop = rx.receive(sender.datagram(_alert(source, validity_s=60.0, at=T + 3 * S),
                                          T + 3 * S), T + 3 * S)
        assert isinstance(stop, AlertDelivered) and stop.change == 'new', stop


@pytest.mark.parametrize('deployment', ['fleet', 'lab'])
def test_future_session_flood_does_not_delay_a_known_rsu(deployment):
    """Heartbeats of 20,000 new sessions (fleet: 6,000; the table holds 4096) sent 25 s in
    the future (fleet: vehicle heartbeats under the heartbeat key; lab: under the RSU's own
    id and origin with the shared key) push the RSU's session out of the table; the RSU's
    new stop, repeated every second, is delivered at its first datagram, and a replay of
    the RSU's forgotten session is still refused."""
    ring = _fleet_ring() if deployment == 'fleet' else keys.Keyring([LAB])
    rsu_key = RSU_KEY if deployment == 'fleet' else LAB
    rx = Receiver(ring)
    rsu = Sender(rsu_key, origin=7)
    old = rsu.datagram(wire.HeartbeatData('rsu_site7', 1), T)
    assert isinstance(rx.receive(old, T), HeartbeatReceived)
    sessions = 20_000 if deployment == 'lab' else 6_000  # lab: the flood
    for i in range(sessions):
        now = T + S + i * 50_000  # 20,000 a second
        if deployment == 'fleet':
            hb, signer, origin = wire.HeartbeatData(f'vehicle_{i:08x}', 2), HEARTBEAT, i
        else:
            hb, signer, origin = wire.HeartbeatData('rsu_site7', 1), LAB, 7
        rx.receive(wire.encode(hb, signer=signer, session=1000 + i, counter=1,
                               send_time_ns=now + 25 * S, origin=origin), now)
    assert rx.held_sessions == rx.max_sessions  # the RSU's session was pushed out
    assert isinstance(rx.receive(old, T + 2 * S), DatagramRejected)  # no replay of it
    stop = rx.receive(rsu.datagram(_alert(at=T + 2 * S), T + 2 * S), T + 2 * S)
    assert isinstance(stop, AlertDelivered) and stop.change == 'new', stop
    restarted = Sender(rsu_key, origin=7)  # a restarted RSU (new session) too
    again = rx.receive(restarted.datagram(_alert(sequence=2, at=T + 3 * S), T + 3 * S),
                       T + 3 * S)
    assert isinstance(again, AlertDelivered), again


def test_peer_table_quota_per_signer_and_bound_rsus():
    """The fleet heartbeat key fills at most half the peer table; an RSU bound by the trust
    store is admitted even when the table is full of live peers."""
    rx = Receiver(_fleet_ring(LAB))
    table = PeerTable(max_peers=8)
    vehicles = Sender(None, heartbeat_signer=HEARTBEAT)
    lab = Sender(LAB)
    for i in range(12):
        for sender, name in ((vehicles, f'vehicle_{i}'), (lab, f'lab_{i}')):
            role = 2 if sender is vehicles else 1
            event = rx.receive(sender.datagram(wire.HeartbeatData(name, role), T), T)
            table.heard_event(event, T)
    held = [p.source_id for p in table.snapshot(T)]
    assert sum(n.startswith('vehicle_') for n in held) == 4 and len(held) == 8
    event = rx.receive(Sender(RSU_KEY).datagram(wire.HeartbeatData('rsu_site7', 1), T), T)
    assert event.bound and table.heard_event(event, T)
    assert 'rsu_site7' in [p.source_id for p in table.snapshot(T)]


def test_station_keys_of_the_recommended_deployment(tmp_path):
    """load_station_keys: a vehicle holds no alert signer and signs heartbeats with the
    fleet key; an RSU signs both with its own key and hears vehicles; a heartbeat key that
    is also an alert key is refused, naming heartbeat_key_file."""
    rsu_pem = tmp_path / 'rsu_site7.key'
    from cryptography.hazmat.primitives import serialization
    rsu_pem.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    rsu_pem.chmod(0o600)
    signer = keys.load_private_key(rsu_pem)
    store = tmp_path / 'trust_store'
    store.write_text(keys.trust_entry('rsu_site7', signer.public_raw) + '\n')
    hb_file = tmp_path / 'heartbeat.key'
    hb_file.write_text('ab' * 32 + '\n')
    hb_file.chmod(0o600)
    vehicle = keys.load_station_keys('vehicle', 'ed25519', trust_store=str(store),
                                     heartbeat_key_file=str(hb_file), env={})
    assert vehicle.signer is None and vehicle.heartbeat_signer.signs_alerts is False
    rsu = keys.load_station_keys('rsu', 'ed25519', key_file=str(rsu_pem),
                                 heartbeat_key_file=str(hb_file), env={})
    assert rsu.signer.key_id == signer.key_id and rsu.heartbeat_signer is None
    tx = Sender(vehicle.signer, heartbeat_signer=vehicle.heartbeat_signer)
    heard = Receiver(rsu.keyring).receive(tx.datagram(wire.HeartbeatData('vehicle_1', 2), T), T)
    assert isinstance(heard, HeartbeatReceived)
    with pytest.raises(keys.KeyConfigError) as exc:
        keys.load_station_keys('vehicle', 'hmac', key_file=str(hb_file),
                               heartbeat_key_file=str(hb_file), env={})
    assert exc.value.param == 'heartbeat_key_file'


def test_rsus_established_by_heartbeat_are_bounded():
    """A shared-key holder heartbeating 300 invented RSUs: at most 256 are established, the
    RSU heard first stays established, and invented RSUs past the bound are newcomers."""
    rx = Receiver(keys.Keyring([LAB]))
    tx = Sender(LAB)
    for i in range(300):
        name = 'rsu_real' if i == 0 else f'rsu_fake_{i}'
        rx.receive(tx.datagram(wire.HeartbeatData(name, 1), T), T)
    assert rx.established('rsu_real') and not rx.established('rsu_fake_299')
    assert sum(rx.established(f'rsu_fake_{i}') for i in range(1, 300)) == 255
