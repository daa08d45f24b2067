"""A Lab generator whose chroma is shrunk toward a place's colour table: what ``aircolor adapt`` delivers.

Under a shift of region a model's conditional colours are wrong while the place's marginal (its mean a*b* per
input-L* bin, :mod:`aircolor.metrics.priors`) is right on average, so the adapted model delivers
``alpha * G(L) + (1 - alpha) * table[bin(L)]``, with ``alpha`` and the table fitted on the place's own imagery
(``alpha`` 0: the table alone, the fallback when the tuned network does not beat it). The table and ``alpha`` are
buffers: they travel in the generator's weights, so every tool that loads a model applies them. A network that
classifies a*b* (:class:`~aircolor.models.binned_chroma.BinnedChroma`) may also weigh itself per pixel by its
confidence (1 - normalised entropy) to the power ``entropy_power``: unsure pixels lean on the table.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from aircolor.data.colorspace import AB_SCALE, L_SCALE, L_SHIFT
from aircolor.metrics.priors import N_BINS


class PlaceBlend(nn.Module):
    """``net`` (normalised L in, a*b* / AB_SCALE out) blended toward ``table`` (bins x 2, a*b* / AB_SCALE)."""

    def __init__(self, net: nn.Module, n_bins: int = N_BINS) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("table", torch.zeros(n_bins, 2))
        self.register_buffer("alpha", torch.ones(()))
        self.register_buffer("entropy_power", torch.zeros(()))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        state_dict.setdefault(prefix + "entropy_power", torch.zeros(()))   # models written before it existed
        super()._load_from_state_dict(state_dict, prefix, *args)

    def set_blend(self, table_ab: torch.Tensor, alpha: float, entropy_power: float = 0.0) -> None:
        """``table_ab``: (bins, 2) a*b* in Lab units over input L* in [0, 100]; ``alpha``: the network's weight;
        ``entropy_power`` > 0: that weight times the network's per-pixel confidence to this power."""
        if entropy_power and not hasattr(self.net, "confidence"):
            raise ValueError("an entropy-weighted blend needs a network that classifies a*b* (model.ab_bins)")
        if table_ab.shape != self.table.shape:
            raise ValueError(f"a colour table of shape {tuple(self.table.shape)} is needed, got "
                             f"{tuple(table_ab.shape)}")
        self.table.copy_(table_ab.to(self.table) / AB_SCALE)
        self.alpha.fill_(float(alpha))
        self.entropy_power.fill_(float(entropy_power))

    def prior(self, x: torch.Tensor) -> torch.Tensor:
        """The table's a*b* / AB_SCALE (B, 2, H, W) for the normalised L input ``x`` (B, C, H, W)."""
        L = (x[:, :1].float() + L_SHIFT) * L_SCALE
        idx = (L / 100.0 * self.table.size(0)).long().clamp(0, self.table.size(0) - 1)[:, 0]
        return self.table[idx].permute(0, 3, 1, 2).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha, power = float(self.alpha), float(self.entropy_power)
        if power > 0 and alpha > 0:
            out, logits = self.net(x, with_logits=True)
            weight = alpha * self.net.confidence(logits) ** power
            return weight * out + (1.0 - weight) * self.prior(x)
        if alpha >= 1.0:
            return self.net(x)
        if alpha <= 0.0:
            return self.prior(x)
        return alpha * self.net(x) + (1.0 - alpha) * self.prior(x)


def blended(cfg: Any, net: nn.Module, table_ab: torch.Tensor, alpha: float,
            entropy_power: float = 0.0) -> tuple[Any, Any]:
    """A model (and its config) whose generator is ``net`` blended toward ``table_ab`` with weight ``alpha``: what
    ``aircolor adapt`` writes, and the default model's cautious delivery."""
    from aircolor.models.zoo import build_model

    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, place_blend=True))
    model = build_model(cfg)
    model.G.net.load_state_dict(net.state_dict())
    model.G.set_blend(table_ab, alpha, entropy_power)
    return model, cfg
