"""What an adapted model delivers: the tuned network, the place's best prior, or a blend of the two, whichever
scores best on the place's validation blocks, so that it is never worse there than the best prior.

The candidates are ``alpha * network + (1 - alpha) * prior`` for each prior (gray copy, constant tint, chroma by
lightness, all fitted on the training blocks) and ``alpha`` in :data:`ALPHAS`; ``alpha`` 1 is the network alone,
0 the prior alone. Under a shift of region the network's colours are unsure while the prior is right on average,
so shrinking toward the prior is the principled fallback (see the README's colour section).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aircolor.adapt.tune import delivered_u8, tile_delta_e
from aircolor.metrics.priors import ColorPriors

ALPHAS = tuple(i / 8 for i in range(9))
PRIOR_NAMES = {"gray": "gray copy", "tint": "constant tint", "lightness": "chroma by lightness"}


def prior_table(priors: ColorPriors, name: str) -> torch.Tensor:
    """(bins, 2) a*b* per input-L* bin that the prior ``name`` gives (gray: zeros)."""
    n = priors.n_bins
    if name == "gray":
        return torch.zeros(n, 2)
    if name == "tint":
        return torch.tensor([priors.tint] * n, dtype=torch.float32)
    return torch.tensor(priors.lightness, dtype=torch.float32)


def prior_chroma(priors: ColorPriors, name: str, gray_u8: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) a*b* the prior ``name`` gives gray tiles (the gray copy: none)."""
    if name == "gray":
        return torch.zeros(gray_u8.size(0), 2, *gray_u8.shape[-2:])
    return priors.chroma(name, gray_u8)


def prior_images(priors: ColorPriors, gray_u8: torch.Tensor) -> dict[str, torch.Tensor]:
    """The delivered uint8 images of the gray copy and each prior."""
    return {name: delivered_u8(gray_u8, prior_chroma(priors, name, gray_u8)) for name in PRIOR_NAMES}


def prior_tiles(priors: ColorPriors, gray_u8: torch.Tensor, color_u8: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-tile Delta E of the gray copy and each prior."""
    return {name: tile_delta_e(images, color_u8) for name, images in prior_images(priors, gray_u8).items()}


@dataclass
class Delivery:
    prior: str                        # the prior blended toward
    alpha: float                      # the network's weight
    delta_e: float                    # the delivered colours on the validation blocks
    network: float                    # the network alone
    priors: dict[str, float]          # each prior alone
    per_tile: np.ndarray              # the delivered colours, per validation tile
    tiles: dict[str, np.ndarray]      # per validation tile: the network alone and each prior alone

    @property
    def best_prior(self) -> tuple[str, float]:
        name = min(self.priors, key=self.priors.__getitem__)
        return name, self.priors[name]

    def choice(self) -> str:
        """What is delivered, in words."""
        if self.alpha >= 1.0:
            return "the adapted network"
        if self.alpha <= 0.0:
            return f"the place's {PRIOR_NAMES[self.prior]}"
        return f"the adapted network blended {1 - self.alpha:.0%} toward the place's {PRIOR_NAMES[self.prior]}"

    def reason(self) -> str:
        name, value = self.best_prior
        if self.alpha >= 1.0:
            return (f"the network alone ({self.network:.2f}) beats every blend and the place's best prior "
                    f"({PRIOR_NAMES[name]}, {value:.2f}) on the validation blocks")
        if self.alpha <= 0.0:
            return (f"the tuned network ({self.network:.2f}) does not beat the place's {PRIOR_NAMES[self.prior]} "
                    f"({self.delta_e:.2f}) on the validation blocks, so the prior's colours are delivered")
        return (f"the blend ({self.delta_e:.2f}) beats the network alone ({self.network:.2f}) and the place's best "
                f"prior ({PRIOR_NAMES[name]}, {value:.2f}) on the validation blocks")


def choose_delivery(network_ab: torch.Tensor, priors: ColorPriors, gray_u8: torch.Tensor,
                    color_u8: torch.Tensor) -> Delivery:
    """The best (prior, alpha) on validation tiles: ``network_ab`` (N, 2, H, W) is the tuned network's a*b*."""
    network = tile_delta_e(delivered_u8(gray_u8, network_ab), color_u8)
    scores: dict[tuple[str, float], np.ndarray] = {("gray", 1.0): network}   # alpha 1: the network alone
    for name in PRIOR_NAMES:
        prior_ab = prior_chroma(priors, name, gray_u8)
        for alpha in ALPHAS[:-1]:
            ab = alpha * network_ab + (1 - alpha) * prior_ab
            scores[(name, alpha)] = tile_delta_e(delivered_u8(gray_u8, ab), color_u8)
    best = min(scores, key=lambda k: (float(scores[k].mean()), -k[1]))   # ties: more of the network
    return Delivery(prior=best[0], alpha=best[1], delta_e=float(scores[best].mean()), network=float(network.mean()),
                    priors={n: float(scores[(n, 0.0)].mean()) for n in PRIOR_NAMES}, per_tile=scores[best],
                    tiles={"network": network, **{n: scores[(n, 0.0)] for n in PRIOR_NAMES}})
