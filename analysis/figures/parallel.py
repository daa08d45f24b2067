"""Parallel coordinates: one axis per factor and the metric last, one line per trial."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

from analysis.figures.base import CUT_SHORT, _check_mode, _direction, _floats, _new_figure, _plain, save_figure

_NA_POS = -0.1  # where parallel_coordinates puts a missing value ("n/a") below each axis


@dataclass(frozen=True)
class _Axis:
    """One vertical axis: its name, each trial's height in [0, 1] (or ``_NA_POS``) and its tick labels."""

    name: str
    positions: np.ndarray
    ticks: list[tuple[float, str]]


def parallel_coordinates(trials: pd.DataFrame, *, factors: list[str], metric_key: str, metric_label: str,
                         mode: str, out_dir: Path, stem: str) -> list[Path]:
    """One vertical axis per factor plus the metric last; one line per trial coloured by the metric.

    ``factors`` are keys ("lr") or columns ("factor.lr"). The colormap is reversed for ``mode="min"`` so good
    trials always have the same colour; they are drawn last (on top). Trials that failed, stopped early or have
    no metric value are grey and dashed. Missing values sit at "n/a" below an axis.
    """
    _check_mode(mode)
    if trials.empty:
        return []
    if metric_key not in trials:
        raise ValueError(f"no metric column {metric_key!r} in trials; columns: {list(trials.columns)}")
    columns = [_factor_column(trials, factor) for factor in factors]
    metric = _floats(trials[metric_key])
    axes = [_factor_axis(trials[column], name=_plain(column.removeprefix("factor."))) for column in columns]
    axes.append(_numeric_axis(metric, name=metric_label, levels=False))
    fig = _new_figure(width=2.5 + 1.7 * len(axes), height=5.5)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis" if mode == "max" else "viridis_r"]
    finite = metric[np.isfinite(metric)]
    norm = Normalize(vmin=finite.min(), vmax=finite.max()) if finite.size else None
    cut = trials["outcome"].isin(CUT_SHORT).to_numpy() | ~np.isfinite(metric)
    _trial_lines(ax, axes, metric=metric, cut=cut, mode=mode, color=lambda v: cmap(norm(v)))
    _draw_axes(ax, axes)
    if norm is not None:
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=f"{metric_label} ({_direction(mode)})")
    if cut.any():
        grey = Line2D([], [], color="0.6", linestyle="--", label="failed / stopped early / no value")
        fig.legend(handles=[grey], loc="outside lower center", fontsize="small")
    fig.suptitle(f"{metric_label} by factor setting ({len(trials)} trials)")
    return save_figure(fig, out_dir, stem)


def _factor_column(trials: pd.DataFrame, factor: str) -> str:
    for column in (f"factor.{factor}", factor):
        if column in trials:
            return column
    known = [c for c in trials.columns if str(c).startswith("factor.")]
    raise ValueError(f"no column for factor {factor!r}; factor columns: {known}")


def _factor_axis(values: pd.Series, *, name: str) -> _Axis:
    """Numeric when every present value parses as a number (factors arrive as strings), else categorical."""
    present = values.dropna()
    numbers = _floats(values)
    if len(present) and np.isfinite(numbers[values.notna().to_numpy()]).all():
        return _numeric_axis(numbers, name=name, levels=True)
    levels = sorted({str(v) for v in present})
    spots = {level: (i / (len(levels) - 1) if len(levels) > 1 else 0.5) for i, level in enumerate(levels)}
    positions = np.array([spots[str(v)] if pd.notna(v) else _NA_POS for v in values], dtype=float)
    return _with_na(_Axis(name, positions, [(spots[level], _plain(level)) for level in levels]))


def _numeric_axis(values: np.ndarray, *, name: str, levels: bool) -> _Axis:
    """Min-max scaled, on a log scale when all values are positive and span more than a decade.

    ``levels``: label every distinct value when there are few (a grid's levels), else five even ticks.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return _with_na(_Axis(name, np.full(values.shape, _NA_POS), []))
    lo, hi = float(finite.min()), float(finite.max())
    log = lo > 0 and hi / lo > 10
    scale = np.log10 if log else (lambda x: x)

    def place(x: np.ndarray) -> np.ndarray:
        return (scale(x) - scale(lo)) / (scale(hi) - scale(lo)) if hi > lo else np.full(np.shape(x), 0.5)

    distinct = np.unique(finite)
    marks = distinct if levels and distinct.size <= 8 else (np.geomspace if log else np.linspace)(lo, hi, 5)
    marks = np.unique(marks) if hi > lo else distinct
    positions = np.where(np.isfinite(values), place(np.where(np.isfinite(values), values, lo)), _NA_POS)
    ticks = [(float(p), f"{m:.3g}") for p, m in zip(place(marks), marks)]
    return _with_na(_Axis(name, positions, ticks))


def _with_na(axis: _Axis) -> _Axis:
    """Add the "n/a" tick when some trial lacks a value (a factor that only applies to one model family)."""
    if (axis.positions == _NA_POS).any():
        return _Axis(axis.name, axis.positions, [*axis.ticks, (_NA_POS, "n/a")])
    return axis


def _trial_lines(ax: Axes, axes: list[_Axis], *, metric: np.ndarray, cut: np.ndarray, mode: str, color) -> None:
    """Grey dashed cut-short trials first, then coloured ones from worst to best so the best end on top."""
    xs = np.arange(len(axes))
    heights = np.column_stack([axis.positions for axis in axes])
    for row in np.flatnonzero(cut):
        ax.plot(xs, heights[row], color="0.6", linestyle="--", linewidth=1.0, alpha=0.8, zorder=2)
    good = np.flatnonzero(~cut)
    ranked = good[np.argsort(metric[good] if mode == "max" else -metric[good], kind="stable")]
    for row in ranked:
        ax.plot(xs, heights[row], color=color(metric[row]), linewidth=1.4, alpha=0.85, zorder=3)


def _draw_axes(ax: Axes, axes: list[_Axis]) -> None:
    """Vertical axis lines with their own tick labels; the matplotlib y axis itself is hidden."""
    for x, axis in enumerate(axes):
        ax.axvline(x, color="black", linewidth=1.0, zorder=1)
        for pos, text in axis.ticks:
            ax.annotate(text, xy=(x, pos), xytext=(-4, 0), textcoords="offset points", ha="right", va="center",
                        fontsize="x-small", zorder=5,
                        bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.7})
            ax.plot([x], [pos], marker="_", color="black", markersize=6, zorder=5)
    ax.set_xticks(np.arange(len(axes)), [axis.name for axis in axes])
    ax.set_yticks([])
    ax.set_xlim(-0.6, len(axes) - 0.8)
    ax.set_ylim(_NA_POS - 0.08, 1.05)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
