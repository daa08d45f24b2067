"""Data benchmarks: how fast the training dataset turns files into augmented tensors.

Case ``decode``: images/s of :class:`aircolor.data.datasets.AlignedDataset` over the train split, reading and
decoding the PNG files every item (``cache=False``) vs serving decoded uint8 tensors from its in-memory cache
(``cache=True`` after ``preload()``); both include the papers' augmentation (resize 286, random crop 256, random
flip), since that runs per item either way. For comparison, the same item written the way the pix2pix reference
dataset does it (PIL open, split A|B, torchvision v1 ``Resize`` BICUBIC + crop + flip + ``ToTensor`` +
``Normalize``).

Also home of two helpers the other case modules share: :func:`prepared` (a prepared copy of the sample data in the
benchmark's work folder), :func:`timed` (timings of repeated calls after one warm-up) and :func:`record`.

Run alone::

    python -c "import torch, pathlib, benchmarks.cases_data as c; print(c.decode(quick=True,
        device=torch.device('cpu'), work=pathlib.Path('runs/bench'), repeats=3))"
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.timing import median, sync

__all__ = ["CASES", "decode", "median", "prepared", "record", "reference_pil_item", "sample_dir", "sync", "timed"]
SECTION = "data"


# ---------------------------------------------------------------- shared helpers (used by the other case modules)
def sample_dir() -> Path:
    """``aircolor/sample_data``: the real tiles and historical photos shipped with the package."""
    import aircolor

    return Path(aircolor.__file__).resolve().parent / "sample_data"


def prepared(work: Path, size: int) -> Path:
    """``work/data-<size>``: the sample data prepared at ``size`` px (built once, reused while its manifest exists)."""
    from aircolor.data.prepare import PrepareOptions, prepare

    out = Path(work) / f"data-{size}"
    if not (out / "manifest.parquet").is_file():
        sample = sample_dir()
        prepare(sample / "color", out, historical_dir=sample / "historical", options=PrepareOptions(size=size),
                workers=1)
    return out


def timed(fn: Callable[[], Any], *, repeats: int, device: torch.device, warmup: bool = True) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` (after one untimed warm-up call unless ``warmup=False``)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup:
        fn()
        sync(device)
    out = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def record(section: str, case: str, config: dict[str, Any], metrics: dict[str, float],
           unit_notes: dict[str, str]) -> dict[str, Any]:
    """One result record in the shape ``benchmarks.run`` collects; metrics are made plain floats."""
    return {"section": section, "case": case, "config": dict(config),
            "metrics": {k: float(v) for k, v in metrics.items()}, "unit_notes": dict(unit_notes)}


# ---------------------------------------------------------------- the pix2pix reference's way, for comparison
def reference_pil_item(path: Path, *, load_size: int = 286, crop_size: int = 256) -> dict[str, Any]:
    """One A|B item as the pix2pix reference's ``AlignedDataset.__getitem__`` builds it (input_nc 1, output_nc 3).

    PIL open + RGB, split into halves, one random crop position and flip for both halves (``get_params``),
    then ``get_transform``: Grayscale (A only), Resize([286, 286], BICUBIC), crop, flip, ToTensor, Normalize.
    """
    from PIL import Image
    from torchvision import transforms

    ab = Image.open(path).convert("RGB")
    w, h = ab.size
    w2 = int(w / 2)
    a, b = ab.crop((0, 0, w2, h)), ab.crop((w2, 0, w, h))
    x = random.randint(0, max(0, load_size - crop_size))
    y = random.randint(0, max(0, load_size - crop_size))
    flip = random.random() > 0.5

    def transform(grayscale: bool) -> Any:
        ops: list[Any] = [transforms.Grayscale(1)] if grayscale else []
        ops += [transforms.Resize([load_size, load_size], transforms.InterpolationMode.BICUBIC),
                transforms.Lambda(lambda img: img.crop((x, y, x + crop_size, y + crop_size))),
                transforms.Lambda(lambda img: img.transpose(Image.FLIP_LEFT_RIGHT) if flip else img),
                transforms.ToTensor()]
        ops.append(transforms.Normalize((0.5,), (0.5,)) if grayscale else
                   transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
        return transforms.Compose(ops)

    return {"A": transform(True)(a), "B": transform(False)(b), "A_paths": str(path), "B_paths": str(path)}


# ---------------------------------------------------------------- case
def decode(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """Images/s of the train split through AlignedDataset (files vs in-memory cache) and the reference's PIL way."""
    from aircolor.data.datasets import AlignedDataset

    size, passes = 256, 1 if quick else 3
    root = prepared(work, size)
    files = AlignedDataset(root, "train", color_space="rgb", size=size, cache=False)
    cached = AlignedDataset(root, "train", color_space="rgb", size=size, cache=True)
    t0 = time.perf_counter()
    cached.preload()
    preload_s = time.perf_counter() - t0
    n = len(files) * passes

    def iterate(ds: Any) -> Callable[[], None]:
        def run() -> None:
            for _ in range(passes):
                for i in range(len(ds)):
                    item = ds[i]
            if item["A"].shape != (1, size, size) or item["B"].shape != (3, size, size):
                raise RuntimeError(f"unexpected item shapes {tuple(item['A'].shape)}, {tuple(item['B'].shape)}")
        return run

    def reference() -> None:
        for _ in range(passes):
            for path in files.paths:
                item = reference_pil_item(path, load_size=files.transform.load_size, crop_size=size)
        if item["A"].shape != (1, size, size) or item["B"].shape != (3, size, size):
            raise RuntimeError("reference item has unexpected shapes")

    # Decoding runs on the CPU whatever the benchmark's device: the training loader does it there too.
    cpu = torch.device("cpu")
    files_s = median(timed(iterate(files), repeats=repeats, device=cpu))
    cache_s = median(timed(iterate(cached), repeats=repeats, device=cpu))
    ref_s = median(timed(reference, repeats=repeats, device=cpu))
    files_rate, cache_rate, ref_rate = n / files_s, n / cache_s, n / ref_s
    config = {"split": "train", "images": len(files), "passes": passes, "size": size,
              "load_size": files.transform.load_size, "source_px": "512x256 A|B PNG", "color_space": "rgb",
              "threads": torch.get_num_threads(), "repeats": repeats, "warmup": 1}
    metrics = {"files_images_per_s": files_rate, "cache_images_per_s": cache_rate,
               "speedup": cache_rate / files_rate, "reference_pil_images_per_s": ref_rate,
               "files_vs_reference": files_rate / ref_rate, "preload_s": preload_s}
    notes = {"files_images_per_s": "AlignedDataset(cache=False) items/s: PNG decode + resize 286 + crop 256 + flip "
                                   "+ scale to [-1, 1], in order, one process",
             "cache_images_per_s": "AlignedDataset(cache=True) items/s after preload(): same augmentation, no decode",
             "speedup": "cache_images_per_s / files_images_per_s",
             "reference_pil_images_per_s": "pix2pix reference's way (PIL + torchvision v1 transforms) items/s",
             "files_vs_reference": "files_images_per_s / reference_pil_images_per_s",
             "preload_s": "seconds of preload() (decode every train image once into the cache), one run"}
    return [record(SECTION, "decode", config, metrics, notes)]


