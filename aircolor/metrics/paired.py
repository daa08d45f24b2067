"""Paired metrics against the ground truth (PSNR, SSIM, CIEDE2000) and the colorfulness of single images.

All functions take uint8 RGB images as ``H x W x 3`` numpy arrays (values 0..255); the batch functions take a
sequence of them (or an ``N x H x W x 3`` array) and average the per-image values, as colorization papers do.

* PSNR: ``10 log10(255^2 / MSE)`` over all pixels and channels of one image. Identical images have MSE 0 and an
  infinite PSNR; it is capped at :data:`PSNR_CAP_DB` (100 dB) so that averages and JSON stay finite. A one-level
  difference in a single value of a 256 x 256 RGB image already gives about 101 dB, so the cap only marks
  (near-)identical images.
* SSIM: scikit-image's ``structural_similarity`` with ``channel_axis=-1`` and ``data_range=255`` and its other
  defaults (7 x 7 uniform window, sample covariance), i.e. the mean SSIM of Wang et al. 2004 over the channels.
* Delta E 2000: scikit-image's ``deltaE_ciede2000`` (Sharma, Wu & Dalal 2005 formulas) between ``rgb2lab`` of the
  two images (sRGB, D65, like :mod:`aircolor.data.colorspace`), averaged over pixels.
* Colorfulness: Hasler & Suesstrunk 2003, see :func:`colorfulness`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

import numpy as np

PSNR_CAP_DB = 100.0

Batch = Union[np.ndarray, Sequence[np.ndarray]]


def _rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB H x W x 3 image, got {arr.dtype} with shape {arr.shape}")
    return arr


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _rgb(a), _rgb(b)
    if a.shape != b.shape:
        raise ValueError(f"paired images differ in size: {a.shape} vs {b.shape}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for peak 255, capped at :data:`PSNR_CAP_DB` for identical images."""
    a, b = _pair(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004) via scikit-image, over the three channels."""
    from skimage.metrics import structural_similarity

    a, b = _pair(a, b)
    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def delta_e2000_lab(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 colour difference between two L*a*b* arrays (last axis L, a, b)."""
    from skimage.color import deltaE_ciede2000

    return deltaE_ciede2000(np.asarray(lab1, dtype=np.float64), np.asarray(lab2, dtype=np.float64), channel_axis=-1)


def delta_e2000(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIEDE2000 Delta E between two uint8 sRGB images (0 for identical images; ~2.3 is a just-noticeable
    difference)."""
    from skimage.color import rgb2lab

    a, b = _pair(a, b)
    return float(np.mean(delta_e2000_lab(rgb2lab(a), rgb2lab(b))))


def colorfulness(rgb_u8: np.ndarray) -> float:
    """Colorfulness M of Hasler & Suesstrunk 2003 ("Measuring colourfulness in natural images"), 0 for gray.

    Pinned definition, on the 0..255 values of one uint8 RGB image, with population statistics (ddof 0) over
    all pixels::

        rg = R - G
        yb = 0.5 (R + G) - B
        M  = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)

    A colorization that stays gray scores 0, whatever its brightness or contrast; a single flat color scores only
    its mean term.
    """
    arr = _rgb(rgb_u8).astype(np.float64)
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(math.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * math.sqrt(rg.mean() ** 2 + yb.mean() ** 2))


def _images(batch: Batch) -> list[np.ndarray]:
    return list(batch) if not isinstance(batch, np.ndarray) or batch.ndim == 4 else [batch]


def paired_metrics(fake: Batch, real: Batch) -> dict[str, float]:
    """``psnr``, ``ssim`` and ``delta_e2000`` of each generated image against its ground truth, averaged."""
    fakes, reals = _images(fake), _images(real)
    if len(fakes) != len(reals) or not fakes:
        raise ValueError(f"paired metrics need as many ground-truth images as generated ones (at least one), "
                         f"got {len(fakes)} generated and {len(reals)} real")
    pairs = list(zip(fakes, reals))
    return {"psnr": float(np.mean([psnr(f, r) for f, r in pairs])),
            "ssim": float(np.mean([ssim(f, r) for f, r in pairs])),
            "delta_e2000": float(np.mean([delta_e2000(f, r) for f, r in pairs]))}


def mean_colorfulness(batch: Batch) -> float:
    """:func:`colorfulness` averaged over the images of ``batch``."""
    images = _images(batch)
    if not images:
        raise ValueError("mean_colorfulness needs at least one image")
    return float(np.mean([colorfulness(im) for im in images]))
