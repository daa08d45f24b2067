"""Torch datasets over the layouts that ``aircolor data prepare`` writes.

* :class:`AlignedDataset` (pix2pix, BicycleGAN): ``aligned/<split>/*.png``, each an A|B pair.
* :class:`UnalignedDataset` (CycleGAN, CUT): ``unaligned/<split>A`` and ``<split>B``; B is drawn from a
  per-epoch permutation (call :meth:`UnalignedDataset.set_epoch`), so runs are reproducible.
* :class:`SingleDataset`: gray images only (the historical photos, or any folder), no ground truth.

Every item is a dict with ``A`` (network input), ``B`` (target, absent for single images) and ``path``.
Color spaces:

* ``rgb``: A = gray copy in [-1, 1] (1 channel), B = RGB in [-1, 1] (3 channels);
* ``lab``: A = L/50 - 1 (1 channel) of the gray copy (the L* of the neutral color (g, g, g), the same as a gray
  photo enters with), B = ab/110 (2 channels) of the color tile. The reference colorization code takes A from the
  color tile's own L*, which differs from the gray copy's for saturated colors: a model trained on it would see
  another input at test time than in training.

Augmentation follows the papers: resize to ``load_size`` (286), random crop ``size`` (256), random horizontal
flip, the same crop and flip for A and B. Evaluation splits resize to ``size`` and never flip.

With ``cache=True`` decoded images are kept as uint8 tensors in memory, so epochs after the first skip file
decoding. The cache lives in each process: with DataLoader workers use ``persistent_workers=True``, or call
:meth:`preload` in the main process before the workers start (they then share it copy-on-write).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from aircolor.data.colorspace import encode_lab, gray_to_L
from aircolor.data.images import IMAGE_SUFFIXES
from aircolor.errors import UsageError

ColorSpace = Literal["rgb", "lab"]
Preprocess = Literal["resize_and_crop", "crop", "resize", "none"]
DATASETS: dict[str, type[Dataset]] = {}


def register(name: str) -> Callable[[type], type]:
    def add(cls: type) -> type:
        DATASETS[name] = cls
        return cls
    return add


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"dataset folder {folder} does not exist; run 'aircolor data prepare' first "
                         "or check data.root")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _decode(path: Path, mode: str) -> torch.Tensor:
    with Image.open(path) as im:
        arr = np.asarray(im.convert(mode))
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()  # uint8 CHW


class _ImageCache:
    """Decoded uint8 CHW tensors keyed by path (one per process)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._store: dict[tuple[Path, str], torch.Tensor] = {}

    def get(self, path: Path, mode: str) -> torch.Tensor:
        if not self.enabled:
            return _decode(path, mode)
        key = (path, mode)
        img = self._store.get(key)
        if img is None:
            img = self._store[key] = _decode(path, mode)
        return img

    def __len__(self) -> int:
        return len(self._store)


