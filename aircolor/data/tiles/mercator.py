"""Web-Mercator (EPSG:3857) tile math and the parsing of --bbox and --zoom."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

from aircolor.errors import UsageError


#: Web Mercator is cut off at the latitude that makes the world square: atan(sinh(pi)) in degrees.
MAX_LATITUDE = 85.0511287798
#: Highest zoom accepted on the command line; beyond this tiles are millimetre-sized.
MAX_ZOOM = 24

TileKey = tuple[int, int, int]



# --------------------------------------------------------------------------------------------------
# Web-Mercator tile math
# --------------------------------------------------------------------------------------------------


def _clamp_lat(lat: float) -> float:
    """Web Mercator has no tiles beyond ±MAX_LATITUDE; clamping keeps the math finite at the poles."""
    return max(-MAX_LATITUDE, min(MAX_LATITUDE, lat))


def _fractional_tile(lon: float, lat: float, z: int) -> tuple[float, float]:
    """Tile coordinates with the fraction kept, so callers can decide how to round edges."""
    n = 2**z
    fx = (lon + 180.0) / 360.0 * n
    lat_rad = math.radians(_clamp_lat(lat))
    fy = (1.0 - math.asinh(math.tan(lat_rad)) / math.pi) / 2.0 * n
    return fx, fy


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The XYZ tile ``(x, y)`` at zoom ``z`` that contains the point (WGS84 degrees).

    Points on the antimeridian or beyond the Mercator latitude limit fall into the edge tiles.
    """
    n = 2**z
    fx, fy = _fractional_tile(lon, lat, z)
    x = min(max(int(math.floor(fx)), 0), n - 1)
    y = min(max(int(math.floor(fy)), 0), n - 1)
    return x, y


def tile_to_lonlat(x: float, y: float, z: int) -> tuple[float, float]:
    """The ``(lon, lat)`` of the north-west corner of XYZ tile ``(x, y)`` at zoom ``z``.

    Pass ``x + 1, y + 1`` for the south-east corner, or ``x + 0.5, y + 0.5`` for the centre.
    """
    n = 2**z
    lon = x / n * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1.0 - 2.0 * y / n))))
    return lon, lat


def validate_bbox(west: float, south: float, east: float, north: float) -> None:
    """Reject a bbox that cannot be tiled, with a message that names ``--bbox`` and says what to do."""
    values = {"west": west, "south": south, "east": east, "north": north}
    for name, value in values.items():
        if not math.isfinite(value):
            raise UsageError(f"--bbox: {name} is {value}; give four finite numbers W,S,E,N in degrees")
    for name in ("west", "east"):
        if not -180.0 <= values[name] <= 180.0:
            raise UsageError(f"--bbox: {name} longitude {values[name]} is outside -180..180; use WGS84 degrees W,S,E,N")
    for name in ("south", "north"):
        if not -90.0 <= values[name] <= 90.0:
            raise UsageError(f"--bbox: {name} latitude {values[name]} is outside -90..90; use WGS84 degrees W,S,E,N")
    if west >= east:
        raise UsageError(
            f"--bbox: west {west} is not less than east {east}; the order is W,S,E,N, and a bbox crossing "
            "the antimeridian is not supported: split it into two runs at 180°"
        )
    if south >= north:
        raise UsageError(f"--bbox: south {south} is not less than north {north}; the order is W,S,E,N")
    if south >= MAX_LATITUDE or north <= -MAX_LATITUDE:
        raise UsageError(
            f"--bbox: latitudes {south}..{north} lie outside Web Mercator's ±{MAX_LATITUDE:.4f}°; "
            "there are no tiles there"
        )


def _tile_range(west: float, south: float, east: float, north: float, z: int) -> tuple[int, int, int, int]:
    """Inclusive ``(x0, x1, y0, y1)`` of the tiles the bbox touches at zoom ``z``.

    The east and south edges are exclusive, so a bbox drawn exactly around one tile yields one tile,
    not four. Fractions within 1e-9 of an integer are snapped, because a bbox built from
    :func:`tile_to_lonlat` corners does not survive the float round trip exactly.
    """
    n = 2**z

    def snap(v: float) -> float:
        r = round(v)
        return float(r) if abs(v - r) < 1e-9 else v

    fx0, fy0 = _fractional_tile(west, north, z)
    fx1, fy1 = _fractional_tile(east, south, z)
    fx0, fy0, fx1, fy1 = map(snap, (fx0, fy0, fx1, fy1))
    x0 = max(0, math.floor(fx0))
    y0 = max(0, math.floor(fy0))
    x1 = min(n - 1, max(x0, math.ceil(fx1) - 1))
    y1 = min(n - 1, max(y0, math.ceil(fy1) - 1))
    return x0, x1, y0, y1


def count_tiles_in_bbox(west: float, south: float, east: float, north: float, z: int) -> int:
    """How many tiles :func:`tiles_in_bbox` yields, computed without enumerating them."""
    validate_bbox(west, south, east, north)
    x0, x1, y0, y1 = _tile_range(west, south, east, north, z)
    return (x1 - x0 + 1) * (y1 - y0 + 1)


def tiles_in_bbox(west: float, south: float, east: float, north: float, z: int) -> Iterator[TileKey]:
    """Every ``(z, x, y)`` tile that intersects the bbox (WGS84 degrees), row by row from the north-west.

    Latitudes are clamped to ±MAX_LATITUDE. The bbox is validated now (raising :class:`UsageError`),
    not on the first ``next()``, and tiles are produced lazily so a huge bbox costs no memory.
    """
    validate_bbox(west, south, east, north)
    if z < 0 or z > 30:
        raise UsageError(f"--zoom: zoom {z} is outside 0..30")
    x0, x1, y0, y1 = _tile_range(west, south, east, north, z)

    def generate() -> Iterator[TileKey]:
        for y in range(y0, y1 + 1):
            for x in range(x0, x1 + 1):
                yield (z, x, y)

    return generate()


# --------------------------------------------------------------------------------------------------
# Command-line value parsing
# --------------------------------------------------------------------------------------------------


_BBOX_EXAMPLE = "e.g. --bbox 135.50,34.59,135.53,34.61"


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """Parse ``--bbox W,S,E,N`` (degrees) and validate it."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4:
        raise UsageError(f"--bbox: expected 4 comma-separated numbers W,S,E,N, got {text!r}; {_BBOX_EXAMPLE}")
    try:
        west, south, east, north = (float(p) for p in parts)
    except ValueError:
        raise UsageError(f"--bbox: {text!r} is not four numbers W,S,E,N; {_BBOX_EXAMPLE}") from None
    validate_bbox(west, south, east, north)
    return west, south, east, north


def parse_zooms(text: str) -> list[int]:
    """Parse ``--zoom``: one level (``16``), a range (``15-16``) or a list (``15,17``)."""
    zooms: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            raise UsageError(
                f"--zoom: {text!r} is not a zoom level, range or list; e.g. --zoom 16, --zoom 15-16 or --zoom 15,17"
            )
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if lo > hi:
            raise UsageError(f"--zoom: range {part!r} runs backwards; write it low-high, e.g. --zoom 15-16")
        if hi > MAX_ZOOM:
            raise UsageError(f"--zoom: zoom {hi} is above the maximum {MAX_ZOOM}; orthophoto tiles are zoom 15-16")
        zooms.update(range(lo, hi + 1))
    return sorted(zooms)


