"""Tests for the torch datasets over the layouts that ``aircolor data prepare`` writes (real sample imagery)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import aircolor.data.datasets as D
from aircolor.config import load_config
from aircolor.data.colorspace import encode_lab, gray_to_L
from aircolor.data.datasets import (
    AlignedDataset,
    SingleDataset,
    UnalignedDataset,
    build_dataset,
)
from aircolor.errors import UsageError

SIZE = 32  # prepared_sample's tile size
EPS = 1e-5


def counts(root: Path) -> dict[str, int]:
    return json.loads((root / "summary.json").read_text())["counts"]


def uint8(path: str | Path, mode: str) -> torch.Tensor:
    """A file as a uint8 CHW tensor."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert(mode))
    return torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1)


def luma(rgb_255: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma (Pillow's convert("L")) of a 3xHxW tensor in 0..255."""
    return 0.299 * rgb_255[0] + 0.587 * rgb_255[1] + 0.114 * rgb_255[2]


def to_255(x: torch.Tensor) -> torch.Tensor:
    return (x + 1) * 127.5


def assert_near(got: torch.Tensor, want: torch.Tensor, tol: float = EPS) -> None:
    """Elementwise |got - want| <= tol (``torch.testing.assert_close`` is slow on large tensors)."""
    assert got.shape == want.shape, (got.shape, want.shape)
    assert (got - want).abs().max().item() <= tol


def assert_in_unit_range(t: torch.Tensor) -> None:
    assert t.dtype == torch.float32
    assert t.min().item() >= -1 - EPS and t.max().item() <= 1 + EPS, (t.min(), t.max())


def make(kind: str, root: Path, split: str, **kwargs: Any) -> torch.utils.data.Dataset:
    return {"aligned": AlignedDataset, "unaligned": UnalignedDataset}[kind](root, split, size=SIZE, **kwargs)


# --------------------------------------------------------------------------------------------- shapes and ranges
@pytest.mark.parametrize("kind", ["aligned", "unaligned"])
@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("color_space", ["rgb", "lab"])
def test_paired_shapes_and_ranges(prepared_sample: Path, kind: str, split: str, color_space: str) -> None:
    ds = make(kind, prepared_sample, split, color_space=color_space)
    assert len(ds) == counts(prepared_sample)[split]
    b_channels = 3 if color_space == "rgb" else 2
    spread = 0.0
    for i in range(len(ds)):
        item = ds[i]
        assert item["A"].shape == (1, SIZE, SIZE)
        assert item["B"].shape == (b_channels, SIZE, SIZE)
        assert_in_unit_range(item["A"])
        assert_in_unit_range(item["B"])
        assert Path(item["path"]).is_file()
        if color_space == "rgb":  # B is in color: its channels differ
            spread = max(spread, (item["B"][0] - item["B"][2]).abs().max().item())
        else:  # a*, b* of real tiles are not all zero
            spread = max(spread, item["B"].abs().max().item())
    assert spread > 0.05


@pytest.mark.parametrize("color_space", ["rgb", "lab"])
def test_single_dataset_keeps_sizes_and_ranges(prepared_sample: Path, color_space: str) -> None:
    ds = SingleDataset(prepared_sample / "historical", color_space=color_space)
    assert len(ds) == 10
    sizes = set()
    for i in range(len(ds)):
        item = ds[i]
        assert "B" not in item
        gray = uint8(item["path"], "L")
        assert item["A"].shape == gray.shape and gray.shape[0] == 1
        sizes.add(tuple(gray.shape[1:]))
        assert_in_unit_range(item["A"])
        assert_near(item["A"], gray.float() / 127.5 - 1 if color_space == "rgb" else gray_to_L(gray.float() / 255))
    assert sizes == {(1024, 1024), (256, 256)}
    resized = SingleDataset(prepared_sample / "historical", color_space=color_space, preprocess="resize", size=SIZE)
    assert resized[0]["A"].shape == (1, SIZE, SIZE)


# --------------------------------------------------------------------------------------------- augmentation
def test_aligned_rgb_same_crop_and_flip_for_a_and_b(prepared_sample: Path) -> None:
    """After the random resize/crop/flip the gray input is still the luma of the color target."""
    ds = AlignedDataset(prepared_sample, "train", size=SIZE)  # resize to 36, random 32 crop, random flip
    assert ds.transform.load_size > SIZE
    errors, controls, distinct = [], [], set()
    for i in range(len(ds)):
        torch.manual_seed(i)
        item = ds[i]
        a, y = to_255(item["A"][0]), luma(to_255(item["B"]))
        errors.append((y - a).abs())
        controls.append((y.flip(-1) - a).abs().mean().item())  # what a flip of B alone would look like
        if i == 0:
            for seed in range(8):
                torch.manual_seed(100 + seed)
                distinct.add(ds[0]["A"].numpy().tobytes())
    assert max(e.mean().item() for e in errors) < 1.0
    assert max(e.max().item() for e in errors) <= 5.0
    assert np.mean(controls) > 10 * max(e.mean().item() for e in errors)
    assert len(distinct) > 2, "the augmentation really is random"


def test_flip_is_applied_to_a_and_b_together(prepared_sample: Path) -> None:
    # tiles are already 32 px: "crop" to 32 keeps the whole tile, so only the flip varies
    ds = AlignedDataset(prepared_sample, "train", size=SIZE, preprocess="crop")
    ref = AlignedDataset(prepared_sample, "train", size=SIZE, train=False)[3]
    seen = set()
    for seed in range(16):
        torch.manual_seed(seed)
        item = ds[3]
        if torch.equal(item["A"], ref["A"]):
            assert torch.equal(item["B"], ref["B"])
            seen.add("same")
        else:
            assert torch.equal(item["A"], ref["A"].flip(-1))
            assert torch.equal(item["B"], ref["B"].flip(-1))
            seen.add("flipped")
    assert seen == {"same", "flipped"}


@pytest.mark.parametrize("preprocess", ["resize", "none"])
def test_training_flips_with_every_preprocess(prepared_sample: Path, preprocess: str) -> None:
    ds = AlignedDataset(prepared_sample, "train", size=SIZE, preprocess=preprocess)
    ref = AlignedDataset(prepared_sample, "train", size=SIZE, train=False)[5]
    flips = set()
    for seed in range(16):
        torch.manual_seed(seed)
        item = ds[5]
        flipped = torch.equal(item["A"], ref["A"].flip(-1))
        assert flipped or torch.equal(item["A"], ref["A"])
        assert torch.equal(item["B"], ref["B"].flip(-1) if flipped else ref["B"])
        flips.add(flipped)
    assert flips == {True, False}
    no_flip = AlignedDataset(prepared_sample, "train", size=SIZE, preprocess=preprocess, flip=False)
    for seed in range(4):
        torch.manual_seed(seed)
        assert torch.equal(no_flip[5]["A"], ref["A"])


def test_aligned_lab_input_is_the_gray_copys_lightness(prepared_sample: Path) -> None:
    """Lab A is the L* of the gray copy (what a user's gray photo enters as), B the tile's a*b*, same crop as rgb."""
    rgb = AlignedDataset(prepared_sample, "train", size=SIZE, color_space="rgb")
    lab = AlignedDataset(prepared_sample, "train", size=SIZE, color_space="lab")
    saturated_gap = []
    for i in range(0, len(rgb), 7):
        torch.manual_seed(i)
        r = rgb[i]
        torch.manual_seed(i)
        item = lab[i]
        L_tile, ab = encode_lab((r["B"] + 1) / 2)
        assert_near(item["A"], gray_to_L(to_255(r["A"]) / 255), 1e-4)
        assert_near(item["B"], ab, 1e-4)
        saturated_gap.append((L_tile - item["A"]).abs().max().item())
    # the tile's own L* is a different input (luma vs L* of saturated colours): the old behaviour would pass above
    assert max(saturated_gap) > 0.02


@pytest.mark.parametrize("color_space", ["rgb", "lab"])
@pytest.mark.parametrize("size", [SIZE, 16])
def test_eval_split_is_deterministic(prepared_sample: Path, color_space: str, size: int) -> None:
    ds = AlignedDataset(prepared_sample, "val", size=size, color_space=color_space)
    for i in range(len(ds)):
        torch.manual_seed(i)
        first = ds[i]
        torch.manual_seed(1000 + i)
        second = ds[i]
        assert torch.equal(first["A"], second["A"]) and torch.equal(first["B"], second["B"])
        assert first["A"].shape[-1] == size
        if size == SIZE and color_space == "rgb":  # no resize: exactly the files, never flipped
            pair = uint8(first["path"], "RGB")
            assert_near(first["A"], pair[:1, :, :SIZE].float() / 127.5 - 1)
            assert_near(first["B"], pair[:, :, SIZE:].float() / 127.5 - 1)


def test_unaligned_lab_takes_a_from_the_gray_image(prepared_sample: Path) -> None:
    ds = UnalignedDataset(prepared_sample, "test", size=SIZE, color_space="lab")
    mismatched = 0
    for i in range(len(ds)):
        item = ds[i]
        gray = uint8(item["path"], "L")
        color = uint8(item["path_B"], "RGB")
        assert_near(item["A"], gray_to_L(gray.float() / 255))
        L_of_b, ab_of_b = encode_lab(color.float() / 255)
        assert_near(item["B"], ab_of_b)
        if Path(item["path"]).name != Path(item["path_B"]).name:
            mismatched += 1
            assert not torch.allclose(item["A"], L_of_b, atol=0.05), "A must not leak B's picture"
    assert mismatched > 0


# --------------------------------------------------------------------------------------------- cache
def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, str]]:
    calls: list[tuple[Path, str]] = []
    real = D._decode

    def counting(path: Path, mode: str) -> torch.Tensor:
        calls.append((path, mode))
        return real(path, mode)

    monkeypatch.setattr(D, "_decode", counting)
    return calls


