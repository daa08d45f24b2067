"""BicycleGAN's encoders E(B) -> (mu, logvar) (Zhu et al. 2017), VAE-like as in the reference.

* ``resnet`` (``E_ResNet``): a stride-2 conv, then pre-activation residual blocks that each halve the
  resolution (nef, 2nef, 3nef, 4nef, 4nef channels), then LeakyReLU, global average pooling, and two linear
  heads. The reference pools with ``AvgPool2d(8)`` after reaching 8x8 at 256 px; we use the number of blocks
  that reaches 8x8 for the image size and an adaptive pool, which is the same at 256 px.
* ``n_layers`` (``E_NLayers``): stride-2 convs up to 4nef channels, then the same pooling and heads.

All convs have a bias and use LeakyReLU(0.2), as in the reference.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aircolor.models.layers import Norm, norm_layer


def _levels(size: int) -> int:
    """Stride-2 steps from ``size`` down to 8 px (256 -> 5)."""
    levels = int(math.log2(size / 8)) if size >= 16 else 0
    if levels < 1 or 8 * 2 ** levels != size:
        raise ValueError(f"the encoder needs a power-of-two image size >= 16, got {size}")
    return levels


class BasicBlock(nn.Module):
    """Pre-activation residual block that halves the resolution: conv-conv-pool plus a pool-conv shortcut."""

    def __init__(self, inplanes: int, outplanes: int, norm: Norm) -> None:
        super().__init__()
        self.conv = nn.Sequential(norm_layer(norm, inplanes), nn.LeakyReLU(0.2),
                                  nn.Conv2d(inplanes, inplanes, 3, padding=1), norm_layer(norm, inplanes),
                                  nn.LeakyReLU(0.2), nn.Conv2d(inplanes, outplanes, 3, padding=1), nn.AvgPool2d(2))
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(inplanes, outplanes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.shortcut(x)


class Encoder(nn.Module):
    def __init__(self, *, kind: str, input_nc: int, nz: int, nef: int = 64, norm: Norm = "instance",
                 size: int = 256) -> None:
        super().__init__()
        levels = _levels(size)
        if kind == "resnet":
            layers: list[nn.Module] = [nn.Conv2d(input_nc, nef, 4, stride=2, padding=1)]
            out = nef
            for n in range(1, levels):
                inp, out = nef * min(4, n), nef * min(4, n + 1)
                layers.append(BasicBlock(inp, out, norm))
            layers.append(nn.LeakyReLU(0.2))
        elif kind == "n_layers":
            layers = [nn.Conv2d(input_nc, nef, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            out = nef
            for n in range(1, levels):
                inp, out = nef * min(2 ** (n - 1), 4), nef * min(2 ** n, 4)
                layers += [nn.Conv2d(inp, out, 4, stride=2, padding=1), norm_layer(norm, out), nn.LeakyReLU(0.2)]
        else:
            raise KeyError(f"unknown encoder {kind!r}; valid: resnet, n_layers")
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(out, nz)
        self.fcVar = nn.Linear(out, nz)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(x).flatten(1)
        return self.fc(h), self.fcVar(h)
