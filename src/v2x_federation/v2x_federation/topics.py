"""The topic scheme on the broker (docs/protocol.md, "Federation over MQTT"), pure Python.

    <prefix>/alert/<station_id>/<q1>/<q2>/.../<qz>/<event>   one signed alert datagram
    <prefix>/status/<station_id>/<q1>/<q2>/.../<qz>          the station's last heartbeat

q1..qz are the quadkey digits (0..3) of the event position at the publisher's zoom, one
topic level each (the IoT3 / its-client convention), so `<prefix>/alert/+/<tile digits>/#`
takes every event inside a tile whatever the publisher's (deeper or equal) zoom; the
status topic ends with the quadkey of the station's site, so `<prefix>/status/+/<tile>/#`
takes the stations of a tile (a vehicle hears the RSUs around it, not a country's).
<event> is `<source_id>:<sequence>` with '%', '/', '+', '#' in source_id percent-encoded:
one topic per event, so the retained copy of an event is replaced by its next version
and never by another event. <station_id> is the publishing station: the broker's ACL
lets a station write only under its own id (mosquitto `pattern write .../%u/#`).
"""

from urllib.parse import quote, unquote

from v2x_federation import quadkey as qk

ALERT = 'alert'
STATUS = 'status'
_FORBIDDEN = ('/', '+', '#', '\0')


class InvalidTopic(ValueError):
    """A prefix, station id or topic that does not fit the scheme (the text says why)."""


def check_prefix(prefix: str) -> str:
    """The prefix unchanged, or InvalidTopic: non-empty levels, no wildcards, no leading $."""
    levels = prefix.split('/')
    if not prefix or any(not lv for lv in levels):
        raise InvalidTopic(f'topic prefix {prefix!r} must be non-empty levels (no empty '
                           "level, no leading or trailing '/')")
    if any(c in prefix for c in '+#\0') or prefix.startswith('$'):
        raise InvalidTopic(f"topic prefix {prefix!r} must not hold '+', '#' or start with '$'")
    return prefix


def check_level(value: str, what: str = 'station id') -> str:
    """value unchanged if it can be one topic level (non-empty, no '/', '+', '#', NUL)."""
    if not value or any(c in value for c in _FORBIDDEN):
        raise InvalidTopic(f"{what} {value!r} cannot be an MQTT topic level (empty, or holds "
                           "'/', '+', '#' or NUL)")
    return value


def event_level(source_id: str, sequence: int) -> str:
    """The last level of an alert topic: `<source_id>:<sequence>`, source_id escaped."""
    return f"{quote(source_id, safe='')}:{sequence}"


def alert_topic(prefix: str, station_id: str, quadkey: str, source_id: str,
                sequence: int) -> str:
    """Where one version of event (source_id, sequence) at tile quadkey is published."""
    qk.tile_of_quadkey(quadkey)
    return '/'.join((prefix, ALERT, station_id, *quadkey, event_level(source_id, sequence)))


def status_topic(prefix: str, station_id: str, quadkey: str) -> str:
    """Where a station's heartbeat (and its last will, `offline`) is retained: under the
    quadkey of its site."""
    qk.tile_of_quadkey(quadkey)
    return '/'.join((prefix, STATUS, station_id, *quadkey))


def tile_filter(prefix: str, quadkey: str) -> str:
    """The subscription that takes every event inside tile quadkey, from any station."""
    qk.tile_of_quadkey(quadkey)
    return '/'.join((prefix, ALERT, '+', *quadkey, '#'))


def status_filter(prefix: str, quadkey: str) -> str:
    """The subscription to the status of every station sited inside tile quadkey."""
    qk.tile_of_quadkey(quadkey)
    return '/'.join((prefix, STATUS, '+', *quadkey, '#'))


def kind_of(prefix: str, topic: str) -> str:
    """ALERT, STATUS or '' (not ours) by the topic's head only: the cheap test a subscriber
    makes per message (its filters already chose the tiles; the payload is verified)."""
    if topic.startswith(prefix + '/' + ALERT + '/'):
        return ALERT
    if topic.startswith(prefix + '/' + STATUS + '/'):
        return STATUS
    return ''


def parse(prefix: str, topic: str) -> tuple[str, str, str, tuple[str, int] | None]:
    """(kind, station_id, quadkey, (source_id, sequence) or None) of a topic of the scheme;
    raises InvalidTopic for anything else."""
    head = prefix + '/'
    if not topic.startswith(head):
        raise InvalidTopic(f'{topic!r} is not under {prefix!r}')
    levels = topic[len(head):].split('/')
    if len(levels) >= 3 and levels[0] == STATUS and levels[1] and \
            all(len(d) == 1 and d in '0123' for d in levels[2:]):
        key = ''.join(levels[2:])
        qk.tile_of_quadkey(key)
        return STATUS, levels[1], key, None
    if len(levels) >= 4 and levels[0] == ALERT and levels[1]:
        digits, last = levels[2:-1], levels[-1]
        source, sep, seq = last.rpartition(':')
        if sep and seq.isdigit() and all(len(d) == 1 and d in '0123' for d in digits):
            key = ''.join(digits)
            qk.tile_of_quadkey(key)
            return ALERT, levels[1], key, (unquote(source), int(seq))
    raise InvalidTopic(f'{topic!r} is not an alert or status topic of the scheme')


class TileSubscriptions:
    """Which filters a vehicle holds: alerts and station statuses of the 3x3 tiles around
    its position at zoom, or of a fixed area (quadkeys) when configured. Pure: the link
    applies the diffs."""

    def __init__(self, prefix: str, zoom: int, area: tuple[str, ...] = ()):
        qk.check_zoom(zoom)
        for key in area:
            qk.tile_of_quadkey(key)
        self.prefix, self.zoom, self.area = prefix, zoom, tuple(area)
        self.centre = ''
        self.filters: frozenset[str] = self._filters_of(area)

    def _filters_of(self, keys) -> frozenset[str]:
        return frozenset(f for k in keys for f in (tile_filter(self.prefix, k),
                                                   status_filter(self.prefix, k)))

    def moved_to(self, lat: float, lon: float) -> tuple[list[str], list[str]]:
        """The position now: (filters to subscribe, filters to unsubscribe); both empty while
        in the same tile or when a fixed area is configured. Raises quadkey.InvalidPosition."""
        if self.area:
            return [], []
        centre = qk.quadkey_of(lat, lon, self.zoom)
        if centre == self.centre:
            return [], []
        self.centre = centre
        new = self._filters_of(qk.neighbourhood(centre))
        added, removed = sorted(new - self.filters), sorted(self.filters - new)
        self.filters = new
        return added, removed
