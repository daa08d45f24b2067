"""``aircolor report``: a sweep's MLflow runs -> a ranked comparison report (index.html, report.md, figures, Parquet).

What the report does, in order: load every trial (:mod:`analysis.runs`), rank configurations (trials that
differ only by seed) by the primary metric (FID unless ``--metric`` says otherwise) and by every other metric,
with bootstrap confidence intervals and a composite rank; put the gray copy (the input returned unchanged) on
the same scale; keep failed and early-stopped trials visible and rank early-stopped ones only at the last
budget all trials reached; estimate each factor level's effect with a multiple-comparison-corrected test; show
the images behind every FID and FID-infinity where several sample sizes were logged; flag runs whose
discriminator overpowered the generator; draw the figures; colorize the same photos with the top
configurations. The folder is written under a temporary name and renamed into place, so a failed report never
leaves a half-written folder and never destroys the previous one.

The sections live in modules by concern: :mod:`~analysis.report.overview` (overview, sweep, all trials),
:mod:`~analysis.report.ranking`, :mod:`~analysis.report.effects` (FID-infinity, factor effects, importances),
:mod:`~analysis.report.training` (diagnostics, curves), :mod:`~analysis.report.gallery` (samples);
:mod:`~analysis.report.build` assembles them and writes the folder.
"""

from __future__ import annotations

from analysis.report.build import MARKER, Report, build_report, compute_rankings
from analysis.report.common import ReportOptions

__all__ = ["MARKER", "Report", "ReportOptions", "build_report", "compute_rankings"]
