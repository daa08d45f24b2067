"""One call that computes all of the study's metrics for a set of generated images: :func:`evaluate`.

Usage from the training loop::

    from aircolor.metrics import evaluate

    result = evaluate(fake_u8, real_u8, cfg.metrics, real_key=f"{manifest_sha256}:test", device="cuda")
    mlflow.log_metrics(result.metrics, step=epoch)      # {"fid": ..., "is_mean": ..., "psnr": ..., "n_fake": ...}
    mlflow.log_params(result.info)                      # {"weights_sha256": ..., "nonstandard_weights": ...}

Arguments:

* ``fake``: the generated images, uint8 RGB, as an (N, 3, H, W) tensor, or a list of such batches or of
  (3, H, W) images (any device; 1-channel images are repeated to 3 channels).
* ``real``: the matching real images in the same forms, or ``None`` when there is no ground truth (the historical
  photos): then only IS and colorfulness are computed. For the gray -> color direction the real set is the color
  ground truth. With ``paired=True`` (default) ``real[i]`` must be the ground truth of ``fake[i]`` (same size), and
  PSNR/SSIM/Delta E are computed; pass ``paired=False`` for an unpaired real set (FID/KID only).
* ``config``: a :class:`~aircolor.config.MetricsConfig`: ``fid``/``isc``/``kid``/``paired`` switch metrics on,
  ``kid_subset_size`` (capped by the image counts), ``batch_size`` (Inception batches), ``max_images`` (only the
  first N generated and real images are used) and ``inception_weights`` (else ``$AIRCOLOR_INCEPTION_WEIGHTS``,
  else torch-fidelity's download).
* ``real_key``: a stable name of the real set (e.g. the dataset manifest hash plus the split), used as the
  real-features cache key together with the image count and size and the weights' sha256. ``None``: the images'
  bytes are hashed instead (a fraction of a second for 1000 tiles).
* ``cache``: a :class:`~aircolor.metrics.cache.RealFeatureCache` or its folder; default
  ``$AIRCOLOR_CACHE_DIR/metrics`` (else ``~/.cache/aircolor/metrics``). Point it at a shared folder for sweeps.

Returns an :class:`Evaluation` ``(metrics, info)``. ``metrics`` is a flat ``dict[str, float]`` with the keys that
were computed among ``fid``, ``fid_n<N>`` (FID of N generated images, at ``config.fid_points`` sizes
from n/5 to n, for an FID-infinity extrapolation), ``is_mean``, ``is_std``, ``kid_mean``, ``kid_std``, ``psnr``, ``ssim``,
``delta_e2000``, ``colorfulness`` (generated images), ``colorfulness_real``, and always ``n_fake`` and ``n_real``
(0 without a real set). ``info`` says how: ``weights_sha256`` (``"standard"`` for torch-fidelity's download),
``nonstandard_weights`` (True: FID/IS/KID are not comparable with published values), ``extractor``,
``is_splits``, ``kid_subset_size`` and ``real_cache_hit``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from aircolor.config import MetricsConfig
from aircolor.metrics.cache import RealFeatureCache, RealKey, hash_images, image_size_label
from aircolor.metrics.features import EXTRACTOR_NAME, Features, ImageInput, extract_features, iter_images
from aircolor.metrics.paired import mean_colorfulness, paired_metrics
from aircolor.metrics.scores import fid, fid_at_sizes, fid_sample_sizes, inception_score, kid
from aircolor.metrics.weights import is_standard, resolve_weights, weights_id, weights_token

_CACHES: dict[Path, RealFeatureCache] = {}


class Evaluation(NamedTuple):
    """``metrics``: flat name -> value; ``info``: weights sha256, non-standard flag and other provenance."""

    metrics: dict[str, float]
    info: dict[str, Any]


def _images(images: ImageInput, max_images: int | None) -> list[torch.Tensor]:
    """(3, H, W) CPU views of the images (whole batches are moved off the GPU at once), at most ``max_images``."""
    items = [images] if isinstance(images, (torch.Tensor, np.ndarray)) else list(images)
    items = [item.detach().cpu() if isinstance(item, torch.Tensor) else item for item in items]
    out = list(iter_images(items))
    return out[:max_images] if max_images is not None else out


def _hwc(images: list[torch.Tensor]) -> list[np.ndarray]:
    return [im.permute(1, 2, 0).numpy() for im in images]


def _cache(cache: RealFeatureCache | str | Path | None) -> RealFeatureCache:
    """The given cache, or one shared instance per folder (so its in-memory layer lasts across evaluations)."""
    if isinstance(cache, RealFeatureCache):
        return cache
    probe = RealFeatureCache(cache)
    return _CACHES.setdefault(probe.root.resolve(), probe)


def real_features(reals: list[torch.Tensor], *, weights: Path | None, real_key: str | None,
                  cache: RealFeatureCache, device: str | torch.device, batch_size: int) -> tuple[Features, bool]:
    """Features of the real set through the cache; the bool says whether they came from the cache."""
    source = f"key:{real_key}" if real_key is not None else f"pixels:{hash_images(reals)}"
    key = RealKey(source=source, count=len(reals), size=image_size_label(reals), weights=weights_token(weights))
    return cache.get_or_compute(
        key, lambda: extract_features(reals, weights=weights, device=device, batch_size=batch_size))


def _inception_metrics(fakes: list[torch.Tensor], reals: list[torch.Tensor] | None, config: MetricsConfig, *,
                       weights: Path | None, real_key: str | None, cache: RealFeatureCache,
                       device: str | torch.device,
                       fake_key: str | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """FID, IS and KID as switched on in ``config`` (FID and KID only with a real set)."""
    metrics: dict[str, float] = {}
    info: dict[str, Any] = {}
    distances = reals is not None and (config.fid or config.kid)
    if not (config.isc or distances):
        return metrics, info
    if fake_key is not None:  # a fixed image set (the gray-copy baseline): its features come from the cache too
        f_fake, info["fake_cache_hit"] = real_features(fakes, weights=weights, real_key=fake_key, cache=cache,
                                                       device=device, batch_size=config.batch_size)
    else:
        f_fake = extract_features(fakes, weights=weights, device=device, batch_size=config.batch_size)
    f_real = None
    if distances and reals is not None:
        f_real, info["real_cache_hit"] = real_features(reals, weights=weights, real_key=real_key, cache=cache,
                                                       device=device, batch_size=config.batch_size)
    if config.fid and f_real is not None:
        metrics["fid"] = fid(f_real, f_fake).value
        sizes = fid_sample_sizes(len(fakes), config.fid_points)
        metrics.update({f"fid_n{n}": v for n, v in fid_at_sizes(f_real, f_fake, sizes).items()})
    if config.isc:
        score = inception_score(f_fake)
        metrics.update(is_mean=score.value, is_std=float(score.std or 0.0))
        info["is_splits"] = score.details["splits"]
    if config.kid and f_real is not None:
        score = kid(f_real, f_fake, subset_size=config.kid_subset_size)
        metrics.update(kid_mean=score.value, kid_std=float(score.std or 0.0))
        info["kid_subset_size"] = score.details["subset_size"]
    return metrics, info


def evaluate(fake: ImageInput, real: ImageInput | None, config: MetricsConfig, *, real_key: str | None = None,
             paired: bool = True, cache: RealFeatureCache | str | Path | None = None,
             device: str | torch.device = "cpu", fake_key: str | None = None) -> Evaluation:
    """All metrics of ``fake`` against ``real`` (see the module docstring for every argument and key)."""
    weights = resolve_weights(config.inception_weights)
    fakes = _images(fake, config.max_images)
    reals = None if real is None else _images(real, config.max_images)
    if not fakes:
        raise ValueError("evaluate needs at least one generated image")
    info: dict[str, Any] = {"weights_sha256": weights_id(weights), "nonstandard_weights": not is_standard(weights),
                            "extractor": EXTRACTOR_NAME}
    metrics, more_info = _inception_metrics(fakes, reals, config, weights=weights, real_key=real_key,
                                            cache=_cache(cache), device=device, fake_key=fake_key)
    info.update(more_info)
    fake_hwc = _hwc(fakes)
    if reals is not None and paired and config.paired:
        metrics.update(paired_metrics(fake_hwc, _hwc(reals)))
    metrics["colorfulness"] = mean_colorfulness(fake_hwc)
    if reals:
        metrics["colorfulness_real"] = mean_colorfulness(_hwc(reals))
        metrics["colorfulness_gap"] = abs(metrics["colorfulness"] - metrics["colorfulness_real"])
    metrics.update(n_fake=len(fakes), n_real=0 if reals is None else len(reals))
    return Evaluation(metrics, info)
