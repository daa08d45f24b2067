"""Evaluation benchmarks: the cost of the Inception features behind FID/IS/KID.

* ``inception_features``: images/s of :func:`aircolor.metrics.features.extract_features` on uint8 256 px images
  (torch-fidelity's extractor resizes them to 299 px itself), extractor already built.
* ``real_statistics``: seconds of :func:`aircolor.metrics.evaluation.real_features` for the real (ground-truth)
  tiles with a cold cache (a fresh folder: extraction + writing the ``.npz``) vs a warm one (the same key read back
  by a new :class:`~aircolor.metrics.cache.RealFeatureCache` on that folder, as a new trial of a sweep does), and
  from the cache's in-memory layer (a later evaluation of the same run).

Weights: ``$AIRCOLOR_INCEPTION_WEIGHTS`` if set, else a random file in torch-fidelity's format made once in the work
folder (nothing is downloaded; the speed is that of the real weights, the values are meaningless).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.cases_data import median, prepared, record, sync, timed

SECTION = "evaluation"


def inception_weights(work: Path) -> tuple[Path, str]:
    """(weights file, "env" or "random"): ``$AIRCOLOR_INCEPTION_WEIGHTS``, else ``work/inception-random.pth``."""
    from aircolor.metrics.weights import ENV_VAR, make_random_weights, resolve_weights

    if os.environ.get(ENV_VAR):
        path = resolve_weights(None)
        assert path is not None
        return path, "env"
    path = Path(work) / "inception-random.pth"
    if not path.is_file():
        make_random_weights(path)
    return path, "random"


def _random_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)


def inception_features(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """Images/s of Inception feature extraction (pool 2048 + logits 1008 in one pass)."""
    from aircolor.metrics.features import extract_features

    n, batch_size, size = (16, 16, 256) if quick else (512, 64, 256)
    weights, source = inception_weights(work)
    images = _random_images(n, size)

    def run() -> None:
        features = extract_features(images, weights=weights, device=device, batch_size=batch_size)
        if len(features) != n:
            raise RuntimeError(f"extract_features returned {len(features)} rows for {n} images")

    # Warm-up: one batch builds the extractor (weights load, cuDNN autotune) outside the timed runs.
    extract_features(images[:batch_size], weights=weights, device=device, batch_size=batch_size)
    seconds = median(timed(run, repeats=repeats, device=device, warmup=False))
    config = {"images": n, "image_px": size, "batch_size": batch_size, "weights": source, "device": str(device),
              "threads": torch.get_num_threads(), "repeats": repeats, "warmup": 1}
    metrics = {"images_per_s": n / seconds, "seconds": seconds}
    notes = {"images_per_s": "uint8 256 px images through torch-fidelity's Inception (resize to 299 included), "
                             "host tensor in, float64 numpy features out",
             "seconds": f"median seconds for all {n} images"}
    return [record(SECTION, "inception_features", config, metrics, notes)]


def real_tiles(root: Path, n: int) -> list[torch.Tensor]:
    """``n`` real color tiles (uint8 3xHxW), the B halves of the val then test pairs, repeated as needed."""
    from aircolor.data.datasets import AlignedDataset

    tiles: list[torch.Tensor] = []
    for split in ("val", "test"):
        ds = AlignedDataset(root, split, color_space="rgb", preprocess="none", train=False, cache=False)
        for i in range(len(ds)):
            tiles.append(((ds[i]["B"] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
    return [tiles[i % len(tiles)] for i in range(n)]


def real_statistics(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """Cold vs warm real-feature cache for FID's real-image statistics."""
    from aircolor.metrics.cache import RealFeatureCache
    from aircolor.metrics.evaluation import real_features
    from aircolor.metrics.features import extract_features

    n, size = (16, 256) if quick else (512, 256)
    batch_size = 32
    weights, source = inception_weights(work)
    root = prepared(work, size)
    reals = real_tiles(root, n)
    # The training loop's key: manifest hash, split and size (no pixel hashing on either path).
    key = f"{hashlib.sha256((root / 'manifest.parquet').read_bytes()).hexdigest()[:16]}:bench{n}:{size}"
    caches = Path(work) / "bench-feature-cache"

    def call(cache: RealFeatureCache, expect_hit: bool) -> float:
        sync(device)
        t0 = time.perf_counter()
        features, hit = real_features(reals, weights=weights, real_key=key, cache=cache, device=device,
                                      batch_size=batch_size)
        sync(device)
        seconds = time.perf_counter() - t0
        if hit != expect_hit or len(features) != n:
            raise RuntimeError(f"real_features: cache hit {hit} (expected {expect_hit}), {len(features)} rows")
        return seconds

    def fresh() -> RealFeatureCache:
        return RealFeatureCache(caches / uuid.uuid4().hex[:12])

    # Warm-up: one batch builds the extractor, so cold_s is extraction + store, not weight loading.
    extract_features(reals[:batch_size], weights=weights, device=device, batch_size=batch_size)
    cold, warm, memory = [], [], []
    for _ in range(repeats):
        cache = fresh()
        cold.append(call(cache, False))
        memory.append(call(cache, True))
        warm.append(call(RealFeatureCache(cache.root), True))
    shutil.rmtree(caches, ignore_errors=True)
    cold_s, warm_s, memory_s = median(cold), median(warm), median(memory)
    config = {"images": n, "image_px": size, "batch_size": batch_size, "weights": source, "device": str(device),
              "real_key": "manifest", "threads": torch.get_num_threads(), "repeats": repeats, "warmup": 1}
    metrics = {"cold_s": cold_s, "warm_s": warm_s, "speedup": cold_s / warm_s, "warm_memory_s": memory_s,
               "cold_images_per_s": n / cold_s}
    notes = {"cold_s": "real_features with an empty cache folder: Inception extraction + writing the .npz "
                       "(extractor already loaded)",
             "warm_s": "same key, a new RealFeatureCache on that folder (what a new sweep trial sees): .npz read",
             "speedup": "cold_s / warm_s",
             "warm_memory_s": "same key, same RealFeatureCache instance (a later evaluation in the same run)",
             "cold_images_per_s": "images / cold_s"}
    return [record(SECTION, "real_statistics", config, metrics, notes)]


CASES: dict[str, Callable[..., list[dict]]] = {"inception_features": inception_features,
                                               "real_statistics": real_statistics}