@pytest.mark.parametrize("cache", [True, False])
def test_cache_avoids_decoding_again(prepared_sample: Path, monkeypatch: pytest.MonkeyPatch, cache: bool) -> None:
    calls = _count_decodes(monkeypatch)
    ds = AlignedDataset(prepared_sample, "train", size=SIZE, cache=cache)
    n = len(ds)
    epochs = []
    for _ in range(2):
        batch = [ds[i] for i in range(n)]
        epochs.append(len(calls))
    assert len(batch) == n
    assert epochs == ([n, n] if cache else [n, 2 * n])
    if cache:
        assert len(ds.cache) == n
        assert len({p for p, _ in calls}) == n


def test_unaligned_cache_and_preload(prepared_sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_decodes(monkeypatch)
    ds = UnalignedDataset(prepared_sample, "val", size=SIZE)
    ds.preload()
    n_files = len(ds.a_paths) + len(ds.b_paths)
    assert len(calls) == n_files
    for epoch in range(2):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            ds[i]
    assert len(calls) == n_files
    assert {mode for _, mode in calls} == {"L", "RGB"}


# --------------------------------------------------------------------------------------------- unaligned pairing
def _pairing(ds: UnalignedDataset, epoch: int) -> list[str]:
    ds.set_epoch(epoch)
    return [Path(ds[i]["path_B"]).name for i in range(len(ds))]


def test_unaligned_set_epoch_is_reproducible(prepared_sample: Path) -> None:
    one = UnalignedDataset(prepared_sample, "val", size=SIZE, seed=3)
    two = UnalignedDataset(prepared_sample, "val", size=SIZE, seed=3)
    other = UnalignedDataset(prepared_sample, "val", size=SIZE, seed=4)
    b_names = sorted(p.name for p in one.b_paths)
    assert len(one) == len(b_names) == counts(prepared_sample)["val"]
    e0, e1 = _pairing(one, 0), _pairing(one, 1)
    assert sorted(e0) == sorted(e1) == b_names, "every B is used once per epoch"
    assert e0 != e1, "a new pairing each epoch"
    assert _pairing(two, 1) == e1 and _pairing(two, 0) == e0, "same seed and epoch: same pairing"
    assert _pairing(one, 0) == e0, "going back to an epoch gives its pairing again"
    assert _pairing(other, 1) != e1
    assert [Path(one[i]["path"]).name for i in range(len(one))] == sorted(p.name for p in one.a_paths)


# --------------------------------------------------------------------------------------------- build_dataset
def test_build_dataset_from_config(prepared_sample: Path) -> None:
    cfg = load_config(None, [f"data.root={prepared_sample}", f"data.size={SIZE}"])
    assert cfg.data.layout == "aligned"
    train = build_dataset(cfg.data, "train")
    assert isinstance(train, AlignedDataset) and len(train) == counts(prepared_sample)["train"]
    assert train.transform.train and train.transform.flip and train.transform.load_size == cfg.data.load_size
    val = build_dataset(cfg.data, "val")
    assert isinstance(val, AlignedDataset) and not val.transform.train
    assert len(val) == counts(prepared_sample)["val"]
    batch = next(iter(DataLoader(train, batch_size=4, shuffle=True, num_workers=0)))
    assert batch["A"].shape == (4, 1, SIZE, SIZE) and batch["B"].shape == (4, 3, SIZE, SIZE)

    lab = load_config(None, [f"data.root={prepared_sample}", f"data.size={SIZE}", "data.color_space=lab"])
    item = build_dataset(lab.data, "test")[0]
    assert item["A"].shape == (1, SIZE, SIZE) and item["B"].shape == (2, SIZE, SIZE)

    cyc = load_config(None, [f"data.root={prepared_sample}", f"data.size={SIZE}", "model.family=cyclegan",
                             "data.max_images=5"])
    ds = build_dataset(cyc.data, "train", seed=7)
    assert isinstance(ds, UnalignedDataset) and ds.seed == 7 and len(ds) == 5
    assert ds[0]["A"].shape == (1, SIZE, SIZE) and ds[0]["B"].shape == (3, SIZE, SIZE)


def test_dataset_errors(prepared_sample: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="aircolor data prepare"):
        AlignedDataset(tmp_path / "nothing", "train")
    (tmp_path / "aligned" / "train").mkdir(parents=True)
    with pytest.raises(UsageError, match="split is empty"):
        AlignedDataset(tmp_path, "train")
    with pytest.raises(ValueError, match="color_space"):
        AlignedDataset(prepared_sample, "train", color_space="hsv")  # type: ignore[arg-type]
