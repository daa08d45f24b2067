"""Percentile-bootstrap confidence intervals of a mean and of a difference of means."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd


def _clean(values: Iterable[float]) -> np.ndarray:
    x = np.asarray(values if isinstance(values, (np.ndarray, pd.Series)) else list(values), dtype=float)
    return x[~np.isnan(x)]


def _boot_means(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` means of resamples (with replacement, same size) of ``x``, drawn as one index matrix."""
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    return x[idx].mean(axis=1)


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    lo, hi = np.percentile(samples, [50.0 * (1.0 - level), 50.0 * (1.0 + level)])
    return float(lo), float(hi)


def bootstrap_ci(values: Iterable[float], *, n_boot: int = 10_000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``values`` (NaNs dropped).

    With a handful of seeds per configuration a t-interval leans on normality we cannot check; the percentile
    bootstrap does not, though with n = 2-3 it is narrow (it can only reach means of the observed values).
    Returns ``(nan, nan)`` for fewer than 2 values: one seed says nothing about seed-to-seed spread.
    """
    x = _clean(values)
    if x.size < 2:
        return math.nan, math.nan
    return _percentiles(_boot_means(x, n_boot, np.random.default_rng(seed)), level)


def bootstrap_diff_ci(a: Iterable[float], b: Iterable[float], *, n_boot: int = 10_000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of ``mean(a) - mean(b)``, resampling each group independently (NaNs dropped).

    Returns ``(nan, nan)`` when either group has fewer than 2 values.
    """
    xa, xb = _clean(a), _clean(b)
    if xa.size < 2 or xb.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    diffs = _boot_means(xa, n_boot, rng) - _boot_means(xb, n_boot, rng)
    return _percentiles(diffs, level)
