"""The report's overview, sweep and all-trials sections: what was run, how it went, and every trial."""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis import stats
from analysis.render import Section
from analysis.report.common import Context, cell_text, fmt, when
from analysis.report.headline import headline
from analysis.runs import Study


def _split_text(ctx: Context, sec: Section) -> None:
    if ctx.split == "test":
        sec.text("The final tables, the factor effects and this headline are ranked on the test split (held out, "
                 "scored once when a trial finished its whole budget, never seen by any selection); selection used "
                 "validation (ASHA, Optuna and `aircolor sweep promote` saw only val.*), so the best configuration "
                 "is the one validation picked, with its test numbers.")
    else:
        sec.banner("No completed trial has test-split scores (test.*: runs from before the test split was scored, "
                   "metrics.test_at_end off, or every trial stopped early). The final tables, the factor effects and "
                   "the headline FALL BACK TO THE VALIDATION SPLIT, the one selection used: their numbers are "
                   "optimistic, not held-out estimates.")


def overview_section(ctx: Context) -> tuple[Section, stats.Gain | None]:
    t, study, primary = ctx.trials, ctx.study, ctx.primary
    sec = Section("Overview", "overview")
    counts = t["outcome"].value_counts().to_dict()
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    sec.text(f"{len(t)} trials in {t['config'].nunique()} configurations ({summary}) from MLflow experiment(s) "
             f"{', '.join(study.experiments)}. Primary metric: {ctx.label(primary)} "
             f"({'lower' if stats.METRICS[primary].mode == 'min' else 'higher'} is better), final value"
             + (f"; ranked by {primary}, {ctx.opts.metric_reason}." if ctx.opts.metric_reason else "."))
    _split_text(ctx, sec)
    text, gain = headline(ctx)
    if text:
        sec.text(text)
    rank = ctx.rankings.get(primary)
    if rank is not None and len(rank) and ctx.split == "test":
        sec.text(f"Best on the test split itself (for comparison only; never used to select): "
                 f"{rank.iloc[0]['config']}.")
    if "composite" in ctx.rankings and len(ctx.rankings["composite"]):
        sec.text(f"Best by composite rank (mean of the per-metric ranks): "
                 f"{ctx.rankings['composite'].iloc[0]['config']}.")
    gpu_h, dur = t["gpu_hours"].sum(skipna=True), t["duration_s"].sum(skipna=True) / 3600
    sec.text(f"Compute: {dur:.2f} trial-hours in all, {gpu_h:.2f} GPU-hours. Devices: "
             f"{', '.join(sorted(str(d) for d in t['device'].dropna().unique())) or 'unknown'}.")
    _seed_notes(t, sec)
    return sec, gain


def _seed_notes(t: pd.DataFrame, sec: Section) -> None:
    seeds = t[t["outcome"] == "completed"].groupby("config")["seed"].nunique()
    if len(seeds) and 1 < seeds.min() < 5:
        sec.text(f"Configurations have {seeds.min()}-{seeds.max()} completed seeds: bootstrap CIs from so few seeds "
                 f"understate the uncertainty; read 'distinguishable' as a hint, not a test.")
    if t["seed"].notna().any() and t.groupby("config")["seed"].nunique().max() <= 1:
        sec.banner("Every configuration ran with one seed: the ranks below carry no uncertainty estimate (no "
                   "confidence intervals); run the space with `seeds: 3` or more to tell configurations apart.")


def _trial_plan(p: dict[str, Any], runs: pd.DataFrame) -> str:
    """What actually ran: a grid runs every combination x seeds (``--num-samples`` plays no part in it); Optuna
    draws ``--num-samples`` trials."""
    ran = f"{len(runs)} trial run{'s' if len(runs) != 1 else ''}"
    if p.get("sweep.search") == "grid":
        seeds = p.get("sweep.seeds", "-")
        return f"grid: {runs['config'].nunique()} combination(s) x {seeds} seed(s); {ran}"
    return f"{p.get('sweep.num_samples', '-')} Optuna samples (--num-samples); {ran}"


