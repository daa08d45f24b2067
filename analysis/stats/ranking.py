"""Configurations ranked by a metric over their seeds, and the composite rank over several metrics."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from analysis.stats.bootstrap import bootstrap_ci
from analysis.stats.metrics import FACTOR_PREFIX, _check_include, _metric, add_derived_columns

_RANK_COLUMNS = ["config", "mean", "std", "n", "ci_low", "ci_high", "seeds", "rank", "distinguishable_from_next"]


def _analysed(trials: pd.DataFrame, key: str, include: tuple[str, ...]) -> pd.DataFrame:
    """Trials whose outcome is in ``include`` and whose ``key`` value is present, with the value in ``_value``."""
    if key not in trials.columns:
        trials = add_derived_columns(trials)
    if key not in trials.columns:
        return trials.iloc[0:0].assign(_value=pd.Series(dtype=float))
    values = pd.to_numeric(trials[key], errors="coerce")
    keep = trials["outcome"].isin(include) & values.notna()
    return trials.loc[keep].assign(_value=values[keep].astype(float))


def _seeds_label(seeds: pd.Series) -> str:
    return ",".join(str(int(s)) for s in sorted(pd.to_numeric(seeds, errors="coerce").dropna()))


def _cis_overlap(lo1: float, hi1: float, lo2: float, hi2: float) -> bool:
    return lo1 <= hi2 and lo2 <= hi1


def rank_configurations(trials: pd.DataFrame, metric: str, *, include: Iterable[str] = ("completed",),
                        n_boot: int = 10_000, seed: int = 0, split: str = "val") -> pd.DataFrame:
    """Rank configurations by their mean ``metric`` over seeds, with a bootstrap CI of each mean.

    ``split`` is the key prefix the values come from: ``"val"`` (``val.fid``, the selection split) or ``"test"``
    (``test.fid``, held out).

    Only trials whose ``outcome`` is in ``include`` and whose metric value is present count. One row per config:
    ``config, mean, std (ddof=1; NaN for n=1), n, ci_low, ci_high, seeds ("0,1": sorted, repeats kept, so a
    seed that ran twice shows), rank, distinguishable_from_next``, then the config's ``factor.*`` values (from its
    first trial). ``rank`` 1 is best in the metric's direction; equal means share the lowest rank. Rows are
    sorted by rank, then config.

    ``distinguishable_from_next`` is False when this config's CI overlaps the next row's (touching counts), or
    when either CI is NaN (n < 2); None on the last row. Non-overlapping 95 % CIs are a conservative signal, not
    a test. Every config's bootstrap uses the same ``seed``. A metric with no column in ``trials`` (not logged by
    this sweep) gives an empty frame. Unknown ``metric`` or outcome names raise ValueError.
    """
    spec, include = _metric(metric), _check_include(include)
    data = _analysed(trials, spec.key_on(split), include)
    factor_cols = [c for c in trials.columns if c.startswith(FACTOR_PREFIX)]
    rows = []
    for config, group in data.groupby("config", sort=True):
        values = group["_value"].to_numpy()
        ci_low, ci_high = bootstrap_ci(values, n_boot=n_boot, seed=seed)
        first = group.iloc[0]
        rows.append({"config": config, "mean": float(values.mean()),
                     "std": float(values.std(ddof=1)) if values.size > 1 else math.nan, "n": int(values.size),
                     "ci_low": ci_low, "ci_high": ci_high, "seeds": _seeds_label(group["seed"]),
                     **{c: first[c] for c in factor_cols}})
    out = pd.DataFrame(rows, columns=[c for c in _RANK_COLUMNS if c not in ("rank", "distinguishable_from_next")]
                       + factor_cols)
    out["rank"] = out["mean"].rank(method="min", ascending=spec.mode == "min").astype(int)
    out = out.sort_values(["rank", "config"], kind="stable").reset_index(drop=True)
    lows, highs = out["ci_low"].to_numpy(), out["ci_high"].to_numpy()
    distinct: list[bool | None] = []
    for i in range(len(out)):
        if i == len(out) - 1:
            distinct.append(None)
        elif np.isnan([lows[i], highs[i], lows[i + 1], highs[i + 1]]).any():
            distinct.append(False)
        else:
            distinct.append(not _cis_overlap(lows[i], highs[i], lows[i + 1], highs[i + 1]))
    out["distinguishable_from_next"] = pd.Series(distinct, index=out.index, dtype=object)
    out = out[_RANK_COLUMNS + factor_cols]
    out.attrs.update(metric=metric, key=spec.key_on(split), mode=spec.mode, split=split)
    return out


def composite_rank(rankings: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Combine per-metric rankings (``rank_configurations`` frames keyed by metric name) into one ordering.

    Columns: ``config``, ``rank.<metric>`` per metric, ``mean_rank`` (over the metrics the config has),
    ``n_metrics`` and ``composite_rank`` (1 = lowest mean rank; ties share the lowest rank); sorted by
    ``composite_rank``, then more metrics first, then config. A config missing from some rankings is averaged
    over fewer metrics, so compare ``n_metrics`` before trusting its place.
    """
    ranks = [frame.set_index("config")["rank"].rename(f"rank.{name}") for name, frame in rankings.items()]
    if not ranks:
        return pd.DataFrame(columns=["config", "mean_rank", "n_metrics", "composite_rank"])
    table = pd.concat(ranks, axis=1, sort=True)
    table.index.name = "config"
    rank_cols = list(table.columns)
    table["mean_rank"] = table[rank_cols].mean(axis=1, skipna=True)
    table["n_metrics"] = table[rank_cols].notna().sum(axis=1).astype(int)
    table["composite_rank"] = table["mean_rank"].rank(method="min").astype(int)
    table = table.reset_index()
    return table.sort_values(["composite_rank", "n_metrics", "config"], ascending=[True, False, True],
                             kind="stable").reset_index(drop=True)
