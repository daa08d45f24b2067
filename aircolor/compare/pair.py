"""The products of ``aircolor compare``: the modern raster on the photo's grid, the PNG pair and the side by side.

Every file is written to a temporary name and renamed into place. The PNGs are previews (at most
:data:`PREVIEW_PX` on the long side), both from the same grid, so a swipe tool lays one exactly on the other.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from aircolor.utils import atomic_path, atomic_write

#: The long side of the PNG previews, in pixels.
PREVIEW_PX = 1024
#: Width of the white gap between the two halves of the side-by-side PNG.
GAP_PX = 8


def write_modern(rgba: np.ndarray, grid: Any, path: Path) -> None:
    """The modern RGBA image as a tiled, DEFLATE-compressed GeoTIFF with the photo's CRS and transform."""
    import rasterio

    profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=4, dtype="uint8", crs=grid.crs,
                   transform=grid.transform, compress="deflate", predictor=2, tiled=True, blockxsize=256,
                   blockysize=256, photometric="RGB", alpha="YES")
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(rgba)


def preview(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An (h, w, 3) uint8 preview of a raster (white where it has no data) and its (h, w) validity, read
    decimated so that the long side is at most PREVIEW_PX."""
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(path) as src:
        scale = min(1.0, PREVIEW_PX / max(src.width, src.height))
        shape = (max(1, round(src.height * scale)), max(1, round(src.width * scale)))
        bands = [1, 2, 3] if src.count >= 3 else [1, 1, 1]
        data = src.read(bands, out_shape=(3, *shape), resampling=Resampling.average)
        mask = src.dataset_mask(out_shape=shape, resampling=Resampling.nearest)
    if data.dtype != np.uint8:
        data = (data.astype(np.float64) / (65535.0 if data.dtype == np.uint16 else max(1.0, data.max())) * 255)
        data = np.clip(data.round(), 0, 255).astype(np.uint8)
    rgb = np.moveaxis(data, 0, -1).copy()
    rgb[mask == 0] = 255  # no data: white, as on a map
    return rgb, mask > 0


def _png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    def write(fh: Any) -> None:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="PNG", optimize=True)
        fh.write(buf.getvalue())

    atomic_write(path, write)


def write_pngs(colorized: np.ndarray, modern: np.ndarray, out: Path, stem: str) -> dict[str, str]:
    """``STEM-colorized.png`` and ``STEM-modern.png`` (same size: a swipe pair) and ``STEM-side-by-side.png``."""
    h = min(colorized.shape[0], modern.shape[0])
    w = min(colorized.shape[1], modern.shape[1])
    colorized, modern = colorized[:h, :w], modern[:h, :w]
    both = np.full((h, 2 * w + GAP_PX, 3), 255, dtype=np.uint8)
    both[:, :w], both[:, w + GAP_PX:] = colorized, modern
    names = {"swipe_colorized": f"{stem}-colorized.png", "swipe_modern": f"{stem}-modern.png",
             "side_by_side": f"{stem}-side-by-side.png"}
    for key, image in (("swipe_colorized", colorized), ("swipe_modern", modern), ("side_by_side", both)):
        _png(out / names[key], image)
    return names


def color_agreement(colorized: np.ndarray, gray: np.ndarray, modern: np.ndarray, valid: np.ndarray
                    ) -> dict[str, float | None]:
    """Mean Delta E 2000 of the colorized photo and of its gray copy against today's imagery, where both exist.

    Not ground truth (the land changed since the photo): a guide, with the gray copy as the do-nothing baseline.
    """
    from skimage.color import rgb2lab

    from aircolor.metrics.paired import delta_e2000_lab

    if not valid.any():
        return {"delta_e2000_colorized": None, "delta_e2000_gray": None, "pixels": 0}
    lab_modern = rgb2lab(modern[valid][None])
    return {"delta_e2000_colorized": round(float(delta_e2000_lab(rgb2lab(colorized[valid][None]), lab_modern).mean()),
                                           3),
            "delta_e2000_gray": round(float(delta_e2000_lab(rgb2lab(gray[valid][None]), lab_modern).mean()), 3),
            "pixels": int(valid.sum())}
