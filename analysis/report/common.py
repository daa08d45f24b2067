"""What the report's sections share: options, number formatting, metric labels and the baselines' values."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import stats

INCEPTION_METRICS = ("fid", "kid", "is")
NONSTANDARD = ("FID, IS and KID were computed with NON-STANDARD Inception weights (not torch-fidelity's "
               "pretrained pt_inception-2015-12-05): they are not comparable with published values, and random "
               "weights cannot judge color. Metrics marked * are affected; judge color with Delta E 2000, PSNR and "
               "SSIM.")


@dataclass
class ReportOptions:
    metric: str = "fid"
    top_k: int = 3
    n_boot: int = 10_000
    seed: int = 0
    data_root: Path | None = None
    samples: bool = True
    device: str = "cpu"
    n_val_samples: int = 3
    n_hist_samples: int = 3


def fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, (float, np.floating)):
        return f"{x:.{digits}g}" if abs(x) < 1e5 else f"{x:.3e}"
    return str(x)


def when(ts: Any) -> str:
    return "-" if ts is None or pd.isna(ts) else f"{pd.Timestamp(ts):%Y-%m-%d %H:%M:%S} UTC"


def cell_text(x: Any) -> str:
    """A string cell: '' for None/NaN (pandas turns missing tags into NaN)."""
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)


def metric_label(name: str, nonstandard: bool) -> str:
    spec = stats.METRICS[name]
    return spec.label + ("*" if nonstandard and name in INCEPTION_METRICS else "")


def available_metrics(trials: pd.DataFrame) -> list[str]:
    return [m for m, spec in stats.METRICS.items() if spec.key in trials and trials[spec.key].notna().any()]


def baseline_value(trials: pd.DataFrame, name: str) -> float | None:
    key = "baseline." + stats.METRICS[name].key
    if key not in trials:
        return None
    values = trials[key].dropna()
    return float(values.mean()) if len(values) else None


def is_better(mean: float, baseline: float | None, mode: str) -> bool | None:
    if baseline is None or mean is None or math.isnan(mean):
        return None
    return mean < baseline if mode == "min" else mean > baseline


def family_keys(family: str | None) -> tuple[list[str], list[str]]:
    from aircolor.models.zoo import MODELS

    try:
        cls = MODELS.get(family)
    except Exception:
        return [], []
    return list(cls.adversarial_keys), list(cls.discriminator_keys)


def factor_columns(trials: pd.DataFrame) -> list[str]:
    return [c for c in trials.columns if c.startswith("factor.") and trials[c].nunique(dropna=True) >= 2]
