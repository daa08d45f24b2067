"""FID, Inception Score and KID on Inception features: pure functions around torch-fidelity's own math.

Each function takes :class:`~aircolor.metrics.features.Features` (or plain arrays, in tests) and returns a
:class:`Score` that records the value, the number of real and generated images and the weights id, so that no
number travels without saying what it was computed from. The computations are torch-fidelity 0.4.0's
(``fid_features_to_statistics``/``fid_statistics_to_metric``, ``isc_features_to_metric``,
``kid_features_to_metric``), called the way ``torch_fidelity.calculate_metrics(input1=fake, input2=real)``
calls them, with the same defaults (IS: 10 splits, shuffled with seed 2020; KID: 100 subsets, cubic polynomial
kernel, seed 2020). Features are passed in float64, where torch-fidelity's own pipeline keeps float32, so values
agree with it to float32 rounding (relative 1e-6 or so), not bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Union

import numpy as np
import torch

from aircolor.metrics.features import Features

IS_SPLITS = 10
KID_SUBSETS = 100
RNG_SEED = 2020  # torch-fidelity's default rng_seed (IS shuffling, KID subsets)
UNKNOWN_WEIGHTS = "unknown"

FeatureInput = Union[Features, np.ndarray]


@dataclass(frozen=True)
class Score:
    """A metric value with its spread (``std``, ``None`` for FID) and what it was computed from."""

    name: str
    value: float
    std: float | None
    n_real: int
    n_fake: int
    weights_id: str
    details: Mapping[str, object] = field(default_factory=dict)


def _pool(f: FeatureInput) -> np.ndarray:
    arr = f.pool if isinstance(f, Features) else np.asarray(f)
    if arr.ndim != 2:
        raise ValueError(f"features must be a 2-D (n, d) array, got shape {arr.shape}")
    return arr.astype(np.float64, copy=False)


def _logits(f: FeatureInput) -> np.ndarray:
    arr = f.logits if isinstance(f, Features) else np.asarray(f)
    if arr.ndim != 2:
        raise ValueError(f"logits must be a 2-D (n, classes) array, got shape {arr.shape}")
    return arr.astype(np.float64, copy=False)


def _weights(*fs: FeatureInput) -> str:
    """The common weights id of the inputs; mixing features of different extractors is a bug."""
    ids = {f.weights_id for f in fs if isinstance(f, Features)}
    if len(ids) > 1:
        raise ValueError(f"features come from different Inception weights ({', '.join(sorted(ids))}); "
                         f"compute both sets with the same weights")
    return ids.pop() if ids else UNKNOWN_WEIGHTS


def _need(n: int, at_least: int, what: str) -> None:
    if n < at_least:
        raise ValueError(f"{what} needs at least {at_least} images, got {n}")


def _fid_low_rank(real: np.ndarray, fake: np.ndarray) -> float:
    """FID from the features themselves when there are fewer images than feature dimensions.

    With centred features ``X_r`` (n_r x d) and ``X_g``, ``S_r S_g = X_r^T (X_r X_g^T) X_g / c`` with
    ``c = (n_r - 1)(n_g - 1)``; its non-zero eigenvalues are those of ``M M^T / c`` with ``M = X_r X_g^T``
    (n_r x n_g), i.e. the squared singular values of ``M / sqrt(c)``. So ``Tr (S_r S_g)^(1/2)`` is the sum of those
    singular values: exact, and an n x n SVD instead of the eigenvalues of a 2048 x 2048 product (seconds on a
    CPU, for every evaluation of every trial).
    """
    n_r, n_g = len(real), len(fake)
    xr, xg = real - real.mean(0), fake - fake.mean(0)
    c = (n_r - 1) * (n_g - 1)
    tr_sqrt = float(np.linalg.svd(xr @ xg.T / np.sqrt(c), compute_uv=False).sum())
    mean_term = float(((real.mean(0) - fake.mean(0)) ** 2).sum())
    tr_r = float((xr ** 2).sum() / (n_r - 1))
    tr_g = float((xg ** 2).sum() / (n_g - 1))
    return mean_term + tr_r + tr_g - 2 * tr_sqrt


def fid(f_real: FeatureInput, f_fake: FeatureInput) -> Score:
    """Frechet Inception Distance (Heusel et al. 2017, arXiv:1706.08500), lower is better.

    The Frechet distance between Gaussians fitted to the pool features:
    ``FID = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))``, with sample covariances (n - 1). The trace
    of the square root is the sum of square roots of the eigenvalues of ``S_r S_g``. With fewer images than
    feature dimensions (every sweep evaluation on a few hundred tiles) it comes exactly from an n x n SVD
    (:func:`_fid_low_rank`); otherwise from torch-fidelity's own eigenvalue computation.
    """
    real, fake, wid = _pool(f_real), _pool(f_fake), _weights(f_real, f_fake)
    _need(len(real), 2, "FID (real set)")
    _need(len(fake), 2, "FID (generated set)")
    if min(len(real), len(fake)) < real.shape[1]:
        value = _fid_low_rank(real, fake)
        return Score("fid", max(0.0, value), None, len(real), len(fake), wid, {"method": "low-rank svd"})
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    stats_fake = fid_features_to_statistics(torch.from_numpy(fake))
    stats_real = fid_features_to_statistics(torch.from_numpy(real))
    value = fid_statistics_to_metric(stats_fake, stats_real, verbose=False)[KEY_METRIC_FID]
    return Score("fid", float(value), None, len(real), len(fake), wid, {"method": "torch-fidelity eigvals"})


def inception_score(logits: FeatureInput, splits: int = IS_SPLITS, seed: int = RNG_SEED) -> Score:
    """Inception Score (Salimans et al. 2016, arXiv:1606.03498), higher is better.

    ``IS = exp(E_x KL(p(y|x) || p(y)))`` on the softmax of the unbiased logits, computed on each of ``splits``
    chunks of the (seeded, shuffled) images; the result is the mean and the population std over chunks. Never
    more chunks than images: ``splits = min(splits, n)``, so a chunk is never empty.
    """
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    arr = _logits(logits)
    _need(len(arr), 1, "the Inception Score")
    used = min(splits, len(arr))
    out = isc_features_to_metric(torch.from_numpy(arr), splits=used, shuffle=True, rng_seed=seed)
    return Score("is", out[KEY_METRIC_ISC_MEAN], out[KEY_METRIC_ISC_STD], 0, len(arr), _weights(logits),
                 {"splits": used})


def kid(f_real: FeatureInput, f_fake: FeatureInput, subset_size: int = 1000, subsets: int = KID_SUBSETS,
        seed: int = RNG_SEED) -> Score:
    """Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs", arXiv:1801.01401).

    The unbiased estimator of the squared MMD with the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``
    (d = 2048), averaged over ``subsets`` random subsets of ``m`` images drawn without replacement from each set
    (mean and population std over subsets). ``m = min(subset_size, n_real, n_fake)``, so small evaluation sets
    still get a value; m is recorded in ``details``. Slightly negative values are valid (unbiased estimator).
    """
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    real, fake, wid = _pool(f_real), _pool(f_fake), _weights(f_real, f_fake)
    m = min(subset_size, len(real), len(fake))
    _need(m, 2, "KID (each set)")
    out = kid_features_to_metric(torch.from_numpy(fake), torch.from_numpy(real), kid_subsets=subsets,
                                 kid_subset_size=m, rng_seed=seed, verbose=False)
    return Score("kid", out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD], len(real), len(fake), wid,
                 {"subset_size": m, "subsets": subsets})


def fid_sample_sizes(n: int, points: int) -> list[int]:
    """``points`` sample sizes spread evenly over 1/N between n/5 and n (at least 2 images each); ``[]`` when
    fewer than 3 distinct sizes are possible (an extrapolation needs 3)."""
    if points < 3 or n < 6:
        return []
    low = max(2, n // 5)
    inv = np.linspace(1.0 / low, 1.0 / n, points)
    sizes = sorted({int(round(1.0 / x)) for x in inv})
    return sizes if len(sizes) >= 3 else []


def fid_at_sizes(f_real: FeatureInput, f_fake: FeatureInput, sizes: list[int], seed: int = RNG_SEED) -> dict[int, float]:
    """FID of the whole real set against the first N of one seeded permutation of the generated set, per N.

    Chong & Forsyth ("Effectively Unbiased FID and Inception Score and where to find them", CVPR 2020) show that
    FID_N is linear in 1/N; the report fits that line to these points and extrapolates to N = infinity. Only the
    generated set is subsampled (the real statistics stay fixed), as in their paper.
    """
    fake = _pool(f_fake)
    order = np.random.default_rng(seed).permutation(len(fake))
    out: dict[int, float] = {}
    for n in sizes:
        if 2 <= n <= len(fake):
            out[n] = fid(f_real, fake[order[:n]]).value
    return out
