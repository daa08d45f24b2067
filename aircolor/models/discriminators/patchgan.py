"""PatchGAN discriminators (Isola et al. 2017): N-layer (70x70 at n_layers 3), PixelGAN, and BicycleGAN's
multi-scale variant. They output a map of logits, one per overlapping patch; there is no sigmoid (the GAN
loss decides how logits are read)."""

from __future__ import annotations

import torch
from torch import nn

from aircolor.models.antialias import Downsample
from aircolor.models.layers import Norm, conv_bias, norm_layer
from aircolor.models.registry import DISCRIMINATORS


def _n_layer_stack(input_nc: int, ndf: int, n_layers: int, norm: Norm, *, all_bias: bool,
                   antialias: bool = False) -> list[nn.Module]:
    """With ``antialias`` (CUT) each stride-2 conv becomes ``Conv s1 -> [Norm] -> LReLU -> Downsample``."""
    bias = True if all_bias else conv_bias(norm)
    if antialias:
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=1, padding=1), nn.LeakyReLU(0.2),
                                   Downsample(ndf)]
    else:
        layers = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
    mult = 1
    for n in range(1, n_layers):
        prev, mult = mult, min(2 ** n, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1 if antialias else 2, padding=1, bias=bias),
                   norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2)]
        if antialias:
            layers.append(Downsample(ndf * mult))
    prev, mult = mult, min(2 ** n_layers, 8)
    layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=bias), norm_layer(norm, ndf * mult),
               nn.LeakyReLU(0.2), nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
    return layers


class NLayerDiscriminator(nn.Module):
    """``n_layers`` stride-2 convs; receptive field 16/34/70/142/286 px for n_layers 1..5."""

    def __init__(self, *, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: Norm = "batch",
                 antialias: bool = False) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.model = nn.Sequential(*_n_layer_stack(input_nc, ndf, n_layers, norm, all_bias=False,
                                                   antialias=antialias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: judges every pixel's color on its own."""

    def __init__(self, *, input_nc: int, ndf: int = 64, norm: Norm = "batch") -> None:
        super().__init__()
        bias = conv_bias(norm)
        self.net = nn.Sequential(nn.Conv2d(input_nc, ndf, 1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(ndf, ndf * 2, 1, bias=bias), norm_layer(norm, ndf * 2), nn.LeakyReLU(0.2),
                                 nn.Conv2d(ndf * 2, 1, 1, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiScaleDiscriminator(nn.Module):
    """BicycleGAN's ``basic_256_multi``: ``num_D`` N-layer PatchGANs on the image at 1, 1/2, ... scale.

    Scale i has ``round(ndf / 2**i)`` filters and every conv has a bias; the forward returns a list of logit
    maps (30x30 and 14x14 at 256 px), whose losses the model sums.
    """

    def __init__(self, *, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: Norm = "instance",
                 num_D: int = 2) -> None:
        super().__init__()
        self.scales = nn.ModuleList(
            nn.Sequential(*_n_layer_stack(input_nc, max(1, round(ndf / 2 ** i)), n_layers, norm, all_bias=True))
            for i in range(num_D))
        self.down = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, scale in enumerate(self.scales):
            if i:
                x = self.down(x)
            out.append(scale(x))
        return out


@DISCRIMINATORS.register("basic")
def _basic(*, input_nc: int, ndf: int = 64, norm: Norm = "batch", antialias: bool = False,
           **_: object) -> nn.Module:
    return NLayerDiscriminator(input_nc=input_nc, ndf=ndf, n_layers=3, norm=norm, antialias=antialias)


@DISCRIMINATORS.register("n_layers")
def _n_layers(*, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: Norm = "batch", antialias: bool = False,
              **_: object) -> nn.Module:
    return NLayerDiscriminator(input_nc=input_nc, ndf=ndf, n_layers=n_layers, norm=norm, antialias=antialias)


@DISCRIMINATORS.register("pixel")
def _pixel(*, input_nc: int, ndf: int = 64, norm: Norm = "batch", **_: object) -> nn.Module:
    return PixelDiscriminator(input_nc=input_nc, ndf=ndf, norm=norm)


@DISCRIMINATORS.register("multiscale")
def _multiscale(*, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: Norm = "instance", num_D: int = 2,
                **_: object) -> nn.Module:
    return MultiScaleDiscriminator(input_nc=input_nc, ndf=ndf, n_layers=n_layers, norm=norm, num_D=num_D)
