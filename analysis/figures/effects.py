"""The factor-effects chart: each level's difference from the factor's other levels, with its CI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from analysis.figures.base import (SIGNIFICANCE, _floats, _label_width, _new_figure, _plain, _row_ends, _whiskers,
                                   save_figure)


def effects_chart(effects: pd.DataFrame, *, metric_label: str, out_dir: Path, stem: str) -> list[Path]:
    """One panel per factor: each level's difference (level vs the rest) with CI, zero line, '*' if significant.

    Significant means Holm-adjusted p < 0.05. Empty ``effects`` (e.g. a sweep over a single config) writes
    nothing and returns ``[]``.
    """
    if effects.empty:
        return []
    factors = list(dict.fromkeys(effects["factor"]))
    sizes = [int((effects["factor"] == factor).sum()) for factor in factors]
    labels = [_effect_label(row) for row in effects.itertuples(index=False)]
    fig = _new_figure(width=_label_width(labels, base=6.0), height=1.4 + 0.35 * sum(sizes) + 0.6 * len(factors))
    axes = fig.subplots(len(factors), 1, sharex=True, squeeze=False, height_ratios=[s + 1 for s in sizes])[:, 0]
    for ax, factor in zip(axes, factors):
        _effect_panel(ax, effects[effects["factor"] == factor].reset_index(drop=True), factor=factor)
    axes[-1].set_xlabel(f"difference in mean {metric_label} (level minus the other levels)")
    fig.suptitle(f"Factor effects on {metric_label}   (* Holm-adjusted p < {SIGNIFICANCE:g})")
    return save_figure(fig, out_dir, stem)


def _effect_label(row: object) -> str:
    n_level, n_rest = _floats([row.n_level, row.n_rest])
    counts = f"n={n_level:.0f} vs {n_rest:.0f}" if np.isfinite(n_level) and np.isfinite(n_rest) else "n=?"
    return f"{_plain(row.level)} ({counts})"


def _effect_panel(ax: Axes, part: pd.DataFrame, *, factor: object) -> None:
    y = np.arange(len(part))
    diff, low, high = _floats(part["diff"]), _floats(part["ci_low"]), _floats(part["ci_high"])
    significant = _floats(part["p_holm"]) < SIGNIFICANCE  # NaN compares False
    ax.axvline(0.0, color="black", linewidth=0.8)
    _whiskers(ax, y=y, low=low, high=high)
    ax.scatter(diff, y, color=np.where(significant, "tab:red", "tab:blue"), zorder=4)
    for row in np.flatnonzero(significant):
        ax.annotate("*", xy=(_row_ends(diff, high)[row], row), xytext=(5, 0), textcoords="offset points",
                    va="center", color="tab:red", fontsize="large", fontweight="bold")
    ax.set_yticks(y, [_effect_label(row) for row in part.itertuples(index=False)])
    ax.set_ylim(len(part) - 0.4, -0.6)
    ax.margins(x=0.12)
    ax.set_title(_plain(factor), loc="left", fontsize="medium")
    ax.grid(True, axis="x", alpha=0.3)
