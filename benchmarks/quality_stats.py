"""Per-tile scores and their statistics for ``python -m benchmarks.quality``.

Every arm (gray copy, both priors, the recipe) is scored tile by tile on the delivered image; a region's value is
the mean over its tiles, with a 95% percentile-bootstrap CI over tiles (the recipe's per-tile value is its mean
over seeds first, and the seed-to-seed spread is reported beside it). The gain over the strongest prior is a
paired bootstrap of the per-tile differences, so tile difficulty cancels out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aircolor.metrics.paired import colorfulness, delta_e2000, psnr, ssim

METRICS = ("delta_e2000", "psnr", "ssim", "colorfulness")
N_BOOT = 2000


def per_tile(fake_u8: torch.Tensor, real_u8: torch.Tensor) -> dict[str, np.ndarray]:
    """Each metric of every tile: uint8 (N, 3, H, W) delivered images against their ground truth."""
    fakes = [im.permute(1, 2, 0).numpy() for im in fake_u8]
    reals = [im.permute(1, 2, 0).numpy() for im in real_u8]
    return {"delta_e2000": np.array([delta_e2000(f, r) for f, r in zip(fakes, reals)]),
            "psnr": np.array([psnr(f, r) for f, r in zip(fakes, reals)]),
            "ssim": np.array([ssim(f, r) for f, r in zip(fakes, reals)]),
            "colorfulness": np.array([colorfulness(f) for f in fakes]),
            "colorfulness_real": np.array([colorfulness(r) for r in reals])}


def bootstrap_ci(values: np.ndarray, seed: int = 0, n: int = N_BOOT) -> tuple[float, float]:
    """95% percentile-bootstrap CI of the mean of ``values`` (resampled with replacement)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n, len(values)))
    means = values[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


@dataclass
class ArmStats:
    region: str
    arm: str
    n: int
    values: dict[str, float]          # metric -> mean over tiles
    ci: dict[str, tuple[float, float]]
    seed_std: dict[str, float]        # the recipe: std over seeds of the region mean (0 for deterministic arms)

    def row(self) -> dict[str, object]:
        return {"region": self.region, "arm": self.arm, "n_tiles": self.n, **self.values,
                **{f"{k}_ci": list(v) for k, v in self.ci.items()}, **{f"{k}_seed_std": v for k, v in
                                                                   self.seed_std.items()}}


def arm_stats(region: str, arm: str, seeds: list[dict[str, np.ndarray]]) -> ArmStats:
    """Means, CIs and seed spread of one arm on one region's tiles (``seeds``: one per-tile dict per seed)."""
    out_values, out_ci, out_std = {}, {}, {}
    gap = [np.abs(s["colorfulness"] - s["colorfulness_real"]) for s in seeds]
    for name in (*METRICS, "colorfulness_gap"):
        runs = gap if name == "colorfulness_gap" else [s[name] for s in seeds]
        tile_mean = np.mean(runs, axis=0)
        out_values[name] = float(tile_mean.mean())
        out_ci[name] = bootstrap_ci(tile_mean)
        out_std[name] = float(np.std([r.mean() for r in runs])) if len(runs) > 1 else 0.0
    return ArmStats(region, arm, len(seeds[0]["delta_e2000"]), out_values, out_ci, out_std)


def gain(recipe: list[np.ndarray], prior: np.ndarray, seed: int = 1) -> tuple[float, float, float]:
    """Relative Delta E gain of the recipe over a prior, ``1 - recipe / prior`` of the region means, and its 95%
    CI from a paired bootstrap over tiles (positive: the recipe is better)."""
    ours = np.mean(recipe, axis=0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(ours), size=(N_BOOT, len(ours)))
    ratios = 1 - ours[idx].mean(axis=1) / prior[idx].mean(axis=1)
    return float(1 - ours.mean() / prior.mean()), float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))
