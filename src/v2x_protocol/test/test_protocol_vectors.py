import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import pytest

from v2x_protocol import keys, wire
from v2x_protocol.receiver import AlertDelivered, DatagramRejected, HeartbeatReceived, Receiver

DOC = Path(__file__).resolve().parents[3] / 'docs' / 'protocol.md'


def _vectors():
    text = DOC.read_text(encoding='utf-8')
    blocks = text.split('```v2x-vector\n')[1:]
    out = []
    for block in blocks:
        fields, hexparts = {}, []
        for line in block.split('```', 1)[0].splitlines():
            name, _, value = line.partition(': ')
            if name == 'datagram':
                hexparts.append(value.strip())
            else:
                fields[name] = value
        fields['datagram'] = bytes.fromhex(''.join(hexparts))
        out.append(fields)
    return out


def _key(text, trust_store=''):
    """(signer, keyring) of a vector's `key:` (and, for Ed25519, its `trust-store:` line,
    which must parse to the seed's public key and the listed ids)."""
    kind, *values = text.split(' ')
    if kind == 'hmac-utf8':
        return keys.HmacKey(values[0].encode()), keys.Keyring([keys.HmacKey(values[0].encode())])
    if kind == 'heartbeat-utf8':
        key = keys.HeartbeatKey(values[0].encode())
        return key, keys.Keyring(heartbeat_keys=[key])
    if kind == 'ed25519-seed-hex':
        signer = keys.Ed25519Signer(
            Ed25519PrivateKey.from_private_bytes(bytes.fromhex(values[0])))
        (verifier,) = keys.parse_trust_store(trust_store + '\n', 'vector trust-store')
        assert verifier.public_raw == signer.public_raw
        assert verifier.source_ids == frozenset(values[1:])
        return signer, keys.Keyring(ed25519_keys=[verifier])
    assert kind == 'none'
    return None, keys.Keyring(allow_none=True)


VECTORS = _vectors()
GOOD = [v for v in VECTORS if 'reject' not in v]
BAD = [v for v in VECTORS if 'reject' in v]


#: vector set 2.0: these 13 keep their bytes and outcomes in every later set
SET_2_0 = {'alert-hmac', 'alert-ed25519', 'cancel-hmac', 'heartbeat-hmac', 'alert-none',
           'alert-hmac-other-origin', 'reject-latitude', 'reject-distance', 'reject-control',
           'reject-none-key-id', 'reject-version-1', 'reject-forged-source',
           'reject-heartbeat-period'}
#: added in set 2.1 (issue 24)
SET_2_1 = {'heartbeat-fleet-key', 'reject-heartbeat-key-alert', 'reject-counter-zero',
           'reject-bidi', 'reject-at-in-source-id'}


def test_doc_has_vectors_for_every_auth_mode_and_type():
    """docs/protocol.md carries vector set 2.1: alert vectors for hmac, ed25519 and none,
    heartbeats (HMAC and the fleet key), and a reject vector for each reason."""
    names = [v['name'] for v in VECTORS]
    assert sorted(names) == sorted(SET_2_0 | SET_2_1)
    assert {v['reject'] for v in BAD} >= {'out_of_range', 'control_chars', 'malformed',
                                          'unknown_version', 'forged_source',
                                          'heartbeat_key'}


@pytest.mark.parametrize('vector', GOOD, ids=[v['name'] for v in GOOD])
def test_vector_decodes_to_its_fields(vector):
    """Each documented datagram decodes, with its key, to exactly the documented values."""
    _, keyring = _key(vector['key'], vector.get('trust-store', ''))
    dg = wire.decode(vector['datagram'], keyring)
    env = json.loads(vector['envelope'])
    assert dg.envelope.session == int(env['session'], 16)
    assert dg.envelope.origin == int(env['origin'], 16)
    assert dg.envelope.counter == env['counter']
    assert dg.envelope.send_time_ns == env['send_time_ns']
    assert dg.envelope.auth == env['auth']
    assert dg.envelope.key_id.hex() == env['key_id']
    if 'alert' in vector:
        assert dg.payload == wire.AlertData(**json.loads(vector['alert']))
    else:
        assert dg.payload == wire.HeartbeatData(**json.loads(vector['heartbeat']))


