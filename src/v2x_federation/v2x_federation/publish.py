"""What an RSU publishes on the broker, and its offline queue (pure Python, no I/O).

Rules (docs/protocol.md, "Federation over MQTT"):
- Every datagram the gateway sends for an alert (new, update, each repeat, cancellation)
  is published, QoS 1, retained, with MQTT v5 message expiry interval = the alert's
  remaining validity (ceil, >= 1 s): a late subscriber gets the live version, the broker
  forgets it at expiry. Each repeat refreshes the retained copy with the freshly signed
  datagram, so it is never older than a repeat interval while the RSU runs (a stale copy
  left by a dead RSU fails the receivers' clock-skew window). A cancellation has the same
  topic and so replaces the retained copy.
- An update that moves the event to another tile first clears the old topic's retained
  copy (empty retained payload).
- The heartbeat is retained on the status topic (under the site's quadkey) with expiry
  stale_after x period; the last will (retained) there is the text `offline`.
- While the broker is unreachable, the latest publication per topic is queued and those
  still valid are published on reconnect, oldest first, with their remaining expiry.
"""

from collections import OrderedDict
from dataclasses import dataclass
import math

from v2x_federation import quadkey as qk
from v2x_federation import topics

OFFLINE = b'offline'


@dataclass(frozen=True)
class Publication:
    """One MQTT publish: expires_ns is when it stops being worth sending (None: never)."""

    topic: str
    payload: bytes
    retain: bool = True
    expires_ns: int | None = None

    def expiry_interval_s(self, now_ns: int) -> int | None:
        """MQTT v5 message expiry interval at now_ns (None: no expiry; 0 means expired)."""
        if self.expires_ns is None:
            return None
        return max(0, math.ceil((self.expires_ns - now_ns) / 1e9))

    def live(self, now_ns: int) -> bool:
        """Still worth publishing at now_ns."""
        return self.expires_ns is None or self.expires_ns > now_ns


class RsuPublisher:
    """Turns the RSU gateway's sent datagrams into Publications (the topic rules above)."""

    def __init__(self, prefix: str, station_id: str, zoom: int,
                 site: tuple[float, float]):
        self.prefix = topics.check_prefix(prefix)
        self.station_id = topics.check_level(station_id)
        qk.check_zoom(zoom)
        self.zoom = zoom
        self.site_quadkey = qk.quadkey_of(site[0], site[1], zoom)
        self.status_topic = topics.status_topic(prefix, station_id, self.site_quadkey)
        # event key -> (topic, expires_ns, (lat, lon)): repeats reuse the topic
        self._topics: dict[tuple[str, int], tuple[str, int, tuple[float, float]]] = {}

    def quadkey_for(self, latitude: float, longitude: float) -> str:
        """The event's tile; the site's when the event has no (valid) position."""
        try:
            return qk.quadkey_of(latitude, longitude, self.zoom)
        except qk.InvalidPosition:
            return self.site_quadkey

    def alert(self, alert, datagram: bytes, now_ns: int) -> list[Publication]:
        """The publications for one sent alert datagram (alert: v2x_protocol AlertData)."""
        expires = alert.expires_ns
        if expires <= now_ns:
            return []
        place = (alert.latitude, alert.longitude)
        before = self._topics.get(alert.key)
        if before is not None and before[2] == place:
            topic = before[0]  # a repeat (or an update in place): the same topic
        else:
            topic = topics.alert_topic(self.prefix, self.station_id, self.quadkey_for(*place),
                                       alert.source_id, alert.sequence)
        out = []
        if before is not None and before[0] != topic:
            out.append(Publication(before[0], b'', retain=True, expires_ns=before[1]))
        self._topics[alert.key] = (topic, expires, place)
        out.append(Publication(topic, datagram, retain=True, expires_ns=expires))
        if len(self._topics) > 4096:  # forget expired events now and then
            self._topics = {k: v for k, v in self._topics.items() if v[1] > now_ns}
        return out

    def heartbeat(self, datagram: bytes, now_ns: int, period_s: float,
                  stale_after: int) -> Publication:
        """The retained status: the heartbeat datagram, expiring when peers call it stale."""
        return Publication(self.status_topic, datagram, retain=True,
                           expires_ns=now_ns + int(period_s * stale_after * 1e9))

    def will(self) -> Publication:
        """The last will: `offline`, retained on the status topic."""
        return Publication(self.status_topic, OFFLINE, retain=True)


class OfflineQueue:
    """The latest publication per topic while the broker is unreachable (bounded).

    put() replaces an older publication of the same topic (a newer version or a fresher
    repeat); put_older() keeps what is queued (for publications the client had in flight
    when the link dropped, which are older than anything queued since). drain() returns the
    live ones, oldest first. When full, the entry expiring soonest is dropped and counted.
    """

    def __init__(self, limit: int = 10000):
        self.limit = limit
        self.dropped = 0
        self._items: OrderedDict[str, Publication] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, pub: Publication) -> None:
        """Queue pub, replacing an older publication of its topic."""
        self._items.pop(pub.topic, None)
        self._items[pub.topic] = pub
        self._bound()

    def put_older(self, pub: Publication) -> None:
        """Queue pub unless a publication of its topic is queued already (that one is newer)."""
        if pub.topic in self._items:
            return
        self._items[pub.topic] = pub
        self._items.move_to_end(pub.topic, last=False)
        self._bound()

    def drain(self, now_ns: int) -> list[Publication]:
        """Everything queued that is still live at now_ns, oldest first; empties the queue."""
        out = [p for p in self._items.values() if p.live(now_ns)]
        self._items.clear()
        return out

    def _bound(self) -> None:
        while len(self._items) > self.limit:
            soonest = min(self._items.values(),
                          key=lambda p: math.inf if p.expires_ns is None else p.expires_ns)
            del self._items[soonest.topic]
            self.dropped += 1
