"""Quadkey tile maths (the Bing Maps / Web Mercator tile system), pure Python.

A tile at zoom z is (x, y) with 0 <= x, y < 2^z; its quadkey is z digits 0..3, the most
significant first (digit = 2 * y_bit + x_bit). A tile's quadkey is the prefix of the
quadkeys of every tile inside it, which is what lets an MQTT subscriber take a whole
tile with one `#` wildcard when the digits are topic levels (topics.py).
Reference: https://learn.microsoft.com/en-us/bingmaps/articles/bing-maps-tile-system
"""

import math

MIN_LATITUDE = -85.05112878
MAX_LATITUDE = 85.05112878
MAX_ZOOM = 23  # 4.7 m tiles at the equator: far finer than any use here


class InvalidPosition(ValueError):
    """A latitude/longitude that is not a finite WGS84 position, or a bad zoom."""


def check_zoom(zoom: int) -> None:
    """Raise InvalidPosition unless 1 <= zoom <= MAX_ZOOM."""
    if not isinstance(zoom, int) or not 1 <= zoom <= MAX_ZOOM:
        raise InvalidPosition(f'zoom {zoom!r} is not an integer in 1..{MAX_ZOOM}')


def tile_of(lat: float, lon: float, zoom: int) -> tuple[int, int]:
    """The (x, y) tile holding the position at zoom (latitude clipped to Mercator's range)."""
    check_zoom(zoom)
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        raise InvalidPosition(f'({lat!r}, {lon!r}) is not a WGS84 position')
    lat = min(max(lat, MIN_LATITUDE), MAX_LATITUDE)
    n = 1 << zoom
    x = (lon + 180.0) / 360.0
    s = math.sin(math.radians(lat))
    y = 0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)
    return min(int(x * n), n - 1), min(max(int(y * n), 0), n - 1)


def quadkey(x: int, y: int, zoom: int) -> str:
    """The quadkey digits of tile (x, y) at zoom."""
    check_zoom(zoom)
    digits = []
    for i in range(zoom, 0, -1):
        mask = 1 << (i - 1)
        digits.append(str((1 if x & mask else 0) + (2 if y & mask else 0)))
    return ''.join(digits)


def tile_of_quadkey(key: str) -> tuple[int, int, int]:
    """(x, y, zoom) of a quadkey; raises InvalidPosition for anything but digits 0..3."""
    if not key or any(c not in '0123' for c in key):
        raise InvalidPosition(f'{key!r} is not a quadkey (digits 0..3)')
    check_zoom(len(key))
    x = y = 0
    for c in key:
        d = int(c)
        x, y = (x << 1) | (d & 1), (y << 1) | (d >> 1)
    return x, y, len(key)


def quadkey_of(lat: float, lon: float, zoom: int) -> str:
    """The quadkey of the tile holding the position at zoom."""
    return quadkey(*tile_of(lat, lon, zoom), zoom)


def neighbourhood(key: str) -> list[str]:
    """The tile and its 8 neighbours (3x3), sorted; wraps in longitude, stops at the poles."""
    x, y, zoom = tile_of_quadkey(key)
    n = 1 << zoom
    out = {quadkey((x + dx) % n, y + dy, zoom)
           for dx in (-1, 0, 1) for dy in (-1, 0, 1) if 0 <= y + dy < n}
    return sorted(out)


def tile_size_m(lat: float, zoom: int) -> float:
    """Width of a tile in metres at a latitude (for docs and the bench's area sizes)."""
    check_zoom(zoom)
    return 40_075_016.686 * math.cos(math.radians(lat)) / (1 << zoom)
