"""The I/O edge of the V2X protocol: what reads files, the environment and the host.

keys (key files, their permissions, the trust store file, $V2X_KEY, a gateway's key set),
state (the station's origin and sequences, the CLI's sent events and the RSU's outbox in
its state directory, under a file lock), station (default station ids from the host
name, pseudonyms). The protocol core (v2x_protocol) does none of this: it takes the
keys, clocks and identities these produce as arguments.

The names below load lazily (importing v2x_protocol.io.keys does not open state files).
"""

from v2x_protocol import lazy_exports

#: name -> the module of this package that defines it
_EXPORTS = {
    'StationKeys': 'keys', 'load_station_keys': 'keys', 'KeyConfigError': 'keys',
    'HighWaterFile': 'state', 'OutboxFile': 'state', 'SentEvents': 'state',
    'SequenceStore': 'state',
    'default_station_id': 'station', 'pseudonym': 'station',
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
