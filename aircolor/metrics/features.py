"""Inception-v3 features of uint8 RGB images, through torch-fidelity's TensorFlow-compatible extractor.

One pass gives both feature sets the study needs: the 2048-d pool features (FID, KID) and the 1008-d
``logits_unbiased`` (IS), exactly the layers torch-fidelity uses by default for those metrics. Images go in as
uint8 RGB, any size: torch-fidelity resizes them to 299x299 with TensorFlow 1.x's bilinear interpolation, as
the original metric implementations did. Gray (1-channel) images are repeated to 3 channels.

The extractor is built once per (weights, device) and kept, since loading 95 MB of weights every evaluation
would cost more than the evaluation of a small validation set.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from aircolor.errors import UsageError
from aircolor.metrics.weights import weights_id

EXTRACTOR_NAME = "inception-v3-compat"  # torch-fidelity's registered name of FeatureExtractorInceptionV3
FEATURE_LAYERS = ("2048", "logits_unbiased")
POOL_DIM, LOGITS_DIM = 2048, 1008
_MAX_EXTRACTORS = 2

ImageInput = Union[torch.Tensor, np.ndarray, Iterable[Union[torch.Tensor, np.ndarray]]]

_EXTRACTORS: OrderedDict[tuple[str | None, str, str], torch.nn.Module] = OrderedDict()


@dataclass(frozen=True, eq=False)
class Features:
    """Inception features of ``n`` images: ``pool`` (n, 2048) and ``logits`` (n, 1008), float64.

    ``weights_id`` is the sha256 of the weights they came from (``"standard"`` for the download), so that
    every metric computed from them can say which weights it used.
    """

    pool: np.ndarray
    logits: np.ndarray
    weights_id: str

    def __len__(self) -> int:
        return int(self.pool.shape[0])


def _as_chw_u8(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(C, H, W) or (N, C, H, W) uint8, C in {1, 3} -> same, with 3 channels, as a CPU tensor."""
    t = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    if t.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 RGB (0..255), got {t.dtype}; convert floats in [0, 1] with "
                         f"(x * 255).round().clamp(0, 255).to(torch.uint8)")
    if t.dim() not in (3, 4) or t.shape[-3] not in (1, 3):
        raise ValueError(f"images must be (C, H, W) or (N, C, H, W) with C = 1 or 3, got shape {tuple(t.shape)}")
    if t.shape[-3] == 1:
        t = t.expand(*t.shape[:-3], 3, *t.shape[-2:])
    return t


def iter_images(images: ImageInput) -> Iterator[torch.Tensor]:
    """Yield single (3, H, W) uint8 images from a tensor/array, or from an iterable of images or batches."""
    items = [images] if isinstance(images, (torch.Tensor, np.ndarray)) else images
    for item in items:
        t = _as_chw_u8(item)
        if t.dim() == 3:
            yield t
        else:
            yield from t.unbind(0)


def _batches(images: ImageInput, batch_size: int) -> Iterator[torch.Tensor]:
    """Stack consecutive images of the same size into (B, 3, H, W) batches of at most ``batch_size``."""
    pending: list[torch.Tensor] = []
    for image in iter_images(images):
        if pending and (len(pending) == batch_size or image.shape != pending[0].shape):
            yield torch.stack(pending)
            pending = []
        pending.append(image)
    if pending:
        yield torch.stack(pending)


def _build_extractor(weights: Path | None) -> torch.nn.Module:
    """torch-fidelity's extractor with the given weights; a download failure or a bad file is the user's to fix."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from aircolor.metrics.weights import vetted_file

    # never the user's file itself: torch-fidelity unpickles it with weights_only=False
    kwargs: dict[str, Any] = {"feature_extractor_weights_path": None if weights is None else vetted_file(weights)}
    try:
        return FeatureExtractorInceptionV3(EXTRACTOR_NAME, list(FEATURE_LAYERS), verbose=False, **kwargs)
    except OSError as exc:
        if weights is None:
            raise UsageError(f"cannot download torch-fidelity's Inception weights ({exc}); set "
                             f"metrics.inception_weights or $AIRCOLOR_INCEPTION_WEIGHTS to a local copy") from None
        raise UsageError(f"cannot read Inception weights file {weights} ({exc}); check the path") from None
    except (RuntimeError, KeyError, ValueError, AttributeError, TypeError) as exc:
        if weights is None:
            raise
        first = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
        raise UsageError(f"{weights} is not an Inception weights file in torch-fidelity's format ({first}); "
                         f"use torch-fidelity's weights-inception-2015-12-05-6726825d.pth or a file from "
                         f"make_random_weights") from None


def _check_device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {str(device)!r}: CUDA is not available on this machine; use --device cpu")
    return dev


def get_extractor(weights: Path | None, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The extractor for ``weights`` on ``device``, built on first use and kept (at most two are kept)."""
    dev = _check_device(device)
    key = (None if weights is None else str(Path(weights).resolve()), weights_id(weights), str(dev))
    if key in _EXTRACTORS:
        _EXTRACTORS.move_to_end(key)
        return _EXTRACTORS[key]
    extractor = _build_extractor(weights).to(dev)
    _EXTRACTORS[key] = extractor
    while len(_EXTRACTORS) > _MAX_EXTRACTORS:
        _EXTRACTORS.popitem(last=False)
    return extractor


def extract_features(images: ImageInput, *, weights: Path | None, device: str | torch.device = "cpu",
                     batch_size: int = 32) -> Features:
    """Pool features and unbiased logits of ``images`` (uint8 RGB, see :func:`iter_images` for the forms).

    ``weights`` is a resolved file (see :func:`~aircolor.metrics.weights.resolve_weights`) or ``None`` for
    torch-fidelity's download. The extractor computes in float32 as torch-fidelity does; the float32 outputs
    are returned as float64 so that the statistics downstream are computed in double precision.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    extractor = get_extractor(weights, device)
    dev = next(extractor.parameters()).device
    pools, logits = [], []
    with torch.inference_mode():
        for batch in _batches(images, batch_size):
            pool, logit = extractor(batch.to(dev, non_blocking=True))
            pools.append(pool.cpu().double().numpy())
            logits.append(logit.cpu().double().numpy())
    if not pools:
        return Features(np.zeros((0, POOL_DIM)), np.zeros((0, LOGITS_DIM)), weights_id(weights))
    return Features(np.concatenate(pools), np.concatenate(logits), weights_id(weights))
