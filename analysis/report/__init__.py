"""``aircolor report``: a sweep's MLflow runs -> a ranked comparison report (index.html, report.md, figures, Parquet).

What the report does, in order: load every trial (:mod:`analysis.runs`); rank configurations (trials that differ
only by seed) by the primary metric (FID unless ``--metric`` says otherwise) and by every other metric, with
bootstrap confidence intervals and a composite rank, on the held-out test split (``test.*``, scored once at the
end of a full budget) while the "best" configuration is the one validation (the selection split) picks, falling
back to validation, loudly, when no trial has test scores; put the three baselines (gray copy, constant-tint and
chroma-by-lightness priors) in every ranking table and chart and mark configurations that do not beat them; state
the best configuration's gain over the strongest prior with a CI over its seeds; draw the perception-distortion
plane (Delta E vs the colourfulness gap) with its Pareto front; keep failed and early-stopped trials visible and
rank early-stopped ones only at the last budget all trials reached; estimate each factor level's effect with a
multiple-comparison-corrected test; show the images behind every FID and FID-infinity where several sample sizes
were logged; flag runs whose discriminator overpowered the generator; draw the figures; colorize the same photos
with the top configurations. The folder is written under a temporary name and renamed into place, so a failed
report never leaves a half-written folder and never destroys the previous one.

The sections live in modules by concern: :mod:`~analysis.report.overview` (overview, sweep, all trials),
:mod:`~analysis.report.headline` (best configuration vs the strongest prior), :mod:`~analysis.report.ranking`,
:mod:`~analysis.report.tradeoff` (perception-distortion), :mod:`~analysis.report.effects` (FID-infinity, factor
effects, importances), :mod:`~analysis.report.training` (diagnostics, curves), :mod:`~analysis.report.gallery`
(samples); :mod:`~analysis.report.common` holds what they share (options, the :class:`Context` of rankings and
splits), and :mod:`~analysis.report.build` assembles them and writes the folder.
"""

from __future__ import annotations

from analysis.report.build import MARKER, Report, build_report, compute_rankings
from analysis.report.common import ReportOptions

__all__ = ["MARKER", "Report", "ReportOptions", "build_report", "compute_rankings"]
