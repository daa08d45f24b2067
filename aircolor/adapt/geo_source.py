"""Today's imagery over georeferenced photos (``--like``) or a box (``--bbox``), from the sources ``compare``
takes (a raster file, an XYZ/WMTS template, a WMTS capabilities URL), at the photos' ground resolution.

Each footprint grows by :data:`MARGIN` of its size on every side (more of the place to learn from; the photos'
own ground is included), the imagery is put on that grid as ``compare`` does, and its tiles are placed in the
grid's CRS, so validation blocks are areas on the ground.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from aircolor.adapt.place_tiles import PlaceTiles, TileCollector
from aircolor.errors import UsageError

MARGIN = 0.25


def grown(footprint: Any, margin: float = MARGIN) -> Any:
    """The footprint with ``margin`` of its width and height added on every side, at the same resolution."""
    from rasterio.transform import Affine

    from aircolor.compare.modern import Footprint

    t = footprint.transform
    dx, dy = round(footprint.width * margin), round(footprint.height * margin)
    moved = Affine(t.a, t.b, t.c - dx * t.a - dy * t.b, t.d, t.e, t.f - dx * t.d - dy * t.e)
    return Footprint(footprint.crs, moved, footprint.width + 2 * dx, footprint.height + 2 * dy)


def like_footprints(photos: list[str], flag: str = "--like") -> list[Any]:
    """The grown footprints of georeferenced photos; a photo that is missing or not georeferenced: one line that
    names it after ``flag``."""
    from aircolor.compare.modern import footprint_of

    out = []
    for photo in photos:
        path = Path(photo)
        if not path.is_file():
            raise UsageError(f"{flag} {photo}: no such file")
        try:
            out.append(grown(footprint_of(path)))
        except UsageError as exc:
            raise UsageError(str(exc).replace("HISTORICAL ", f"{flag} ", 1).replace(
                "compare needs", "adapting to the photos' place needs")) from None
    return out


def bbox_footprint(bbox: tuple[float, float, float, float], resolution: float) -> Any:
    """A Web-Mercator grid over a WGS84 box (west, south, east, north) at ``resolution`` metres on the ground."""
    from rasterio.crs import CRS
    from rasterio.transform import from_origin
    from rasterio.warp import transform_bounds

    from aircolor.compare.modern import Footprint

    west, south, east, north = bbox
    if not (-180 <= west < east <= 180 and -85 <= south < north <= 85):
        raise UsageError(f"--bbox {west} {south} {east} {north}: not a WGS84 box (west south east north, in degrees, "
                         "west < east, south < north)")
    crs = CRS.from_epsg(3857)
    left, bottom, right, top = transform_bounds("EPSG:4326", crs, west, south, east, north)
    res = resolution / math.cos(math.radians((south + north) / 2))   # Mercator metres per ground metre
    width, height = math.ceil((right - left) / res), math.ceil((top - bottom) / res)
    if width * height > 40_000 ** 2:
        raise UsageError(f"--bbox: {width} x {height} pixels at {resolution:g} m; give a smaller box or a coarser "
                         "--resolution")
    return Footprint(crs, from_origin(left, top, res, res), width, height)


def load_georeferenced(args: argparse.Namespace, footprints: list[Any], size: int, scale: float,
                       tile_cache: Path) -> PlaceTiles:
    """The tiles of ``args.modern`` over every footprint (tile sources fetched into ``tile_cache``)."""
    from aircolor.compare.fetch import fetch_planned, plan_tiles
    from aircolor.compare.modern import modern_from_file, modern_from_tiles, source_kind
    from aircolor.colorize.geo import crs_name

    kind = source_kind(args.modern, args.layer)
    plans = [plan_tiles(args, kind, fp) for fp in footprints] if kind != "file" else None
    collector = TileCollector(size, scale)
    for i, fp in enumerate(footprints):
        if plans is None:
            rgba = modern_from_file(Path(args.modern), fp)
        else:
            files, _ = fetch_planned(args, plans[i], tile_cache)
            rgba = modern_from_tiles(files, fp)
        t = fp.transform
        place = (crs_name(fp.crs), t.c / t.a, -t.f / t.a, 1.0)   # north-up grids: pixels of this resolution
        collector.add(rgba[:3].transpose(1, 2, 0), rgba[3] > 0, f"footprint {i + 1}", place)
    if not collector.colors:
        raise UsageError(f"--modern {args.modern}: has no imagery over the footprint(s) (all {len(footprints)} "
                         "are outside its coverage, or it is gray); give a source that covers the photos")
    return collector.tiles(f"--modern {args.modern}")