def device_batches(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """Images/s of training batches made on ``device`` from the split kept there (``data.on_device``), against the
    cached per-item path plus the copy to the device (what a DataLoader batch costs the training process)."""
    from aircolor.data.datasets import AlignedDataset
    from aircolor.data.device import DeviceData

    size, batch, passes = 256, 16, 1 if quick else 5
    root = prepared(work, size)
    cached = AlignedDataset(root, "train", color_space="rgb", size=size, cache=True)
    cached.preload()
    t0 = time.perf_counter()
    data = DeviceData(cached, device)
    sync(device)
    upload_s = time.perf_counter() - t0
    order = list(range(len(cached)))
    n_batches = len(order) // batch
    n = n_batches * batch * passes

    def on_device() -> None:
        for p in range(passes):
            for b in data.epoch(order, batch, seed=p):
                pass
        sync(device)
        if b["A"].shape != (batch, 1, size, size) or b["B"].shape != (batch, 3, size, size):
            raise RuntimeError(f"unexpected batch shapes {tuple(b['A'].shape)}, {tuple(b['B'].shape)}")

    def per_item() -> None:
        for _ in range(passes):
            for k in range(n_batches):
                items = [cached[i] for i in order[k * batch:(k + 1) * batch]]
                for key in ("A", "B"):
                    torch.stack([it[key] for it in items]).to(device, non_blocking=True)
        sync(device)

    device_rate = n / median(timed(on_device, repeats=repeats, device=device))
    item_rate = n / median(timed(per_item, repeats=repeats, device=device))
    config = {"split": "train", "images": len(cached), "batch": batch, "passes": passes, "size": size,
              "load_size": cached.transform.load_size, "color_space": "rgb", "device": str(device),
              "threads": torch.get_num_threads(), "repeats": repeats, "warmup": 1}
    metrics = {"device_images_per_s": device_rate, "cached_items_images_per_s": item_rate,
               "speedup": device_rate / item_rate, "upload_s": upload_s, "device_mib": data.nbytes / 2 ** 20}
    notes = {"device_images_per_s": "DeviceData batches/s x batch: crop + flip gather and scaling on the device",
             "cached_items_images_per_s": "AlignedDataset(cache=True) items stacked into batches and copied to the "
                                          "device, one process (a DataLoader spreads this over its workers)",
             "speedup": "device_images_per_s / cached_items_images_per_s",
             "upload_s": "seconds to decode, resize and upload the split (once per run)",
             "device_mib": "device memory of the uint8 split, MiB"}
    return [record(SECTION, "device_batches", config, metrics, notes)]


CASES: dict[str, Callable[..., list[dict]]] = {"decode": decode, "device_batches": device_batches}