class PairTransform:
    """The same random resize/crop/flip applied to a list of uint8 CHW tensors of equal size."""

    def __init__(self, *, size: int, load_size: int, preprocess: Preprocess, flip: bool, train: bool) -> None:
        self.size, self.load_size, self.preprocess = size, load_size, preprocess
        self.flip, self.train = flip, train

    def __call__(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.preprocess == "none":
            pass
        elif not self.train or self.preprocess == "resize":
            images = [self._resize(im, self.size) for im in images]
        else:
            images = self._crop(images)
        if self.train and self.flip and bool(torch.rand(()) < 0.5):  # every preprocess flips, as in pix2pix
            images = [im.flip(-1) for im in images]
        return images

    def _crop(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.preprocess == "resize_and_crop":
            images = [self._resize(im, self.load_size) for im in images]
        h, w = images[0].shape[-2:]
        if h < self.size or w < self.size:
            images = [self._resize(im, self.size) for im in images]
            h, w = images[0].shape[-2:]
        top = int(torch.randint(0, h - self.size + 1, ()).item())
        left = int(torch.randint(0, w - self.size + 1, ()).item())
        return [im[..., top:top + self.size, left:left + self.size] for im in images]

    @staticmethod
    def _resize(im: torch.Tensor, size: int) -> torch.Tensor:
        if im.shape[-2:] == (size, size):
            return im
        return TF.resize(im, [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True)


def to_model_space(gray: torch.Tensor | None, color: torch.Tensor | None,
                   color_space: ColorSpace) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """uint8 gray (1xHxW) and/or color (3xHxW) tensors -> the networks' (A, B) in ``color_space``."""
    if color_space == "rgb":
        a = gray.float() / 127.5 - 1 if gray is not None else None
        b = color.float() / 127.5 - 1 if color is not None else None
        return a, b
    # A is the L* of the gray image a user gives (the luma copy), in training as at test time; the color tile's
    # own L* differs from it for saturated colours, and a model trained on that would see another input at test.
    a = gray_to_L(gray.float() / 255.0) if gray is not None else None
    b = encode_lab(color.float() / 255.0)[1] if color is not None else None
    return a, b


class _Base(Dataset):
    def __init__(self, *, color_space: ColorSpace = "rgb", size: int = 256, load_size: int | None = None,
                 preprocess: Preprocess = "resize_and_crop", flip: bool = True, train: bool = True,
                 cache: bool = True, max_images: int | None = None) -> None:
        if color_space not in ("rgb", "lab"):
            raise ValueError(f"color_space must be 'rgb' or 'lab', got {color_space!r}")
        self.color_space = color_space
        self.transform = PairTransform(size=size, load_size=load_size or round(size * 286 / 256),
                                       preprocess=preprocess, flip=flip and train, train=train)
        self.cache = _ImageCache(cache)
        self.max_images = max_images

    def _limit(self, paths: list[Path]) -> list[Path]:
        return paths[: self.max_images] if self.max_images else paths

    def preload(self) -> None:
        """Decode every image into the cache now (call before DataLoader workers fork)."""
        for i in range(len(self)):
            self[i]


def _split_dir(root: Path, *parts: str) -> Path:
    return Path(root).joinpath(*parts)


@register("aligned")
class AlignedDataset(_Base):
    """A|B pairs from ``ROOT/aligned/<split>``: A = left half (gray copy), B = right half (color)."""

    def __init__(self, root: str | Path, split: str = "train", **kwargs: Any) -> None:
        kwargs.setdefault("train", split == "train")
        super().__init__(**kwargs)
        self.paths = self._limit(list_images(_split_dir(root, "aligned", split)))
        if not self.paths:
            raise UsageError(f"no images in {_split_dir(root, 'aligned', split)}; the '{split}' split is empty")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        ab = self.cache.get(path, "RGB")
        w = ab.shape[-1] // 2
        gray, color = self.transform([ab[:1, :, :w], ab[:, :, w:2 * w]])
        a, b = to_model_space(gray, color, self.color_space)
        return {"A": a, "B": b, "path": str(path)}


@register("unaligned")
class UnalignedDataset(_Base):
    """Gray images from ``ROOT/unaligned/<split>A`` and color images from ``<split>B``, paired at random.

    ``len`` is the larger of the two folders; B for item ``i`` comes from a permutation seeded by
    ``(seed, epoch)``, so every epoch sees a new pairing and a resumed run sees the same one.
    """

    def __init__(self, root: str | Path, split: str = "train", *, seed: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("train", split == "train")
        super().__init__(**kwargs)
        self.a_paths = self._limit(list_images(_split_dir(root, "unaligned", f"{split}A")))
        self.b_paths = self._limit(list_images(_split_dir(root, "unaligned", f"{split}B")))
        if not self.a_paths or not self.b_paths:
            raise UsageError(f"no images in {_split_dir(root, 'unaligned', split + 'A')} or "
                             f"{split}B; the '{split}' split is empty")
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        self._b_order = torch.randperm(len(self.b_paths), generator=g).tolist()

    def __len__(self) -> int:
        return max(len(self.a_paths), len(self.b_paths))

    def __getitem__(self, index: int) -> dict[str, Any]:
        a_path = self.a_paths[index % len(self.a_paths)]
        b_path = self.b_paths[self._b_order[index % len(self.b_paths)]]
        gray = self.cache.get(a_path, "L")
        color = self.cache.get(b_path, "RGB")
        (gray,) = self.transform([gray])
        (color,) = self.transform([color])
        a, _ = to_model_space(gray, None, self.color_space)  # A from the gray image, not from B's L (lab)
        _, b = to_model_space(None, color, self.color_space)
        return {"A": a, "B": b, "path": str(a_path), "path_B": str(b_path)}


@register("single")
class SingleDataset(_Base):
    """Gray images only (historical photos): a folder, or an explicit list of files.

    By default images keep their own size (``preprocess="none"``), which needs ``batch_size=1``.
    """

    def __init__(self, source: str | Path | list[Path], **kwargs: Any) -> None:
        kwargs.setdefault("train", False)
        kwargs.setdefault("preprocess", "none")
        super().__init__(**kwargs)
        self.paths = self._limit(list(source) if isinstance(source, list) else list_images(Path(source)))
        if not self.paths:
            raise UsageError(f"no images found in {source}")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        (gray,) = self.transform([self.cache.get(path, "L")])
        a, _ = to_model_space(gray, None, self.color_space)
        return {"A": a, "path": str(path)}


def build_dataset(data_cfg: Any, split: str, *, seed: int = 0, train: bool | None = None) -> Dataset:
    """The dataset for ``split`` described by a :class:`aircolor.config.DataConfig` (layout resolved)."""
    kwargs: dict[str, Any] = dict(color_space=data_cfg.color_space, size=data_cfg.size, load_size=data_cfg.load_size,
                                  preprocess=data_cfg.preprocess, flip=data_cfg.flip, cache=data_cfg.cache,
                                  max_images=data_cfg.max_images, train=split == "train" if train is None else train)
    if data_cfg.layout not in DATASETS:
        raise UsageError(f"data.layout {data_cfg.layout!r}: expected one of {', '.join(DATASETS)}")
    if data_cfg.layout == "single":
        return SingleDataset(Path(data_cfg.root) / "historical", **kwargs)
    if data_cfg.layout == "unaligned":
        return UnalignedDataset(data_cfg.root, split, seed=seed, **kwargs)
    return DATASETS[data_cfg.layout](data_cfg.root, split, **kwargs)
