"""Statistics behind the sweep comparison report: rankings with bootstrap CIs, factor effects, diagnostics.

Everything here is a pure function of two pandas tables built from a sweep's MLflow runs (``analysis`` loads
them; nothing here touches MLflow):

* ``trials``: one row per trial (MLflow run) with ``run_id``, ``config`` (trials that differ only by seed share
  it), ``seed``, ``outcome`` ("completed", "stopped early", "failed", "running"), ``factor.<key>`` columns
  (strings) and one column per metric key holding its final value (NaN when missing);
* ``history``: long table ``run_id, key, step, epoch, value`` (``epoch`` = step for ``val.*`` keys; the epoch the
  iteration belongs to, possibly fractional, for ``loss.*`` keys).

Typical use::

    trials = add_derived_columns(trials)
    rankings = {name: rank_configurations(trials, name) for name in METRICS}
    overall = composite_rank(rankings)
    effects = factor_effects(trials, "fid")
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = [
    "METRICS", "OUTCOMES", "FidInfinity", "MetricSpec", "add_derived_columns", "bootstrap_ci", "bootstrap_diff_ci",
    "composite_rank", "d_overpowering_g", "factor_effects", "fid_infinity", "fid_sizes_from_history", "holm",
    "last_common_budget", "loss_epoch_means", "rank_configurations", "values_at_epoch",
]

OUTCOMES = ("completed", "stopped early", "failed", "running")
GAN_MODES = ("vanilla", "lsgan", "wgangp")   # mirrors aircolor.losses.gan.GAN_MODES (not imported: it pulls torch)
FACTOR_PREFIX = "factor."


@dataclass(frozen=True)
class MetricSpec:
    """One metric of the study: its MLflow key, a display label, and which direction is better."""

    key: str
    label: str
    mode: Literal["min", "max"]


METRICS: Mapping[str, MetricSpec] = MappingProxyType({
    "fid": MetricSpec("val.fid", "FID", "min"),
    "kid": MetricSpec("val.kid_mean", "KID", "min"),
    "is": MetricSpec("val.is_mean", "Inception Score", "max"),
    "psnr": MetricSpec("val.psnr", "PSNR (dB)", "max"),
    "ssim": MetricSpec("val.ssim", "SSIM", "max"),
    "delta_e2000": MetricSpec("val.delta_e2000", "CIEDE2000 colour error", "min"),
    "colorfulness_gap": MetricSpec("val.colorfulness_gap", "|colourfulness - real colourfulness|", "min"),
})


def _metric(name: str) -> MetricSpec:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; valid: {', '.join(METRICS)}")
    return METRICS[name]


def _check_include(include: Iterable[str]) -> tuple[str, ...]:
    include = tuple(include)
    bad = [o for o in include if o not in OUTCOMES]
    if bad:
        raise ValueError(f"unknown outcome(s) {bad}; valid: {', '.join(OUTCOMES)}")
    return include


def add_derived_columns(trials: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``trials`` with derived metric columns added (the input is not modified).

    ``<p>colorfulness_gap = |<p>colorfulness - <p>colorfulness_real|`` for ``p`` in ``val.`` and ``baseline.val.``,
    wherever both source columns exist. Colourfulness itself has no good direction (a model can over-saturate);
    the distance to the real images' colourfulness does.
    """
    out = trials.copy()
    for prefix in ("val.", "baseline.val."):
        fake, real = f"{prefix}colorfulness", f"{prefix}colorfulness_real"
        if fake in out.columns and real in out.columns:
            diff = pd.to_numeric(out[fake], errors="coerce") - pd.to_numeric(out[real], errors="coerce")
            out[f"{prefix}colorfulness_gap"] = diff.abs()
    return out


# --- bootstrap ---------------------------------------------------------------------------------------------------

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


# --- ranking -----------------------------------------------------------------------------------------------------

_RANK_COLUMNS = ["config", "mean", "std", "n", "ci_low", "ci_high", "seeds", "rank", "distinguishable_from_next"]


def _analysed(trials: pd.DataFrame, spec: MetricSpec, include: tuple[str, ...]) -> pd.DataFrame:
    """Trials whose outcome is in ``include`` and whose metric value is present, with the value in ``_value``."""
    if spec.key not in trials.columns:
        trials = add_derived_columns(trials)
    if spec.key not in trials.columns:
        return trials.iloc[0:0].assign(_value=pd.Series(dtype=float))
    values = pd.to_numeric(trials[spec.key], errors="coerce")
    keep = trials["outcome"].isin(include) & values.notna()
    return trials.loc[keep].assign(_value=values[keep].astype(float))


