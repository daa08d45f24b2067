"""Building the report: load the study, compute the rankings, assemble the sections and write the folder."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from aircolor import __version__
from aircolor.errors import UsageError
from analysis import stats
from analysis.render import to_html, to_markdown
from analysis.report.common import NONSTANDARD, SPLIT_NAMES, Context, ReportOptions, available_metrics, split_for
from analysis.report.effects import effects_section, fid_section, importance_section
from analysis.report.gallery import samples_section
from analysis.report.overview import overview_section, sweep_section, trials_section
from analysis.report.ranking import budget_section, csv_tables, ranking_sections
from analysis.report.tradeoff import tradeoff_section
from analysis.report.training import curves_section, diagnostics_section, diagnostics_table
from analysis.runs import Study, load_study

MARKER = ".aircolor-report"


@dataclass
class Report:
    out_dir: Path
    index: Path
    markdown: Path
    rankings: dict[str, pd.DataFrame] = field(default_factory=dict)     # the final tables (test where logged)
    selection: dict[str, pd.DataFrame] = field(default_factory=dict)    # the same metrics on validation
    split: str = "val"                                                  # the primary metric's final split
    best: str | None = None                                             # selected on validation
    gain: stats.Gain | None = None                                      # best vs the strongest prior
    pareto: pd.DataFrame | None = None                                  # perception-distortion points, on_front
    effects: pd.DataFrame | None = None
    diagnostics: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def _check_out(out_dir: Path) -> Path:
    """``out_dir`` resolved; refuses a file, or a folder that is not an aircolor report. Nothing is created."""
    out_dir = out_dir.expanduser().resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; pass a folder for the report")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
        raise UsageError(f"--out {out_dir} exists and is not an aircolor report; choose a new folder or empty it")
    return out_dir


def _prepare_out(out_dir: Path) -> Path:
    """A fresh staging folder beside ``out_dir`` (its parents created now, once the input was checked)."""
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


def compute_rankings(trials: pd.DataFrame, opts: ReportOptions,
                     splits: dict[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """Every metric's ranking on its split (``splits``: metric -> "val" / "test"; by default each metric's
    :func:`~analysis.report.common.split_for`), plus the composite rank over them."""
    splits = splits if splits is not None else {m: split_for(trials, m) for m in available_metrics(trials)}
    rankings = {m: stats.rank_configurations(trials, m, n_boot=opts.n_boot, seed=opts.seed, split=split)
                for m, split in splits.items()}
    usable = {m: r for m, r in rankings.items() if len(r)}
    if usable:
        rankings["composite"] = stats.composite_rank(usable)
    return rankings


def make_context(study: Study, opts: ReportOptions, figs: Path) -> Context:
    """The final rankings (test where logged) and the selection rankings (validation), computed once."""
    t = study.trials
    splits = {m: split_for(t, m) for m in available_metrics(t)}
    ctx = Context(study=study, opts=opts, figs=figs, splits=splits)
    ctx.rankings = compute_rankings(t, opts, splits)
    val = {m: "val" for m in available_metrics(t, "val")}
    ctx.selection = ctx.rankings if val == splits else compute_rankings(t, opts, val)
    return ctx


def build_report(experiments: list[str], tracking_uri: str, out_dir: Path,
                 options: ReportOptions | None = None) -> Report:
    """Load the experiments' runs and write the report folder (see the module docstring).

    Every check of the input comes before the first line on stderr and before anything is written, so a bad
    input is one error line and leaves nothing behind."""
    opts = options or ReportOptions()
    if opts.metric is not None and opts.metric not in stats.METRICS:
        raise UsageError(f"--metric {opts.metric!r} is not a metric of the study; use one of "
                         f"{', '.join(stats.METRICS)}")
    final = _check_out(Path(out_dir))
    chosen: dict[str, str] = {}

    def vet(trials: pd.DataFrame, sweeps: list[dict[str, Any]]) -> None:
        metric, reason = _primary_metric(sweeps, opts.metric)
        _check_primary(stats.add_derived_columns(trials), metric, reason)
        chosen.update(metric=metric, reason=reason)
        from aircolor.tracking.uri import redact_uri

        say(f"reading {len(trials)} trial runs of {', '.join(experiments)} from {redact_uri(tracking_uri)}; "
            f"ranking by {metric}, {reason} ...")

    study = load_study(experiments, tracking_uri, before_history=vet)
    study.trials = stats.add_derived_columns(study.trials)
    opts = dataclasses.replace(opts, metric=chosen["metric"], metric_reason=chosen["reason"])
    stage = _prepare_out(final)
    try:
        report = _write(study, opts, stage, final)
        _swap_in(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    report.out_dir, report.index, report.markdown = final, final / "index.html", final / "report.md"
    return report


def say(text: str) -> None:
    """One stage line on stderr (stdout carries the report's paths)."""
    print(f"report: {text}", file=sys.stderr, flush=True)


def _primary_metric(sweeps: list[dict[str, Any]], asked: str | None) -> tuple[str, str]:
    """(metric, why): ``--metric`` if given, else the metric the sweep itself optimised (so that the report and
    ``sweep promote`` name the same best), else fid."""
    if asked is not None:
        return asked, "as asked (--metric)"
    keys = {sw["params"].get("sweep.metric") for sw in sweeps} - {None}
    names = [name for name, spec in stats.METRICS.items() if spec.key in keys]
    if len(keys) == 1 and names:
        return names[0], "the metric the sweep optimised (its parent run's sweep.metric, as sweep promote uses)"
    why = "the sweeps optimised different metrics" if len(keys) > 1 else "no sweep parent run names a metric"
    return "fid", f"the default ({why}; choose with --metric)"


def _check_primary(t: pd.DataFrame, primary: str, reason: str) -> None:
    spec = stats.METRICS[primary]
    if not any(spec.key_on(split) in t and t[spec.key_on(split)].notna().any() for split in stats.SPLITS):
        have = available_metrics(t)
        raise UsageError(f"no trial logged {spec.key} yet (ranking by {primary}, {reason}); the runs have "
                         f"{', '.join(have) or 'no validation metrics yet'}; wait for a trial's first evaluation "
                         f"or choose another --metric")


def _sections(ctx: Context, diag: pd.DataFrame) -> tuple[list, dict[str, Any]]:
    primary = ctx.primary
    effect_metrics = [primary] + (["fid"] if primary != "fid" and "fid" in ctx.rankings else [])
    effects_sec, effects = effects_section(ctx, effect_metrics)
    overview, gain = overview_section(ctx)
    tradeoff, pareto = tradeoff_section(ctx)
    sections = [overview, sweep_section(ctx.study), *ranking_sections(ctx), tradeoff, budget_section(ctx),
                fid_section(ctx), effects_sec]
    importance = importance_section(ctx)
    if importance is not None:
        sections.append(importance)
    sections += [diagnostics_section(ctx, diag), curves_section(ctx), samples_section(ctx), trials_section(ctx)]
    return sections, {"effects": effects, "gain": gain, "pareto": pareto}


def _write(study: Study, opts: ReportOptions, stage: Path, out_dir: Path) -> Report:
    figs = stage / "figures"
    figs.mkdir()
    t = study.trials
    say(f"statistics ({opts.n_boot:,} bootstrap resamples per configuration) ...")
    ctx = make_context(study, opts, figs)
    diag = diagnostics_table(study)
    say("figures, factor effects and the sample grid ...")
    sections, found = _sections(ctx, diag)
    say("writing index.html, report.md and the tables ...")
    banners = [NONSTANDARD] if study.nonstandard_weights else []
    if ctx.split == "val":
        banners.append("No test-split scores (test.*): every table ranks on VALIDATION, the split selection used "
                       "(see the overview).")
    title = f"aircolor comparison: {', '.join(study.experiments)}"
    from aircolor.tracking.uri import redact_uri

    subtitle = (f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by aircolor {__version__} from "
                f"{redact_uri(study.tracking_uri)}; {len(t)} trials; ranked on the {SPLIT_NAMES[ctx.split]} split.")
    t.to_parquet(stage / "trials.parquet", index=False)
    study.history.to_parquet(stage / "history.parquet", index=False)
    for name, frame in csv_tables(ctx).items():
        frame.to_csv(stage / f"ranking_{name}.csv", index=False)
    if found["effects"] is not None:
        found["effects"].to_csv(stage / "factor_effects.csv", index=False)
    if found["pareto"] is not None:
        found["pareto"].to_csv(stage / "pareto.csv", index=False)
    diag.to_csv(stage / "diagnostics.csv", index=False)
    (stage / "report.md").write_text(to_markdown(title, banners, sections))
    (stage / "index.html").write_text(to_html(title, subtitle, banners, sections))
    (stage / MARKER).write_text(f"aircolor {__version__}\n")
    return Report(out_dir=out_dir, index=out_dir / "index.html", markdown=out_dir / "report.md",
                  rankings=ctx.rankings, selection=ctx.selection, split=ctx.split, best=ctx.best, gain=found["gain"],
                  pareto=found["pareto"], effects=found["effects"], diagnostics=diag)
