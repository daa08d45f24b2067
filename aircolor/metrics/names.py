"""The study's metric vocabulary: one name per metric for every ``--metric`` (``sweep run``, ``sweep promote``,
``report``) and for a search space's ``metric:``, with its MLflow key, a display label and its direction.

``colorfulness_gap`` is |colourfulness of the colorized images - colourfulness of the real ones| (lower is
better): raw colourfulness would reward oversaturated colours, so nothing optimises it. CycleGAN's
``val.fid_mean`` (both directions) is logged but not a selection metric: its gray direction says nothing about
colour, so CycleGAN is selected on ``fid`` (gray -> colour) like every family.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal


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
