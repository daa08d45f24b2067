"""The study's metrics: FID, IS and KID (torch-fidelity's Inception), and PSNR/SSIM/Delta E 2000/colorfulness.

Entry points (imported on first use, so that ``aircolor --help`` does not pay for torch):

* :func:`evaluate` (``aircolor.metrics.evaluation``): everything for one set of generated images, as a flat
  ``dict[str, float]`` plus provenance; the training loop's one call.
* :func:`extract_features`, :func:`fid`, :func:`inception_score`, :func:`kid`: the pieces, on Inception features.
* :class:`RealFeatureCache`: real-image features computed once per (images, weights) and kept on disk.
* :func:`resolve_weights`, :func:`weights_id`, :func:`is_standard`, :func:`make_random_weights`: which Inception
  weights are used, and a random stand-in for offline machines and tests.
* ``aircolor metrics FAKE_DIR REAL_DIR``: the same numbers for two folders (``aircolor.metrics.cli``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluate": "evaluation", "Evaluation": "evaluation",
    "Features": "features", "extract_features": "features",
    "Score": "scores", "fid": "scores", "inception_score": "scores", "kid": "scores",
    "RealFeatureCache": "cache", "RealKey": "cache",
    "psnr": "paired", "ssim": "paired", "delta_e2000": "paired", "colorfulness": "paired",
    "paired_metrics": "paired",
    "resolve_weights": "weights", "weights_id": "weights", "is_standard": "weights",
    "make_random_weights": "weights", "STANDARD_SHA256": "weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'aircolor.metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(f"aircolor.metrics.{_EXPORTS[name]}"), name)
