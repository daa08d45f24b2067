"""Open and vet one image file: decode it fully, convert it when that is safe, or say why it is rejected.

Two roles, with different rules:

* ``color`` tiles are ground truth. They must really be color: already-gray files (mode L, or RGB with equal
  channels), palette images (at most 256 colors) and images with more than 1% transparent pixels are rejected;
  CMYK/YCbCr are converted to RGB; a fully opaque alpha channel is dropped.
* ``historical`` photos are model inputs. They must be gray: 16-bit gray is scaled to 8 bits, gray+alpha loses
  its alpha (the fraction of transparent pixels is noted), RGB or palette files whose channels are equal are
  converted to L; a real color image, a bilevel or a floating-point image is rejected.

Every rejection carries a short reason that ends up in the summary and the manifest.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".jp2"})
MAX_TRANSPARENT = 0.01  # a color tile with more transparent (no-data) pixels than this is rejected
GRAY_SPREAD = 4         # channels within this many levels of each other in 99.5% of pixels count as gray


@dataclass(frozen=True)
class Vetted:
    """The outcome for one file: ``image`` (RGB for color, L for historical) or a rejection ``reason``."""

    image: Image.Image | None
    reason: str | None = None
    note: str = ""
    src_size: tuple[int, int] | None = None
    src_mode: str = ""


class Rejected(Exception):
    """Internal: the file cannot be used; the message is the reason."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def open_fully(path: Path) -> Image.Image:
    """Open and decode every byte of ``path`` (so truncation is caught here, not at training time)."""
    try:
        if os.path.getsize(path) == 0:
            raise Rejected("empty file (0 bytes)")
    except OSError as exc:
        raise Rejected(f"unreadable ({exc.strerror or exc.__class__.__name__})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
            try:
                im.load()
            except BaseException:
                im.close()  # else the file stays open until garbage collection
                raise
    except UnidentifiedImageError:
        raise Rejected("not an image (format not recognised)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Rejected("too many pixels (Pillow's decompression-bomb guard)") from None
    except PermissionError:
        raise Rejected("unreadable (permission denied)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        if "truncated" in text.lower():
            raise Rejected(f"truncated image data ({text})") from None
        raise Rejected(f"corrupt image data ({text})") from None
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
    try:
        out = ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block is not worth rejecting the pixels for
        return im
    if out is not im:
        im.close()  # ``out`` is a copy; a multi-frame file would otherwise stay open
    return out


def _transparent_fraction(im: Image.Image) -> float:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode in ("P", "L", "RGB") and "transparency" in im.info):
        alpha = np.asarray(im.convert("RGBA").getchannel("A"))
        return float((alpha < 255).mean())
    return 0.0


def _is_gray_rgb(rgb: Image.Image) -> bool:
    arr = np.asarray(rgb.reduce(2) if min(rgb.size) >= 64 else rgb, dtype=np.int16)
    spread = arr.max(axis=2) - arr.min(axis=2)
    return float(np.quantile(spread, 0.995)) <= GRAY_SPREAD


def _to_size(im: Image.Image, size: int) -> tuple[Image.Image, str]:
    """Center-crop to a square and resize to ``size`` (Lanczos); say what was done."""
    w, h = im.size
    note = ""
    if w != h:
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side))
        note = f"center-cropped from {w}x{h}"
    if im.size[0] != size:
        im = im.resize((size, size), Image.Resampling.LANCZOS)
        note = (note + "; " if note else "") + f"resized to {size}x{size}"
    return im, note


def vet_color(path: Path, size: int) -> Vetted:
    """A color ground-truth tile as an RGB image of ``size`` x ``size``, or the reason it cannot be one."""
    src_size, src_mode = None, ""
    try:
        im = open_fully(path)
        src_size, src_mode = im.size, im.mode
        notes: list[str] = []
        if im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            raise Rejected(f"already grayscale (mode {im.mode}): no color ground truth")
        if im.mode in ("P", "PA"):
            raise Rejected("palette image (at most 256 colors): too lossy to serve as color ground truth")
        frac = _transparent_fraction(im)
        if frac > MAX_TRANSPARENT:
            raise Rejected(f"{frac:.1%} transparent (no-data) pixels; at most {MAX_TRANSPARENT:.0%} allowed")
        if im.mode != "RGB":
            notes.append(f"converted from {im.mode}" + (f" ({frac:.2%} transparent)" if frac else ""))
            im = im.convert("RGB")
        if min(im.size) < size:
            raise Rejected(f"too small ({im.size[0]}x{im.size[1]} < {size} px); use a smaller --size")
        if _is_gray_rgb(im):
            raise Rejected("already grayscale (R=G=B): no color ground truth")
        im, note = _to_size(im, size)
        if note:
            notes.append(note)
        return Vetted(im, None, "; ".join(notes), src_size, src_mode)
    except Rejected as exc:
        return Vetted(None, str(exc), "", src_size, src_mode)


def _sixteen_bit_to_l(im: Image.Image) -> Image.Image:
    arr = np.asarray(im)
    if arr.dtype.kind == "f":
        raise Rejected(f"floating-point image (mode {im.mode}); export it as 8- or 16-bit")
    if arr.min() < 0 or arr.max() > 65535:
        raise Rejected(f"{im.mode} image with values outside 0..65535; export it as 8- or 16-bit")
    return Image.fromarray(np.round(arr.astype(np.float64) / 257.0).astype(np.uint8), mode="L")


def vet_historical(path: Path, min_size: int = 32) -> Vetted:
    """A historical photo as an 8-bit L image at its own size, or the reason it cannot be used."""
    src_size, src_mode = None, ""
    try:
        im = open_fully(path)
        src_size, src_mode = im.size, im.mode
        notes: list[str] = []
        if im.mode == "1":
            raise Rejected("bilevel (1-bit) image: no gray levels to colorize")
        if im.mode == "F":
            raise Rejected("floating-point image (mode F); export it as 8- or 16-bit")
        if im.mode.startswith("I"):
            im = _sixteen_bit_to_l(im)
            notes.append(f"scaled from 16-bit ({src_mode})")
        frac = _transparent_fraction(im)
        if im.mode in ("LA", "PA", "RGBA") or frac:
            notes.append(f"alpha dropped ({frac:.1%} transparent)")
        if im.mode in ("LA",):
            im = im.getchannel("L")
        elif im.mode != "L":
            rgb = im.convert("RGB")
            if not _is_gray_rgb(rgb):
                raise Rejected(f"color image (mode {src_mode}): historical inputs must be grayscale")
            im = rgb.convert("L")
            if src_mode != "RGB" or not notes:
                notes.append(f"converted from {src_mode} with equal channels")
        if min(im.size) < min_size:
            raise Rejected(f"too small ({im.size[0]}x{im.size[1]} < {min_size} px)")
        return Vetted(im, None, "; ".join(notes), src_size, src_mode)
    except Rejected as exc:
        return Vetted(None, str(exc), "", src_size, src_mode)
