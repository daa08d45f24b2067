"""Reading archive photos and writing their colorized versions, georeferencing and transparency included.

Inputs: TIFF/GeoTIFF through rasterio (GDAL: any size, 8/16-bit, CRS, geotransform, nodata, masks), everything
else (JPEG, PNG, BMP, WebP, ...) through Pillow. A photo is one gray band, optionally with alpha; an RGB file
whose three bands are equal (a gray scan saved as RGB) counts as gray; a real color image or any other band
count is refused, per file (:class:`InputError`). 16-bit inputs give 16-bit outputs.

Outputs keep the input's format (a JPEG with transparency becomes a PNG), its georeferencing (GeoTIFF: CRS,
transform and nodata; world files ``.tfw/.jgw/.pgw/.wld`` and GDAL ``.aux.xml`` sidecars are copied beside
the output) and its transparent / nodata areas. Every file is written to a temporary name in the output folder
and renamed into place, so an output that exists is complete. A photo marked ``cog`` (:func:`aircolor.colorize.geo.
for_output`) is written as a Cloud-Optimized GeoTIFF: 512 px tiles, overviews, DEFLATE (see :mod:`.geo`).
"""

from __future__ import annotations

import shutil
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from aircolor.utils import atomic_path, atomic_write

TIFF_SUFFIXES = {".tif", ".tiff"}
PIL_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".jp2"}
IMAGE_SUFFIXES = TIFF_SUFFIXES | PIL_SUFFIXES
WORLD_SUFFIXES = {".tif": ".tfw", ".tiff": ".tfw", ".jpg": ".jgw", ".jpeg": ".jgw", ".png": ".pgw", ".bmp": ".bpw",
                  ".gif": ".gfw", ".webp": ".wld", ".jp2": ".j2w"}
GRAY_TOLERANCE = 2  # levels (of 255) by which the bands of a "gray" RGB scan may differ (JPEG chroma noise)


class InputError(Exception):
    """A file that cannot be colorized; reported for that file, and the archive goes on."""


@dataclass
class Photo:
    gray: np.ndarray                    # (H, W) float32 in [0, 1]
    bits: int                           # 8 or 16: the output's depth
    valid: np.ndarray | None = None     # (H, W) bool: False where alpha is 0 or the pixel is nodata
    alpha: np.ndarray | None = None     # (H, W) the input's own alpha, written back unchanged
    nodata: float | None = None         # the GeoTIFF's nodata value
    profile: dict[str, Any] | None = None   # rasterio profile of a TIFF input (CRS, transform, ...)
    notes: list[str] = field(default_factory=list)
    cog: bool = False                   # write a TIFF output as a Cloud-Optimized GeoTIFF (geo.for_output decides)

    @property
    def size(self) -> tuple[int, int]:
        return self.gray.shape[1], self.gray.shape[0]


