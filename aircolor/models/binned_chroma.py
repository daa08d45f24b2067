"""Chroma as a classification over a grid of a*b* bins, decoded as the expectation (``model.ab_bins``).

Zhang, Isola & Efros (2016) classify a*b* to keep colours vivid; decoded as the *expectation* the class
probabilities give instead a conditional mean that is dull exactly where the network is unsure (several hues
likely), which is what a per-pixel colour error rewards and what a colorizer off its training region needs. The
wrapped network's tanh outputs are scaled into logits, so every generator architecture works unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aircolor.data.colorspace import AB_SCALE

AB_RANGE = 48.0       # |a*|, |b*| covered by the grid; aerial chroma beyond it is clamped onto the edge bins
LOGIT_SCALE = 12.0    # tanh output -> logit: e^24 between the likeliest and the least likely bin at most


def bins_per_axis(width: float) -> int:
    return max(2, int(round(2 * AB_RANGE / width)))


def n_bins(width: float) -> int:
    """How many classes a grid of bins ``width`` a*b* units wide has."""
    return bins_per_axis(width) ** 2


class BinnedChroma(nn.Module):
    """``net`` (normalised L in, ``n_bins(width)`` tanh channels out) as a generator of a*b* / AB_SCALE."""

    def __init__(self, net: nn.Module, width: float) -> None:
        super().__init__()
        self.net, self.per_axis = net, bins_per_axis(width)
        step = 2 * AB_RANGE / self.per_axis
        axis = -AB_RANGE + step * (torch.arange(self.per_axis, dtype=torch.float32) + 0.5)
        a, b = torch.meshgrid(axis, axis, indexing="ij")
        self.register_buffer("centers", torch.stack([a.reshape(-1), b.reshape(-1)], 1) / AB_SCALE)
        self.step = step

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """The expected a*b* / AB_SCALE (B, 2, H, W) under the class probabilities."""
        probs = F.softmax(logits.float(), dim=1)
        return torch.einsum("bkhw,kc->bchw", probs, self.centers).to(logits.dtype)

    def confidence(self, logits: torch.Tensor) -> torch.Tensor:
        """1 - the normalised predictive entropy (B, 1, H, W): 1 where one bin takes all, 0 where all are equal."""
        logp = F.log_softmax(logits.float(), dim=1)
        entropy = -(logp.exp() * logp).sum(1, keepdim=True)
        return (1.0 - entropy / math.log(logits.size(1))).clamp(0.0, 1.0).to(logits.dtype)

    def targets(self, b: torch.Tensor) -> torch.Tensor:
        """The bin (B, H, W) of every pixel of the ground truth ``b`` (a*b* / AB_SCALE)."""
        ab = (b.float() * AB_SCALE).clamp(-AB_RANGE, AB_RANGE - 1e-3)
        idx = ((ab + AB_RANGE) / self.step).floor().long().clamp(0, self.per_axis - 1)
        return idx[:, 0] * self.per_axis + idx[:, 1]

    def forward(self, x: torch.Tensor, with_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x) * LOGIT_SCALE
        out = self.decode(logits)
        return (out, logits) if with_logits else out
