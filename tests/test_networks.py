"""Generators and discriminators: reference parameter counts, shapes, ranges, skips, registries."""

from __future__ import annotations

import pytest
import torch

from aircolor.models import DISCRIMINATORS, GENERATORS
from aircolor.models.layers import count_parameters, init_weights

SMALL = {"unet_32": 32, "unet_64": 64, "unet_auto": 64, "resnet_6blocks": 32, "resnet_9blocks": 32,
         "unet_128": 128, "unet_256": 256}


@pytest.mark.parametrize(
    "kind, name, kwargs, expected",
    [
        ("G", "unet_256", dict(input_nc=3, output_nc=3, norm="batch", dropout=True), 54_413_955),  # pix2pix G
        ("D", "basic", dict(input_nc=6, norm="batch"), 2_768_705),                                 # pix2pix D
        ("G", "resnet_9blocks", dict(input_nc=3, output_nc=3, norm="instance"), 11_378_179),       # CycleGAN G
        ("D", "basic", dict(input_nc=3, norm="instance"), 2_764_737),                              # CycleGAN D
    ],
)
def test_reference_parameter_counts(kind, name, kwargs, expected):
    registry = GENERATORS if kind == "G" else DISCRIMINATORS
    net = registry.build(name, ngf=64, ndf=64, **kwargs)
    assert count_parameters(net) == expected


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("io", [(1, 3), (1, 2), (3, 3)])
def test_every_generator_maps_shapes_into_tanh_range(name, io):
    size = SMALL[name]
    if size > 64 and io != (1, 3):
        pytest.skip("large U-Nets are checked once")
    torch.manual_seed(0)
    net = init_weights(GENERATORS.build(name, input_nc=io[0], output_nc=io[1], ngf=8, norm="instance", size=size))
    out = net(torch.randn(2, io[0], size, size))
    assert out.shape == (2, io[1], size, size)
    assert out.abs().max() <= 1 and torch.isfinite(out).all()


@pytest.mark.parametrize("name, size, shape", [("basic", 64, (1, 6, 6)), ("n_layers", 64, (1, 6, 6)),
                                               ("pixel", 32, (1, 32, 32))])
def test_discriminator_output_maps(name, size, shape):
    net = DISCRIMINATORS.build(name, input_nc=4, ndf=8, norm="batch")
    assert net(torch.randn(2, 4, size, size)).shape == (2, *shape)


def test_basic_patchgan_is_30x30_at_256():
    net = DISCRIMINATORS.build("basic", input_nc=3, ndf=8, norm="instance")
    assert net(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_multiscale_discriminator_returns_one_map_per_scale():
    net = DISCRIMINATORS.build("multiscale", input_nc=3, ndf=8, norm="instance")
    outs = net(torch.randn(1, 3, 256, 256))
    assert [tuple(o.shape) for o in outs] == [(1, 1, 30, 30), (1, 1, 14, 14)]


def test_unet_skips_carry_information_around_the_bottleneck():
    torch.manual_seed(0)
    net = GENERATORS.build("unet_64", input_nc=1, output_nc=3, ngf=8, norm="instance")
    innermost = net.model
    while not innermost.model[3].__class__.__name__ == "Tanh" and hasattr(innermost, "model"):
        subs = [m for m in innermost.model if m.__class__.__name__ == "UnetSkipBlock"]
        if not subs:
            break
        innermost = subs[0]
    # Cut the gradient at the bottleneck: whatever reaches the input must have used the skips.
    innermost.register_forward_hook(lambda module, args, out: out.detach())
    x = torch.randn(1, 1, 64, 64, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unet_rejects_sizes_it_cannot_halve():
    net = GENERATORS.build("unet_64", input_nc=1, output_nc=3, ngf=8)
    with pytest.raises(ValueError, match="divisible by 64"):
        net(torch.randn(1, 1, 48, 48))
    with pytest.raises(ValueError, match="power-of-two"):
        GENERATORS.build("unet_auto", input_nc=1, output_nc=3, ngf=8, size=48)


def test_resnet_generator_returns_requested_features():
    net = GENERATORS.build("resnet_9blocks", input_nc=1, output_nc=3, ngf=8, norm="instance")
    feats = net(torch.randn(1, 1, 32, 32), layers=[0, 4, 8, 12, 16], encode_only=True)
    assert [f.shape[1] for f in feats] == [1, 16, 32, 32, 32]


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(KeyError, match="resnet_9blocks"):
        GENERATORS.get("unet_512")
    with pytest.raises(KeyError, match="multiscale"):
        DISCRIMINATORS.get("stylegan")


def test_init_is_seeded_and_follows_the_reference_scale():
    def build():
        torch.manual_seed(3)
        return init_weights(GENERATORS.build("unet_32", input_nc=1, output_nc=3, ngf=8, norm="batch"), "normal", 0.02)

    a, b = build(), build()
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    conv = a.model.model[0]
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.3)


def test_cut_antialiased_generator_matches_the_reference_layout():
    plain = GENERATORS.build("resnet_9blocks", input_nc=3, output_nc=3, norm="instance")
    net = GENERATORS.build("resnet_9blocks", input_nc=3, output_nc=3, norm="instance", antialias=True)
    assert len(net.model) == 32 and count_parameters(net) == count_parameters(plain) == 11_378_179
    feats = net(torch.zeros(1, 3, 256, 256), layers=[0, 4, 8, 12, 16], encode_only=True)
    assert [tuple(f.shape[1:]) for f in feats] == [(3, 262, 262), (128, 256, 256), (256, 128, 128),
                                                   (256, 64, 64), (256, 64, 64)]
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    d = DISCRIMINATORS.build("basic", input_nc=3, norm="instance", antialias=True)
    assert count_parameters(d) == 2_764_737 and d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_antialias_filters_blur_and_upsample_without_gain():
    from aircolor.models.antialias import Downsample, Upsample

    flat = torch.ones(1, 2, 8, 8)
    assert torch.allclose(Downsample(2)(flat), torch.ones(1, 2, 4, 4))
    assert torch.allclose(Upsample(2)(flat), torch.ones(1, 2, 16, 16))
    assert not list(Downsample(2).parameters()) and not list(Upsample(2).parameters())
