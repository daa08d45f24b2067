"""Tests for sRGB <-> CIE L*a*b* and the networks' normalisation, on the real sample tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aircolor.data.colorspace import (
    decode_lab,
    encode_lab,
    gray_to_L,
    lab_to_rgb,
    rgb_to_lab,
)


def load_all(paths: list[Path]) -> torch.Tensor:
    """uint8 tensor N x 3 x H x W of the (equal-sized) RGB images at ``paths``."""
    arrays = []
    for path in paths:
        with Image.open(path) as im:
            arrays.append(np.asarray(im.convert("RGB")))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def real_tiles(sample_data: Path) -> torch.Tensor:
    """All 141 real 8-bit color tiles of the sample (256 x 256)."""
    tiles = load_all(sorted((sample_data / "color").rglob("*.jpg")))
    assert tiles.shape == (141, 3, 256, 256)
    return tiles


def max_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return (got - want).abs().max().item()


def skimage_lab(rgb: np.ndarray) -> np.ndarray:
    """``skimage.color.rgb2lab`` (D65, float64) of ``(..., 3)`` sRGB in [0, 1]: the pix2pix reference's L*a*b*."""
    from skimage.color import rgb2lab

    return rgb2lab(rgb)


def skimage_rgb(lab: np.ndarray) -> np.ndarray:
    """``skimage.color.lab2rgb`` of ``(..., 3)`` L*a*b* (it warns about the far-out colours whose f(Z) it clamps)."""
    import warnings

    from skimage.color import lab2rgb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lab2rgb(lab)