def sweep_section(study: Study) -> Section:
    sec = Section("Sweep", "sweep")
    t = study.trials
    if not study.sweeps:
        sec.text("These runs were not started by `aircolor sweep` (no sweep parent run): no search-space metadata.")
    for sw in study.sweeps:
        p = sw["params"]
        rows = [("sweep", sw["name"]), ("status", sw["status"]), ("search space", p.get("sweep.space", "-")),
                ("space sha256", p.get("sweep.space_sha256", "-")[:16]), ("search", p.get("sweep.search", "-")),
                ("metric", f"{p.get('sweep.metric', '-')} ({p.get('sweep.mode', '-')})"),
                ("scheduler", f"{p.get('sweep.scheduler', '-')} (grace period {p.get('sweep.grace_period', '-')}, "
                              f"reduction factor {p.get('sweep.reduction_factor', '-')})"),
                ("trials", _trial_plan(p, t[t["experiment"] == sw["experiment"]])),
                ("smoke sizes", p.get("sweep.smoke", "-")), ("retries", p.get("sweep.max_failures", "-")),
                ("resources per trial", ", ".join(f"{k.split('.')[-1]}={v}" for k, v in p.items()
                                                  if k.startswith("sweep.resources.")) or "-"),
                ("started", when(sw["start_time"])), ("ended", when(sw["end_time"]))]
        mine = t[t["experiment"] == sw["experiment"]]
        budget = mine["epochs_total"].dropna()
        rows.append(("budget", f"{int(budget.max()) if len(budget) else '-'} epochs per trial; "
                               f"{len(mine)} trials; {mine['gpu_hours'].sum():.2f} GPU-hours; "
                               f"{mine['duration_s'].sum() / 3600:.2f} trial-hours"))
        sec.table(pd.DataFrame(rows, columns=["", sw["name"]]), caption=sw.get("description") or None)
        if sw.get("space_text"):
            sec.pre(sw["space_text"], caption=f"search space ({p.get('sweep.space', '')})")
    bad = t[t["outcome"].isin(["failed", "killed", "stopped early", "running"])]
    if len(bad):
        frame = pd.DataFrame({"trial": bad["run_name"], "config": bad["config"], "outcome": bad["outcome"],
                              "epochs": [f"{fmt(e, 3)}/{fmt(tot, 3)}" for e, tot in
                                         zip(bad["epochs"], bad["epochs_total"])],
                              "why": [_why(r, o) for r, o in zip(bad["failure_reason"], bad["outcome"])]})
        sec.table(frame, caption="Trials that did not complete (kept, never silently dropped)")
    else:
        sec.text("Every trial completed its budget.")
    return sec


def _why(reason: object, outcome: str) -> str:
    return (cell_text(reason) or ("stopped by the scheduler" if outcome == "stopped early" else "-"))[:240]


def trials_section(ctx: Context) -> Section:
    t, spec = ctx.trials, stats.METRICS[ctx.primary]
    sec = Section("All trials", "trials")
    sec.text("Every trial, as loaded from MLflow. The same data with every param and metric: trials.parquet (one row "
             "per trial) and history.parquet (one row per logged step).")
    columns = {f"{split} {ctx.label(ctx.primary)}": t[spec.key_on(split)].map(fmt) if spec.key_on(split) in t else "-"
               for split in stats.SPLITS}
    sec.table(pd.DataFrame({
        "trial": t["run_name"], "configuration": t["config"], "seed": t["seed"].map(lambda s: fmt(s, 6)),
        "outcome": t["outcome"],
        "epochs": [f"{fmt(a, 3)}/{fmt(b, 3)}" for a, b in zip(t["epochs"], t["epochs_total"])], **columns,
        "duration (min)": (t["duration_s"] / 60).map(lambda x: fmt(x, 3)), "GPU-h": t["gpu_hours"].map(
            lambda x: fmt(x, 3)), "device": t["device"].fillna("-"), "run id": t["run_id"]}))
    return sec
