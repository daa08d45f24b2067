"""FID-infinity: FID extrapolated to infinitely many samples from FID at several sample sizes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FidInfinity:
    """FID extrapolated to infinitely many samples; ``reason`` is empty when ``value`` is defined."""

    value: float
    slope: float
    r2: float
    n_points: int
    reason: str


def fid_infinity(sizes: Iterable[float], fids: Iterable[float]) -> FidInfinity:
    """Extrapolate FID to N -> infinity (Chong & Forsyth, "Effectively Unbiased FID and Inception Score and where
    to find them", CVPR 2020): FID_N is biased upward by a term linear in 1/N, so a least-squares fit of
    ``FID = FID_inf + slope / N`` gives ``FID_inf`` as the intercept, comparable across sample sizes.

    Non-finite or non-positive points are dropped; needs >= 3 distinct sizes (two would fit any pair exactly).
    ``r2`` is NaN when all FIDs are equal.
    """
    n = np.asarray(list(sizes), dtype=float)
    f = np.asarray(list(fids), dtype=float)
    if n.shape != f.shape:
        raise ValueError(f"sizes and fids differ in length ({n.size} vs {f.size})")
    keep = np.isfinite(n) & np.isfinite(f) & (n > 0)
    n, f = n[keep], f[keep]
    distinct = np.unique(n).size
    if distinct < 3:
        plural = "" if distinct == 1 else "s"
        return FidInfinity(math.nan, math.nan, math.nan, int(n.size),
                           f"FID logged at {distinct} sample size{plural}; FID-infinity needs >= 3")
    design = np.column_stack([np.ones_like(n), 1.0 / n])
    (intercept, slope), *_ = np.linalg.lstsq(design, f, rcond=None)
    ss_res = float(np.sum((f - design @ np.array([intercept, slope])) ** 2))
    ss_tot = float(np.sum((f - f.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
    return FidInfinity(float(intercept), float(slope), r2, int(n.size), "")


def fid_sizes_from_history(history: pd.DataFrame, run_id: str, prefix: str = "val.fid_n") -> dict[int, float]:
    """``{N: FID}`` for a run from keys ``<prefix><N>`` (e.g. ``val.fid_n64``), at the last epoch where any of
    them was logged; only keys logged at that epoch count, so sizes from different checkpoints never mix."""
    rows = history[(history["run_id"] == run_id) & history["key"].str.startswith(prefix)]
    suffix = rows["key"].str[len(prefix):]
    rows = rows[suffix.str.fullmatch(r"\d+")]
    if rows.empty:
        return {}
    last = rows[rows["epoch"] == rows["epoch"].max()].sort_values("step", kind="stable")
    values = last.groupby("key")["value"].last()
    return dict(sorted((int(key[len(prefix):]), float(v)) for key, v in values.items()))


def fid_sizes_from_row(row: Mapping[str, object], prefix: str = "test.fid_n") -> dict[int, float]:
    """``{N: FID}`` from a trial row's final values under ``<prefix><N>`` (the test split is scored once, so its
    FID_N are single values, not a history); NaN values are left out."""
    out = {}
    for key, value in row.items():
        key = str(key)
        if key.startswith(prefix) and key[len(prefix):].isdigit():
            number = float(value) if isinstance(value, (int, float, np.floating)) else math.nan
            if math.isfinite(number):
                out[int(key[len(prefix):])] = number
    return dict(sorted(out.items()))
