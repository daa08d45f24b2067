"""The ResNet encoder-decoder generator (Johnson et al. 2016) used by pix2pix's ResNet option and CycleGAN.

``ReflPad3 -> Conv7 -> Norm -> ReLU``, two stride-2 down-sampling convs, ``n_blocks`` residual blocks at 4*ngf
channels, two stride-2 transposed convs, ``ReflPad3 -> Conv7 -> Tanh``. Residual blocks use reflect padding
and have no ReLU after the addition.

With ``antialias`` (CUT's default) each down-sampling step is ``Conv3 s1 -> Norm -> ReLU -> Downsample`` and each
up-sampling step ``Upsample -> Conv3 s1 -> Norm -> ReLU`` (same parameter count). Module indices in
``self.model`` are the references', so CUT picks its PatchNCE layers (0, 4, 8, 12, 16) by index: with
antialiasing they are the padded input, the first down conv at full resolution, the second at half resolution,
and the outputs of residual blocks 1 and 5.
"""

from __future__ import annotations

import torch
from torch import nn

from aircolor.models.antialias import Downsample, Upsample
from aircolor.models.layers import Norm, conv_bias, norm_layer
from aircolor.models.registry import GENERATORS


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, *, norm: Norm, dropout: bool) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim),
                                   nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, *, input_nc: int, output_nc: int, ngf: int = 64, norm: Norm = "instance",
                 dropout: bool = False, n_blocks: int = 9, antialias: bool = False) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias),
                                   norm_layer(norm, ngf), nn.ReLU()]
        for i in range(2):
            c = ngf * 2 ** i
            if antialias:
                layers += [nn.Conv2d(c, c * 2, 3, stride=1, padding=1, bias=bias), norm_layer(norm, c * 2), nn.ReLU(),
                           Downsample(c * 2)]
            else:
                layers += [nn.Conv2d(c, c * 2, 3, stride=2, padding=1, bias=bias), norm_layer(norm, c * 2), nn.ReLU()]
        layers += [ResnetBlock(ngf * 4, norm=norm, dropout=dropout) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            if antialias:
                layers += [Upsample(c), nn.Conv2d(c, c // 2, 3, stride=1, padding=1, bias=bias)]
            else:
                layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)]
            layers += [norm_layer(norm, c // 2), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, layers: list[int] | None = None, encode_only: bool = False):
        """The image, or with ``layers`` also the features after those module indices (for PatchNCE)."""
        if not layers:
            return self.model(x)
        feats, out = [], x
        last = max(layers)
        for index, module in enumerate(self.model):
            out = module(out)
            if index in layers:
                feats.append(out)
            if encode_only and index == last:
                return feats
        return out, feats


def _resnet(n_blocks: int):
    def build(*, input_nc: int, output_nc: int, ngf: int = 64, norm: Norm = "instance", dropout: bool = False,
              antialias: bool = False, **_: object) -> ResnetGenerator:
        return ResnetGenerator(input_nc=input_nc, output_nc=output_nc, ngf=ngf, norm=norm, dropout=dropout,
                               n_blocks=n_blocks, antialias=antialias)
    return build


GENERATORS.register("resnet_9blocks")(_resnet(9))
GENERATORS.register("resnet_6blocks")(_resnet(6))
