"""The training split kept on the training device as decoded uint8, augmented there in whole batches.

``data.on_device``: instead of a DataLoader that decodes/crops/flips/converts one item at a time on the host and
copies every batch over, :class:`DeviceData` decodes the split once (threads), applies the deterministic part of
the augmentation once (the resize to ``load_size``, or to ``size`` for ``preprocess=resize``), and uploads the
result as one uint8 tensor per side (1 byte per channel and pixel: a 286 px A|B pair is 0.33 MB, 10,000 pairs
3.3 GB). Each batch is then made on the device: a random crop and a random horizontal flip per sample, drawn
from a generator seeded per epoch, followed by the colour conversion (``rgb`` scaling or ``lab``) on the
device. The result is the same computation as :class:`~aircolor.data.datasets.AlignedDataset` /
:class:`~aircolor.data.datasets.UnalignedDataset` (tested: with the crop and flip fixed, the batches are equal),
with the crops and flips drawn from another random stream (a host generator: reading them needs no device sync).

``auto`` turns it on when the decoded cache is on (``data.cache``) and the split fits in a quarter of the free
memory of the device (GPU memory; host memory for CPU training). On CPU it is measured faster too (3-10% more
training images/s at 64 and 256 px on 2 cores: no loader worker processes competing for the cores, no per-epoch
worker start); ``off`` keeps the DataLoader.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Sequence

import torch

from aircolor.data.datasets import AlignedDataset, UnalignedDataset, _decode, to_model_space
from aircolor.errors import UsageError

FREE_MEMORY_SHARE = 0.25  # auto: at most this share of the free device (or host) memory


def _stacks(dataset: Any, paths: Sequence[Any], mode: str, halves: bool) -> list[torch.Tensor]:
    """Decode ``paths`` (threads: PIL releases the GIL), cut A|B halves if ``halves``, apply the fixed resize;
    uint8 stacks (two for A|B pairs: gray A and color B, one otherwise)."""
    transform = dataset.transform

    def one(path: Any) -> list[torch.Tensor]:
        img = _decode(path, mode)
        if halves:
            w = img.shape[-1] // 2
            parts = [img[:1, :, :w], img[:, :, w:2 * w]]
        else:
            parts = [img]
        return [fixed_resize(part, transform) for part in parts]

    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        images = list(pool.map(one, paths))
    stacks = []
    for side in zip(*images):
        shapes = sorted({tuple(im.shape) for im in side})
        if len(shapes) > 1:
            raise UsageError(f"data.on_device needs training images of one size, found {len(shapes)} sizes "
                             f"(e.g. {shapes[:2]}); use data.preprocess=resize_and_crop or data.on_device=off")
        stacks.append(torch.stack(side))
    return stacks


def fixed_resize(img: torch.Tensor, transform: Any) -> torch.Tensor:
    """The deterministic part of :class:`~aircolor.data.datasets.PairTransform` (train mode) for one image."""
    if transform.preprocess == "none":
        return img
    if transform.preprocess == "resize":
        return transform._resize(img, transform.size)
    if transform.preprocess == "resize_and_crop":
        img = transform._resize(img, transform.load_size)
    h, w = img.shape[-2:]
    if h < transform.size or w < transform.size:
        img = transform._resize(img, transform.size)
    return img


def nbytes(dataset: Any) -> int:
    """Bytes the uint8 stacks of ``dataset`` will take on the device (from the first image's size)."""
    t = dataset.transform
    side = t.load_size if t.preprocess == "resize_and_crop" else t.size
    if t.preprocess in ("crop", "none"):
        first = dataset.paths[0] if isinstance(dataset, AlignedDataset) else dataset.b_paths[0]
        from PIL import Image

        with Image.open(first) as im:
            w, h = im.size
        side = max(h, w // 2 if isinstance(dataset, AlignedDataset) else w)
    if isinstance(dataset, AlignedDataset):
        return len(dataset.paths) * 4 * side * side
    return (len(dataset.a_paths) + 3 * len(dataset.b_paths)) * side * side


def free_memory(device: torch.device) -> int:
    """Bytes free for new tensors on ``device``: the GPU's free memory, or the host's available memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def wanted(setting: str, dataset: Any, device: torch.device) -> bool:
    """Whether ``data.on_device=setting`` puts ``dataset`` on ``device``. ``auto``: when the decoded cache is on
    (``data.cache``) and the split fits in a quarter of the free device (or host) memory."""
    supported = isinstance(dataset, (AlignedDataset, UnalignedDataset))
    if setting == "off":
        return False
    if setting == "on":
        if not supported:
            raise UsageError(f"data.on_device=on: the {type(dataset).__name__} layout is not supported; "
                             "use data.on_device=off")
        return True
    if not supported or not dataset.cache.enabled:
        return False
    return nbytes(dataset) <= FREE_MEMORY_SHARE * free_memory(device)


class DeviceData:
    """Batches of ``dataset``'s training items made on ``device``; iterate :meth:`epoch` with the sampler's order."""

    def __init__(self, dataset: AlignedDataset | UnalignedDataset, device: torch.device) -> None:
        t = dataset.transform
        if not t.train:
            raise ValueError("DeviceData makes training batches; the dataset is in evaluation mode")
        self.dataset, self.device = dataset, torch.device(device)
        self.size = t.size
        self.crop = t.preprocess in ("resize_and_crop", "crop")
        self.flip = bool(t.flip)
        self.aligned = isinstance(dataset, AlignedDataset)
        if self.aligned:
            a, b = _stacks(dataset, dataset.paths, "RGB", halves=True)
        else:
            (a,), (b,) = _stacks(dataset, dataset.a_paths, "L", False), _stacks(dataset, dataset.b_paths, "RGB", False)
        self.a, self.b = a.to(self.device), b.to(self.device)
        self.generator = torch.Generator()  # crops and flips are drawn on the host: no device sync to read them

    @property
    def nbytes(self) -> int:
        return self.a.numel() + self.b.numel()

    def epoch(self, indices: Sequence[int], batch_size: int, seed: int) -> Iterator[dict[str, Any]]:
        """The epoch's batches for the sampler's ``indices`` (last incomplete batch dropped), crops and flips
        drawn from ``seed``."""
        self.generator.manual_seed(seed)
        order = [int(i) for i in indices]
        b_order = None if self.aligned else self.dataset._b_order  # the epoch's pairing (set_epoch)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            if b_order is None:
                yield self.batch(idx, idx)
            else:
                yield self.batch([i % self.a.shape[0] for i in idx], [b_order[i % self.b.shape[0]] for i in idx])

    def batch(self, ia: list[int], ib: list[int]) -> dict[str, Any]:
        a_window = self._windows(len(ia), self.a)
        b_window = a_window if self.aligned else self._windows(len(ib), self.b)  # aligned: one window for A and B
        gray = self._gather(self.a, ia, a_window)
        color = self._gather(self.b, ib, b_window)
        if self.aligned:
            a, b = to_model_space(gray, color, self.dataset.color_space)
        else:
            a, _ = to_model_space(gray, None, self.dataset.color_space)
            _, b = to_model_space(None, color, self.dataset.color_space)
        return {"A": a, "B": b}

    def _windows(self, n: int, stack: torch.Tensor) -> list[tuple[int, int, bool]]:
        """Per sample of a batch from ``stack``: top row, left column and flip flag."""
        h, w = stack.shape[-2:]
        g = self.generator
        if self.crop:
            top = torch.randint(0, h - self.size + 1, (n,), generator=g).tolist()
            left = torch.randint(0, w - self.size + 1, (n,), generator=g).tolist()
        else:
            top = left = [0] * n
        flip = (torch.rand(n, generator=g) < 0.5).tolist() if self.flip else [False] * n
        return list(zip(top, left, flip))

    def _gather(self, stack: torch.Tensor, index: list[int], windows: list[tuple[int, int, bool]]) -> torch.Tensor:
        """``stack[index]`` cropped to ``size`` at each window, mirrored where it says so: one slice per sample
        (on CPU 20x faster than one advanced-indexing gather; on a GPU a few small copies per batch)."""
        sh, sw = (self.size, self.size) if self.crop else stack.shape[-2:]
        crops = []
        for i, (top, left, flip) in zip(index, windows):
            crop = stack[i, :, top:top + sh, left:left + sw]
            crops.append(crop.flip(-1) if flip else crop)
        return torch.stack(crops)
