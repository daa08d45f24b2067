"""The opt-in fast paths of training: the training split kept on the device (``data.on_device``) and
``train.compile``. Both must do the computation of the plain path; these tests say how exactly."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from aircolor.config import load_config
from aircolor.data.datasets import AlignedDataset, SingleDataset, UnalignedDataset
from aircolor.data.device import DeviceData, fixed_resize, free_memory, nbytes, wanted
from aircolor.errors import UsageError
from aircolor.models import build_model
from aircolor.training import run
from aircolor.training.checkpoint import load_checkpoint
from aircolor.training.loop import Trainer, check_compile

SIZE = 32
CPU = torch.device("cpu")


def dataset(kind: str, root: Path, **kwargs: Any) -> AlignedDataset | UnalignedDataset:
    cls = AlignedDataset if kind == "aligned" else UnalignedDataset
    return cls(root, "train", size=SIZE, **kwargs)


# ------------------------------------------------------------------------------------------ data on the device
@pytest.mark.parametrize("kind", ["aligned", "unaligned"])
@pytest.mark.parametrize("color_space", ["rgb", "lab"])
def test_device_batches_equal_the_datasets_items(prepared_sample: Path, kind: str, color_space: str) -> None:
    """With the random part fixed (resize only, no flip), a device batch is the stack of the dataset's items,
    bit for bit: same decode, resize, A|B split, gray/color pairing (unaligned: the epoch's B order) and colour
    conversion."""
    ds = dataset(kind, prepared_sample, color_space=color_space, preprocess="resize", flip=False, cache=False)
    if kind == "unaligned":
        ds.set_epoch(3)
    data = DeviceData(ds, CPU)
    order = [5, 0, 7, 2, 9, 4, 1]
    batches = list(data.epoch(order, 3, seed=0))
    assert len(batches) == 2  # the incomplete last batch is dropped, as the DataLoader's drop_last
    for n, batch in enumerate(batches):
        items = [ds[i] for i in order[3 * n:3 * n + 3]]
        for key in ("A", "B"):
            want = torch.stack([item[key] for item in items])
            assert batch[key].shape == want.shape and batch[key].dtype == want.dtype
            assert torch.equal(batch[key], want), (key, (batch[key] - want).abs().max())


def windows_of(image: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Every ``size`` crop of ``image`` (C, H, W), as is and mirrored."""
    h, w = image.shape[-2:]
    crops = [image[:, t:t + size, s:s + size] for t in range(h - size + 1) for s in range(w - size + 1)]
    return crops + [c.flip(-1) for c in crops]


def test_device_crops_and_flips_are_windows_of_the_resized_images(prepared_sample: Path) -> None:
    """The papers' augmentation on the device: each sample is a ``size`` crop of its image resized to ``load_size``
    (the CPU path's resize), mirrored or not, with the same window for A and B; over a few epochs many positions and
    both flips occur; an epoch's draws are a function of its seed."""
    ds = dataset("aligned", prepared_sample, color_space="rgb", cache=False)
    data = DeviceData(ds, CPU)
    assert data.a.shape[-2:] == (ds.transform.load_size,) * 2 and ds.transform.load_size > SIZE
    seen_offsets, seen_flips = set(), set()
    for epoch in range(4):
        order = list(range(epoch, epoch + 6))
        for start, batch in zip(range(0, 6, 3), data.epoch(order, 3, seed=epoch)):
            for k in range(3):
                i = order[start + k]
                gray = ((batch["A"][k] + 1) * 127.5).round().to(torch.uint8)
                color = ((batch["B"][k] + 1) * 127.5).round().to(torch.uint8)
                a_windows, b_windows = windows_of(data.a[i], SIZE), windows_of(data.b[i], SIZE)
                a_hits = [j for j, w in enumerate(a_windows) if torch.equal(w, gray)]
                b_hits = [j for j, w in enumerate(b_windows) if torch.equal(w, color)]
                assert b_hits, f"sample {i} is not a crop of its resized color image"
                assert set(a_hits) & set(b_hits), f"sample {i}: A and B were cut from different windows"
                per_flip = len(b_windows) // 2
                seen_offsets.add(b_hits[0] % per_flip)
                seen_flips.add(b_hits[0] >= per_flip)
    assert seen_flips == {False, True}
    assert len(seen_offsets) >= 8
    again = [b["B"] for b in data.epoch(range(6), 3, seed=11)]
    assert all(torch.equal(x, y) for x, y in zip(again, [b["B"] for b in data.epoch(range(6), 3, seed=11)]))
    other = [b["B"] for b in data.epoch(range(6), 3, seed=12)]
    assert not all(torch.equal(x, y) for x, y in zip(again, other))


def test_fixed_resize_is_the_deterministic_part_of_the_transform(prepared_sample: Path) -> None:
    ds = dataset("aligned", prepared_sample, preprocess="resize_and_crop", cache=False)
    img = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)
    assert fixed_resize(img, ds.transform).shape[-2:] == (ds.transform.load_size,) * 2
    ds_crop = dataset("aligned", prepared_sample, preprocess="crop", cache=False)
    assert fixed_resize(img, ds_crop.transform) is img  # crop: nothing to resize (big enough)
    small = torch.zeros(3, 20, 20, dtype=torch.uint8)
    assert fixed_resize(small, ds_crop.transform).shape[-2:] == (SIZE, SIZE)  # too small: resized up, as on CPU


