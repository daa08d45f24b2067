"""The pix2pix U-Net generator (Isola et al. 2017, appendix 6.1.1), as in the public reference.

The net is built from the inside out: each :class:`UnetSkipBlock` wraps the next one, halving the resolution
on the way down and doubling it on the way up, and concatenates its input to its output (``cat([x, up])``),
so layer i is connected to layer n - i. ``unet_256`` has 8 down-sampling steps (256 px -> 1x1 bottleneck),
``unet_128`` 7; ``unet_auto`` derives the depth from the image size (log2), so 32 and 64 px test images work.

One deliberate difference from the reference: its down path starts with an *in-place* LeakyReLU, which
silently rewrites the tensor that the skip connection concatenates. Ours is not in place, so the skip carries
the block's input as the paper describes. Parameter counts are unaffected.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aircolor.models.layers import Norm, conv_bias, norm_layer
from aircolor.models.registry import GENERATORS


class UnetSkipBlock(nn.Module):
    def __init__(self, outer_nc: int, inner_nc: int, *, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False, innermost: bool = False,
                 norm: Norm = "batch", dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        bias = conv_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        down_conv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        if outermost:
            up = [nn.ReLU(), nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1), nn.Tanh()]
            layers = [down_conv, submodule, *up]
        elif innermost:
            up = [nn.ReLU(), nn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1, bias=bias), norm_layer(norm, outer_nc)]
            layers = [nn.LeakyReLU(0.2), down_conv, *up]
        else:
            up = [nn.ReLU(), nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=bias),
                  norm_layer(norm, outer_nc)]
            if dropout:
                up.append(nn.Dropout(0.5))
            layers = [nn.LeakyReLU(0.2), down_conv, norm_layer(norm, inner_nc), submodule, *up]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], dim=1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` down-sampling steps; the input size must be divisible by 2**num_downs."""

    def __init__(self, *, input_nc: int, output_nc: int, num_downs: int, ngf: int = 64, norm: Norm = "batch",
                 dropout: bool = False) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"a U-Net needs at least 5 down-sampling steps (32 px images), got {num_downs}")
        self.num_downs = num_downs
        block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        block = UnetSkipBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step = 2 ** self.num_downs
        if x.shape[-1] % step or x.shape[-2] % step:
            raise ValueError(f"U-Net with {self.num_downs} down-sampling steps needs sizes divisible by {step}, "
                             f"got {tuple(x.shape[-2:])}")
        return self.model(x)


def unet_depth(size: int) -> int:
    """Down-sampling steps that take a ``size`` px image to a 1x1 bottleneck (256 -> 8, 64 -> 6)."""
    depth = int(math.log2(size)) if size > 0 else 0
    if 2 ** depth != size or depth < 5:
        raise ValueError(f"unet_auto needs a power-of-two image size >= 32, got {size}")
    return depth


def _unet(num_downs: int | None):
    def build(*, input_nc: int, output_nc: int, ngf: int = 64, norm: Norm = "batch", dropout: bool = False,
              size: int = 256, **_: object) -> UnetGenerator:
        depth = unet_depth(size) if num_downs is None else num_downs
        return UnetGenerator(input_nc=input_nc, output_nc=output_nc, num_downs=depth, ngf=ngf, norm=norm,
                             dropout=dropout)
    return build


GENERATORS.register("unet_256")(_unet(8))
GENERATORS.register("unet_128")(_unet(7))
GENERATORS.register("unet_64")(_unet(6))
GENERATORS.register("unet_32")(_unet(5))
GENERATORS.register("unet_auto")(_unet(None))
