"""The study's metrics: their MLflow keys, display labels and directions, and the columns derived from them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import pandas as pd

OUTCOMES = ("completed", "stopped early", "failed", "running")
FACTOR_PREFIX = "factor."
#: Where a metric is logged: the validation split (selection) and the test split (held out, scored once).
SPLITS = ("val", "test")


@dataclass(frozen=True)
class MetricSpec:
    """One metric of the study: its MLflow key, a display label, and which direction is better."""

    key: str
    label: str
    mode: Literal["min", "max"]

    @property
    def name(self) -> str:
        """The key without its split: ``val.kid_mean`` -> ``kid_mean``."""
        return self.key.split(".", 1)[1]

    def key_on(self, prefix: str) -> str:
        """The key under another prefix: ``"test"`` -> ``test.fid``, ``"prior_tint.test"`` ->
        ``prior_tint.test.fid``, ``"raw.val"`` -> ``raw.val.fid``."""
        return f"{prefix}.{self.name}"

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b`` in this metric's direction (False when either is NaN)."""
        return bool(a < b) if self.mode == "min" else bool(a > b)


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
