"""The training split kept on the training device as decoded uint8, augmented there in whole batches.

``data.on_device``: instead of a DataLoader that decodes/crops/flips/converts one item at a time on the host and
copies every batch over, :class:`DeviceData` decodes the split once (threads), applies the deterministic part of
the augmentation once (the resize to ``load_size``, or to ``size`` for ``preprocess=resize``), and uploads the
result as one uint8 tensor per side (1 byte per channel and pixel: a 286 px A|B pair is 0.33 MB, 10,000 pairs
3.3 GB). Each batch is then one gather on the device: a random crop and a random horizontal flip per sample, drawn
from a device generator seeded per epoch, followed by the colour conversion (``rgb`` scaling or ``lab``) on the
device. The result is the same computation as :class:`~aircolor.data.datasets.AlignedDataset` /
:class:`~aircolor.data.datasets.UnalignedDataset` (tested: with the crop and flip fixed, the batches are equal),
with the crops and flips drawn from another random stream. Batches come out in channels_last layout.

``auto`` turns it on for CUDA when the split fits in a quarter of the free GPU memory; on CPU the DataLoader
with the decoded cache is kept (benchmarks/results).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Sequence

import torch

from aircolor.data.datasets import AlignedDataset, UnalignedDataset, _decode, to_model_space
from aircolor.errors import UsageError

FREE_MEMORY_SHARE = 0.25  # auto: at most this share of the free GPU memory


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


def wanted(setting: str, dataset: Any, device: torch.device) -> bool:
    """Whether ``data.on_device=setting`` puts ``dataset`` on ``device`` (``auto``: CUDA, and it fits)."""
    supported = isinstance(dataset, (AlignedDataset, UnalignedDataset))
    if setting == "off":
        return False
    if setting == "on":
        if not supported:
            raise UsageError(f"data.on_device=on: the {type(dataset).__name__} layout is not supported; "
                             "use data.on_device=off")
        return True
    if not supported or device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes(dataset) <= FREE_MEMORY_SHARE * free


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
        self.generator = torch.Generator(device=self.device)

    @property
    def nbytes(self) -> int:
        return self.a.numel() + self.b.numel()

    def epoch(self, indices: Sequence[int], batch_size: int, seed: int) -> Iterator[dict[str, Any]]:
        """The epoch's batches for the sampler's ``indices`` (last incomplete batch dropped), crops and flips
        drawn from ``seed``."""
        self.generator.manual_seed(seed)
        order = torch.as_tensor(list(indices), dtype=torch.long)
        if not self.aligned:
            b_order = torch.as_tensor(self.dataset._b_order, dtype=torch.long)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            if self.aligned:
                ia = ib = idx.to(self.device)
            else:
                ia = (idx % self.a.shape[0]).to(self.device)
                ib = b_order[idx % self.b.shape[0]].to(self.device)
            yield self.batch(ia, ib)

    def batch(self, ia: torch.Tensor, ib: torch.Tensor) -> dict[str, Any]:
        n = ia.numel()
        a_window = self._windows(n, self.a)
        b_window = a_window if self.aligned else self._windows(n, self.b)  # aligned: the same crop and flip for A and B
        gray = self._gather(self.a, ia, *a_window)
        color = self._gather(self.b, ib, *b_window)
        if self.aligned:
            a, b = to_model_space(gray, color, self.dataset.color_space)
        else:
            a, _ = to_model_space(gray, None, self.dataset.color_space)
            _, b = to_model_space(None, color, self.dataset.color_space)
        return {"A": a, "B": b}

    def _windows(self, n: int, stack: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per sample of a batch from ``stack``: top row, left column and flip flag."""
        h, w = stack.shape[-2:]
        g, dev = self.generator, self.device
        if self.crop:
            top = torch.randint(0, h - self.size + 1, (n,), generator=g, device=dev)
            left = torch.randint(0, w - self.size + 1, (n,), generator=g, device=dev)
        else:
            top = left = torch.zeros(n, dtype=torch.long, device=dev)
        flip = (torch.rand(n, generator=g, device=dev) < 0.5) if self.flip else torch.zeros(n, dtype=torch.bool,
                                                                                           device=dev)
        return top, left, flip

    def _gather(self, stack: torch.Tensor, index: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                flip: torch.Tensor) -> torch.Tensor:
        """``stack[index]`` cropped to ``size`` at (top, left), mirrored where ``flip``: one indexing kernel."""
        sh, sw = (self.size, self.size) if self.crop else stack.shape[-2:]
        rows = top[:, None] + torch.arange(sh, device=self.device)
        step = torch.arange(sw, device=self.device)
        cols = left[:, None] + torch.where(flip[:, None], sw - 1 - step, step)
        out = stack[index[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (n, sh, sw, C)
        return out.permute(0, 3, 1, 2)  # NCHW view of NHWC memory: channels_last
