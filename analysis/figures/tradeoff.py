"""The perception-distortion figure: each configuration's colour error against its colourfulness error.

Blau & Michaeli (CVPR 2018) show that distortion (here Delta E 2000 to the ground truth) and perceptual quality
(here the distance of the output's colourfulness to the real images') trade off: a colorizer can always cut
Delta E by desaturating. So a configuration is only "better" when it is better on both, and the configurations
no other one beats on both axes form the Pareto front (lower-left is better).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from analysis.figures.base import _colors, _flag, _floats, _new_figure, _plain, save_figure

#: Baseline markers and colours, in the order given: gray copy, constant tint, chroma by lightness (the colours of
#: the ranking chart's reference lines).
BASELINE_MARKERS = (("s", "0.45"), ("^", "tab:red"), ("D", "tab:purple"), ("v", "tab:brown"), ("P", "tab:olive"))
MAX_LEGEND_CONFIGS = 12


def perception_distortion(points: pd.DataFrame, *, baselines: Mapping[str, tuple[float, float]],
                          front: Sequence[str], x_label: str, y_label: str, out_dir: Path, stem: str,
                          title: str | None = None, flag: str | None = None) -> list[Path]:
    """Configurations (per-seed points, mean with std whiskers) and baselines (markers), with the Pareto front.

    ``points``: one row per trial with ``config``, ``x``, ``y``; configurations are drawn in order of first
    appearance, the first :data:`MAX_LEGEND_CONFIGS` in colour and named in the legend, the rest grey.
    ``baselines``: ``{label: (x, y)}``. ``front``: the labels (configuration names or baseline labels) on the
    Pareto front, joined by a line in x order and ringed. Writes nothing when no point is finite.
    """
    data = points.assign(x=_floats(points["x"]), y=_floats(points["y"])).dropna(subset=["x", "y"])
    marks = {label: xy for label, xy in baselines.items() if np.isfinite(_floats(list(xy))).all()}
    if data.empty and not marks:
        return []
    fig = _new_figure(width=10.0, height=6.0 + (0.4 if flag else 0))
    ax = fig.add_subplot()
    means = _config_points(ax, data)
    handles = _legend_configs(means)
    for (label, (x, y)), (marker, color) in zip(marks.items(), BASELINE_MARKERS):
        handles.append(ax.scatter([x], [y], marker=marker, s=90, color=color, edgecolor="black", zorder=5,
                                  label=_plain(label)))
    where = {**{c: (row.x, row.y) for c, row in means.iterrows()}, **marks}
    handles += _front_line(ax, [where[label] for label in front if label in where])
    ax.set(xlabel=x_label, ylabel=y_label)
    ax.grid(True, alpha=0.3)
    fig.suptitle(title or f"{y_label} vs {x_label}")
    _flag(ax, flag)
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    return save_figure(fig, out_dir, stem)


def _config_points(ax: Axes, data: pd.DataFrame) -> pd.DataFrame:
    """Per-seed dots and each configuration's mean with std whiskers; returns the means (index: config)."""
    order = list(dict.fromkeys(data["config"]))
    colors = dict(zip(order[:MAX_LEGEND_CONFIGS], _colors(min(len(order), MAX_LEGEND_CONFIGS))))
    rows = []
    for config in order:
        part = data[data["config"] == config]
        color = colors.get(config, "0.6")
        ax.scatter(part["x"], part["y"], s=14, color=color, alpha=0.45, linewidth=0, zorder=3)
        sx, sy = (part["x"].std(ddof=1), part["y"].std(ddof=1)) if len(part) > 1 else (np.nan, np.nan)
        ax.errorbar(part["x"].mean(), part["y"].mean(), xerr=sx if np.isfinite(sx) else None,
                    yerr=sy if np.isfinite(sy) else None, fmt="o", color=color, markersize=8, capsize=3, zorder=4)
        rows.append({"config": config, "x": part["x"].mean(), "y": part["y"].mean(), "color": color})
    return pd.DataFrame(rows, columns=["config", "x", "y", "color"]).set_index("config")


def _legend_configs(means: pd.DataFrame) -> list[Line2D]:
    handles = [Line2D([], [], marker="o", linestyle="none", color=row.color, label=_plain(config))
               for config, row in means.head(MAX_LEGEND_CONFIGS).iterrows()]
    if len(means) > MAX_LEGEND_CONFIGS:
        handles.append(Line2D([], [], marker="o", linestyle="none", color="0.6",
                              label=f"{len(means) - MAX_LEGEND_CONFIGS} other configurations"))
    if len(means):
        handles.append(Line2D([], [], marker="o", linestyle="-", color="0.3", markersize=8,
                              label="mean over seeds (whiskers: std)"))
        handles.append(Line2D([], [], marker="o", linestyle="none", color="0.3", alpha=0.45, markersize=4,
                              label="one seed"))
    return handles


def _front_line(ax: Axes, members: list[tuple[float, float]]) -> list[Line2D]:
    if not members:
        return []
    xs, ys = zip(*sorted(members))
    ax.plot(xs, ys, color="black", linestyle="--", linewidth=1.2, zorder=2)
    ax.scatter(xs, ys, s=260, facecolor="none", edgecolor="black", linewidth=1.4, zorder=6)
    return [Line2D([], [], color="black", linestyle="--", marker="o", markerfacecolor="none", markersize=12,
                   label="Pareto front (lower-left is better)")]
