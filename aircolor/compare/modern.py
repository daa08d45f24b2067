"""Today's color imagery on a historical photo's grid: from a file, an XYZ/WMTS template, or a WMTS service.

The photo's footprint (its CRS, transform and size, read by rasterio) is the grid. A file is warped onto it; a
tile source is fetched for the footprint's WGS84 box at the zoom whose resolution is the photo's or finer
(morecantile's ``zoom_for_res``), through ``fetch-tiles``' machinery (resumable, into ``OUT/modern-tiles``),
merged by rasterio and warped onto the grid. Where no modern pixel exists, the result's alpha band is 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aircolor.errors import UsageError

#: The finest zoom picked on its own for an XYZ source: most orthophoto servers stop at 19 or 20.
MAX_AUTO_ZOOM = 19
#: Fetching more tiles than this needs ``--max-tiles`` (a 10,000 px scan at 0.5 m is about 600 tiles at z19).
MAX_TILES = 4000


@dataclass(frozen=True)
class Footprint:
    """The grid of the historical photo: every raster ``compare`` writes has exactly this one."""

    crs: Any
    transform: Any
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        from rasterio.transform import array_bounds

        return array_bounds(self.height, self.width, self.transform)  # west, south, east, north

    def wgs84_bbox(self) -> tuple[float, float, float, float]:
        from rasterio.warp import transform_bounds

        return transform_bounds(self.crs, "EPSG:4326", *self.bounds, densify_pts=21)

    def resolution_in(self, crs: Any) -> float:
        """The photo's pixel size measured in ``crs`` units (its width there over its width in pixels)."""
        from rasterio.warp import transform_bounds

        left, bottom, right, top = transform_bounds(self.crs, crs, *self.bounds, densify_pts=21)
        return min((right - left) / self.width, (top - bottom) / self.height)


def footprint_of(path: Path) -> Footprint:
    """The photo's grid; a photo without a CRS and a geotransform is refused in one line."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                crs, transform, width, height = src.crs, src.transform, src.width, src.height
    except RasterioIOError as err:
        raise UsageError(f"HISTORICAL {path}: cannot be read as a raster ({err})") from None
    if transform.is_identity or crs is None:
        lacking = "a geotransform" if transform.is_identity else "a CRS"
        raise UsageError(f"HISTORICAL {path}: not georeferenced (it has no {lacking}); compare needs a GeoTIFF, or "
                         "a photo with a world file and a CRS (.aux.xml), so that the modern imagery can be placed")
    return Footprint(crs, transform, width, height)


def source_kind(text: str, layer: str | None) -> str:
    """``file``, ``template`` (XYZ or WMTS with placeholders) or ``wmts`` (capabilities); else a one-line error."""
    if Path(text).exists():
        return "file"
    if re.match(r"https?://", text):
        if re.search(r"\{(z|TileMatrix)\}", text, re.IGNORECASE):
            return "template"
        if not layer:
            raise UsageError(f"--modern {text}: a WMTS service needs --layer NAME (or give an XYZ template with "
                             "{z}/{x}/{y})")
        return "wmts"
    raise UsageError(f"--modern {text!r}: neither an existing raster file nor an http(s) tile template or WMTS "
                     "capabilities URL")


def _merged_tiles(files: list[Path]) -> tuple[np.ndarray, Any, Any]:
    """The fetched tiles merged into one RGBA array (alpha 255 where a tile is), its transform and CRS."""
    import rasterio
    from rasterio.merge import merge
    from rasterio.windows import from_bounds

    with rasterio.open(files[0]) as first:
        crs = first.crs
    rgb, transform = merge([str(f) for f in files], indexes=[1, 2, 3])
    alpha = np.zeros(rgb.shape[1:], dtype=np.uint8)
    for f in files:
        with rasterio.open(f) as src:
            win = from_bounds(*src.bounds, transform).round_offsets().round_lengths()
            alpha[win.toslices()] = 255
    return np.concatenate([rgb.astype(np.uint8), alpha[None]]), transform, crs


def _warp(source: np.ndarray, src_transform: Any, src_crs: Any, grid: Footprint) -> np.ndarray:
    """``source`` (bands, H, W) warped onto the grid: color bilinear, alpha nearest."""
    from rasterio.warp import Resampling, reproject

    out = np.zeros((source.shape[0], grid.height, grid.width), dtype=np.uint8)
    for band, method in ((slice(0, 3), Resampling.bilinear), (slice(3, 4), Resampling.nearest)):
        reproject(source[band], out[band], src_transform=src_transform, src_crs=src_crs, dst_transform=grid.transform,
                  dst_crs=grid.crs, resampling=method)
    return out


def modern_from_file(path: Path, grid: Footprint) -> np.ndarray:
    """A georeferenced color raster warped onto the grid, as RGBA."""
    import rasterio

    with rasterio.open(path) as src:
        if src.crs is None or src.transform.is_identity:
            raise UsageError(f"--modern {path}: not georeferenced; give a GeoTIFF (or a tile source)")
        if src.count < 3:
            raise UsageError(f"--modern {path}: has {src.count} band(s); the modern image must be RGB")
        rgb = src.read([1, 2, 3])
        if rgb.dtype != np.uint8:
            top = float(np.percentile(rgb, 99.9)) or 1.0
            rgb = np.clip(rgb.astype(np.float32) / top * 255.0, 0, 255).astype(np.uint8)
        alpha = src.dataset_mask()[None].astype(np.uint8)
        return _warp(np.concatenate([rgb, alpha]), src.transform, src.crs, grid)


def modern_from_tiles(files: list[Path], grid: Footprint) -> np.ndarray:
    rgba, transform, crs = _merged_tiles(files)
    return _warp(rgba, transform, crs, grid)
