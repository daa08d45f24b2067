"""Optuna's fANOVA parameter importances for an Optuna sweep's completed trials.

The trials are rebuilt as an in-memory Optuna study (``create_trial`` with their factor values and final metric),
so the report needs neither the sweep's Optuna storage nor the Ray Tune state. Distributions are inferred from
the values: a factor whose values are all numbers with more than four distinct values is a float range (log
scale when it spans more than a decade and is positive), anything else is categorical.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

MIN_TRIALS = 4


def _distribution(values: pd.Series) -> Any:
    import optuna

    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all() and numbers.nunique() > 4:
        low, high = float(numbers.min()), float(numbers.max())
        return optuna.distributions.FloatDistribution(low, high, log=low > 0 and high / low > 10), numbers
    return optuna.distributions.CategoricalDistribution(sorted(values.astype(str).unique())), values.astype(str)


def fanova_importances(trials: pd.DataFrame, metric_key: str, *, mode: str = "min",
                       seed: int = 0) -> dict[str, float] | str:
    """``{factor: importance}`` (summing to 1), or a sentence saying why there are none."""
    import optuna

    factors = [c for c in trials.columns if c.startswith("factor.") and trials[c].nunique(dropna=True) >= 2]
    done = trials[trials[metric_key].notna()] if metric_key in trials else trials.iloc[0:0]
    if not factors:
        return "no factor took two or more values"
    if len(done) < MIN_TRIALS:
        return f"fANOVA needs at least {MIN_TRIALS} completed trials with {metric_key}; there are {len(done)}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    columns = {}
    dists = {}
    for f in factors:
        dists[f], columns[f] = _distribution(done[f])
    for i in range(len(done)):
        params = {f: (float(columns[f].iloc[i]) if isinstance(dists[f], optuna.distributions.FloatDistribution)
                      else columns[f].iloc[i]) for f in factors}
        value = float(done[metric_key].iloc[i])
        if math.isfinite(value):
            study.add_trial(optuna.trial.create_trial(params={k[len("factor."):]: v for k, v in params.items()},
                                                      distributions={k[len("factor."):]: d for k, d in dists.items()},
                                                      value=value))
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except Exception as exc:  # e.g. every trial has the same value
        return f"fANOVA failed: {str(exc).splitlines()[0][:200]}"