def _seeds_label(seeds: pd.Series) -> str:
    return ",".join(str(int(s)) for s in sorted(pd.to_numeric(seeds, errors="coerce").dropna()))


def _cis_overlap(lo1: float, hi1: float, lo2: float, hi2: float) -> bool:
    return lo1 <= hi2 and lo2 <= hi1


def rank_configurations(trials: pd.DataFrame, metric: str, *, include: Iterable[str] = ("completed",),
                        n_boot: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Rank configurations by their mean ``metric`` over seeds, with a bootstrap CI of each mean.

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
    data = _analysed(trials, spec, include)
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
    out.attrs.update(metric=metric, key=spec.key, mode=spec.mode)
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


# --- factor effects ----------------------------------------------------------------------------------------------

def holm(pvalues: Iterable[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Step-down (Holm 1979): with the m non-NaN p-values sorted ascending, ``adj_(i) = max_{j<=i} (m - j + 1) p_(j)``
    (1-based), capped at 1. Controls the family-wise error rate under any dependence between the tests. NaNs
    stay NaN and do not count toward m.
    """
    p = np.asarray(list(pvalues), dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(stepped, 1.0)
    return out


_EFFECT_COLUMNS = ["factor", "level", "n_level", "n_rest", "mean_level", "mean_rest", "diff", "ci_low", "ci_high",
                   "welch_p", "mwu_p", "p_holm", "p_holm_mwu", "better", "mirror"]


def _as_float(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None


def _sorted_levels(levels: Sequence[object]) -> list[object]:
    numeric = [_as_float(v) for v in levels]
    if all(v is not None for v in numeric):
        return [lv for _, lv in sorted(zip(numeric, levels, strict=True), key=lambda t: t[0])]
    return sorted(levels, key=str)


def _resolve_factors(data: pd.DataFrame, factors: Iterable[str] | None) -> list[str]:
    available = [c for c in data.columns if c.startswith(FACTOR_PREFIX)]
    if factors is None:
        return [c for c in available if data[c].dropna().nunique() >= 2]
    resolved = []
    for name in factors:
        col = name if name in available else FACTOR_PREFIX + name
        if col not in available:
            raise ValueError(f"unknown factor {name!r}; available: {', '.join(available) or '(none)'}")
        resolved.append(col)
    return resolved


def _welch_p(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or b.size < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return math.nan
    with warnings.catch_warnings():   # a constant group makes scipy warn about precision; the test is still valid
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(sps.ttest_ind(a, b, equal_var=False).pvalue)


def _mwu_p(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 1 or b.size < 1:
        return math.nan
    return float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def _level_row(factor: str, level: object, a: np.ndarray, b: np.ndarray, *, n_boot: int, seed: int) -> dict:
    ci_low, ci_high = bootstrap_diff_ci(a, b, n_boot=n_boot, seed=seed)
    return {"factor": factor, "level": level, "n_level": int(a.size), "n_rest": int(b.size),
            "mean_level": float(a.mean()), "mean_rest": float(b.mean()), "diff": float(a.mean() - b.mean()),
            "ci_low": ci_low, "ci_high": ci_high, "welch_p": _welch_p(a, b), "mwu_p": _mwu_p(a, b), "mirror": False}


def _mirror_row(row: dict, level: object) -> dict:
    return {**row, "level": level, "n_level": row["n_rest"], "n_rest": row["n_level"],
            "mean_level": row["mean_rest"], "mean_rest": row["mean_level"], "diff": -row["diff"],
            "ci_low": -row["ci_high"], "ci_high": -row["ci_low"], "mirror": True}


def _holm_with_mirrors(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Holm over the non-mirror rows; each mirror row copies the adjusted p of the row just before it."""
    adjusted = np.full(len(frame), np.nan)
    family = ~frame["mirror"].to_numpy(dtype=bool)
    adjusted[family] = holm(frame.loc[family, column])
    for i in np.flatnonzero(~family):
        adjusted[i] = adjusted[i - 1]
    return adjusted


def factor_effects(trials: pd.DataFrame, metric: str, *, factors: Iterable[str] | None = None,
                   include: Iterable[str] = ("completed",), n_boot: int = 10_000, seed: int = 0,
                   alpha: float = 0.05) -> pd.DataFrame:
    """Marginal effect of each level of each categorical factor on ``metric``: this level vs the factor's others.

    Analysed trials: ``outcome`` in ``include`` and the metric present. ``factors`` (``"factor.model.netG"`` or
    ``"model.netG"``) defaults to every ``factor.*`` column with >= 2 distinct levels among them. For each factor
    only trials where it is set count (a conditional factor, e.g. ResNet depth, leaves other models' trials out).
    Continuous factors (every level parses as a number and there are more than 4 levels) and, when named
    explicitly, single-level ones are skipped and listed in ``attrs["skipped"]`` ({factor: reason}).

    Per level: ``n_level, n_rest, mean_level, mean_rest, diff = mean_level - mean_rest``, a bootstrap CI of
    ``diff``, Welch's t-test p (NaN when a group has < 2 trials or both are constant), Mann-Whitney U p
    (two-sided), Holm-adjusted versions over the whole frame (``p_holm``, ``p_holm_mwu``), and ``better``
    (``diff`` in the metric's good direction and ``p_holm < alpha``).

    A 2-level factor asks one question, so its second row is the exact mirror of the first (diff, CI negated;
    same p-values) with ``mirror=True``: it takes the first row's adjusted p but is not counted in Holm's m.
    With k >= 3 levels each level-vs-rest test is in the family. These are marginal comparisons: in an
    unbalanced sweep, a level can look good because of the levels of other factors it was run with.
    """
    spec, include = _metric(metric), _check_include(include)
    data = _analysed(trials, spec, include)
    rows: list[dict] = []
    skipped: dict[str, str] = {}
    for factor in _resolve_factors(data, factors):
        present = data[data[factor].notna()]
        levels = _sorted_levels(list(present[factor].unique()))
        if len(levels) < 2:
            skipped[factor] = f"{len(levels)} level(s) among analysed trials; needs >= 2"
            continue
        if len(levels) > 4 and all(_as_float(v) is not None for v in levels):
            skipped[factor] = f"continuous ({len(levels)} numeric levels); level-vs-rest contrasts do not apply"
            continue
        values = present["_value"].to_numpy()
        is_level = [(present[factor] == level).to_numpy() for level in levels]
        first = _level_row(factor, levels[0], values[is_level[0]], values[~is_level[0]], n_boot=n_boot, seed=seed)
        rows.append(first)
        if len(levels) == 2:
            rows.append(_mirror_row(first, levels[1]))
            continue
        for level, mask in zip(levels[1:], is_level[1:], strict=True):
            rows.append(_level_row(factor, level, values[mask], values[~mask], n_boot=n_boot, seed=seed))
    out = pd.DataFrame(rows, columns=[c for c in _EFFECT_COLUMNS if c not in ("p_holm", "p_holm_mwu", "better")])
    out["mirror"] = out["mirror"].astype(bool)
    out["p_holm"] = _holm_with_mirrors(out, "welch_p")
    out["p_holm_mwu"] = _holm_with_mirrors(out, "mwu_p")
    good = out["diff"] < 0 if spec.mode == "min" else out["diff"] > 0
    out["better"] = (good & (out["p_holm"] < alpha)).astype(bool)
    out = out[_EFFECT_COLUMNS]
    out.attrs.update(metric=metric, key=spec.key, mode=spec.mode, skipped=skipped)
    return out


# --- training diagnostics ----------------------------------------------------------------------------------------

def _loss_key(key: str) -> str:
    return key if key.startswith("loss.") else f"loss.{key}"


def loss_epoch_means(history: pd.DataFrame, run_id: str, keys: Iterable[str]) -> pd.DataFrame:
    """Per-epoch means of a run's ``loss.<k>`` values (``k`` given with or without the ``loss.`` prefix).

    Index: 0-based epoch bin (epoch values in (e - 1, e] go to bin e - 1); one column per key, named as given.
    Epochs missing any of the keys are dropped, so the frame is empty when a key was never logged.
    """
    names = list(dict.fromkeys(keys))
    full = {_loss_key(k): k for k in names}
    rows = history[(history["run_id"] == run_id) & history["key"].isin(list(full))]
    # An iteration of epoch e (1-based) sits at an epoch value in (e - 1, e] (analysis.runs.epochs_of_iterations: the
    # loss logged at the last iteration of epoch e is at exactly e), so bin e - 1 holds (e - 1, e].
    bins = (np.ceil(rows["epoch"].astype(float)) - 1).clip(lower=0).astype(int).rename("epoch_bin")
    table = rows.groupby([bins, rows["key"]])["value"].mean().unstack("key")
    return table.reindex(columns=list(full)).rename(columns=full).dropna()


def d_overpowering_g(history: pd.DataFrame, run_id: str, *, d_keys: Sequence[str], g_keys: Sequence[str],
                     gan_mode: str = "vanilla", collapse: float = 0.25, climb: float = 1.5,
                     min_epochs: int = 3) -> dict:
    """Flag a run whose discriminator overpowered its generator for good (vanishing-gradient failure).

    Rule: per epoch (0-based bins of width 1 over ``epoch``) average each ``loss.<k>``; D = sum of the ``d_keys``
    means, G = sum of the ``g_keys`` (adversarial) means; the first epoch is the reference. Flagged when, from some
    epoch to the last one, every epoch has ``D <= collapse * D_ref`` and ``G >= climb * G_ref``, the stretch is at
    least 2 epochs long and the run has >= ``min_epochs`` epochs. A dip the run recovers from is not flagged.

    Returns ``{"flag": bool, "began_epoch": 1-based epoch where the stretch starts or None, "reason": str}``.
    WGAN-GP critic losses are unbounded and signed, so ratios to the first epoch mean nothing there.
    """
    if gan_mode not in GAN_MODES:
        raise ValueError(f"unknown gan_mode {gan_mode!r}; valid: {', '.join(GAN_MODES)}")
    if gan_mode == "wgangp":
        return {"flag": False, "began_epoch": None, "reason": "not applicable to WGAN-GP (critic losses are unbounded)"}
    if not d_keys or not g_keys:
        return {"flag": False, "began_epoch": None, "reason": "missing loss keys: no D or no G loss keys given"}
    keys = list(dict.fromkeys([*d_keys, *g_keys]))
    logged = set(history.loc[history["run_id"] == run_id, "key"])
    missing = [k for k in keys if _loss_key(k) not in logged]
    if missing:
        return {"flag": False, "began_epoch": None,
                "reason": f"missing loss keys for run {run_id}: {', '.join(_loss_key(k) for k in missing)}"}
    table = loss_epoch_means(history, run_id, keys)
    if len(table) < max(min_epochs, 2):
        return {"flag": False, "began_epoch": None,
                "reason": f"too few epochs ({len(table)}); the check needs >= {max(min_epochs, 2)}"}
    d = table[list(d_keys)].sum(axis=1).to_numpy()
    g = table[list(g_keys)].sum(axis=1).to_numpy()
    if d[0] <= 0 or g[0] <= 0:
        return {"flag": False, "began_epoch": None, "reason": "first-epoch D or G loss is not positive"}
    bad = (d <= collapse * d[0]) & (g >= climb * g[0])
    tail = len(bad) - np.flatnonzero(~bad)[-1] - 1 if (~bad).any() else len(bad)
    if tail < 2:
        return {"flag": False, "began_epoch": None,
                "reason": f"no sustained stretch (>= 2 epochs, to the end) with D <= {collapse:g} x D_ref "
                          f"and G >= {climb:g} x G_ref"}
    start = len(bad) - tail
    began = int(table.index[start]) + 1
    return {"flag": True, "began_epoch": began,
            "reason": f"from epoch {began} to the end, D loss fell to {d[-1]:.3g} (<= {collapse:g} x {d[0]:.3g}) "
                      f"and G loss rose to {g[-1]:.3g} (>= {climb:g} x {g[0]:.3g})"}


# --- FID-infinity ------------------------------------------------------------------------------------------------

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


# --- equal-budget comparisons ------------------------------------------------------------------------------------

def last_common_budget(history: pd.DataFrame, run_ids: Iterable[str], key: str) -> int | float | None:
    """The largest epoch at which every run in ``run_ids`` has a (non-NaN) value of ``key``, or None.

    Early-stopped trials end at different epochs; comparing them at this epoch compares equal training budgets.
    Returns an int when the epoch is integral (always so for ``val.*`` keys), else the float epoch.
    """
    ids = list(dict.fromkeys(run_ids))
    if not ids:
        return None
    rows = history[(history["key"] == key) & history["run_id"].isin(ids) & history["value"].notna()]
    common: set[float] | None = None
    for run_id in ids:
        epochs = set(rows.loc[rows["run_id"] == run_id, "epoch"].astype(float))
        common = epochs if common is None else common & epochs
        if not common:
            return None
    best = max(common)
    return int(best) if best.is_integer() else best


def values_at_epoch(history: pd.DataFrame, key: str, epoch: float, *,
                    run_ids: Iterable[str] | None = None) -> pd.Series:
    """Each run's value of ``key`` at ``epoch`` (the last-logged one if repeated), indexed by ``run_id``.

    Runs with no value there are absent; restrict to ``run_ids`` when given.
    """
    rows = history[(history["key"] == key) & (history["epoch"].astype(float) == float(epoch))]
    if run_ids is not None:
        rows = rows[rows["run_id"].isin(list(run_ids))]
    values = rows.sort_values("step", kind="stable").groupby("run_id", sort=True)["value"].last()
    return values.astype(float).rename(key)
