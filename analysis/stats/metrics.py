"""The study's metrics: their MLflow keys, display labels and directions, and the columns derived from them."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from aircolor.metrics.names import METRICS, MetricSpec  # noqa: F401 (the study's one vocabulary, re-exported)

OUTCOMES = ("completed", "stopped early", "failed", "running")
FACTOR_PREFIX = "factor."
#: Where a metric is logged: the validation split (selection) and the test split (held out, scored once).
SPLITS = ("val", "test")


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

    ``<p>colorfulness_gap = |<p>colorfulness - <p>colorfulness_real|`` for every prefix ``p`` (``val.``,
    ``test.``, ``raw.val.``, ``baseline.val.``, ``prior_tint.test.``, ...) wherever both source columns exist.
    Colourfulness itself has no good direction (a model can over-saturate); the distance to the real images'
    colourfulness does.
    """
    out = trials.copy()
    prefixes = [str(c)[:-len("colorfulness")] for c in out.columns if str(c).endswith("colorfulness")]
    for prefix in prefixes:
        fake, real = f"{prefix}colorfulness", f"{prefix}colorfulness_real"
        if real in out.columns:
            diff = pd.to_numeric(out[fake], errors="coerce") - pd.to_numeric(out[real], errors="coerce")
            out[f"{prefix}colorfulness_gap"] = diff.abs()
    return out
