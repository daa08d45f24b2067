"""Building the report: load the study, compute the rankings, assemble the sections and write the folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from aircolor import __version__
from aircolor.errors import UsageError
from analysis import stats
from analysis.render import to_html, to_markdown
from analysis.report.common import NONSTANDARD, ReportOptions, available_metrics
from analysis.report.effects import effects_section, fid_section, importance_section
from analysis.report.gallery import samples_section
from analysis.report.overview import overview_section, sweep_section, trials_section
from analysis.report.ranking import budget_section, ranking_sections
from analysis.report.training import curves_section, diagnostics_section, diagnostics_table
from analysis.runs import Study, load_study

MARKER = ".aircolor-report"


@dataclass
class Report:
    out_dir: Path
    index: Path
    markdown: Path
    rankings: dict[str, pd.DataFrame] = field(default_factory=dict)
    effects: pd.DataFrame | None = None
    diagnostics: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def _prepare_out(out_dir: Path) -> Path:
    """A fresh staging folder beside ``out_dir``; refuses to replace a folder that is not an aircolor report."""
    out_dir = out_dir.expanduser().resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; pass a folder for the report")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
        raise UsageError(f"--out {out_dir} exists and is not an aircolor report; choose a new folder or empty it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))


def _swap_in(stage: Path, out_dir: Path) -> None:
    """Rename the finished staging folder over ``out_dir``; the previous report is removed only afterwards."""
    out_dir = out_dir.expanduser().resolve()
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
    os.replace(stage, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def compute_rankings(trials: pd.DataFrame, opts: ReportOptions) -> dict[str, pd.DataFrame]:
    rankings = {m: stats.rank_configurations(trials, m, n_boot=opts.n_boot, seed=opts.seed)
                for m in available_metrics(trials)}
    usable = {m: r for m, r in rankings.items() if len(r)}
    if usable:
        rankings["composite"] = stats.composite_rank(usable)
    return rankings


def build_report(experiments: list[str], tracking_uri: str, out_dir: Path,
                 options: ReportOptions | None = None) -> Report:
    """Load the experiments' runs and write the report folder (see the module docstring)."""
    opts = options or ReportOptions()
    if opts.metric not in stats.METRICS:
        raise UsageError(f"--metric {opts.metric!r} is not a metric of the study; use one of "
                         f"{', '.join(stats.METRICS)}")
    stage = _prepare_out(Path(out_dir))
    try:
        study = load_study(experiments, tracking_uri)
        study.trials = stats.add_derived_columns(study.trials)
        report = _write(study, opts, stage, Path(out_dir))
        _swap_in(stage, Path(out_dir))
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    final = Path(out_dir).expanduser().resolve()
    report.out_dir, report.index, report.markdown = final, final / "index.html", final / "report.md"
    return report


def _write(study: Study, opts: ReportOptions, stage: Path, out_dir: Path) -> Report:
    figs = stage / "figures"
    figs.mkdir()
    primary = opts.metric
    t = study.trials
    if stats.METRICS[primary].key not in t or t[stats.METRICS[primary].key].isna().all():
        have = available_metrics(t)
        raise UsageError(f"no trial logged {stats.METRICS[primary].key} (--metric {primary}); the runs have "
                         f"{', '.join(have) or 'no validation metrics yet'}")
    rankings = compute_rankings(t, opts)
    effect_metrics = [primary] + (["fid"] if primary != "fid" and "fid" in rankings else [])
    effects_sec, effects = effects_section(study, opts, effect_metrics, figs)
    diag = diagnostics_table(study)
    sections = [overview_section(study, opts, primary, rankings), sweep_section(study),
                *ranking_sections(study, opts, primary, rankings, figs), budget_section(study, opts, primary),
                fid_section(study), effects_sec]
    importance = importance_section(study, primary)
    if importance is not None:
        sections.append(importance)
    sections += [diagnostics_section(study, diag, primary, rankings.get(primary), figs),
                 curves_section(study, primary, figs), samples_section(study, opts, primary, rankings, figs),
                 trials_section(study, primary)]
    banners = [NONSTANDARD] if study.nonstandard_weights else []
    title = f"aircolor comparison: {', '.join(study.experiments)}"
    from aircolor.tracking.uri import redact_uri

    subtitle = (f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by aircolor {__version__} from "
                f"{redact_uri(study.tracking_uri)}; {len(t)} trials.")
    t.to_parquet(stage / "trials.parquet", index=False)
    study.history.to_parquet(stage / "history.parquet", index=False)
    for name, rank in rankings.items():
        rank.to_csv(stage / f"ranking_{name}.csv", index=False)
    if effects is not None:
        effects.to_csv(stage / "factor_effects.csv", index=False)
    diag.to_csv(stage / "diagnostics.csv", index=False)
    (stage / "report.md").write_text(to_markdown(title, banners, sections))
    (stage / "index.html").write_text(to_html(title, subtitle, banners, sections))
    (stage / MARKER).write_text(f"aircolor {__version__}\n")
    return Report(out_dir=out_dir, index=out_dir / "index.html", markdown=out_dir / "report.md", rankings=rankings,
                  effects=effects, diagnostics=diag)
