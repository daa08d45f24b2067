"""Layers shared by the networks: normalisation, weight init, and the references' bias rule."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Norm = Literal["batch", "instance", "none"]


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    """batch: affine BatchNorm with running stats; instance: InstanceNorm without affine (0 parameters)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise KeyError(f"unknown norm {kind!r}; valid: batch, instance, none")


def conv_bias(kind: Norm) -> bool:
    """The pix2pix/CUT rule: a conv followed by a norm has a bias only with instance norm.

    With ``none`` the references drop both the norm and the bias (``use_bias`` is False); we keep that rule so
    parameter counts match, and note that such a net has no learnable shift in those layers.
    """
    return kind == "instance"


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """The references' init: Conv/Linear weights from N(0, gain), xavier, kaiming or orthogonal; bias 0;
    BatchNorm weight from N(1, gain), bias 0. Uses torch's global RNG, so seed before building."""
    for module in net.modules():
        name = module.__class__.__name__
        weight = getattr(module, "weight", None)
        if weight is not None and ("Conv" in name or "Linear" in name):
            if init_type == "normal":
                nn.init.normal_(weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                nn.init.orthogonal_(weight, gain=gain)
            else:
                raise KeyError(f"unknown init_type {init_type!r}; valid: normal, xavier, kaiming, orthogonal")
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)
    return net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def set_requires_grad(nets: nn.Module | list[nn.Module], flag: bool) -> None:
    for net in nets if isinstance(nets, list) else [nets]:
        for p in net.parameters():
            p.requires_grad_(flag)


def tile_z(z: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, nz) -> (B, nz, H, W) matching ``like``'s spatial size."""
    return z.view(z.size(0), z.size(1), 1, 1).expand(-1, -1, like.size(2), like.size(3))
