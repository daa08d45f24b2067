"""Figures for the sweep comparison report: ranking bars, metric and loss curves, factor effects,
parallel coordinates and image grids.

Every public drawing function writes one figure as ``<out_dir>/<stem>.png`` (dpi 120) and
``<out_dir>/<stem>.svg`` and returns the written paths; it returns ``[]`` and writes nothing when its input
holds nothing to draw. Figures are plain :class:`matplotlib.figure.Figure` objects, never pyplot ones, so no
global figure registry fills up, nothing leaks between calls and figures can be built from several threads.
Output is byte-for-byte reproducible for the same input (fixed SVG hash salt, no date in the SVG metadata).

Text taken from the data (config names, factor levels, run labels, MLflow keys) is shown literally, ``$``
included; caller-chosen labels (``metric_label``, ``title``) may use mathtext.

Example::

    from analysis.figures import ranking_chart
    ranking_chart(ranking, metric_label="FID", mode="min", out_dir=Path("report/figures"), stem="rank_fid",
                  baseline=212.0, flag="non-standard Inception weights: not comparable with published FID")
"""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

DPI = 120
BASELINE_LABEL = "gray copy (no colorization)"
MODES = ("min", "max")
#: Outcomes whose curves end before the schedule did (drawn dashed / grey).
CUT_SHORT = frozenset({"stopped early", "failed"})
SIGNIFICANCE = 0.05

# svg.hashsalt makes clip-path/hatch/image ids stable; fonttype "none" keeps text as <text> (searchable,
# selectable in the HTML report, and free of per-glyph ids).
_SAVE_RC = {"svg.hashsalt": "aircolor", "svg.fonttype": "none"}
# rc_context mutates process-wide rcParams: serialise saves so a concurrent save cannot restore them mid-render.
_SAVE_LOCK = threading.Lock()
_LINESTYLES = ("-", "--", ":", "-.")
_NA_POS = -0.1  # where parallel_coordinates puts a missing value ("n/a") below each axis


