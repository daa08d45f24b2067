"""The CUDA code paths: skipped without a GPU (CI has none); run them wherever one is visible::

    pytest tests/test_cuda.py -q

They check what the CPU suite cannot: every family's step with the CUDA fast paths (bf16, channels_last, fused
Adam) and no host sync inside it, the training split on the GPU giving the CPU's batches, compiled training with CUDA
graphs, and colorize with bf16 autocast against fp32 on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aircolor.config import load_config
from aircolor.data.datasets import AlignedDataset, UnalignedDataset
from aircolor.data.device import DeviceData
from aircolor.models import build_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")
SIZE = 32

FAMILIES = {
    "pix2pix": ["model.netG=unet_auto"],
    "pix2pix-lab": ["model.netG=unet_auto", "data.color_space=lab"],
    "cyclegan": ["model.family=cyclegan", "model.netG=resnet_6blocks"],
    "cut": ["model.family=cut", "model.netG=resnet_6blocks", "model.gan_mode=wgangp"],
    "fastcut": ["model.family=cut", "model.cut_mode=fastcut", "model.netG=resnet_6blocks"],
    "bicyclegan": ["model.family=bicyclegan", "model.netG=unet_auto", "train.batch_size=2"],
}


def tiny(*extra: str, size: int = SIZE):
    return load_config(None, [f"data.size={size}", "model.ngf=8", "model.ndf=8", "model.nef=8",
                              "model.num_patches=16", "model.netF_nc=16", *extra])


def batch_for(cfg, n: int = 2) -> dict[str, torch.Tensor]:
    out_nc = 2 if cfg.data.color_space == "lab" else 3
    g = torch.Generator().manual_seed(0)
    return {"A": (torch.rand(n, 1, cfg.data.size, cfg.data.size, generator=g) * 2 - 1).to(CUDA),
            "B": (torch.rand(n, out_nc, cfg.data.size, cfg.data.size, generator=g) * 2 - 1).to(CUDA)}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_steps_with_the_cuda_fast_paths_and_no_host_sync(name: str) -> None:
    size = 64 if name == "bicyclegan" else SIZE
    cfg = tiny(*FAMILIES[name], size=size)
    model = build_model(cfg).prepare(CUDA, amp=True, channels_last=True, fused_adam=True)
    batch = batch_for(cfg)
    model.train_step(batch, sync=False)  # first step: lazy inits (cuDNN, allocator) may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = [model.train_step(batch, sync=False) for _ in range(3)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for step in losses:
        for key, value in step.items():
            assert value.device.type == "cuda" and torch.isfinite(value).all(), key


@pytest.mark.parametrize("kind", ["aligned", "unaligned"])
@pytest.mark.parametrize("color_space", ["rgb", "lab"])
def test_device_data_on_the_gpu_gives_the_cpu_batches(prepared_sample: Path, kind: str, color_space: str) -> None:
    cls = AlignedDataset if kind == "aligned" else UnalignedDataset
    ds = cls(prepared_sample, "train", size=SIZE, color_space=color_space, cache=False)
    cpu, gpu = DeviceData(ds, torch.device("cpu")), DeviceData(ds, CUDA)
    assert gpu.a.device.type == "cuda"
    order = list(range(min(len(ds), 12)))
    for want, got in zip(cpu.epoch(order, 4, seed=5), gpu.epoch(order, 4, seed=5)):
        for key in ("A", "B"):
            assert got[key].device.type == "cuda"
            torch.testing.assert_close(got[key].cpu(), want[key], atol=1e-5, rtol=1e-5)  # lab: GPU float math


def test_compiled_training_with_cuda_graphs_matches_eager() -> None:
    cfg = tiny("model.netG=unet_auto")
    batch = batch_for(cfg)
    torch.manual_seed(0)
    eager = build_model(cfg).prepare(CUDA)
    torch.manual_seed(0)
    graphs = build_model(cfg).prepare(CUDA, compile_mode="reduce-overhead")
    torch.manual_seed(1)
    want = [eager.train_step(batch) for _ in range(4)]
    torch.manual_seed(1)
    got = [graphs.train_step(batch) for _ in range(4)]  # records the graphs, then replays them
    for w, g in zip(want, got):
        for key in w:
            assert g[key] == pytest.approx(w[key], rel=2e-3, abs=1e-4), key
    first = graphs.colorize(batch["A"][:1])
    second = graphs.colorize(batch["A"][1:])
    assert not torch.equal(first, second)  # the first output was not overwritten by the second replay


def test_colorize_with_bf16_on_the_gpu_is_close_to_fp32_on_the_cpu() -> None:
    from aircolor.colorize.engine import ColorizeOptions, Colorizer

    cfg = tiny("model.netG=unet_auto", "data.color_space=lab")
    torch.manual_seed(0)
    cpu_model = build_model(cfg).prepare(torch.device("cpu")).eval()
    gpu_model = build_model(cfg).prepare(CUDA).eval()
    gpu_model.load_state_dict(cpu_model.state_dict())
    gray = np.random.default_rng(0).random((100, 140), dtype=np.float32)
    want = Colorizer(cpu_model, cfg, torch.device("cpu"), ColorizeOptions(amp=False))(gray)
    colorizer = Colorizer(gpu_model, cfg, CUDA, ColorizeOptions(amp=True))
    assert colorizer.use_amp
    got = colorizer(gray)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 2.0  # bf16 chroma, same L*


def test_colorize_stages_on_the_gpu_give_the_bytes_of_one_call() -> None:
    """What a --ray GPU worker does (the photo's blocks out of order, bands from the partial sums) gives the bytes
    of one Colorizer call on the same GPU: the block plan and the order of the sums fix them there too."""
    from aircolor.colorize.engine import ColorizeOptions, Colorizer
    from aircolor.colorize.tiling import assemble

    cfg = tiny("model.netG=unet_auto", "data.color_space=lab", "model.dropout=true", size=64)
    torch.manual_seed(0)
    model = build_model(cfg).prepare(CUDA).eval()
    colorizer = Colorizer(model, cfg, CUDA, ColorizeOptions(block=2))
    gray = np.random.default_rng(0).random((700, 300), dtype=np.float32)
    want = colorizer(gray)
    image = colorizer.model_input(gray)
    plan = colorizer.plan(300, 700)
    partials = {b.index: colorizer.run_block(image, plan, b) for b in reversed(plan.blocks)}
    rows = []
    for y0, y1 in colorizer.bands(700):
        r0, r1 = colorizer.model_rows(y0, y1, 300, 700)
        rows.append(colorizer.finish(gray[y0:y1], assemble(plan, r0, r1, partials), y0=y0, r0=r0, width=300,
                                     height=700, bits=8))
    assert np.array_equal(np.concatenate(rows), want)
