"""What the report's sections share: options, the context (rankings, splits), number formatting and labels."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import stats
from analysis.runs import Study

INCEPTION_METRICS = ("fid", "kid", "is")
NONSTANDARD = ("FID, IS and KID were computed with NON-STANDARD Inception weights (not torch-fidelity's "
               "pretrained pt_inception-2015-12-05): they are not comparable with published values, and random "
               "weights cannot judge color. Metrics marked * are affected; judge color with Delta E 2000, PSNR and "
               "SSIM.")


@dataclass
class ReportOptions:
    metric: str | None = None   # None: the sweep's own metric (its parent run's sweep.metric), else fid
    metric_reason: str = ""      # why the report ranks by ``metric`` (filled in by build_report)
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


SPLIT_NAMES = {"val": "validation", "test": "test"}


def split_for(trials: pd.DataFrame, metric: str) -> str:
    """The split the final tables use for ``metric``: ``test`` when a completed trial has its ``test.*`` value
    (held out, scored once), else ``val`` (old runs, or every trial stopped early)."""
    key = stats.METRICS[metric].key_on("test")
    if key not in trials:
        return "val"
    done = trials[trials["outcome"] == "completed"]
    return "test" if pd.to_numeric(done[key], errors="coerce").notna().any() else "val"


def available_metrics(trials: pd.DataFrame, split: str | None = None) -> list[str]:
    """Metrics some trial logged, on ``split`` (``val`` / ``test``) or, when None, on either."""
    splits = stats.SPLITS if split is None else (split,)
    return [m for m, spec in stats.METRICS.items()
            if any(spec.key_on(s) in trials and trials[spec.key_on(s)].notna().any() for s in splits)]


def is_better(mean: float, baseline: float | None, mode: str) -> bool | None:
    if baseline is None or mean is None or math.isnan(mean):
        return None
    return mean < baseline if mode == "min" else mean > baseline


def config_means(trials: pd.DataFrame, key: str) -> dict[str, float]:
    """Each configuration's mean of ``key`` over its completed trials that logged it."""
    if key not in trials:
        return {}
    done = trials[(trials["outcome"] == "completed")].assign(_v=pd.to_numeric(trials[key], errors="coerce"))
    return done.dropna(subset=["_v"]).groupby("config")["_v"].mean().to_dict()


@dataclass
class Context:
    """What every section reads: the study, the options, and the rankings computed once.

    ``rankings`` are the final tables (each metric on ``splits[metric]``: test when logged, else validation);
    ``selection`` ranks the same metrics on validation, the split ASHA / Optuna / ``sweep promote`` selected on,
    which decides the "best" configuration.
    """

    study: Study
    opts: ReportOptions
    figs: Path
    splits: dict[str, str]
    rankings: dict[str, pd.DataFrame] = field(default_factory=dict)
    selection: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def trials(self) -> pd.DataFrame:
        return self.study.trials

    @property
    def ns(self) -> bool:
        return self.study.nonstandard_weights

    @property
    def primary(self) -> str:
        return self.opts.metric

    @property
    def split(self) -> str:
        """The split of the primary metric's final table (and of the headline)."""
        return self.splits.get(self.primary, "val")

    def split_of(self, metric: str) -> str:
        return self.splits.get(metric, "val")

    def key(self, metric: str, split: str | None = None) -> str:
        return stats.METRICS[metric].key_on(split or self.split_of(metric))

    def label(self, metric: str) -> str:
        return metric_label(metric, self.ns)

    def baselines(self, metric: str, split: str | None = None) -> dict[str, float | None]:
        return stats.baseline_values(self.trials, metric, split=split or self.split_of(metric))

    @property
    def best(self) -> str | None:
        """The configuration selected on validation by the primary metric (the final ranking's first if none)."""
        for frame in (self.selection.get(self.primary), self.rankings.get(self.primary)):
            if frame is not None and len(frame):
                return str(frame.iloc[0]["config"])
        return None

    def best_run(self, config: str) -> pd.Series | None:
        """The trial of ``config`` with the best validation value of the primary metric (its best seed; the final
        split's value when no trial logged validation); None when it has none."""
        spec = stats.METRICS[self.primary]
        t = self.trials
        for key in (spec.key, self.key(self.primary)):
            if key in t:
                g = t[(t["config"] == config) & (t["outcome"] == "completed") & t[key].notna()]
                if len(g):
                    return g.sort_values(key, ascending=spec.mode == "min", kind="stable").iloc[0]
        return None

    def picks(self) -> pd.DataFrame | None:
        """The selection ranking of the primary metric (what "best" and "top k" follow), else the final one."""
        for frame in (self.selection.get(self.primary), self.rankings.get(self.primary)):
            if frame is not None and len(frame):
                return frame
        return None


def family_keys(family: str | None) -> tuple[list[str], list[str]]:
    from aircolor.models.zoo import MODELS

    try:
        cls = MODELS.get(family)
    except Exception:
        return [], []
    return list(cls.adversarial_keys), list(cls.discriminator_keys)


def factor_columns(trials: pd.DataFrame) -> list[str]:
    return [c for c in trials.columns if c.startswith("factor.") and trials[c].nunique(dropna=True) >= 2]
