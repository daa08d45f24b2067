"""Factor effects: each level of each categorical factor against the factor's other levels, Holm-corrected."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.stats.bootstrap import bootstrap_diff_ci
from analysis.stats.metrics import FACTOR_PREFIX, _check_include, _metric
from analysis.stats.ranking import _analysed


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
                   alpha: float = 0.05, split: str = "val") -> pd.DataFrame:
    """Marginal effect of each level of each categorical factor on ``metric``: this level vs the factor's others.

    Analysed trials: ``outcome`` in ``include`` and the metric present on ``split`` (``"val"`` or ``"test"``: the key
    prefix, as in :func:`~analysis.stats.rank_configurations`). ``factors`` (``"factor.model.netG"`` or
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
    data = _analysed(trials, spec.key_on(split), include)
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
    out.attrs.update(metric=metric, key=spec.key_on(split), mode=spec.mode, skipped=skipped, split=split)
    return out
