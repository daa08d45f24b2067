"""Anti-aliased down- and up-sampling (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again"),
used by CUT's reference generator and discriminator by default.

``Downsample``: reflect-pad 1, blur with the fixed ``[1,2,1] x [1,2,1] / 16`` filter per channel, stride 2.
``Upsample``: replicate-pad 1, transposed conv with ``[1,3,3,1] x [1,3,3,1] / 64 * 4`` per channel, stride 2,
then drop the outer row and column on each side. The filters are buffers, not parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _kernel(taps: list[float], channels: int, scale: float = 1.0) -> torch.Tensor:
    a = torch.tensor(taps)
    k = a[:, None] * a[None, :]
    k = k / k.sum() * scale
    return k[None, None].repeat(channels, 1, 1, 1)


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", _kernel([1.0, 2.0, 1.0], channels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt.to(x.dtype), stride=2,
                        groups=self.channels)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", _kernel([1.0, 3.0, 3.0, 1.0], channels, scale=4.0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.filt.to(x.dtype), stride=2,
                                 padding=2, groups=self.channels)
        return out[:, :, 1:-1, 1:-1]
