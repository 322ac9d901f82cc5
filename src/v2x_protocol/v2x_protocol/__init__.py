"""The V2X alert protocol core, sans-IO (like h11): bytes in, events out.

    from v2x_protocol import Receiver, Sender, AlertData, Keyring, HmacKey
    rx = Receiver(Keyring([HmacKey(secret)]))
    event = rx.receive(datagram, now_ns)        # AlertDelivered, DatagramRejected, ...
    data = Sender(HmacKey(secret)).datagram(alert, now_ns)

Modules: wire (datagram codec), receiver (verification, dedup, replay, expiry rules),
sender (identity, signing, repeats), keys (key maths, the trust store's text, the
keyring), ranges (the field-range table), peers (heartbeat table). Pure Python: no
rclpy, no sockets, no files, no environment; clocks, keys and configuration come in as
arguments. What reads files, the environment or the host (key and trust-store files,
state files, default station ids) is the I/O edge, v2x_protocol.io. docs/protocol.md is
the contract.

The names below are the public surface; they load lazily, so importing one module (e.g.
v2x_protocol.wire) does not load the others.
"""

import importlib

#: name -> the module of this package that defines it
_EXPORTS = {
    # the datagram and its codec
    'VERSION': 'wire', 'MAX_DATAGRAM': 'wire', 'AlertData': 'wire', 'HeartbeatData': 'wire',
    'Envelope': 'wire', 'Datagram': 'wire', 'encode': 'wire', 'decode': 'wire',
    'WireError': 'wire', 'InvalidMessage': 'wire',
    # receiving: events out
    'Receiver': 'receiver', 'AlertDelivered': 'receiver', 'AlertRepeated': 'receiver',
    'HeartbeatReceived': 'receiver', 'DatagramRejected': 'receiver',
    'OwnDatagramSkipped': 'receiver', 'IdConflict': 'receiver', 'classify': 'receiver',
    # sending
    'Sender': 'sender', 'Outbox': 'sender', 'fill_identity': 'sender',
    # keys
    'HmacKey': 'keys', 'HeartbeatKey': 'keys', 'Ed25519Signer': 'keys',
    'Ed25519Verifier': 'keys', 'Keyring': 'keys', 'KeyConfigError': 'keys',
    'parse_trust_store': 'keys', 'trust_entry': 'keys',
    # the field-range table and the peer table
    'FieldError': 'ranges', 'PeerTable': 'peers', 'PeerInfo': 'peers',
}
__all__ = sorted(_EXPORTS)


def lazy_exports(package: str, exports: dict[str, str]):
    """A module __getattr__ (PEP 562) that imports package.<module> for each exported name
    on first use."""
    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f'module {package!r} has no attribute {name!r}')
        return getattr(importlib.import_module(f'{package}.{module}'), name)
    return __getattr__


__getattr__ = lazy_exports(__name__, _EXPORTS)
