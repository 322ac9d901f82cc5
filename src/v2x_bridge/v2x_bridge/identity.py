"""Who this gateway is on the air and on the broker: one object, the only place it lives.

A station's identity is its station id (the source_id of the alerts it raises and of its
heartbeats, the level of its broker topics), the origin of its events (wire field: an
event is (source_id, origin, sequence)) and the session of its datagrams (the Sender that
numbers and signs them). Everything that names this station reads it here, at the moment
it needs it: fill_identity, heartbeats, the health line, the Receiver's own ids (an id
conflict is another origin under our id), the broker topics and client id. A vehicle
configured without a station_id is pseudonymous: :meth:`Identity.rotate` draws a new
pseudonym, origin and session together, so that nothing on the air links the new one to
the old; every other identity is fixed for the life of the process.

Pure Python (no rclpy); the signer and the persisted origin come in as arguments.
"""

import secrets

from v2x_protocol.io.station import default_station_id, pseudonym
from v2x_protocol.sender import Sender


class FixedIdentity(Exception):
    """rotate() on an identity that is not pseudonymous (local misuse)."""


class Identity:
    """The station id, origin and sending session of this gateway.

    ``sender`` is None when the station cannot send (a vehicle without a key, not
    insecure); ``origin`` is then 0.
    """

    def __init__(self, role: str, station_id: str, *, signer=None, can_send: bool,
                 origin: int = 0, heartbeat_signer=None):
        self.role = role
        #: a vehicle given no station id draws pseudonyms (and persists no origin)
        self.pseudonymous = role == 'vehicle' and not station_id
        self.station_id = station_id or default_station_id(role)
        self._signer = signer
        self._heartbeat_signer = heartbeat_signer  # the fleet key: heartbeats only
        self._can_send = can_send
        self.sender = (Sender(signer, origin=self._origin(origin),
                              heartbeat_signer=heartbeat_signer) if can_send else None)

    def _origin(self, persisted: int) -> int:
        return secrets.randbits(64) if self.pseudonymous else persisted

    @property
    def origin(self) -> int:
        """The origin of this station's events (0 when it cannot send)."""
        return self.sender.origin if self.sender is not None else 0

    @property
    def session(self) -> int | None:
        """The session of this station's datagrams (None when it cannot send)."""
        return self.sender.session if self.sender is not None else None

    @property
    def broker_client_id(self) -> str:
        """The MQTT client id: an RSU's is its station id (one broker session per
        station); a vehicle's is empty, left to the broker, so the broker never learns
        the vehicle's (pseudonymous) station id."""
        return self.station_id if self.role == 'rsu' else ''

    def rotate(self) -> None:
        """A new pseudonym, origin and session at once (pseudonymous vehicles only)."""
        if not self.pseudonymous:
            raise FixedIdentity(f'{self.station_id} is configured: it never rotates')
        self.station_id = pseudonym()
        if self._can_send:
            self.sender = Sender(self._signer, origin=self._origin(0),
                                 heartbeat_signer=self._heartbeat_signer)

    def __repr__(self) -> str:
        return (f'Identity({self.role} {self.station_id}, origin={self.origin:016x}, '
                f'pseudonymous={self.pseudonymous})')