def channels_first(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.from_numpy(a).movedim(-1, -3).to(dtype)


def channels_last(t: torch.Tensor) -> np.ndarray:
    return t.movedim(-3, -1).double().numpy()


@pytest.fixture(scope="module")
def skimage_of_tiles(real_tiles: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sRGB float64 N x H x W x 3, its skimage L*a*b*, skimage's sRGB of that L*a*b*) for every fourth real tile."""
    rgb = real_tiles[::4].permute(0, 2, 3, 1).double().numpy() / 255
    lab = skimage_lab(rgb)
    return rgb, lab, skimage_rgb(lab)


def test_rgb_to_lab_matches_scikit_image_on_real_tiles(skimage_of_tiles) -> None:
    rgb, want, _ = skimage_of_tiles
    got32 = channels_last(rgb_to_lab(channels_first(rgb)))
    assert np.abs(got32 - want).max() < 1e-3, "float32: within 1e-3 L*a*b* units of skimage"
    got64 = channels_last(rgb_to_lab(channels_first(rgb, torch.float64)))
    assert np.abs(got64 - want).max() < 1e-9, "float64: skimage's formulas and constants"


def test_lab_to_rgb_matches_scikit_image_on_real_tiles(skimage_of_tiles) -> None:
    _, lab, want = skimage_of_tiles
    got = channels_last(lab_to_rgb(channels_first(lab)))
    assert np.abs(got - want).max() < 1e-5
    assert np.abs(np.round(got * 255) - np.round(want * 255)).max() <= 1
    got64 = channels_last(lab_to_rgb(channels_first(lab, torch.float64)))
    assert np.abs(got64 - want).max() < 1e-9


def test_lab_to_rgb_matches_scikit_image_over_the_whole_lab_plane() -> None:
    """L* 0..100 x a*, b* -128..127: the sRGB gamut and far outside it (clipped as skimage clips, f(Z) clamped at 0
    as skimage does for b* > 200 f(Y))."""
    L, a, b = np.meshgrid(np.linspace(0, 100, 41), np.linspace(-128, 127, 52), np.linspace(-128, 127, 52),
                          indexing="ij")
    lab = np.stack([L, a, b], axis=-1)  # 41 x 52 x 52 x 3
    want = skimage_rgb(lab)
    assert (want == 0).any(axis=-1).mean() > 0.5, "most of the grid is outside the gamut"
    for dtype, tol in ((torch.float32, 1e-4), (torch.float64, 1e-9)):
        got = channels_last(lab_to_rgb(channels_first(lab, dtype)))
        assert np.abs(got - want).max() < tol, dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gamut_edges_match_scikit_image(dtype: torch.dtype) -> None:
    """The cube's corners, a gray ramp and values at the transfer curve's knee, both ways."""
    from benchmarks.cases_colorspace import gamut_edges

    rgb = gamut_edges()[:, None, :]  # N x 1 x 3: an N x 1 image
    lab = skimage_lab(rgb)
    tol = 1e-3 if dtype == torch.float32 else 1e-9
    assert np.abs(channels_last(rgb_to_lab(channels_first(rgb, dtype))) - lab).max() < tol
    assert np.abs(channels_last(lab_to_rgb(channels_first(lab, dtype))) - skimage_rgb(lab)).max() < tol / 100


def test_round_trip_of_every_real_tile_within_one_level(real_tiles: torch.Tensor) -> None:
    worst = 0
    for batch in real_tiles.split(16):
        rgb = batch.float() / 255
        back = lab_to_rgb(rgb_to_lab(rgb))
        assert back.shape == rgb.shape and back.dtype == torch.float32
        err = ((back * 255).round() - batch.float()).abs().max().item()
        worst = max(worst, err)
    assert worst <= 1


def test_round_trip_of_real_gray_photos(sample_data: Path) -> None:
    for path in sorted(p for p in (sample_data / "historical").rglob("*") if p.is_file()):
        with Image.open(path) as im:
            gray = torch.from_numpy(np.asarray(im.convert("L")).copy())
        rgb = gray.expand(3, *gray.shape).float() / 255
        lab = rgb_to_lab(rgb)
        assert lab[1:].abs().max().item() < 0.01, "neutral grays have a* = b* = 0"
        assert ((lab_to_rgb(lab) * 255).round() - gray.float()).abs().max().item() <= 1


@pytest.mark.parametrize("rgb,lab", [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),
    ((0.0, 1.0, 0.0), (87.73, -86.18, 83.18)),
    ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
    ((0.5, 0.5, 0.5), (53.39, 0.0, 0.0)),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reference_values(rgb: tuple[float, float, float], lab: tuple[float, float, float],
                          dtype: torch.dtype) -> None:
    got = rgb_to_lab(torch.tensor(rgb, dtype=dtype).view(3, 1, 1)).view(3)
    assert max_err(got, torch.tensor(lab, dtype=dtype)) < 0.02, got
    back = lab_to_rgb(torch.tensor(lab, dtype=dtype).view(3, 1, 1)).view(3)
    assert max_err(back, torch.tensor(rgb, dtype=dtype)) < 1e-3


def test_lab_to_rgb_clips_out_of_gamut_colors() -> None:
    lab = torch.tensor([[50.0, 100.0, -100.0], [95.0, -90.0, 90.0], [20.0, 0.0, -110.0]]).T.reshape(3, 3, 1)
    raw = lab_to_rgb(lab, clip=False)
    assert raw.min().item() < -0.05 or raw.max().item() > 1.05, "these colors are outside sRGB"
    clipped = lab_to_rgb(lab)
    assert clipped.min().item() >= 0 and clipped.max().item() <= 1
    assert max_err(clipped, raw.clamp(0, 1)) < 1e-6


def test_channel_dim_and_batch_shapes(real_tiles: torch.Tensor) -> None:
    chw = real_tiles[:4, :, :64, :64].float() / 255  # N x 3 x H x W
    lab = rgb_to_lab(chw)
    hwc = rgb_to_lab(chw.permute(0, 2, 3, 1), dim=-1)
    assert max_err(hwc.permute(0, 3, 1, 2), lab) < 1e-4
    assert max_err(rgb_to_lab(chw[0]), lab[0]) < 1e-4
    assert max_err(lab_to_rgb(hwc, dim=-1).permute(0, 3, 1, 2), lab_to_rgb(lab)) < 1e-5
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_lab(chw[:, :2])
    with pytest.raises(ValueError, match="3 channels"):
        lab_to_rgb(chw[:, :1])


def test_encode_lab_normalisation(real_tiles: torch.Tensor) -> None:
    rgb = real_tiles[::20].float() / 255
    lab = rgb_to_lab(rgb)
    L, ab = encode_lab(rgb)
    assert L.shape == (8, 1, 256, 256) and ab.shape == (8, 2, 256, 256)
    assert max_err(L, lab[:, :1] / 50 - 1) < 1e-6
    assert max_err(ab, lab[:, 1:] / 110) < 1e-6
    assert L.min().item() >= -1 - 1e-5 and L.max().item() <= 1 + 1e-5
    assert ab.abs().max().item() <= 1
    white_L, white_ab = encode_lab(torch.ones(3, 1, 1))
    black_L, black_ab = encode_lab(torch.zeros(3, 1, 1))
    assert abs(white_L.item() - 1) < 1e-4 and abs(black_L.item() + 1) < 1e-6
    assert white_ab.abs().max().item() < 1e-3 and black_ab.abs().max().item() < 1e-6
    # decode_lab inverts it, to within one 8-bit level
    back = decode_lab(L, ab)
    assert ((back * 255).round() - real_tiles[::20].float()).abs().max().item() <= 1
    # decode_lab undoes exactly the documented scaling
    assert max_err(decode_lab(L, ab), lab_to_rgb(torch.cat([(L + 1) * 50, ab * 110], dim=1))) < 1e-6


def test_gray_to_L_is_the_L_of_the_neutral_color() -> None:
    g = torch.arange(256, dtype=torch.float32) / 255
    L, ab = encode_lab(g.expand(3, 256).reshape(3, 1, 256))
    got = gray_to_L(g)
    assert got.shape == g.shape
    assert max_err(got, L.view(256)) < 1e-5
    assert ab.abs().max().item() < 1e-3
    assert abs(got[0].item() + 1) < 1e-6 and abs(got[-1].item() - 1) < 1e-4
    assert bool((got[1:] > got[:-1]).all()), "monotonic in the gray level"
    assert max_err(gray_to_L(torch.full((2, 1, 4, 4), 0.5)), torch.full((2, 1, 4, 4), 53.39 / 50 - 1)) < 1e-3


def test_gradients_flow(real_tiles: torch.Tensor) -> None:
    rgb = (real_tiles[:2, :, :16, :16].double() / 255).requires_grad_()
    L, ab = encode_lab(rgb)
    (L.sum() + ab.square().sum()).backward()
    assert rgb.grad is not None and torch.isfinite(rgb.grad).all()


def test_constants_are_copied_to_a_device_once_and_work_with_autograd_after_inference():
    """The matrices reach each (dtype, device) once (on a GPU every copy from host memory would be a host sync per
    batch), and a copy first made under inference_mode still serves a later autograd pass."""
    import aircolor.data.colorspace as cs

    cs._ON_DEVICE.clear()
    with torch.inference_mode():
        cs.rgb_to_lab(torch.rand(1, 3, 4, 4, dtype=torch.float32))
    cached = dict(cs._ON_DEVICE)
    assert len(cached) == 2  # the RGB->XYZ matrix and the white point, in float32 on the CPU
    x = torch.rand(1, 3, 4, 4, requires_grad=True)
    cs.rgb_to_lab(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(cs._ON_DEVICE[k] is v for k, v in cached.items())  # reused, not copied again