def test_when_data_goes_on_the_device(prepared_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert 0 < free_memory(CPU)
    aligned = dataset("aligned", prepared_sample, cache=False)
    assert wanted("on", aligned, CPU) and not wanted("off", aligned, CPU)
    assert not wanted("auto", aligned, CPU)  # auto follows data.cache: no cache, no copy on the device
    cached = dataset("aligned", prepared_sample, cache=True)
    assert wanted("auto", cached, CPU)  # a few MB: fits
    import aircolor.data.device as device_module

    monkeypatch.setattr(device_module, "free_memory", lambda device: 4 * nbytes(cached) - 1)
    assert not wanted("auto", cached, CPU)  # more than a quarter of what is free
    monkeypatch.setattr(device_module, "free_memory", lambda device: 4 * nbytes(cached))
    assert wanted("auto", cached, CPU)
    load = aligned.transform.load_size
    assert nbytes(aligned) == len(aligned.paths) * 4 * load * load
    assert DeviceData(aligned, CPU).nbytes == nbytes(aligned)
    single = SingleDataset(prepared_sample / "historical")
    assert not wanted("auto", single, CPU)
    with pytest.raises(UsageError, match="data.on_device=off"):
        wanted("on", single, CPU)
    # preprocess none keeps each image's size: images of two sizes cannot be stacked
    mixed = tmp_path / "mixed"
    (mixed / "aligned" / "train").mkdir(parents=True)
    for name, w in (("a.png", 64), ("b.png", 80)):
        from PIL import Image

        Image.new("RGB", (w, 32)).save(mixed / "aligned" / "train" / name)
    with pytest.raises(UsageError, match="one size"):
        DeviceData(AlignedDataset(mixed, "train", size=SIZE, preprocess="none"), CPU)
    # the trainer: auto falls back to the DataLoader, on says why it cannot
    overrides = ["data.preprocess=none", "train.batch_size=1", "data.layout=aligned"]
    trainer = Trainer(config(mixed, tmp_path / "t", *overrides), _ctx(), tmp_path / "t", None, None)
    assert trainer.device_data is None
    with pytest.raises(UsageError, match="data.on_device=off"):
        Trainer(config(mixed, tmp_path / "t", *overrides, "data.on_device=on"), _ctx(), tmp_path / "t", None, None)


TRAIN = ["model.netG=unet_auto", "tracking.enabled=false", "data.max_images=8", "data.num_workers=0",
         "model.ngf=8", "model.ndf=8", "train.n_epochs=1", "train.n_epochs_decay=1", "train.device=cpu",
         "metrics.fid=false", "metrics.isc=false", "metrics.kid=false", "metrics.max_images=4",
         "tracking.sample_images=0", "train.checkpoint_every=1", "train.batch_size=2"]


def config(root: Path, out: Path, *extra: str) -> Any:
    return load_config(None, [f"data.root={root}", f"data.size={SIZE}", f"train.output_dir={out}", *TRAIN, *extra])


def test_training_from_device_data_is_reproducible(prepared_sample: Path, tmp_path: Path) -> None:
    """Two runs from the device data with one seed end with the same weights, and the trainer really takes the
    device path (``on``) or the DataLoader (``off``)."""
    ends = []
    for name in ("a", "b"):
        cfg = config(prepared_sample, tmp_path / name, "data.on_device=on")
        result = run(cfg)
        assert result.ok
        ends.append(load_checkpoint(Path(result.checkpoint))["model"]["nets"])
    assert all(torch.equal(ends[0][k], ends[1][k]) for k in ends[0])
    trainer = Trainer(config(prepared_sample, tmp_path / "c", "data.on_device=on"), _ctx(), tmp_path / "c", None, None)
    assert trainer.device_data is not None and not isinstance(trainer.batches(), torch.utils.data.DataLoader)
    trainer_off = Trainer(config(prepared_sample, tmp_path / "d", "data.on_device=off"), _ctx(), tmp_path / "d", None,
                          None)
    assert trainer_off.device_data is None and isinstance(trainer_off.batches(), torch.utils.data.DataLoader)


def _ctx() -> Any:
    from aircolor.training.context import RunContext

    return RunContext(device=CPU)


# ------------------------------------------------------------------------------------------------ torch.compile
def test_compile_without_a_cpu_compiler_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UsageError, match="C\\+\\+ compiler.*train.compile=off"):
        check_compile("default", CPU)
    check_compile("off", CPU)  # nothing to check


