"""sRGB <-> CIE L*a*b* (D65) in PyTorch, and the normalisation of the reference colorization code.

The formulas are the standard ones (IEC 61966-2-1 sRGB transfer curve, the sRGB->XYZ matrix for D65, CIE 1976
L*a*b*), the same as ``skimage.color.rgb2lab`` / ``lab2rgb``, which the pix2pix reference uses for its L->ab mode.
They work on any tensor with the channel axis at ``dim`` (default -3, i.e. ``(..., 3, H, W)``), on CPU or GPU, and
are differentiable, so the models can compute losses in either space.

Normalisation (pix2pix ``colorization_dataset.py``): the network input is ``L / 50 - 1`` in [-1, 1] and the
target ``ab / 110`` (about [-0.98, 0.89] over the sRGB gamut).

Why not ``kornia.color`` (issue 18; ``python -m benchmarks.run --sections colorspace``, table in
``benchmarks/results/colorspace_cpu.md``). kornia 0.9's ``rgb_to_lab`` / ``lab_to_rgb`` are the same formulas and
constants (translated from skimage), and measure the same: against skimage over 1,112 real aerial tiles both are
at most 6.2e-5 L*a*b* units off in float32 (2.8e-13 in float64), 0.0003 8-bit levels back to sRGB, and 0.0023
levels over a grid of the whole a*b* plane, far outside the gamut included. On 2 CPU cores, ms per rgb->lab /
lab->rgb (medians of 25 interleaved rounds): 54 / 51 here, 61 / 47 kornia for a 16 x 3 x 256 x 256 batch; 50 / 40
here, 59 / 54 kornia for a 1024 x 1024 photo: kornia is no faster (runs on this shared machine vary by about 20%).
On a GPU it would be slower: it builds its matrix and white point from Python lists on every call (4 tensors per
rgb->lab->rgb round trip, none here), and each is a blocking host-to-device copy, a host sync per call. The
per-device constants below exist to avoid exactly that: ``encode_lab`` runs in each training step when the data is
kept on the device, and colorize's gamut fit calls ``lab_to_rgb`` up to 14 times per batch. kornia also takes the
channels only at -3 of a tensor of 3 or more dimensions (the gamut fit converts (N, 3) lists with ``dim=-1``).
"""

from __future__ import annotations

import torch

