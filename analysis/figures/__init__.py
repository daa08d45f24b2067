"""Figures for the sweep comparison report: ranking bars, metric and loss curves, factor effects,
parallel coordinates, the perception-distortion trade-off and image grids.

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

The modules, one per figure kind: :mod:`~analysis.figures.base` (saving, shared helpers),
:mod:`~analysis.figures.ranking`, :mod:`~analysis.figures.curves` (metric and loss curves),
:mod:`~analysis.figures.effects`, :mod:`~analysis.figures.parallel`, :mod:`~analysis.figures.tradeoff`
(perception-distortion) and :mod:`~analysis.figures.grid`.
Import from ``analysis.figures``.
"""

from __future__ import annotations

from analysis.figures.base import CUT_SHORT, DPI, MODES, SIGNIFICANCE, save_figure
from analysis.figures.curves import loss_curves, metric_curves
from analysis.figures.effects import effects_chart
from analysis.figures.grid import image_grid
from analysis.figures.parallel import _NA_POS, _numeric_axis, parallel_coordinates  # noqa: F401 (tests use them)
from analysis.figures.ranking import BASELINE_LABEL, PRIOR_STYLES, beats_baseline, ranking_chart
from analysis.figures.tradeoff import perception_distortion

__all__ = ["BASELINE_LABEL", "CUT_SHORT", "DPI", "MODES", "PRIOR_STYLES", "SIGNIFICANCE", "beats_baseline",
           "effects_chart", "image_grid", "loss_curves", "metric_curves", "parallel_coordinates",
           "perception_distortion", "ranking_chart", "save_figure"]
