"""The ranking chart: each configuration's mean with its confidence interval, against the baseline."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.figures.base import (_check_mode, _direction, _flag, _floats, _label_width, _new_figure, _plain,
                                   _row_ends, _whiskers, save_figure)

BASELINE_LABEL = "gray copy (no colorization)"
#: Line styles of the prior reference lines, in the order given (the gray copy is the black dashed line).
PRIOR_STYLES = (("tab:red", ":"), ("tab:purple", "-."), ("tab:brown", (0, (5, 1, 1, 1, 1, 1))))


def beats_baseline(mean: float, baseline: float, mode: str) -> bool:
    """True when ``mean`` is strictly better than the gray-copy ``baseline`` under ``mode`` ("min"/"max").

    Strict because merely tying the do-nothing baseline is no colorization; a NaN mean never beats it.
    """
    _check_mode(mode)
    mean, baseline = float(mean), float(baseline)
    if not (np.isfinite(mean) and np.isfinite(baseline)):
        return False
    return mean < baseline if mode == "min" else mean > baseline


def ranking_chart(ranking: pd.DataFrame, *, metric_label: str, mode: str, out_dir: Path, stem: str,
                  baseline: float | None = None, flag: str | None = None,
                  priors: Mapping[str, float] | None = None) -> list[Path]:
    """Horizontal bars of each config's mean (best at top) with CI whiskers, ``n=`` per bar and the baselines.

    ``baseline`` is the gray copy (black dashed line); ``priors`` maps a legend label to a prior's value (each its
    own colour and line style). Bars that do not beat the gray copy are grey and hatched ``//``, so "trained but
    useless" is visible at a glance; bars that beat it but not the strongest (best) prior are orange and hatched
    ``..``. A dotted rule between two ranks marks a statistically distinguishable gap.
    """
    _check_mode(mode)
    if ranking.empty:
        return []
    data = ranking.sort_values("rank", kind="stable").reset_index(drop=True)
    labels = [f"{_rank_text(rank)}. {_plain(config)}" for rank, config in zip(data["rank"], data["config"])]
    priors = {label: float(v) for label, v in (priors or {}).items() if v is not None and np.isfinite(v)}
    extra = 0.5 if priors else 0.0  # a second legend row, and room for the prior lines' labels
    fig = _new_figure(width=_label_width(labels, base=6.0 + 2 * extra),
                      height=2.0 + 0.3 * len(data) + (0.4 if flag else 0) + extra)
    ax = fig.add_subplot()
    handles = _ranking_bars(ax, data, mode=mode, baseline=baseline, strongest=_strongest(priors.values(), mode),
                            references=list(priors.values()))
    handles += _rank_gaps(ax, data)
    ax.set_yticks(np.arange(len(data)), labels)
    ax.set_ylim(len(data) - 0.5, -0.5)  # rank 1 at the top
    ax.set_xlabel(f"{metric_label} ({_direction(mode)}); whiskers: confidence interval of the mean")
    fig.suptitle(f"Ranking by {metric_label}")
    _flag(ax, flag)
    lines = [ax.axvline(value, color=color, linestyle=style, linewidth=1.6, label=_plain(label))
             for (label, value), (color, style) in zip(priors.items(), PRIOR_STYLES)]
    if baseline is not None:
        lines.insert(0, ax.axvline(baseline, color="black", linestyle="--", linewidth=1.2, label=BASELINE_LABEL))
    handles = lines + handles
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize="small")
    return save_figure(fig, out_dir, stem)


def _rank_text(rank: object) -> str:
    value = float(rank) if rank is not None else np.nan
    return str(int(value)) if np.isfinite(value) and value.is_integer() else str(rank)


def _strongest(values: Iterable[float], mode: str) -> float | None:
    values = list(values)
    if not values:
        return None
    return min(values) if mode == "min" else max(values)


def _ranking_bars(ax: Axes, data: pd.DataFrame, *, mode: str, baseline: float | None, strongest: float | None,
                  references: list[float]) -> list[Patch]:
    """Draw bars, whiskers and ``n=`` labels; return the legend handles for the bars that lose to a baseline."""
    y = np.arange(len(data))
    means, low, high = _floats(data["mean"]), _floats(data["ci_low"]), _floats(data["ci_high"])
    bars = ax.barh(y, np.nan_to_num(means), color="tab:blue", edgecolor="tab:blue", height=0.7)
    losing = [baseline is not None and not beats_baseline(m, baseline, mode) for m in means]
    behind = [not lose and strongest is not None and not beats_baseline(m, strongest, mode)
              for m, lose in zip(means, losing)]
    for bar, loses, trails in zip(bars, losing, behind):
        if loses:
            bar.set(facecolor="lightgrey", edgecolor="0.35", hatch="//")
        elif trails:
            bar.set(facecolor="moccasin", edgecolor="darkorange", hatch="..")
    _whiskers(ax, y=y, low=low, high=high)
    ends = _row_ends(means, high)
    for row, (end, n) in enumerate(zip(ends, _floats(data["n"]))):
        text = f"n={int(n)}" if np.isfinite(n) else "n=?"
        ax.annotate(text, xy=(end, row), xytext=(4, 0), textcoords="offset points", va="center", fontsize="small")
    drawn = [0.0, *references] + ([] if baseline is None else [baseline])
    _fit_xlim(ax, np.concatenate([means, low, high, ends, drawn]))
    handles = []
    if any(losing):
        handles.append(Patch(facecolor="lightgrey", edgecolor="0.35", hatch="//", label="does not beat gray copy"))
    if any(behind):
        handles.append(Patch(facecolor="moccasin", edgecolor="darkorange", hatch="..",
                             label="does not beat the strongest prior"))
    return handles


def _fit_xlim(ax: Axes, xs: np.ndarray) -> None:
    """x range over every drawn value, with room on the right for the ``n=`` labels."""
    finite = xs[np.isfinite(xs)]
    left, right = float(finite.min()), float(finite.max())
    span = (right - left) or 1.0
    ax.set_xlim(left - 0.02 * span if left < 0 else left, right + 0.15 * span)


def _rank_gaps(ax: Axes, data: pd.DataFrame) -> list[Line2D]:
    """Dotted rules between ranks the statistics call distinguishable; return their legend handle."""
    if "distinguishable_from_next" not in data:
        return []
    gaps = [row for row, flag in enumerate(data["distinguishable_from_next"]) if flag is True or flag is np.True_]
    gaps = [row for row in gaps if row < len(data) - 1]
    for row in gaps:
        ax.axhline(row + 0.5, color="0.4", linestyle=":", linewidth=1)
    return [Line2D([], [], color="0.4", linestyle=":", label="significant gap to next rank")] if gaps else []
