"""On-disk cache of the real images' Inception features, so a sweep of 100 trials extracts them once.

The real (ground-truth) set is the same for every trial of a sweep and every evaluation of a run, and its
features cost as much as the generated set's. The cache key names everything the features depend on: the
identity of the images (a dataset manifest hash, or a hash of the images' bytes), their count and size, the
extractor and the sha256 of the weights. A changed weights file or changed images therefore give a new key.
(torch-fidelity's own cache is keyed by a user-chosen name only and ignores both: it is not used.)

Entries are ``<root>/<sha256 of the key>.npz`` holding ``pool`` and ``logits`` (float32, the extractor's own
precision), the weights id and the key as JSON; they are written atomically, so concurrent trials at worst
compute the same entry twice. An entry that cannot be read is recomputed and rewritten.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from aircolor.metrics.features import EXTRACTOR_NAME, FEATURE_LAYERS, Features
from aircolor.utils import atomic_write_bytes

CACHE_ENV_VAR = "AIRCOLOR_CACHE_DIR"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RealKey:
    """Everything the real features depend on. ``source`` is a manifest hash or :func:`hash_images`."""

    source: str
    count: int
    size: str          # "HxW", or "mixed" when the images differ in size
    weights: str       # sha256 of the weights file (weights_token: the standard weights have one token)
    extractor: str = f"{EXTRACTOR_NAME}:{','.join(FEATURE_LAYERS)}"
    version: int = FORMAT_VERSION

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def image_size_label(images: Iterable[torch.Tensor]) -> str:
    """"HxW" of (3, H, W) images, or "mixed" when they differ."""
    sizes = {tuple(im.shape[-2:]) for im in images}
    if len(sizes) == 1:
        h, w = sizes.pop()
        return f"{h}x{w}"
    return "mixed" if sizes else "0x0"


def hash_images(images: Iterable[torch.Tensor]) -> str:
    """sha256 of the images' shapes and uint8 pixel bytes, in order: the identity of an in-memory real set."""
    digest = hashlib.sha256()
    for im in images:
        digest.update(repr(tuple(im.shape)).encode())
        digest.update(im.contiguous().numpy().tobytes())
    return digest.hexdigest()


def default_cache_root() -> Path:
    """``$AIRCOLOR_CACHE_DIR/metrics``, else ``$XDG_CACHE_HOME/aircolor/metrics``, else ``~/.cache/aircolor/metrics``.

    Point ``AIRCOLOR_CACHE_DIR`` at a shared folder so that all workers of a sweep share one cache.
    """
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser() / "metrics"
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "aircolor" / "metrics"


class RealFeatureCache:
    """Features of real image sets by :class:`RealKey`, in memory and in ``root`` on disk.

    ``hits`` and ``misses`` count the lookups served from the cache and the ones that ran ``compute``.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()
        self.hits = 0
        self.misses = 0
        self._memory: dict[str, Features] = {}

    def path(self, key: RealKey) -> Path:
        return self.root / f"{key.digest()}.npz"

    def get_or_compute(self, key: RealKey, compute: Callable[[], Features]) -> tuple[Features, bool]:
        """The features for ``key`` and whether they came from the cache (``compute`` did not run)."""
        digest = key.digest()
        found = self._memory.get(digest)
        if found is None:
            found = self._load(key)
        if found is not None:
            self.hits += 1
            self._memory[digest] = found
            return found, True
        self.misses += 1
        features = compute()
        if len(features) != key.count:
            raise ValueError(f"computed {len(features)} real features for a key of {key.count} images")
        self._store(key, features)
        self._memory[digest] = features
        return features, False

    def _load(self, key: RealKey) -> Features | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if json.loads(str(data["key"])) != asdict(key):
                    return None
                return Features(data["pool"].astype(np.float64), data["logits"].astype(np.float64),
                                str(data["weights_id"]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None  # unreadable or partial: recompute and overwrite

    def _store(self, key: RealKey, features: Features) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, pool=features.pool.astype(np.float32), logits=features.logits.astype(np.float32),
                 weights_id=np.array(features.weights_id), key=np.array(json.dumps(asdict(key), sort_keys=True)))
        atomic_write_bytes(self.path(key), buffer.getvalue())