def _scale(array: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer samples -> float32 [0, 1] and the bit depth of the output (8 or 16)."""
    if array.dtype == np.uint8 or array.dtype == bool:
        return array.astype(np.float32) / (1.0 if array.dtype == bool else 255.0), 8
    if array.dtype in (np.uint16, np.int16, np.int32, np.uint32):
        top = float(array.max()) if array.size else 0.0
        if array.min() < 0 or top > 65535:
            raise InputError(f"{array.dtype} samples outside 0..65535; convert the scan to 8 or 16 bit")
        return array.astype(np.float32) / 65535.0, 16
    raise InputError(f"{array.dtype} samples are not supported; use 8- or 16-bit unsigned integers")


def _gray_of(bands: np.ndarray, what: str) -> np.ndarray:
    """The one gray band of (C, H, W) ``bands`` with C = 1, or 3 equal bands; else :class:`InputError`."""
    if bands.shape[0] == 1:
        return bands[0]
    if bands.shape[0] == 3:
        spread = np.abs(bands.astype(np.int64) - bands[0:1].astype(np.int64)).max()
        tol = GRAY_TOLERANCE * (257 if bands.dtype == np.uint16 else 1)
        if spread > tol:
            raise InputError(f"{what} is a color image (its RGB bands differ by up to {int(spread)}); aircolor "
                             f"colorizes grayscale photos")
        return np.round(bands.astype(np.float64).mean(axis=0)).astype(bands.dtype)
    raise InputError(f"{what} has {bands.shape[0]} bands; expected 1 (gray), 2 (gray + alpha), 3 (gray saved as "
                     f"RGB) or 4 (that plus alpha)")


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InputError(f"{width} x {height} = {width * height / 1e6:.0f} Mpx is above the limit of "
                         f"{max_pixels / 1e6:.0f} Mpx (--max-pixels)")


def read_photo(path: Path, *, max_pixels: int) -> Photo:
    """The photo at ``path`` as gray [0, 1] with its mask, depth and georeferencing."""
    if path.suffix.lower() in TIFF_SUFFIXES:
        return _read_tiff(path, max_pixels)
    return _read_pil(path, max_pixels)


@contextmanager
def quiet_georef() -> Iterator[None]:
    """A plain (not georeferenced) TIFF is fine here: no NotGeoreferencedWarning for it."""
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def _read_tiff(path: Path, max_pixels: int) -> Photo:
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.errors import RasterioIOError

    try:
        with quiet_georef(), rasterio.open(path) as ds:
            check_pixels(ds.width, ds.height, max_pixels)
            interp = list(ds.colorinterp)
            data = ds.read()
            alpha_index = [i for i, c in enumerate(interp) if c == ColorInterp.alpha]
            alpha = data[alpha_index[0]] if alpha_index else None
            color = np.delete(data, alpha_index, axis=0) if alpha_index else data
            if alpha is None and color.shape[0] in (2, 4):  # an extra band that GDAL did not label: treat as alpha
                alpha, color = color[-1], color[:-1]
            gray = _gray_of(color, path.name)
            nodata = ds.nodata
            masks = ds.read_masks(1)
            profile = dict(ds.profile)
    except RasterioIOError as exc:
        raise InputError(f"unreadable ({str(exc).splitlines()[0][:160]})") from exc
    values, bits = _scale(gray)
    valid = masks > 0
    if alpha is not None:
        valid &= alpha > 0
    return Photo(values, bits, valid=None if valid.all() else valid, alpha=alpha, nodata=nodata, profile=profile)


def _read_pil(path: Path, max_pixels: int) -> Photo:
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # our own limit is checked from the header, before decoding
    try:
        with Image.open(path) as im:
            check_pixels(im.width, im.height, max_pixels)
            im.load()
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode == "1":
                im = im.convert("L")
            elif im.mode == "CMYK" or im.mode == "YCbCr":
                im = im.convert("RGB")
            mode = im.mode
            array = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"unreadable image ({str(exc).splitlines()[0][:160]})") from exc
    alpha = None
    if mode in ("LA", "RGBA", "PA"):
        alpha, array = array[..., -1], array[..., :-1]
    if array.ndim == 2:
        bands = array[None]
    else:
        bands = np.moveaxis(array, -1, 0)
    if mode in ("I", "I;16", "I;16B", "I;16L"):
        bands = bands.astype(np.int64)
        if bands.max() <= 255 and mode == "I":
            bands = bands.astype(np.uint8)
        else:
            bands = bands.astype(np.uint16) if bands.min() >= 0 and bands.max() <= 65535 else bands
    if mode == "F":
        raise InputError("32-bit float image; convert it to 8 or 16 bit")
    values, bits = _scale(_gray_of(bands, path.name))
    valid = None if alpha is None or (alpha > 0).all() else alpha > 0
    return Photo(values, bits, valid=valid, alpha=alpha)


# ------------------------------------------------------------------------------------------------- output
def output_suffix(path: Path, photo: Photo) -> str:
    """The input's own format, except that a JPEG with transparency becomes a PNG."""
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg") and photo.alpha is not None:
        return ".png"
    if suffix in (".gif", ".jp2"):
        return ".png"
    return path.suffix


def write_photo(samples: np.ndarray, photo: Photo, out: Path) -> Path:
    """Write the colorized (H, W, 3) uint8/uint16 image atomically, in the format of ``out``'s suffix, with the
    input's alpha, nodata and georeferencing."""
    expected = np.uint8 if photo.bits == 8 else np.uint16
    if samples.dtype != expected or samples.ndim != 3 or samples.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) {np.dtype(expected).name} samples, got {samples.shape} {samples.dtype}")
    samples = samples.copy() if photo.valid is not None else samples
    if photo.valid is not None and photo.alpha is None and photo.nodata is not None:
        samples[~photo.valid] = np.asarray(photo.nodata).astype(samples.dtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in TIFF_SUFFIXES:
        return _write_tiff(samples, photo, out)
    return _write_pil(samples, photo, out)


def _write_tiff(samples: np.ndarray, photo: Photo, out: Path) -> Path:
    import rasterio
    from rasterio.enums import ColorInterp

    bands = [samples[..., i] for i in range(3)]
    if photo.alpha is not None:
        bands.append(photo.alpha.astype(samples.dtype) if photo.alpha.dtype == samples.dtype
                     else np.where(photo.alpha > 0, np.iinfo(samples.dtype).max, 0).astype(samples.dtype))
    h, w = samples.shape[:2]
    profile: dict[str, Any] = {"width": w, "height": h, "count": len(bands), "dtype": samples.dtype.name}
    if photo.cog:
        from aircolor.colorize.geo import COG_OPTIONS

        profile.update(COG_OPTIONS)  # GDAL's COG driver: rasterio buffers the bands, GDAL writes tiles + overviews
    else:
        profile.update(driver="GTiff", compress="deflate", predictor=2, photometric="RGB")
        if w >= 256 and h >= 256:
            profile.update(tiled=True, blockxsize=256, blockysize=256)
    if photo.profile:
        for key in ("crs", "transform"):
            if photo.profile.get(key) is not None:
                profile[key] = photo.profile[key]
    if photo.nodata is not None and photo.alpha is None:
        profile["nodata"] = photo.nodata

    with atomic_path(out) as tmp:
        with quiet_georef(), rasterio.open(tmp, "w", **profile) as dst:
            for i, band in enumerate(bands, start=1):
                dst.write(band, i)
            interp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
            dst.colorinterp = interp + ([ColorInterp.alpha] if len(bands) == 4 else [])
    return out


def _write_pil(samples: np.ndarray, photo: Photo, out: Path) -> Path:
    from PIL import Image

    suffix = out.suffix.lower()
    if photo.bits == 16:
        if suffix != ".png":
            raise InputError(f"16-bit output is only written as PNG or TIFF, not {suffix}")
        return _write_png16(samples, photo, out)
    if photo.alpha is not None:
        alpha = photo.alpha if photo.alpha.dtype == np.uint8 else np.where(photo.alpha > 0, 255, 0).astype(np.uint8)
        image = Image.fromarray(np.dstack([samples, alpha]), "RGBA")
    else:
        image = Image.fromarray(samples, "RGB")
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}.get(suffix, "PNG")
    options = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else ({"lossless": True} if fmt == "WEBP" else {})
    return atomic_write(out, lambda fh: image.save(fh, format=fmt, **options))


