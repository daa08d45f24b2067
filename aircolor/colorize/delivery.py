"""What a user gets from a model's chroma: the input's own L* with that chroma, fitted into the sRGB gamut.

:func:`deliver` is used by ``aircolor colorize``, by the evaluation of every trial (``val.*``, ``test.*``) and by
the colour priors, so all of them score the same image. Only chroma comes from the model; where the predicted
colour falls outside sRGB its chroma is reduced (not its lightness) until it fits, so L* is exact up to 8/16-bit
rounding.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from aircolor.data.colorspace import encode_lab, gray_to_L, lab_to_rgb, L_SCALE, L_SHIFT

GAMUT_EPS = 1e-4  # how far outside [0, 1] an sRGB channel may be and still count as inside (float rounding)


def _inside(rgb: torch.Tensor, dim: int) -> torch.Tensor:
    return ((rgb >= -GAMUT_EPS) & (rgb <= 1 + GAMUT_EPS)).all(dim=dim, keepdim=True)


def _bisect_scale(L: torch.Tensor, ab: torch.Tensor, steps: int) -> torch.Tensor:
    """sRGB of (L, s ab) with the largest s in [0, 1] that is in gamut, by bisection; ``L`` (N, 1), ``ab`` (N, 2)."""
    lo, hi = torch.zeros_like(L), torch.ones_like(L)
    for _ in range(steps):
        mid = (lo + hi) / 2
        ok = _inside(lab_to_rgb(torch.cat([L, ab * mid], dim=-1), dim=-1, clip=False), -1)
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    return lab_to_rgb(torch.cat([L, ab * lo], dim=-1), dim=-1, clip=False)


def fit_chroma(L: torch.Tensor, ab: torch.Tensor, steps: int = 12) -> torch.Tensor:
    """sRGB [0, 1] of (L*, s * a*b*) with the largest s in [0, 1] that stays in gamut, per pixel (bisection).

    ``L`` (..., 1, H, W) in [0, 100], ``ab`` (..., 2, H, W) in Lab units. Clipping RGB instead would change the
    lightness of saturated colors; shrinking chroma keeps L* exactly (neutral grays are always in gamut). Only the
    pixels outside the gamut are bisected (a few percent of a muted model's output), gathered into one list.
    """
    full = lab_to_rgb(torch.cat([L, ab], dim=-3), clip=False)
    inside = _inside(full, -3)
    if bool(inside.all()):
        return full.clamp(0, 1)
    flat_full = full.movedim(-3, -1).reshape(-1, 3)
    outside = (~inside).movedim(-3, -1).reshape(-1).nonzero().squeeze(1)
    flat_L = L.movedim(-3, -1).reshape(-1, 1)[outside]
    flat_ab = ab.movedim(-3, -1).reshape(-1, 2)[outside]
    flat_full[outside] = _bisect_scale(flat_L, flat_ab, steps)
    shape = full.movedim(-3, -1).shape
    return flat_full.reshape(shape).movedim(-1, -3).clamp(0, 1).contiguous()


@contextlib.contextmanager
def seeded(device: torch.device, seed: int = 0) -> Iterator[None]:
    """A block with its own seeded RNG (CPU, and ``device`` if CUDA); the caller's RNG state is untouched."""
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def deliver(gray: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """What a user gets: the input's own L* with chroma ``ab`` (Lab units), gamut-fitted: sRGB [0, 1].

    ``gray`` (..., 1, H, W) in [0, 1] (the gray photo), ``ab`` (..., 2, H, W).
    """
    return fit_chroma((gray_to_L(gray) + L_SHIFT) * L_SCALE, ab)


def to_chroma(color_space: str, out: torch.Tensor) -> torch.Tensor:
    """a*b* / AB_SCALE of a generator's output: Lab models predict it; RGB models' output is converted to Lab and its
    a*b* kept (its L* is replaced by the input's on delivery)."""
    return out if color_space == "lab" else encode_lab(((out + 1) / 2).clamp(0, 1))[1]
