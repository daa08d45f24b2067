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

The modules, by concern: :mod:`~analysis.stats.metrics` (the metric registry, derived columns),
:mod:`~analysis.stats.baselines` (gray copy and priors, gain over the strongest prior, Pareto fronts),
:mod:`~analysis.stats.bootstrap`, :mod:`~analysis.stats.ranking`, :mod:`~analysis.stats.effects`,
:mod:`~analysis.stats.diagnostics`, :mod:`~analysis.stats.fid` (FID-infinity) and :mod:`~analysis.stats.budget`
(equal-budget comparisons). Import from ``analysis.stats``; the submodules are an implementation detail.
"""

from __future__ import annotations

from analysis.stats.baselines import (BASELINES, PRIORS, Baseline, Gain, baseline_values, baselines_differ, gain_over,
                                      pareto_front, strongest_prior)
from analysis.stats.bootstrap import bootstrap_ci, bootstrap_diff_ci
from analysis.stats.budget import last_common_budget, values_at_epoch
from analysis.stats.diagnostics import GAN_MODES, d_overpowering_g, loss_epoch_means
from analysis.stats.effects import factor_effects, holm
from analysis.stats.fid import FidInfinity, fid_infinity, fid_sizes_from_history, fid_sizes_from_row
from analysis.stats.metrics import FACTOR_PREFIX, METRICS, OUTCOMES, SPLITS, MetricSpec, add_derived_columns
from analysis.stats.ranking import composite_rank, rank_configurations

__all__ = [
    "BASELINES", "FACTOR_PREFIX", "GAN_MODES", "METRICS", "OUTCOMES", "PRIORS", "SPLITS", "Baseline", "FidInfinity",
    "Gain", "MetricSpec", "add_derived_columns", "baseline_values", "baselines_differ", "bootstrap_ci",
    "bootstrap_diff_ci", "composite_rank", "d_overpowering_g", "factor_effects", "fid_infinity",
    "fid_sizes_from_history", "fid_sizes_from_row", "gain_over", "holm", "last_common_budget", "loss_epoch_means",
    "pareto_front", "rank_configurations", "strongest_prior", "values_at_epoch",
]