_RGB_TO_XYZ = torch.tensor([[0.412453, 0.357580, 0.180423],
                            [0.212671, 0.715160, 0.072169],
                            [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
_XYZ_TO_RGB = torch.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)
_EPS = 0.008856  # (6/29)**3: below it the CIE f() is linear
_KAPPA = 7.787   # slope of that linear part, (29/6)**2 / 3

L_SCALE, L_SHIFT, AB_SCALE = 50.0, 1.0, 110.0


_ON_DEVICE: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


def _like(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The constant ``t`` in ``x``'s dtype and device, copied there once: a copy from host memory would make
    every call on a GPU wait for the GPU (a host sync per batch)."""
    key = (id(t), x.dtype, x.device)
    out = _ON_DEVICE.get(key)
    if out is None:
        with torch.inference_mode(False):  # a normal tensor, usable with autograd later even if made in inference
            out = _ON_DEVICE[key] = t.to(dtype=x.dtype, device=x.device).clone()
    return out


def _mix(x: torch.Tensor, matrix: torch.Tensor, dim: int) -> torch.Tensor:
    """``matrix`` applied to the 3 channels of ``x`` at ``dim``; the result is contiguous.

    Channels last: one matrix product. Otherwise an einsum over the channel axis in place: moving the channels last
    and back costs a copy of the image (about 2.5x the time of this einsum on a 16 x 3 x 256 x 256 batch), and
    elementwise ops on the channels-last view that would leave give bits that depend on the number of threads
    (vectorised and scalar paths split differently), and colorize must not.
    """
    m = _like(matrix, x)
    d = dim % x.dim()
    if d == x.dim() - 1:
        return x @ m.T
    rest = "abcdefgh"[:x.dim() - d - 1]
    return torch.einsum(f"oi,...i{rest}->...o{rest}", m, x).contiguous()


def _per_channel(t: torch.Tensor, x: torch.Tensor, dim: int) -> torch.Tensor:
    shape = [1] * x.dim()
    shape[dim] = 3
    return _like(t, x).view(shape)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    return torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    return torch.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def rgb_to_lab(rgb: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """sRGB in [0, 1] -> L*a*b* with L in [0, 100]."""
    if rgb.shape[dim] != 3:
        raise ValueError(f"rgb_to_lab expects 3 channels at dim {dim}, got shape {tuple(rgb.shape)}")
    xyz = _mix(srgb_to_linear(rgb), _RGB_TO_XYZ, dim) / _per_channel(_WHITE_D65, rgb, dim)
    f = torch.where(xyz > _EPS, xyz.clamp(min=_EPS) ** (1 / 3), _KAPPA * xyz + 16 / 116)
    fx, fy, fz = f.unbind(dim)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=dim)


def lab_to_rgb(lab: torch.Tensor, dim: int = -3, clip: bool = True) -> torch.Tensor:
    """L*a*b* -> sRGB in [0, 1] (clipped to the gamut unless ``clip=False``).

    As in ``skimage.color.lab2rgb`` (and kornia), f(Z) is clamped at 0. It only moves colours with b* > 200 f(Y),
    which have Z < 0 and lie far outside the sRGB gamut with or without the clamp (the gamut fit of
    :mod:`aircolor.colorize.delivery` finds the same pixels outside); with it the clipped sRGB is scikit-image's,
    without it up to 52 8-bit levels away.
    """
    if lab.shape[dim] != 3:
        raise ValueError(f"lab_to_rgb expects 3 channels at dim {dim}, got shape {tuple(lab.shape)}")
    L, a, b = lab.unbind(dim)
    fy = (L + 16) / 116
    f = torch.stack([fy + a / 500, fy, (fy - b / 200).clamp(min=0)], dim=dim)
    xyz = torch.where(f > 0.2068966, f ** 3, (f - 16 / 116) / _KAPPA) * _per_channel(_WHITE_D65, lab, dim)
    rgb = linear_to_srgb(_mix(xyz, _XYZ_TO_RGB, dim))
    return rgb.clamp(0, 1) if clip else rgb


def encode_lab(rgb: torch.Tensor, dim: int = -3) -> tuple[torch.Tensor, torch.Tensor]:
    """sRGB [0, 1] -> (L/50 - 1 with one channel, ab/110 with two), the networks' input and target."""
    lab = rgb_to_lab(rgb, dim)
    L, ab = lab.split([1, 2], dim=dim)
    return L / L_SCALE - L_SHIFT, ab / AB_SCALE


def decode_lab(L_norm: torch.Tensor, ab_norm: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Inverse of :func:`encode_lab`: normalised L and ab -> sRGB in [0, 1]."""
    lab = torch.cat([(L_norm + L_SHIFT) * L_SCALE, ab_norm * AB_SCALE], dim=dim)
    return lab_to_rgb(lab, dim)


def gray_to_L(gray: torch.Tensor) -> torch.Tensor:
    """Gray values in [0, 1] (any shape) -> normalised L of the neutral color (g, g, g).

    A neutral sRGB gray has a* = b* = 0 and L* = 116 f(Y) - 16 with Y the linearised gray value, so
    historical grayscale photos enter an L->ab model on the same scale as the training tiles' L channel.
    """
    y = srgb_to_linear(gray)
    f = torch.where(y > _EPS, y.clamp(min=_EPS) ** (1 / 3), _KAPPA * y + 16 / 116)
    return (116 * f - 16) / L_SCALE - L_SHIFT
