"""The cautious-chroma arms of the default model's study: a*b* classified over bins (decoded as the expectation),
the squared-error term, and target-side tint jitter."""

from __future__ import annotations

import pytest
import torch

from aircolor.errors import ConfigError
from aircolor.models import build_named

LAB = ["model.ngf=8", "model.ndf=8", "data.size=32", "model.netG=unet_auto", "data.color_space=lab",
       "train.batch_size=4"]


def lab_batch(n: int = 4, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Gray L in [-1, 1] and a*b* / 110 of a plausible aerial range (|a*|, |b*| < 30)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, 1, size, size, generator=g) * 2 - 1
    b = (torch.rand(n, 2, size, size, generator=g) * 60 - 30) / 110
    return {"A": a, "B": b}


def test_bins_decode_one_hot_logits_to_their_centres_and_targets_round_trip() -> None:
    from aircolor.data.colorspace import AB_SCALE
    from aircolor.models.binned_chroma import BinnedChroma, n_bins

    k = n_bins(8)
    assert k == 144
    binned = BinnedChroma(torch.nn.Identity(), 8)
    centres = binned.centers.T.reshape(1, 2, k, 1)           # every centre as one pixel
    target = binned.targets(centres)
    assert torch.equal(target.reshape(-1), torch.arange(k))   # each centre falls in its own bin
    logits = torch.full((1, k, k, 1), -30.0)
    logits[0, torch.arange(k), torch.arange(k), 0] = 30.0
    assert torch.allclose(binned.decode(logits), centres, atol=1e-6)
    far = torch.tensor([[[[90.0]], [[-90.0]]]]) / AB_SCALE     # beyond the grid: the edge bin
    assert int(binned.targets(far)) == (binned.per_axis - 1) * binned.per_axis
    flat = binned.decode(torch.zeros(1, k, 2, 2))               # unsure: the mean of the grid, no colour
    assert float(flat.abs().max()) < 1e-6


def test_a_binned_pix2pix_learns_a_fixed_batch_and_delivers_bounded_chroma() -> None:
    from aircolor.models.binned_chroma import BinnedChroma

    torch.manual_seed(0)
    model = build_named("pix2pix", [*LAB, "model.ab_bins=8", "model.lambda_GAN=0"])
    assert isinstance(model.G, BinnedChroma)
    data = lab_batch()
    data["B"] = torch.cat([0.25 * data["A"], -0.2 * data["A"]], 1)   # chroma that the input determines
    first = float(model.train_step(data)["G_CE"])
    for _ in range(60):
        last = float(model.train_step(data)["G_CE"])
        if last < 0.7 * first:
            break
    assert last < 0.7 * first, f"cross-entropy went from {first:.3f} to {last:.3f}"
    out = model.infer(data["A"], mode="eval")
    assert out.shape == (4, 2, 32, 32) and float(out.abs().max()) <= 48 / 110 + 1e-6


def test_the_squared_error_arm_weighs_the_mean_squared_error() -> None:
    torch.manual_seed(0)
    model = build_named("pix2pix", [*LAB, "model.recon_loss=l2", "model.lambda_GAN=0", "model.lambda_L1=7"])
    data = lab_batch()
    with torch.no_grad():
        expected = 7 * torch.nn.functional.mse_loss(model.G(data["A"]), data["B"])
    assert float(model.train_step(data)["G_L1"]) == pytest.approx(float(expected), rel=1e-4)


def test_tint_jitter_shifts_and_scales_each_image_as_a_whole() -> None:
    from aircolor.models.pix2pix import tinted

    torch.manual_seed(0)
    b = lab_batch(n=6)["B"]
    out = tinted(b, 5.0)
    assert out.shape == b.shape and float(out.abs().max()) <= 1.0
    for i in range(6):   # out = scale * b + offset, one scale and one offset per image
        x, y = b[i].reshape(2, -1), out[i].reshape(2, -1)
        scale = ((y - y.mean(1, keepdim=True)) * (x - x.mean(1, keepdim=True))).sum() / \
            ((x - x.mean(1, keepdim=True)) ** 2).sum()
        assert 1 - 0.25 - 1e-4 <= float(scale) <= 1 + 0.25 + 1e-4
        offset = (y - scale * x).mean(1) * 110
        assert float(offset.abs().max()) <= 5.0 + 1e-3
        assert torch.allclose(y, scale * x + offset[:, None] / 110, atol=1e-5)
    assert not torch.allclose(out[0] - b[0], out[1] - b[1])


@pytest.mark.parametrize("overrides, key", [
    (["model.ab_bins=8", "data.color_space=rgb"], "model.ab_bins"),
    (["model.ab_bins=1", "data.color_space=lab"], "model.ab_bins"),
    (["model.target_tint=4", "data.color_space=rgb"], "model.target_tint"),
    (["model.recon_loss=l3"], "model.recon_loss"),
])
def test_bad_cautious_settings_name_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_named("pix2pix", ["model.ngf=8", "model.ndf=8", "data.size=32", *overrides])


def test_adapt_tunes_the_binned_generator_itself_not_its_inner_network() -> None:
    from aircolor.adapt.tune import generator_net
    from aircolor.metrics.priors import N_BINS
    from aircolor.models.binned_chroma import BinnedChroma
    from aircolor.models.place_blend import blended

    model = build_named("pix2pix", [*LAB, "model.ab_bins=8"])
    assert generator_net(model) is model.G
    wrapped, cfg = blended(model.cfg, model.G, torch.zeros(N_BINS, 2), 0.5)
    assert isinstance(generator_net(wrapped), BinnedChroma) and cfg.model.place_blend and cfg.model.ab_bins == 8


def test_an_entropy_weighted_blend_leans_on_the_table_where_the_network_is_unsure() -> None:
    from aircolor.metrics.priors import N_BINS
    from aircolor.models.place_blend import PlaceBlend, blended

    torch.manual_seed(0)
    model = build_named("pix2pix", [*LAB, "model.ab_bins=8"])
    table = torch.full((N_BINS, 2), 20.0)
    weighted, _ = blended(model.cfg, model.G, table, 0.75, 2.0)
    x = lab_batch()["A"]
    with torch.no_grad():
        out, logits = model.G(x, with_logits=True)
        weight = 0.75 * model.G.confidence(logits) ** 2
        assert float(weight.min()) >= 0 and float(weight.max()) <= 0.75
        expected = weight * out + (1 - weight) * 20.0 / 110
        assert torch.allclose(weighted.G(x), expected, atol=1e-5)
    old_state = {k: v for k, v in weighted.G.state_dict().items() if k != "entropy_power"}  # written before it
    fresh = PlaceBlend(model.G)
    fresh.load_state_dict(old_state)
    assert float(fresh.entropy_power) == 0.0
    with pytest.raises(ValueError, match="ab_bins"):
        PlaceBlend(torch.nn.Identity()).set_blend(table, 0.5, 1.0)
