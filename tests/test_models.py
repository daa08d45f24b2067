"""Contract tests over the model zoo: every model x every ablation factor value trains, resumes and colorizes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aircolor.cli import main
from aircolor.models import build_named
from aircolor.models.generators.unet_z import ZUnetGenerator

SAMPLE = Path(__file__).resolve().parents[1] / "aircolor" / "sample_data" / "color" / "massachusetts_1m"
TINY = ["model.ngf=8", "model.ndf=8", "model.nef=8", "model.num_patches=16", "model.netF_nc=16"]

# (model name, overrides, image size): each factor value of the study at least once.
CASES = [
    ("pix2pix", ["model.netG=unet_auto"], 32),                                    # factor 2: U-Net
    ("pix2pix", ["model.netG=resnet_6blocks"], 32),                               # factor 2: ResNet
    ("pix2pix", ["model.netG=unet_auto", "data.color_space=lab"], 32),            # factor 3: L -> ab
    ("pix2pix", ["model.netG=unet_auto", "model.ngf=16", "model.ndf=4", "train.lr_D=1e-4"], 32),  # factor 1
    ("cyclegan", ["model.netG=resnet_6blocks"], 32),
    ("cyclegan", ["model.netG=resnet_6blocks", "model.input_nc=1"], 32),
    ("cut", ["model.netG=resnet_6blocks", "model.gan_mode=vanilla"], 32),         # factor 4
    ("cut", ["model.netG=resnet_6blocks", "model.gan_mode=lsgan"], 32),
    ("cut", ["model.netG=resnet_6blocks", "model.gan_mode=wgangp"], 32),
    ("fastcut", ["model.netG=resnet_6blocks"], 32),                               # factor 5
    ("bicyclegan", ["model.netG=unet_auto", "model.z_injection=input"], 64),      # factor 6
    ("bicyclegan", ["model.netG=unet_auto", "model.z_injection=all"], 64),
    ("bicyclegan", ["model.netG=unet_auto", "model.z_injection=middle", "model.netE=n_layers"], 64),
    ("pix2pix", ["model.netG=unet_auto", "model.netD=pixel", "model.norm=none"], 32),
]


def make(name: str, overrides: list[str], size: int, seed: int = 0):
    return build_named(name, [*TINY, f"data.size={size}", f"train.seed={seed}", *overrides])


def batch(model, size: int, n: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(n, 1, size, size, generator=g) * 2 - 1,
            "B": torch.rand(n, model.output_nc, size, size, generator=g) * 2 - 1}


@pytest.mark.parametrize("name, overrides, size", CASES, ids=[f"{c[0]}-{'-'.join(c[1])}" for c in CASES])
def test_model_contract(name, overrides, size):
    torch.manual_seed(0)
    model = make(name, overrides, size)
    for _ in range(model.n_critic):  # WGAN-GP: G steps after n_critic critic steps
        losses = model.train_step(batch(model, size))
        assert losses and all(np.isfinite(v) for v in losses.values()), losses
    for net_name, net in model.named_children():
        grads = [p.grad for p in net.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), f"{net_name} got no gradient"
        assert sum(float(g.abs().sum()) for g in grads) > 0, f"{net_name} has all-zero gradients"
    out = model.colorize(torch.rand(2, 1, size, size) * 2 - 1)
    assert out.shape == (2, 3, size, size) and out.min() >= -1 and out.max() <= 1

    # The full training state survives a weights_only round trip, and training continues identically.
    buf = io.BytesIO()
    torch.save(model.training_state(), buf)
    clone = make(name, overrides, size, seed=123)
    clone.load_training_state(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    for (k, a), b in zip(model.state_dict().items(), clone.state_dict().values()):
        assert torch.equal(a, b), k
    torch.manual_seed(7)
    next_a = model.train_step(batch(model, size, seed=1))
    torch.manual_seed(7)
    next_b = clone.train_step(batch(clone, size, seed=1))
    assert next_a == pytest.approx(next_b, rel=1e-5, abs=1e-6)


def test_seeded_runs_are_deterministic():
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = make("cut", ["model.netG=resnet_6blocks"], 32)
        results.append([model.train_step(batch(model, 32, seed=i)) for i in range(2)])
    assert results[0] == results[1]


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")
def test_separate_learning_rates_and_linear_decay():
    model = make("pix2pix", ["model.netG=unet_auto", "train.lr_G=1e-3", "train.lr_D=1e-4", "train.n_epochs=2",
                             "train.n_epochs_decay=2"], 32)
    seen = []
    for _ in range(5):
        seen.append(model.learning_rates())
        model.end_epoch()
    assert [s["lr_G"] for s in seen] == pytest.approx([1e-3, 1e-3, 1e-3 * 2 / 3, 1e-3 / 3, 0.0])
    assert seen[0]["lr_D"] == 1e-4


def test_z_injection_modes_differ_in_where_z_goes():
    def z_blocks(mode: str) -> tuple[list[str], int]:
        g = ZUnetGenerator(input_nc=3, output_nc=3, nz=8, num_downs=6, ngf=8, z_injection=mode)
        blocks = [n for n, m in g.named_modules() if getattr(m, "nz", 0) and n.endswith(("model", "submodule"))]
        return blocks, sum(p.numel() for p in g.parameters())

    (inp, n_inp), (all_, n_all), (mid, n_mid) = (z_blocks(m) for m in ("input", "all", "middle"))
    assert inp == ["model"]                       # the outermost block only
    assert len(all_) == 6                         # every down block
    assert len(mid) == 1 and mid[0].count("submodule") == 5  # the innermost block only
    assert n_inp < n_mid < n_all
    # the reference's extra parameters of add_all over add_input: nz * 16 * sum of inner widths
    ngf, nz = 8, 8
    inner = [ngf * 2, ngf * 4, ngf * 8, ngf * 8, ngf * 8]
    assert n_all - n_inp == nz * 16 * sum(inner)


def test_bicyclegan_z_changes_the_output_in_every_mode():
    for mode in ("input", "all", "middle"):
        torch.manual_seed(0)
        model = make("bicyclegan", ["model.netG=unet_auto", f"model.z_injection={mode}"], 64)
        model.eval()
        a = torch.rand(1, 1, 64, 64) * 2 - 1
        with torch.no_grad():
            diff = (model.generate(a, torch.zeros(1, 8)) - model.generate(a, torch.ones(1, 8) * 3)).abs().max()
        assert diff > 1e-4, mode


def _real_batch(n: int, size: int) -> dict[str, torch.Tensor]:
    files = sorted(SAMPLE.glob("*.jpg"))[:n]
    assert files, f"no sample tiles under {SAMPLE}"
    color = [Image.open(f).convert("RGB").resize((size, size), Image.Resampling.LANCZOS) for f in files]
    b = torch.stack([torch.from_numpy(np.array(c)).permute(2, 0, 1) for c in color]).float() / 127.5 - 1
    a = torch.stack([torch.from_numpy(np.array(c.convert("L")))[None] for c in color]).float() / 127.5 - 1
    return {"A": a, "B": b}


def test_pix2pix_overfits_a_fixed_batch_of_real_tiles():
    torch.manual_seed(0)
    model = make("pix2pix", ["model.netG=unet_auto", "train.batch_size=4"], 32)
    data = _real_batch(4, 32)
    first = model.train_step(data)["G_L1"]
    for step in range(200):
        last = model.train_step(data)["G_L1"]
        if last <= first / 2:
            break
    assert last <= first / 2, f"L1 went from {first:.2f} to {last:.2f} in 200 steps"


def test_models_summary_matches_reference_counts(capsys):
    assert main(["models", "summary", "pix2pix", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"G": 54_413_955, "D": 2_768_705}
    assert main(["models", "summary", "cyclegan", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["G_A"] == counts["G_B"] == 11_378_179 and counts["D_A"] == counts["D_B"] == 2_764_737


def test_models_summary_table_and_errors(capsys):
    assert main(["models", "summary", "fastcut", "model.ngf=8", "model.ndf=8"]) == 0
    out = capsys.readouterr().out
    assert "F" in out and "total" in out
    assert main(["models", "summary", "stylegan"]) == 2
    assert "stylegan" in capsys.readouterr().err
    assert main(["models", "summary", "cut", "model.netG=unet_256"]) == 2
    assert "ResNet" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- D loss, WGAN-GP
FAMILY_CASES = [("pix2pix", ["model.netG=unet_auto"], 32), ("cyclegan", ["model.netG=resnet_6blocks"], 32),
                ("cut", ["model.netG=resnet_6blocks"], 32), ("fastcut", ["model.netG=resnet_6blocks"], 32),
                ("bicyclegan", ["model.netG=unet_auto"], 64)]
FAMILY_IDS = [c[0] for c in FAMILY_CASES]
D_GROUPS = {"pix2pix": [""], "cyclegan": ["_A", "_B"], "cut": [""], "fastcut": [""], "bicyclegan": ["", "2"]}
G_NETS, D_NETS = {"G", "G_A", "G_B", "F", "E"}, {"D", "D_A", "D_B", "D2"}


def snapshot(model) -> dict[str, list[torch.Tensor]]:
    return {name: [p.detach().clone() for p in net.parameters()] for name, net in model.named_children()}


def changed(before: dict[str, list[torch.Tensor]], model) -> set[str]:
    return {name for name, net in model.named_children()
            if any(not torch.equal(a, p) for a, p in zip(before[name], net.parameters()))}


def test_d_loss_penalty_weight_is_lambda_gp_and_wasserstein_term_is_not_halved():
    """Through the model's own d_loss, a 1x1 conv critic with w = 8 on 1-channel 4x4 images (per-image mean score
    of gradient norm 2, GP = 1 by hand): D = D_real + D_fake + lambda_GP * 1 exactly for wgangp; the other losses
    keep the reference's 0.5 (D_real + D_fake)."""
    def conv1x1(weight: float) -> torch.nn.Conv2d:  # f(x) = weight * x, one logit per pixel
        conv = torch.nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            conv.weight.fill_(weight)
            conv.bias.zero_()
        return conv

    torch.manual_seed(0)
    real, fake = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    wgan = make("pix2pix", ["model.netG=unet_auto", "model.gan_mode=wgangp", "model.lambda_GP=7"], 32)
    out = wgan.d_loss(conv1x1(8.0), real, fake)
    assert out["gp"].item() == pytest.approx(1.0, rel=1e-5)
    assert torch.equal(out["D"], out["D_real"] + out["D_fake"] + 7.0 * out["gp"])
    unhalved = wgan.d_loss(conv1x1(8.0), real, fake, halve=False)  # a linear critic's GP does not depend on alpha
    assert unhalved["D"].item() == pytest.approx(out["D"].item(), rel=1e-6)  # halve means nothing for WGAN-GP
    for mode in ("vanilla", "lsgan"):
        other = make("pix2pix", ["model.netG=unet_auto", f"model.gan_mode={mode}"], 32)
        got = other.d_loss(conv1x1(8.0), real, fake)
        assert "gp" not in got and torch.equal(got["D"], 0.5 * (got["D_real"] + got["D_fake"]))