@pytest.mark.parametrize('vector', GOOD, ids=[v['name'] for v in GOOD])
def test_vector_encodes_to_its_bytes(vector):
    """Encoding the documented values with the documented key gives the documented bytes."""
    signer, _ = _key(vector['key'], vector.get('trust-store', ''))
    env = json.loads(vector['envelope'])
    payload = (wire.AlertData(**json.loads(vector['alert'])) if 'alert' in vector
               else wire.HeartbeatData(**json.loads(vector['heartbeat'])))
    data = wire.encode(payload, signer=signer, session=int(env['session'], 16),
                       counter=env['counter'], send_time_ns=env['send_time_ns'],
                       origin=int(env['origin'], 16))
    assert data == vector['datagram']


@pytest.mark.parametrize('vector', BAD, ids=[v['name'] for v in BAD])
def test_rejection_vector_is_dropped_with_its_reason(vector):
    """Each `reject:` vector is dropped by our receiver with exactly that reason."""
    _, keyring = _key(vector['key'], vector.get('trust-store', ''))
    env = json.loads(vector['envelope'])
    event = Receiver(keyring).receive(vector['datagram'], env['send_time_ns'])
    assert isinstance(event, DatagramRejected) and event.reason == vector['reject'], event


def test_same_source_id_other_origin_is_another_event():
    """alert-hmac then alert-hmac-other-origin (same source id, sequence and key, another
    station instance): both delivered as new; the conflict is reported; the second is
    delivered under <source_id>@<origin>; then the first's cancellation cancels only it."""
    by_name = {v['name']: v for v in VECTORS}
    _, keyring = _key(by_name['alert-hmac']['key'])
    rx = Receiver(keyring)
    got = []
    for name in ('alert-hmac', 'alert-hmac-other-origin', 'cancel-hmac'):
        v = by_name[name]
        got.append(rx.receive(v['datagram'], json.loads(v['envelope'])['send_time_ns']))
    assert [type(e).__name__ for e in got] == ['AlertDelivered'] * 3
    assert [e.change for e in got] == ['new', 'new', 'cancel']
    assert got[1].alert.source_id == 'rsu_server_01@99aabbccddeeff00'
    assert got[2].alert.source_id == 'rsu_server_01'
    (conflict,) = rx.take_conflicts()
    assert (conflict.origin, conflict.other_origin) == (0x99aabbccddeeff00, 0x1122334455667788)
    assert '99aabbccddeeff00' in conflict.describe() and '1122334455667788' in \
        conflict.describe()


@pytest.mark.parametrize('vector', GOOD, ids=[v['name'] for v in GOOD])
def test_vector_passes_the_receiver_pipeline(vector):
    """At its own send time each vector is delivered (alerts) or heard (heartbeats)."""
    _, keyring = _key(vector['key'], vector.get('trust-store', ''))
    env = json.loads(vector['envelope'])
    event = Receiver(keyring).receive(vector['datagram'], env['send_time_ns'])
    assert isinstance(event, (AlertDelivered, HeartbeatReceived))


def test_vector_with_other_key_is_rejected():
    """The HMAC vector does not verify under another secret."""
    vector = next(v for v in VECTORS if v['name'] == 'alert-hmac')
    event = Receiver(keys.Keyring([keys.HmacKey(b'another-secret-of-32-bytes-000000')])).receive(
        vector['datagram'], json.loads(vector['envelope'])['send_time_ns'])
    assert event.reason == 'unknown_key'


def test_documented_minimal_receiver_decodes_the_hmac_vectors():
    """The standard-library receiver printed in docs/protocol.md agrees with the vectors."""
    code = DOC.read_text(encoding='utf-8').split('```python\n', 1)[1].split('```', 1)[0]
    scope = {}
    exec(compile(code, 'protocol.md', 'exec'), scope)  # noqa: S102 -- our own document
    for vector in GOOD:
        if not vector['key'].startswith('hmac-utf8') or 'alert' not in vector:
            continue
        got = scope['decode_hmac_alert'](vector['datagram'], vector['key'].split(' ', 1)[1]
                                         .encode())
        assert got['alert'] == json.loads(vector['alert']), vector['name']
        assert got['counter'] == json.loads(vector['envelope'])['counter']
        assert got['origin'] == int(json.loads(vector['envelope'])['origin'], 16)
    with pytest.raises(ValueError, match='unknown key'):
        scope['decode_hmac_alert'](VECTORS[0]['datagram'], b'other-secret-0123456789')
