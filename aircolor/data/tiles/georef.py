"""Where a fetched tile lies: world files with a CRS sidecar, or a GeoTIFF, so GIS tools place it by themselves.

``world`` (the default) keeps the server's bytes untouched and writes two small sidecars beside the tile: the
ESRI world file (``.jgw``, ``.pgw``, ``.wld``, ``.tfw``: the affine transform of pixel centres) and GDAL's
``.aux.xml`` with the CRS, which GDAL, rasterio and QGIS read with the world file. ``tif`` re-encodes the
decoded pixels losslessly (DEFLATE) into a GeoTIFF that carries both. The transform comes from rasterio's
``from_bounds`` on the tile's bounds from the tile matrix set.
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pyproj

from aircolor.data.tiles.grid import BBox

GEOREF_CHOICES = ("world", "none")
#: World-file suffix per tile extension (GDAL's names).
WORLD_SUFFIXES = {"jpg": "jgw", "png": "pgw", "webp": "wld", "tif": "tfw"}
PART_MARK = ".part-"


def part_path(path: Path) -> Path:
    """A temporary name beside ``path`` that a later run recognises as a leftover and removes."""
    return path.with_name(f".{path.name}{PART_MARK}{secrets.token_hex(6)}")


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a ``.part-`` name beside ``path``, fsync, rename: ``path`` is absent or whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = part_path(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def image_size(body: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(body)) as img:
        return img.size


def world_file_text(bounds: BBox, width: int, height: int) -> str:
    """The six lines of a world file: pixel size, rotations and the centre of the top-left pixel."""
    from rasterio.transform import from_bounds

    t = from_bounds(*bounds, width, height)
    centre = t @ t.translation(0.5, 0.5)
    return "\n".join(f"{v:.10f}" for v in (t.a, t.d, t.b, t.e, centre.c, centre.f)) + "\n"


def aux_xml_text(crs: pyproj.CRS) -> str:
    """GDAL's PAM sidecar holding just the CRS (x = easting first, whatever the CRS's axis order)."""
    mapping = "2,1" if crs.axis_info and crs.axis_info[0].direction.lower() in ("north", "south") else "1,2"
    return (f'<PAMDataset>\n  <SRS dataAxisToSRSAxisMapping="{mapping}">{escape(crs.to_wkt())}</SRS>\n'
            "</PAMDataset>\n")


def sidecar_paths(tile_path: Path) -> list[Path]:
    ext = tile_path.suffix.lstrip(".")
    return [tile_path.with_suffix("." + WORLD_SUFFIXES[ext]), tile_path.with_name(tile_path.name + ".aux.xml")]


def write_sidecars(tile_path: Path, body: bytes, bounds: BBox, crs: pyproj.CRS) -> None:
    """Write the world file and CRS sidecar of the tile that will be renamed to ``tile_path``."""
    width, height = image_size(body)
    world, aux = sidecar_paths(tile_path)
    write_bytes_atomic(world, world_file_text(bounds, width, height).encode())
    write_bytes_atomic(aux, aux_xml_text(crs).encode())


def to_geotiff(body: bytes, bounds: BBox, crs: pyproj.CRS, path: Path) -> None:
    """Decode ``body`` and write it losslessly as a georeferenced GeoTIFF at ``path`` (atomically)."""
    import rasterio
    from PIL import Image
    from rasterio.transform import from_bounds

    with Image.open(io.BytesIO(body)) as img:
        rgb = np.asarray(img.convert("RGBA" if "A" in img.getbands() else "RGB"))
    height, width, bands = rgb.shape
    profile = dict(driver="GTiff", width=width, height=height, count=bands, dtype="uint8",
                   crs=rasterio.crs.CRS.from_wkt(crs.to_wkt()), transform=from_bounds(*bounds, width, height),
                   compress="deflate", predictor=2, photometric="RGB")
    if bands == 4:
        profile["alpha"] = "YES"

    def write(tmp: Path) -> None:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(np.moveaxis(rgb, -1, 0))

    write_atomic(path, write)