@pytest.mark.parametrize("gan_mode", ["wgangp", "lsgan"])
@pytest.mark.parametrize("name, overrides, size", FAMILY_CASES, ids=FAMILY_IDS)
def test_every_family_d_loss_total(name, overrides, size, gan_mode):
    """What each family backpropagates into each D: wgangp D_real + D_fake + lambda_GP gp (multi-scale D and D2
    included), otherwise 0.5 (D_real + D_fake), and 1.0 (...) for BicycleGAN as in its reference."""
    torch.manual_seed(0)
    model = make(name, [*overrides, f"model.gan_mode={gan_mode}", "train.n_critic=1"], size)
    losses = model.train_step(batch(model, size))
    for s in D_GROUPS[name]:
        real, fake, total = losses[f"D_real{s}"], losses[f"D_fake{s}"], losses[f"D{s}"]
        if gan_mode == "wgangp":
            assert total == pytest.approx(real + fake + 10.0 * losses[f"gp{s}"], rel=1e-5, abs=1e-6)
        else:
            half = 1.0 if name == "bicyclegan" else 0.5
            assert f"gp{s}" not in losses and total == pytest.approx(half * (real + fake), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("name, overrides, size", FAMILY_CASES, ids=FAMILY_IDS)
def test_n_critic_steps_g_on_every_third_batch_only(name, overrides, size):
    torch.manual_seed(0)
    model = make(name, [*overrides, "model.gan_mode=wgangp", "train.n_critic=3"], size)
    d_nets, g_nets = D_NETS & set(dict(model.named_children())), G_NETS & set(dict(model.named_children()))
    for step in range(1, 7):
        before = snapshot(model)
        losses = model.train_step(batch(model, size, seed=step))
        moved = changed(before, model)
        assert d_nets <= moved, (step, moved)
        assert (g_nets & moved) == (g_nets if step % 3 == 0 else set()), (step, moved)
        assert any(k in losses for k in model.adversarial_keys) == (step % 3 == 0), (step, sorted(losses))


def test_wgangp_defaults_to_five_critic_steps():
    assert make("cut", ["model.netG=resnet_6blocks", "model.gan_mode=wgangp"], 32).n_critic == 5
    assert make("cut", ["model.netG=resnet_6blocks"], 32).n_critic == 1


def test_resume_keeps_the_n_critic_phase():
    """A state saved after 4 batches (n_critic 3) resumes with the critic-only 5th batch and G's 6th; a state
    without the counter (older checkpoints) loads at phase 0."""
    over = ["model.netG=unet_auto", "model.gan_mode=wgangp", "train.n_critic=3"]
    torch.manual_seed(0)
    model = make("pix2pix", over, 32)
    for step in range(4):
        model.train_step(batch(model, 32, seed=step))
    buf = io.BytesIO()
    torch.save(model.training_state(), buf)
    clone = make("pix2pix", over, 32, seed=5)
    clone.load_training_state(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert clone.batches_seen == 4
    for step in (4, 5):
        torch.manual_seed(step)
        a = model.train_step(batch(model, 32, seed=step))
        torch.manual_seed(step)
        b = clone.train_step(batch(clone, 32, seed=step))
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6) and ("G_GAN" in b) == (step == 5)
    old = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    del old["counters"]
    clone.load_training_state(old)
    assert clone.batches_seen == 0


# --------------------------------------------------------------------------------------------- lambda_GAN
@pytest.mark.parametrize("name, overrides, size", FAMILY_CASES, ids=FAMILY_IDS)
def test_lambda_gan_zero_never_touches_the_discriminators(name, overrides, size):
    torch.manual_seed(0)
    model = make(name, [*overrides, "model.lambda_GAN=0"], size)
    assert model.adversarial_keys == [] and model.discriminator_keys == [] and model.n_critic == 1
    before = snapshot(model)
    for step in range(3):
        losses = model.train_step(batch(model, size, seed=step))
        assert not any(k.startswith(("D", "G_GAN", "gp")) or k in ("G_A", "G_B") for k in losses), sorted(losses)
    moved = changed(before, model)
    assert not moved & D_NETS and moved & G_NETS, moved
    assert all(p.grad is None for n, net in model.named_children() if n in D_NETS for p in net.parameters())


def test_lambda_gan_zero_still_learns_the_regression():
    torch.manual_seed(0)
    model = make("pix2pix", ["model.netG=unet_auto", "model.lambda_GAN=0", "train.batch_size=4", "train.lr_G=1e-3"],
                 32)
    data = _real_batch(4, 32)
    l1 = [model.train_step(data)["G_L1"] for _ in range(15)]
    assert l1[-1] < 0.8 * l1[0], l1


ADVERSARIAL_ONLY = {  # overrides that leave G's adversarial term(s) as its only loss
    "pix2pix": ["model.lambda_L1=0"],
    "cyclegan": ["model.lambda_A=0", "model.lambda_B=0", "model.lambda_identity=0"],
    "cut": ["model.lambda_NCE=0"], "fastcut": ["model.lambda_NCE=0"],
    "bicyclegan": ["model.lambda_L1=0", "model.lambda_kl=0", "model.lambda_z=0"],
}


@pytest.mark.parametrize("name, overrides, size", FAMILY_CASES, ids=FAMILY_IDS)
def test_lambda_gan_scales_the_adversarial_gradient(name, overrides, size):
    grads, terms = {}, {}
    for weight in (1.0, 0.25):
        torch.manual_seed(0)
        model = make(name, [*overrides, *ADVERSARIAL_ONLY[name], f"model.lambda_GAN={weight}"], size)
        losses = model.train_step(batch(model, size))
        terms[weight] = [losses[k] for k in model.adversarial_keys]
        grads[weight] = torch.cat([p.grad.flatten() for n, net in model.named_children() if n in G_NETS - {"F", "E"}
                                   for p in net.parameters() if p.grad is not None])
    assert terms[0.25] == pytest.approx([0.25 * t for t in terms[1.0]], rel=1e-4)
    assert grads[1.0].abs().sum() > 0
    torch.testing.assert_close(grads[0.25], 0.25 * grads[1.0], rtol=1e-3, atol=1e-7)
