"""The report's overview, sweep and all-trials sections: what was run, how it went, and every trial."""

from __future__ import annotations

import pandas as pd

from analysis import stats
from analysis.render import Section
from analysis.report.common import ReportOptions, baseline_value, cell_text, fmt, metric_label, when
from analysis.runs import Study


def overview_section(study: Study, opts: ReportOptions, primary: str, rankings: dict[str, pd.DataFrame]) -> Section:
    t = study.trials
    sec = Section("Overview", "overview")
    counts = t["outcome"].value_counts().to_dict()
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    sec.text(f"{len(t)} trials in {t['config'].nunique()} configurations ({summary}) from MLflow experiment(s) "
             f"{', '.join(study.experiments)}. Primary metric: {metric_label(primary, study.nonstandard_weights)} "
             f"({'lower' if stats.METRICS[primary].mode == 'min' else 'higher'} is better), final validation value.")
    rank = rankings.get(primary)
    if rank is not None and len(rank):
        best = rank.iloc[0]
        base = baseline_value(t, primary)
        gain = "" if base is None else f"; the gray copy scores {fmt(base)}"
        sec.text(f"Best configuration by {metric_label(primary, study.nonstandard_weights)}: {best['config']} "
                 f"(mean {fmt(best['mean'])} over {int(best['n'])} seed(s){gain}).")
    if "composite" in rankings and len(rankings["composite"]):
        sec.text(f"Best by composite rank (mean of the per-metric ranks): {rankings['composite'].iloc[0]['config']}.")
    gpu_h, dur = t["gpu_hours"].sum(skipna=True), t["duration_s"].sum(skipna=True) / 3600
    sec.text(f"Compute: {dur:.2f} trial-hours in all, {gpu_h:.2f} GPU-hours. Devices: "
             f"{', '.join(sorted(str(d) for d in t['device'].dropna().unique())) or 'unknown'}.")
    seeds = t[t["outcome"] == "completed"].groupby("config")["seed"].nunique()
    if len(seeds) and 1 < seeds.min() < 5:
        sec.text(f"Configurations have {seeds.min()}-{seeds.max()} completed seeds: bootstrap CIs from so few seeds "
                 f"understate the uncertainty; read 'distinguishable' as a hint, not a test.")
    if t["seed"].notna().any() and t.groupby("config")["seed"].nunique().max() <= 1:
        sec.banner("Every configuration ran with one seed: the ranks below carry no uncertainty estimate (no "
                   "confidence intervals); run the space with `seeds: 3` or more to tell configurations apart.")
    return sec


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
                ("samples / seeds", f"{p.get('sweep.num_samples', '-')} / {p.get('sweep.seeds', '-')}"),
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


def trials_section(study: Study, primary: str) -> Section:
    t = study.trials
    key = stats.METRICS[primary].key
    sec = Section("All trials", "trials")
    sec.text("Every trial, as loaded from MLflow. The same data with every param and metric: trials.parquet (one row "
             "per trial) and history.parquet (one row per logged step).")
    sec.table(pd.DataFrame({
        "trial": t["run_name"], "configuration": t["config"], "seed": t["seed"].map(lambda s: fmt(s, 6)),
        "outcome": t["outcome"],
        "epochs": [f"{fmt(a, 3)}/{fmt(b, 3)}" for a, b in zip(t["epochs"], t["epochs_total"])],
        stats.METRICS[primary].label: t[key].map(fmt) if key in t else "-",
        "duration (min)": (t["duration_s"] / 60).map(lambda x: fmt(x, 3)), "GPU-h": t["gpu_hours"].map(
            lambda x: fmt(x, 3)), "device": t["device"].fillna("-"), "run id": t["run_id"]}))
    return sec
