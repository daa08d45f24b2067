"""BicycleGAN's U-Net generator with a latent code z (Zhu et al. 2017), and where z goes (factor 6).

``z_injection``:

* ``input``: z (B, nz) is tiled to (B, nz, H, W) and concatenated to the image once, before the first conv
  (the reference's ``G_Unet_add_input``);
* ``all``: every down-sampling block concatenates the tiled z to its input (``G_Unet_add_all``, the default);
* ``middle``: z is concatenated only at the innermost block, the bottleneck. The reference lists this option
  but raises ``NotImplementedError``; here the innermost block's down conv takes ``8*ngf + nz`` channels and
  sees z tiled to the bottleneck's spatial size, so z shapes the code from which the whole decoder starts.

As in the reference, every conv has a bias, the up path is ``ReLU -> ConvT4 s2``, and the skip concatenates
the up path's output *before* the block's input (``cat([up, x])``, reversed compared with pix2pix), without z.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from aircolor.models.generators.unet import unet_depth
from aircolor.models.layers import Norm, norm_layer, tile_z
from aircolor.models.registry import GENERATORS

ZInjection = Literal["input", "all", "middle"]


class ZUnetBlock(nn.Module):
    def __init__(self, input_nc: int, outer_nc: int, inner_nc: int, *, nz: int, submodule: "ZUnetBlock | None",
                 outermost: bool = False, innermost: bool = False, norm: Norm = "instance",
                 dropout: bool = False) -> None:
        super().__init__()
        self.nz, self.outermost, self.innermost = nz, outermost, innermost
        down_conv = nn.Conv2d(input_nc + nz, inner_nc, kernel_size=4, stride=2, padding=1)
        if outermost:
            down = [down_conv]
            up = [nn.ReLU(), nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1), nn.Tanh()]
        elif innermost:
            down = [nn.LeakyReLU(0.2), down_conv]
            up = [nn.ReLU(), nn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1), norm_layer(norm, outer_nc)]
        else:
            down = [nn.LeakyReLU(0.2), down_conv, norm_layer(norm, inner_nc)]
            up = [nn.ReLU(), nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1), norm_layer(norm, outer_nc)]
            if dropout:
                up.append(nn.Dropout(0.5))
        self.down = nn.Sequential(*down)
        self.submodule = submodule
        self.up = nn.Sequential(*up)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        inp = torch.cat([x, tile_z(z, x)], dim=1) if self.nz else x
        h = self.down(inp)
        if self.submodule is not None:
            h = self.submodule(h, z)
        out = self.up(h)
        return out if self.outermost else torch.cat([out, x], dim=1)


class ZUnetGenerator(nn.Module):
    """U-Net ``G(A, z)`` with ``num_downs`` down-sampling steps and z injected per ``z_injection``."""

    def __init__(self, *, input_nc: int, output_nc: int, nz: int, num_downs: int, ngf: int = 64,
                 norm: Norm = "instance", dropout: bool = False, z_injection: ZInjection = "all") -> None:
        super().__init__()
        if z_injection not in ("input", "all", "middle"):
            raise KeyError(f"unknown z_injection {z_injection!r}; valid: input, all, middle")
        if num_downs < 5:
            raise ValueError(f"a U-Net needs at least 5 down-sampling steps (32 px images), got {num_downs}")
        self.nz, self.num_downs, self.z_injection = nz, num_downs, z_injection

        def z_at(where: str) -> int:
            return nz if z_injection == "all" or z_injection == where else 0

        block = ZUnetBlock(ngf * 8, ngf * 8, ngf * 8, nz=z_at("middle"), submodule=None, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = ZUnetBlock(ngf * 8, ngf * 8, ngf * 8, nz=z_at("-"), submodule=block, norm=norm, dropout=dropout)
        block = ZUnetBlock(ngf * 4, ngf * 4, ngf * 8, nz=z_at("-"), submodule=block, norm=norm)
        block = ZUnetBlock(ngf * 2, ngf * 2, ngf * 4, nz=z_at("-"), submodule=block, norm=norm)
        block = ZUnetBlock(ngf, ngf, ngf * 2, nz=z_at("-"), submodule=block, norm=norm)
        self.model = ZUnetBlock(input_nc, output_nc, ngf, nz=z_at("input"), submodule=block, outermost=True,
                                norm=norm)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        step = 2 ** self.num_downs
        if x.shape[-1] % step or x.shape[-2] % step:
            raise ValueError(f"U-Net with {self.num_downs} down-sampling steps needs sizes divisible by {step}, "
                             f"got {tuple(x.shape[-2:])}")
        if z.shape != (x.size(0), self.nz):
            raise ValueError(f"z must have shape ({x.size(0)}, {self.nz}), got {tuple(z.shape)}")
        return self.model(x, z)


def _z_unet(num_downs: int | None):
    def build(*, input_nc: int, output_nc: int, nz: int = 8, ngf: int = 64, norm: Norm = "instance",
              dropout: bool = False, z_injection: ZInjection = "all", size: int = 256, **_: object) -> ZUnetGenerator:
        depth = unet_depth(size) if num_downs is None else num_downs
        return ZUnetGenerator(input_nc=input_nc, output_nc=output_nc, nz=nz, num_downs=depth, ngf=ngf, norm=norm,
                              dropout=dropout, z_injection=z_injection)
    return build


# BicycleGAN generators live in their own registry namespace: they take (A, z), not A.
for _name, _depth in (("unet_256", 8), ("unet_128", 7), ("unet_64", 6), ("unet_32", 5), ("unet_auto", None)):
    GENERATORS.register(f"z_{_name}")(_z_unet(_depth))