# --------------------------------------------------------------------------------------------- saving


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.svg`` in ``out_dir`` (created if missing); return both paths.

    Each file is written to a hidden temp name in ``out_dir`` and renamed into place, so a reader (or a report
    being rebuilt) never sees half a file. The figure is closed afterwards if pyplot manages it.
    """
    if not stem or "/" in stem or os.sep in stem or stem.startswith("."):
        raise ValueError(f"stem must be a plain, non-hidden file name without suffix, got {stem!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return [_write_atomic(fig, out_dir / f"{stem}.{fmt}", fmt=fmt) for fmt in ("png", "svg")]
    finally:
        _discard(fig)


def _write_atomic(fig: Figure, path: Path, *, fmt: str) -> Path:
    """Render to ``.<name>.<pid>.<random>.tmp`` beside ``path``, then ``os.replace`` it (atomic on POSIX)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    metadata = {"Date": None} if fmt == "svg" else None
    try:
        # open() (not mkstemp) so the file gets the umask's permissions, not 0600.
        with _SAVE_LOCK, matplotlib.rc_context(_SAVE_RC), open(tmp, "xb") as fh:
            fig.savefig(fh, format=fmt, dpi=DPI, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _discard(fig: Figure) -> None:
    """Close ``fig`` in pyplot if pyplot created it; our own figures are simply garbage once dropped."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and getattr(fig.canvas, "manager", None) is not None:
        pyplot.close(fig)


# -------------------------------------------------------------------------------------------- helpers


def _new_figure(*, width: float, height: float) -> Figure:
    """A pyplot-free figure with constrained layout (fits titles, outside legends and colorbars)."""
    return Figure(figsize=(width, height), layout="constrained")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _plain(text: object) -> str:
    """Data text shown literally: an unescaped ``$`` would switch matplotlib into mathtext."""
    return str(text).replace("$", r"\$")


def _floats(values: pd.Series | Sequence[object]) -> np.ndarray:
    """Numbers as float64, with None/strings that are not numbers as NaN."""
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)


def _colors(count: int) -> list[tuple[float, float, float, float]]:
    """Distinct qualitative colours; tab20 beyond ten series, cycling past twenty."""
    cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def _direction(mode: str) -> str:
    return "lower is better" if mode == "min" else "higher is better"


def _flag(ax: Axes, flag: str | None) -> None:
    """Print a comparability warning in red directly under the figure title."""
    if flag:
        ax.set_title(textwrap.fill(flag, width=100), color="red", fontsize="small")


def _label_width(labels: Sequence[str], *, base: float) -> float:
    """Figure width that leaves room for long tick labels (config names) without squashing the axes."""
    longest = max((len(label) for label in labels), default=0)
    return min(base + 0.07 * longest, 18.0)


def _whiskers(ax: Axes, *, y: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
    """Horizontal interval whiskers with caps; rows whose interval is NaN (n < 2) get none."""
    ok = np.isfinite(low) & np.isfinite(high)
    if not ok.any():
        return
    ax.hlines(y[ok], low[ok], high[ok], color="black", linewidth=1.2, zorder=3)
    ax.plot(np.concatenate([low[ok], high[ok]]), np.concatenate([y[ok], y[ok]]), linestyle="none",
            marker="|", markersize=8, color="black", zorder=3)


def _row_ends(*columns: np.ndarray) -> np.ndarray:
    """Right-most finite x of each row (at least 0): where a per-row annotation can start."""
    stacked = np.vstack([*columns, np.zeros_like(columns[0])])
    return np.nanmax(stacked, axis=0)


# ------------------------------------------------------------------------------------------- ranking


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
                  baseline: float | None = None, flag: str | None = None) -> list[Path]:
    """Horizontal bars of each config's mean (best at top) with CI whiskers, ``n=`` per bar and the baseline.

    Bars that do not beat the gray-copy baseline are grey and hatched, so "trained but useless" is visible at
    a glance; a dotted rule between two ranks marks a statistically distinguishable gap.
    """
    _check_mode(mode)
    if ranking.empty:
        return []
    data = ranking.sort_values("rank", kind="stable").reset_index(drop=True)
    labels = [f"{_rank_text(rank)}. {_plain(config)}" for rank, config in zip(data["rank"], data["config"])]
    fig = _new_figure(width=_label_width(labels, base=6.0), height=2.0 + 0.3 * len(data) + (0.4 if flag else 0))
    ax = fig.add_subplot()
    handles = _ranking_bars(ax, data, mode=mode, baseline=baseline)
    handles += _rank_gaps(ax, data)
    ax.set_yticks(np.arange(len(data)), labels)
    ax.set_ylim(len(data) - 0.5, -0.5)  # rank 1 at the top
    ax.set_xlabel(f"{metric_label} ({_direction(mode)}); whiskers: confidence interval of the mean")
    fig.suptitle(f"Ranking by {metric_label}")
    _flag(ax, flag)
    if baseline is not None:
        handles.insert(0, ax.axvline(baseline, color="black", linestyle="--", linewidth=1.2, label=BASELINE_LABEL))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize="small")
    return save_figure(fig, out_dir, stem)


def _rank_text(rank: object) -> str:
    value = float(rank) if rank is not None else np.nan
    return str(int(value)) if np.isfinite(value) and value.is_integer() else str(rank)


def _ranking_bars(ax: Axes, data: pd.DataFrame, *, mode: str, baseline: float | None) -> list[Patch]:
    """Draw bars, whiskers and ``n=`` labels; return the legend handle for below-baseline bars, if any."""
    y = np.arange(len(data))
    means, low, high = _floats(data["mean"]), _floats(data["ci_low"]), _floats(data["ci_high"])
    bars = ax.barh(y, np.nan_to_num(means), color="tab:blue", edgecolor="tab:blue", height=0.7)
    losing = [baseline is not None and not beats_baseline(m, baseline, mode) for m in means]
    for bar, loses in zip(bars, losing):
        if loses:
            bar.set(facecolor="lightgrey", edgecolor="0.35", hatch="//")
    _whiskers(ax, y=y, low=low, high=high)
    ends = _row_ends(means, high)
    for row, (end, n) in enumerate(zip(ends, _floats(data["n"]))):
        text = f"n={int(n)}" if np.isfinite(n) else "n=?"
        ax.annotate(text, xy=(end, row), xytext=(4, 0), textcoords="offset points", va="center", fontsize="small")
    _fit_xlim(ax, np.concatenate([means, low, high, ends, [0.0] if baseline is None else [0.0, baseline]]))
    if not any(losing):
        return []
    return [Patch(facecolor="lightgrey", edgecolor="0.35", hatch="//", label="does not beat gray copy")]


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


# ---------------------------------------------------------------------------------------- metric curves


def metric_curves(history: pd.DataFrame, trials: pd.DataFrame, *, key: str, metric_label: str, out_dir: Path,
                  stem: str, max_configs: int = 12, flag: str | None = None,
                  configs: Sequence[str] | None = None) -> list[Path]:
    """``key`` vs epoch per configuration: mean over its seeds, min-max band, cut-short trials dashed.

    ``configs`` picks and orders the configurations (pass ``ranking["config"]`` to show the best first); by
    default they follow their first appearance in ``trials``. Only the first ``max_configs`` are drawn, so a
    60-config sweep stays legible; the title says how many were left out.
    """
    data = _curve_data(history, trials, key=key)
    if data.empty:
        return []
    present = set(data["config"])
    order = [c for c in dict.fromkeys(configs if configs is not None else trials["config"]) if c in present]
    shown = order[:max_configs]
    fig = _new_figure(width=10.0, height=5.0 + (0.4 if flag else 0))
    ax = fig.add_subplot()
    handles = [_config_curves(ax, data[data["config"] == config], color=color, label=_plain(config))
               for config, color in zip(shown, _colors(len(shown)))]
    handles += _curve_style_handles(data[data["config"].isin(shown)])
    suffix = f" (showing {len(shown)} of {len(order)} configurations)" if len(shown) < len(order) else ""
    fig.suptitle(f"{metric_label} vs epoch{suffix}")
    _flag(ax, flag)
    ax.set(xlabel="epoch", ylabel=metric_label)
    ax.grid(True, alpha=0.3)
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    return save_figure(fig, out_dir, stem)


def _curve_data(history: pd.DataFrame, trials: pd.DataFrame, *, key: str) -> pd.DataFrame:
    """One value per (run, epoch) for ``key``, joined with the run's config and outcome."""
    rows = history[history["key"] == key].sort_values("step", kind="stable")
    rows = rows.assign(epoch=_floats(rows["epoch"]), value=_floats(rows["value"])).dropna(subset=["epoch", "value"])
    last = rows.groupby(["run_id", "epoch"], as_index=False, sort=True)["value"].last()
    return last.merge(trials[["run_id", "config", "outcome"]], on="run_id", how="inner")


def _config_curves(ax: Axes, part: pd.DataFrame, *, color: object, label: str) -> Line2D:
    """Draw one configuration; return the handle that names it in the legend."""
    cut = part["outcome"].isin(CUT_SHORT)
    wide = part[~cut].pivot_table(index="epoch", columns="run_id", values="value", aggfunc="last")
    handle = Line2D([], [], color=color, linewidth=1.8, label=label)
    if not wide.empty:
        ax.plot(wide.index, wide.mean(axis=1), color=color, linewidth=1.8)
        if wide.shape[1] > 1:
            ax.fill_between(wide.index, wide.min(axis=1), wide.max(axis=1), color=color, alpha=0.2, linewidth=0)
    for _, run in part[cut].groupby("run_id", sort=True):
        ax.plot(run["epoch"], run["value"], color=color, linestyle="--", linewidth=1.0)
    return handle


def _curve_style_handles(shown: pd.DataFrame) -> list[Artist]:
    """Legend entries explaining line styles, only for styles actually drawn."""
    handles: list[Artist] = [Line2D([], [], color="0.3", linewidth=1.8, label="mean over seeds"),
                             Patch(facecolor="0.3", alpha=0.2, label="min-max over seeds")]
    if shown["outcome"].isin(CUT_SHORT).any():
        handles.append(Line2D([], [], color="0.3", linestyle="--", label="stopped early / failed (until it stopped)"))
    return handles


# ------------------------------------------------------------------------------------------ loss curves


def loss_curves(history: pd.DataFrame, *, runs: dict[str, str], g_keys: list[str], d_keys: list[str],
                out_dir: Path, stem: str, onset: dict[str, int | None] | None = None) -> list[Path]:
    """Two panels (G adversarial losses | D losses) vs epoch, one line per run x key.

    ``runs`` maps a legend label ("best: unet/seed0") to a run_id. ``onset[label]``, when an epoch, draws a
    vertical marker "D overpowering G from epoch N" in both panels, in that run's colour.
    """
    keys = [*g_keys, *d_keys]
    rows = history[history["run_id"].isin(list(runs.values())) & history["key"].isin(keys)]
    if rows.empty:
        return []
    rows = rows.sort_values("step", kind="stable")
    fig = _new_figure(width=13.0, height=5.0)
    panels = fig.subplots(1, 2, sharex=True)
    colors = dict(zip(runs, _colors(len(runs))))
    titles = ("generator adversarial losses", "discriminator losses")
    for ax, panel_keys, title in zip(panels, (g_keys, d_keys), titles):
        _loss_panel(ax, rows, runs=runs, keys=panel_keys, colors=colors)
        _onset_markers(ax, onset or {}, colors=colors)
        ax.set(title=title, xlabel="epoch", ylabel="loss")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize="small")
    fig.suptitle("GAN losses")
    return save_figure(fig, out_dir, stem)


