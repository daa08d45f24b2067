"""Tile grids: OGC tile matrix sets through ``morecantile``, and the parsing of ``--bbox`` and ``--zoom``.

A :class:`TileGrid` is a morecantile ``TileMatrixSet`` plus what a WMTS service calls its matrices. Tiles are
keyed ``(z, x, y)``: ``z`` is the matrix's index from the coarsest (0), ``x`` the column and ``y`` the row from
the top-left corner, which for Web Mercator are exactly the XYZ scheme's zoom, x and y. The tile math (which
tiles cover a box, a tile's bounds) is morecantile's; the box given in WGS84 degrees is carried into the grid's
own CRS by pyproj with densified edges, so a national grid (EPSG:2056, EPSG:3035, ...) gets every tile its
curved outline touches.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import morecantile
import pyproj

from aircolor.errors import UsageError

#: Web Mercator is cut off at the latitude that makes the world square: atan(sinh(pi)) in degrees.
MAX_LATITUDE = 85.0511287798
#: Highest zoom accepted on the command line; beyond this tiles are millimetre-sized.
MAX_ZOOM = 24
#: A box edge closer than this fraction of a tile to a tile edge is taken to lie on it: a bbox built from tile
#: corners does not survive the round trip through floats and projections exactly.
EDGE_SNAP = 1e-6

TileKey = tuple[int, int, int]
BBox = tuple[float, float, float, float]
WGS84 = pyproj.CRS.from_epsg(4326)


@dataclass(frozen=True, eq=False)
class TileGrid:
    """A tile matrix set, and the WMTS identifiers of its matrices (by zoom index) when it came from a service."""

    tms: morecantile.TileMatrixSet
    name: str
    matrix_ids: tuple[str, ...] | None = None
    #: The service's TileMatrixSetLimits by zoom: inclusive ``(min col, max col, min row, max row)``.
    limits: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)

    @cached_property
    def crs(self) -> pyproj.CRS:
        return self.tms.crs._pyproj_crs

    @property
    def crs_name(self) -> str:
        """``EPSG:2056``, or the CRS's WKT when it has no EPSG code."""
        code = self.crs.to_epsg()
        return f"EPSG:{code}" if code else self.crs.to_wkt()

    @property
    def zooms(self) -> range:
        return range(len(self.matrix_ids)) if self.matrix_ids is not None else range(MAX_ZOOM + 1)

    def matrix_id(self, z: int) -> str:
        """The WMTS TileMatrix identifier of zoom ``z`` (the zoom itself for a plain XYZ grid)."""
        return self.matrix_ids[z] if self.matrix_ids is not None else str(z)

    def xy_bounds(self, tile: TileKey) -> BBox:
        """``(minx, miny, maxx, maxy)`` of a tile in the grid's CRS, x = easting whatever the CRS's axis order."""
        z, x, y = tile
        b = self.tms.xy_bounds(x, y, z)
        return b.left, b.bottom, b.right, b.top

    def lonlat_bounds(self, tile: TileKey) -> BBox:
        """``(west, south, east, north)`` of a tile in WGS84 degrees."""
        z, x, y = tile
        b = self.tms.bounds(x, y, z)
        return b.left, b.bottom, b.right, b.top

    def check_zoom(self, z: int) -> None:
        if z not in self.zooms:
            ids = f" ({self.matrix_ids[0]} .. {self.matrix_ids[-1]})" if self.matrix_ids else ""
            raise UsageError(f"--zoom: zoom {z} is not in the {self.name} tile matrix set, which has zooms "
                             f"{self.zooms.start}..{self.zooms.stop - 1}{ids}")

    def native_bbox(self, bbox: BBox) -> BBox:
        """The WGS84 ``bbox`` in the grid's CRS (edges densified), clipped to the grid's extent."""
        g = self.tms.bbox  # the grid's extent in geographic degrees
        west, south, east, north = max(bbox[0], g.left), max(bbox[1], g.bottom), min(bbox[2], g.right), \
            min(bbox[3], g.top)
        if west >= east or south >= north:
            raise UsageError(f"--bbox {','.join(f'{v:g}' for v in bbox)} lies outside the {self.name} tile matrix "
                             f"set (its area: {g.left:.4f},{g.bottom:.4f},{g.right:.4f},{g.top:.4f}); "
                             "there are no tiles there")
        to_grid = pyproj.Transformer.from_crs(WGS84, self.crs, always_xy=True)
        left, bottom, right, top = to_grid.transform_bounds(west, south, east, north, densify_pts=21)
        x = self.tms.xy_bbox
        left, bottom, right, top = max(left, x.left), max(bottom, x.bottom), min(right, x.right), min(top, x.top)
        if not all(map(math.isfinite, (left, bottom, right, top))) or left >= right or bottom >= top:
            raise UsageError(f"--bbox {','.join(f'{v:g}' for v in bbox)} cannot be placed in the {self.name} "
                             f"tile matrix set ({self.crs_name}); check that it lies inside the set's area")
        return left, bottom, right, top

    def _inner(self, native: BBox, z: int) -> BBox:
        """``native`` shrunk by a hair of a tile, so that an edge on a tile boundary takes no extra row or column."""
        matrix = self.tms.matrix(z)
        eps = EDGE_SNAP * matrix.cellSize * min(matrix.tileWidth, matrix.tileHeight)
        left, bottom, right, top = native
        return left + eps, bottom + eps, right - eps, top - eps

    def tile_range(self, bbox: BBox, z: int) -> tuple[int, int, int, int]:
        """Inclusive ``(x0, x1, y0, y1)`` of the tiles the WGS84 ``bbox`` touches at zoom ``z``."""
        self.check_zoom(z)
        left, bottom, right, top = self._inner(self.native_bbox(bbox), z)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", morecantile.errors.PointOutsideTMSBounds)
            nw = self.tms.tile(left, top, z, geographic_crs=self.crs)
            se = self.tms.tile(right, bottom, z, geographic_crs=self.crs)
        x0, x1, y0, y1 = min(nw.x, se.x), max(nw.x, se.x), min(nw.y, se.y), max(nw.y, se.y)
        if z in self.limits:
            c0, c1, r0, r1 = self.limits[z]
            x0, x1, y0, y1 = max(x0, c0), min(x1, c1), max(y0, r0), min(y1, r1)
        return x0, x1, y0, y1

    def count(self, bbox: BBox, z: int) -> int:
        """How many tiles :meth:`tiles` yields, without enumerating them."""
        x0, x1, y0, y1 = self.tile_range(bbox, z)
        return max(0, x1 - x0 + 1) * max(0, y1 - y0 + 1)

    def tiles(self, bbox: BBox, z: int) -> Iterator[TileKey]:
        """Every tile the WGS84 ``bbox`` touches at zoom ``z`` (within the service's limits), row by row from the
        top left; lazy. Checked now (raising :class:`UsageError`), not on the first ``next()``.
        """
        self.check_zoom(z)
        left, bottom, right, top = self._inner(self.native_bbox(bbox), z)
        found = self.tms.tiles(left, bottom, right, top, [z], geographic_crs=self.crs)
        c0, c1, r0, r1 = self.limits.get(z, (0, math.inf, 0, math.inf))
        return ((t.z, t.x, t.y) for t in found if c0 <= t.x <= c1 and r0 <= t.y <= r1)