def _write_png16(samples: np.ndarray, photo: Photo, out: Path) -> Path:
    """16-bit RGB(A) PNG: Pillow cannot write it, OpenCV-free route through imageio-style raw encoding."""
    import struct
    import zlib

    bands = samples if photo.alpha is None else np.dstack([samples, photo.alpha.astype(np.uint16)])
    h, w, c = bands.shape
    raw = bands.astype(">u2").reshape(h, w * c)
    rows = b"".join(b"\x00" + row.tobytes() for row in raw)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    color_type = 2 if c == 3 else 6
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))
    return atomic_write(out, lambda fh: fh.write(png))


def sidecars(path: Path) -> list[Path]:
    """World files (``.tfw``/``.jgw``/``.pgw``/``.wld``, also the ``.tifw``-style spelling) and the GDAL
    ``.aux.xml`` of ``path`` that exist beside it."""
    suffix = path.suffix.lower()
    names = {path.with_suffix(WORLD_SUFFIXES.get(suffix, ".wld")), path.with_suffix(".wld"),
             path.with_suffix(suffix + "w"), path.with_suffix(path.suffix + ".aux.xml")}
    found = []
    for candidate in names:
        for sibling in (candidate, candidate.with_suffix(candidate.suffix.upper())):
            if sibling.is_file() and sibling not in found:
                found.append(sibling)
    return found


def copy_sidecars(src: Path, out: Path) -> list[Path]:
    """Copy ``src``'s world file / aux.xml beside ``out``, renamed to ``out``'s name and format."""
    copied = []
    for side in sidecars(src):
        name = side.name.lower()
        if name.endswith(".aux.xml"):
            target = out.with_name(out.name + ".aux.xml")
        else:
            target = out.with_suffix(WORLD_SUFFIXES.get(out.suffix.lower(), ".wld"))
        with atomic_path(target) as tmp:
            shutil.copyfile(side, tmp)
        copied.append(target)
    return copied


def photo_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, without decoding it; None when the header cannot be read (reading
    the photo then says why)."""
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import rasterio

            with quiet_georef(), rasterio.open(path) as ds:
                return int(ds.width), int(ds.height)
        from PIL import Image

        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except Exception:  # any unreadable header: the photo's own read reports it, per file
        return None
