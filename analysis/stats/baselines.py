"""The baselines a colorizer must beat, the gain of a configuration over the strongest one, and Pareto fronts.

Every trial logs three baselines on the same images as the model (``aircolor.training.evaluation``): the gray
copy (``baseline.<split>.<m>``), a constant-tint prior (``prior_tint.<split>.<m>``: the training split's median
a*b* on the input's L*) and a chroma-by-lightness prior (``prior_lightness.<split>.<m>``: the training split's
mean a*b* per L* bin). They depend only on the dataset, so all trials of one dataset log the same value; the
value of a baseline here is the mean over the trials that logged it. "The strongest prior" for a metric is the
better of the two priors in that metric's direction. Runs from before the priors existed log only the gray copy:
the functions here return None for what is missing and never raise for it.

Example::

    values = baseline_values(trials, "delta_e2000", split="test")   # {"gray": 10.0, "tint": 9.0, ...}
    strongest = strongest_prior(values, "delta_e2000")              # ("lightness", 8.0)
    gain = gain_over([5.5, 6.0, 6.5], strongest[1], mode="min")     # 25% better, 95% CI 18.75-31.25%
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.stats.bootstrap import _clean, bootstrap_ci
from analysis.stats.metrics import _metric


@dataclass(frozen=True)
class Baseline:
    """One baseline: the MLflow key prefix it is logged under, and its names in tables and legends."""

    prefix: str
    short: str
    label: str


BASELINES: Mapping[str, Baseline] = {
    "gray": Baseline("baseline", "gray copy", "gray copy (no colorization)"),
    "tint": Baseline("prior_tint", "constant tint", "constant tint (training median a*b*)"),
    "lightness": Baseline("prior_lightness", "chroma by lightness", "chroma by lightness (training mean a*b* per L*)"),
}
PRIORS = ("tint", "lightness")


def baseline_values(trials: pd.DataFrame, metric: str, *, split: str = "val") -> dict[str, float | None]:
    """``{baseline name: value}`` of ``metric`` on ``split`` for every baseline of :data:`BASELINES`; None where no
    trial logged it. The value is the mean over the trials that logged it (one dataset: all equal)."""
    spec = _metric(metric)
    out: dict[str, float | None] = {}
    for name, base in BASELINES.items():
        key = spec.key_on(f"{base.prefix}.{split}")
        values = pd.to_numeric(trials[key], errors="coerce").dropna() if key in trials else pd.Series(dtype=float)
        out[name] = float(values.mean()) if len(values) else None
    return out


def baselines_differ(trials: pd.DataFrame, metric: str, *, split: str = "val", rel: float = 1e-6) -> list[str]:
    """Names of the baselines whose logged values differ between trials (several datasets in one report)."""
    spec = _metric(metric)
    out = []
    for name, base in BASELINES.items():
        key = spec.key_on(f"{base.prefix}.{split}")
        values = pd.to_numeric(trials[key], errors="coerce").dropna() if key in trials else pd.Series(dtype=float)
        if len(values) > 1 and values.max() - values.min() > rel * max(abs(values.max()), abs(values.min()), 1e-12):
            out.append(name)
    return out


def strongest_prior(values: Mapping[str, float | None], metric: str) -> tuple[str, float] | None:
    """The better of the priors in ``values`` (from :func:`baseline_values`) by ``metric``'s direction, or None
    when neither was logged. A tie goes to the constant tint (the simpler prior)."""
    spec = _metric(metric)
    present = [(name, values[name]) for name in PRIORS if values.get(name) is not None
               and math.isfinite(values[name])]
    if not present:
        return None
    best = present[0]
    for name, value in present[1:]:
        if spec.better(value, best[1]):
            best = (name, value)
    return best


@dataclass(frozen=True)
class Gain:
    """A configuration against a fixed reference value (a baseline), in percent of the reference.

    ``pct > 0`` means better in the metric's direction; ``ci_low, ci_high`` is the percentile-bootstrap CI of
    ``pct`` over the configuration's seeds (NaN with fewer than 2 seeds, or when the reference is 0).
    """

    mean: float
    reference: float
    n: int
    diff: float
    pct: float
    ci_low: float
    ci_high: float

    @property
    def beats(self) -> bool | None:
        """True when the whole CI is above 0; False when the gain is not positive or the CI reaches 0; None when
        the gain is positive but there is no CI (one seed)."""
        if not self.pct > 0:
            return False
        if math.isnan(self.ci_low):
            return None
        return self.ci_low > 0


def _pct(mean: float, reference: float, mode: str) -> float:
    if reference == 0:
        return math.nan
    better = reference - mean if mode == "min" else mean - reference
    return 100.0 * better / abs(reference)


def gain_over(values: Iterable[float], reference: float, *, mode: str, n_boot: int = 10_000, level: float = 0.95,
              seed: int = 0) -> Gain:
    """How much better than ``reference`` the mean of ``values`` (one configuration's seeds) is, in percent.

    ``pct = 100 (reference - mean) / |reference|`` for a lower-is-better metric (``mode="min"``), ``100 (mean -
    reference) / |reference|`` otherwise. The reference is a fixed number (a baseline of the dataset), so the
    uncertainty is only the seeds': the CI is the percentile-bootstrap CI of the mean
    (:func:`~analysis.stats.bootstrap_ci`, same ``seed``), mapped through the same formula (it is monotone).
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    x = _clean(values)
    if x.size == 0:
        raise ValueError("gain_over needs at least one value")
    mean = float(x.mean())
    lo, hi = bootstrap_ci(x, n_boot=n_boot, level=level, seed=seed)
    bounds = sorted([_pct(lo, reference, mode), _pct(hi, reference, mode)]) if not math.isnan(lo) else [math.nan] * 2
    if math.isnan(_pct(mean, reference, mode)):
        bounds = [math.nan, math.nan]
    diff = reference - mean if mode == "min" else mean - reference
    return Gain(mean=mean, reference=float(reference), n=int(x.size), diff=float(diff),
                pct=_pct(mean, reference, mode), ci_low=float(bounds[0]), ci_high=float(bounds[1]))


def pareto_front(x: Iterable[float], y: Iterable[float]) -> np.ndarray:
    """Which points are on the Pareto front when lower is better on both axes (boolean mask, input order).

    A point is on the front when no other point is at least as good on both axes and strictly better on one.
    Identical points are all on the front (none dominates the other); a point with a NaN coordinate is never on it
    and dominates nothing.
    """
    xs, ys = np.asarray(list(x), dtype=float), np.asarray(list(y), dtype=float)
    if xs.shape != ys.shape:
        raise ValueError(f"x and y differ in length ({xs.size} vs {ys.size})")
    ok = np.isfinite(xs) & np.isfinite(ys)
    front = ok.copy()
    for i in np.flatnonzero(ok):
        others = ok & (xs <= xs[i]) & (ys <= ys[i]) & ((xs < xs[i]) | (ys < ys[i]))
        front[i] = not others.any()
    return front
