"""Curves over training: a metric vs epoch per configuration, and the G / D losses of chosen runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.figures.base import CUT_SHORT, _colors, _flag, _floats, _new_figure, _plain, save_figure

_LINESTYLES = ("-", "--", ":", "-.")


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