def web_mercator() -> TileGrid:
    """The XYZ / GoogleMapsCompatible grid (OGC WebMercatorQuad)."""
    return TileGrid(morecantile.tms.get("WebMercatorQuad"), "Web Mercator (WebMercatorQuad)")


WEB_MERCATOR = web_mercator()


# --------------------------------------------------------------------------------------------------
# Web-Mercator helpers (the XYZ scheme), through the grid above
# --------------------------------------------------------------------------------------------------


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The XYZ tile ``(x, y)`` at zoom ``z`` that contains the point (WGS84 degrees); poles and the antimeridian
    fall into the edge tiles."""
    tile = WEB_MERCATOR.tms.tile(lon, lat, z, truncate=True)
    return tile.x, tile.y


def tile_to_lonlat(x: int, y: int, z: int) -> tuple[float, float]:
    """The ``(lon, lat)`` of the north-west corner of XYZ tile ``(x, y)``; ``(x + 1, y + 1)`` gives the south-east."""
    corner = WEB_MERCATOR.tms.ul(x, y, z)
    return corner.x, corner.y


def count_tiles_in_bbox(west: float, south: float, east: float, north: float, z: int) -> int:
    validate_bbox(west, south, east, north)
    return WEB_MERCATOR.count((west, south, east, north), z)


def tiles_in_bbox(west: float, south: float, east: float, north: float, z: int) -> Iterator[TileKey]:
    validate_bbox(west, south, east, north)
    return WEB_MERCATOR.tiles((west, south, east, north), z)


# --------------------------------------------------------------------------------------------------
# Command-line values
# --------------------------------------------------------------------------------------------------


_BBOX_EXAMPLE = "e.g. --bbox 135.50,34.59,135.53,34.61"


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


def parse_bbox(text: str) -> BBox:
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