def test_compile_mode_reaches_every_network_but_the_patch_sampler() -> None:
    cfg = load_config(None, ["model.family=cut", "model.netG=resnet_6blocks", "model.ngf=8", "model.ndf=8",
                             "data.size=32", "model.num_patches=16", "model.netF_nc=16"])
    model = build_model(cfg).prepare(CPU, compile_mode="default")
    compiled = {name for name, net in model.named_children() if getattr(net, "_compiled_call_impl", None)}
    assert compiled == {"G", "D"}
    plain = build_model(cfg).prepare(CPU)
    assert not any(getattr(net, "_compiled_call_impl", None) for net in plain.children())
    assert model.state_dict().keys() == plain.state_dict().keys()  # checkpoints and exports are unchanged


@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")), reason="no C++ compiler for inductor")
def test_compiled_training_matches_eager_and_exports_plain_weights(prepared_sample: Path, tmp_path: Path) -> None:
    """``train.compile=default`` on CPU (inductor, fp32 to compare): the first step's losses are those of the
    eager model from the same weights and batch, a run finishes, and its exported generator loads without compile."""
    cfg = config(prepared_sample, tmp_path / "x", "train.amp=off", "train.fused_adam=off")
    batch = {"A": torch.rand(2, 1, SIZE, SIZE) * 2 - 1, "B": torch.rand(2, 3, SIZE, SIZE) * 2 - 1}
    torch.manual_seed(0)
    eager = build_model(cfg).prepare(CPU)
    torch.manual_seed(0)
    compiled = build_model(cfg).prepare(CPU, compile_mode="default")
    torch.manual_seed(1)
    want = eager.train_step(batch)
    torch.manual_seed(1)
    got = compiled.train_step(batch)
    assert want.keys() == got.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-5), key

    # the run's networks, batch and precision are the step's: inductor's cache serves the compiled graphs (a cold
    # compile of another set of graphs would double the test's time)
    result = run(config(prepared_sample, tmp_path / "run", "train.compile=default", "train.amp=off",
                        "train.fused_adam=off"))
    assert result.ok and result.generator
    from aircolor.models.exported import load_generator

    generator, _ = load_generator(result.generator)
    assert generator.compile_mode == "off"
    out = generator.colorize(torch.zeros(1, 1, SIZE, SIZE))
    assert out.shape == (1, 3, SIZE, SIZE) and torch.isfinite(out).all()


def test_cuda_graph_mode_marks_each_step_and_copies_inference_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``reduce-overhead`` (CUDA graphs) every training step and inference call starts a new graph step, and
    ``colorize`` returns a copy, not the graph's reusable output memory. (The networks are left eager here: on CPU
    the mode compiles without CUDA graphs, and only the bookkeeping is under test.)"""
    cfg = load_config(None, ["model.netG=unet_auto", "model.ngf=8", "model.ndf=8", "data.size=32"])
    model = build_model(cfg).prepare(CPU)
    model.compile_mode = "reduce-overhead"
    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    model.train_step({"A": torch.zeros(1, 1, SIZE, SIZE), "B": torch.zeros(1, 3, SIZE, SIZE)})
    assert len(marks) == 1
    generated = []
    original = model.generate
    monkeypatch.setattr(model, "generate", lambda a: generated.append(original(a)) or generated[-1])
    out = model.colorize(torch.zeros(1, 1, SIZE, SIZE))
    assert len(marks) == 2 and out.data_ptr() != generated[-1].data_ptr()
    model.compile_mode = "off"
    model.train_step({"A": torch.zeros(1, 1, SIZE, SIZE), "B": torch.zeros(1, 3, SIZE, SIZE)})
    assert len(marks) == 2
