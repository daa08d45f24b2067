"""The colour priors a colorizer must beat: what you get from the training split's colour statistics alone.

A model that cannot beat these has learnt nothing about *where* colours go, only which colours are common:

* ``tint`` (constant-tint prior): the training split's median a* and median b*, added to the input's own L*;
* ``lightness`` (chroma-by-lightness prior): the mean a*b* of the training split's pixels in each of
  :data:`N_BINS` bins of the *input's* L* (the L* of the gray copy a user would give, not of the color tile), so
  dark water, mid-gray fields and bright roofs each get their own average colour. Empty bins take the tint.

Both are delivered like a model's chroma (:func:`aircolor.colorize.engine.deliver`): the input's L* at full
resolution plus the prior's a*b*, gamut-fitted by shrinking chroma. Measured on 443 real Massachusetts tiles
(75 validation tiles): gray copy Delta E 2000 7.77, tint 6.18, lightness 6.11, a 16-epoch adversarial pix2pix 7.65.

Usage::

    prior = fit_priors(train_gray_u8, train_color_u8)          # (N, 1, H, W) and (N, 3, H, W) uint8 tensors
    rgb = prior.deliver("lightness", val_gray_u8)             # (N, 3, H, W) float sRGB in [0, 1]
    fit_priors_cached(root, size)                             # fitted once per dataset and size, kept on disk
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from aircolor.data.colorspace import L_SCALE, L_SHIFT, gray_to_L, rgb_to_lab
from aircolor.utils import atomic_write_text

N_BINS = 20
PRIORS = ("tint", "lightness")
PRIOR_LABELS = {"tint": "constant tint (median a*b* on the input's L*)",
                "lightness": f"chroma by lightness (mean a*b* per input-L* bin, {N_BINS} bins)"}
FORMAT_VERSION = 1


def input_lightness(gray_u8: torch.Tensor) -> torch.Tensor:
    """L* in [0, 100] of gray images (uint8, any shape): the neutral colour of each gray value."""
    return (gray_to_L(gray_u8.float() / 255.0) + L_SHIFT) * L_SCALE


def _bin_of(L: torch.Tensor, n_bins: int) -> torch.Tensor:
    return (L / 100.0 * n_bins).long().clamp(0, n_bins - 1)


@dataclass(frozen=True)
class ColorPriors:
    """Fitted priors: ``tint`` = (a*, b*); ``lightness`` = ``n_bins`` rows of (a*, b*) over L* in [0, 100]."""

    tint: tuple[float, float]
    lightness: tuple[tuple[float, float], ...]
    counts: tuple[int, ...]          # training pixels per lightness bin
    n_images: int

    @property
    def n_bins(self) -> int:
        return len(self.lightness)

    def chroma(self, name: str, gray_u8: torch.Tensor) -> torch.Tensor:
        """(N, 2, H, W) a*b* (Lab units) the prior ``name`` gives the gray images (N, 1, H, W) uint8."""
        if name == "tint":
            ab = torch.tensor(self.tint, dtype=torch.float32).view(1, 2, 1, 1)
            return ab.expand(gray_u8.size(0), 2, *gray_u8.shape[-2:]).clone()
        if name == "lightness":
            table = torch.tensor(self.lightness, dtype=torch.float32)            # (bins, 2)
            idx = _bin_of(input_lightness(gray_u8[:, 0]), self.n_bins)          # (N, H, W)
            return table[idx].permute(0, 3, 1, 2).contiguous()
        raise KeyError(f"unknown prior {name!r}; valid: {', '.join(PRIORS)}")

    def deliver(self, name: str, gray_u8: torch.Tensor) -> torch.Tensor:
        """The delivered image of prior ``name``: (N, 3, H, W) sRGB in [0, 1] (input L*, prior chroma, fitted)."""
        from aircolor.colorize.delivery import deliver

        return deliver(gray_u8.float() / 255.0, self.chroma(name, gray_u8))

    def to_json(self) -> str:
        return json.dumps({"version": FORMAT_VERSION, **asdict(self)})

    @classmethod
    def from_json(cls, text: str) -> "ColorPriors":
        data = json.loads(text)
        if data.pop("version", None) != FORMAT_VERSION:
            raise ValueError("old priors format")
        return cls(tint=tuple(data["tint"]), lightness=tuple(tuple(r) for r in data["lightness"]),
                   counts=tuple(data["counts"]), n_images=int(data["n_images"]))


_HIST_RANGE, _HIST_STEP = 128.0, 0.01   # a*, b* histogram for the median: [-128, 128) in steps of 0.01


def _hist_median(hist: torch.Tensor) -> float:
    """The median of values binned in ``hist`` (bins of :data:`_HIST_STEP` from -:data:`_HIST_RANGE`), to 0.01."""
    cdf = hist.cumsum(0)
    n = float(cdf[-1])
    lower = int(torch.searchsorted(cdf, torch.tensor(math.ceil(n / 2), dtype=cdf.dtype)))
    upper = int(torch.searchsorted(cdf, torch.tensor(math.floor(n / 2) + 1, dtype=cdf.dtype)))
    return -_HIST_RANGE + ((lower + upper) / 2 + 0.5) * _HIST_STEP   # even counts: between the two middle values


def fit_priors(gray_u8: torch.Tensor, color_u8: torch.Tensor, *, n_bins: int = N_BINS,
               chunk: int = 64) -> ColorPriors:
    """Fit both priors on training images: gray copies (N, 1, H, W) and their colour tiles (N, 3, H, W), uint8.

    Every pixel counts once, ``chunk`` images at a time (memory stays small for any split): means in float64, the
    median from a histogram of 0.01-wide bins (exact to 0.01 a*b* units).
    """
    if gray_u8.size(0) == 0 or gray_u8.shape[-2:] != color_u8.shape[-2:] or gray_u8.size(0) != color_u8.size(0):
        raise ValueError(f"fit_priors needs matching gray and colour images, got {tuple(gray_u8.shape)} and "
                         f"{tuple(color_u8.shape)}")
    n_hist = int(2 * _HIST_RANGE / _HIST_STEP)
    hist = torch.zeros(2, n_hist, dtype=torch.float64)
    counts = torch.zeros(n_bins, dtype=torch.float64)
    sums = torch.zeros(n_bins, 2, dtype=torch.float64)
    for i in range(0, gray_u8.size(0), chunk):
        ab = rgb_to_lab(color_u8[i:i + chunk].float() / 255.0)[:, 1:].permute(1, 0, 2, 3).reshape(2, -1).double()
        bins = _bin_of(input_lightness(gray_u8[i:i + chunk, 0]), n_bins).reshape(-1)
        counts += torch.bincount(bins, minlength=n_bins).double()
        sums.index_add_(0, bins, ab.T)
        slots = ((ab + _HIST_RANGE) / _HIST_STEP).long().clamp(0, n_hist - 1)
        for c in range(2):
            hist[c] += torch.bincount(slots[c], minlength=n_hist).double()
    tint = (_hist_median(hist[0]), _hist_median(hist[1]))
    rows = [tuple(float(v) for v in (sums[i] / counts[i])) if counts[i] else tint for i in range(n_bins)]
    return ColorPriors(tint=tint, lightness=tuple(rows), counts=tuple(int(c) for c in counts),
                       n_images=int(gray_u8.size(0)))


def fit_priors_cached(key: str | None, folder: Path,
                      load: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> ColorPriors:
    """:func:`fit_priors` on ``load()``'s images, kept as ``folder/priors-<sha>.json`` under ``key`` (a dataset
    manifest hash and size: every trial of a sweep fits them once). ``key`` None: fitted, not cached."""
    if key is None:
        return fit_priors(*load())
    path = Path(folder) / f"priors-{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"
    if path.is_file():
        try:
            return ColorPriors.from_json(path.read_text())
        except (ValueError, KeyError, TypeError):
            pass  # unreadable or old: refit and overwrite
    priors = fit_priors(*load())
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, priors.to_json())
    return priors


def strongest(values: dict[str, float], mode: str = "min") -> tuple[str, float] | None:
    """The best of the priors' values of one metric (``mode`` min: lower is better), or None."""
    known = {k: v for k, v in values.items() if v is not None and np.isfinite(v)}
    if not known:
        return None
    name = (min if mode == "min" else max)(known, key=known.__getitem__)
    return name, known[name]
