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