def _loss_panel(ax: Axes, rows: pd.DataFrame, *, runs: dict[str, str], keys: list[str], colors: dict) -> None:
    """Colour tells the run, line style tells the loss term."""
    for label, run_id in runs.items():
        for index, key in enumerate(keys):
            part = rows[(rows["run_id"] == run_id) & (rows["key"] == key)]
            if not part.empty:
                ax.plot(_floats(part["epoch"]), _floats(part["value"]), color=colors[label], linewidth=1.0,
                        linestyle=_LINESTYLES[index % len(_LINESTYLES)], label=f"{_plain(label)}: {_plain(key)}")


def _onset_markers(ax: Axes, onset: dict[str, int | None], *, colors: dict) -> None:
    for label, epoch in onset.items():
        if epoch is not None and label in colors:
            # epoch N (1-based) spans (N - 1, N] on the x axis: mark where it starts
            ax.axvline(epoch - 1, color=colors[label], linestyle=":", linewidth=1.8,
                       label=f"{_plain(label)}: D overpowering G from epoch {epoch}")


# ---------------------------------------------------------------------------------------------- effects


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


# ------------------------------------------------------------------------------------ parallel coordinates


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


# ------------------------------------------------------------------------------------------- image grid


def image_grid(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], *, out_dir: Path, stem: str,
               title: str | None = None) -> list[Path]:
    """Rows of labelled uint8 images (HxWx3, HxWx4 or HxW gray), row label at left, column titles from row 0.

    Typical use: one row per photo; columns gray input, top-1..top-k colorizations, ground truth. Cells are
    sized so a 256 px tile is drawn near 1:1 at 120 dpi, with nearest-neighbour sampling so no smoothing hides
    colour artefacts. Images may differ in size between rows.
    """
    ncols = max((len(images) for _, images in rows), default=0)
    if ncols == 0:
        return []
    for row_label, images in rows:
        for col_label, image in images:
            _check_image(image, where=f"{row_label!r} / {col_label!r}")
    shapes = [np.shape(image) for _, images in rows for _, image in images]
    cell = float(np.clip(max(w for _, w, *_ in shapes) / DPI, 1.2, 4.0))
    ratios = [max((np.shape(img)[0] / np.shape(img)[1] for _, img in images), default=1.0) for _, images in rows]
    fig = _new_figure(width=cell * ncols + 1.0, height=cell * sum(ratios) + 0.5 + (0.4 if title else 0))
    grid = fig.subplots(len(rows), ncols, squeeze=False, height_ratios=ratios)
    for axes, (row_label, images) in zip(grid, rows):
        for ax, index in zip(axes, range(ncols)):
            _image_cell(ax, images[index][1] if index < len(images) else None)
        axes[0].set_ylabel(_plain(row_label), fontsize="small")
    for ax, (col_label, _) in zip(grid[0], rows[0][1]):
        ax.set_title(_plain(col_label), fontsize="small")
    if title:
        fig.suptitle(title)
    return save_figure(fig, out_dir, stem)


def _check_image(image: np.ndarray, *, where: str) -> None:
    array = np.asarray(image)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(f"image {where}: expected uint8 HxWx3 (or HxW, HxWx4), got {array.dtype} {array.shape}")


def _image_cell(ax: Axes, image: np.ndarray | None) -> None:
    """No ticks or frame (but keep the axes on, so the row label still shows); blank cell when ``image`` is None."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if image is not None:
        gray = np.ndim(image) == 2
        ax.imshow(image, interpolation="nearest", cmap="gray" if gray else None, vmin=0 if gray else None,
                  vmax=255 if gray else None)
