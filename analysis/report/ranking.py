"""The ranking sections: the final ranking by the primary metric, every other metric, the composite rank, and the
early-stopped trials ranked at the last budget all trials reached."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from analysis import figures, stats
from analysis.render import Section
from analysis.report.common import (INCEPTION_METRICS, NONSTANDARD, ReportOptions, baseline_value, fmt, is_better,
                                    metric_label)
from analysis.runs import Study


def ranking_table(rank: pd.DataFrame, base: float | None, mode: str) -> pd.DataFrame:
    rows = []
    for r in rank.itertuples(index=False):
        beats = is_better(r.mean, base, mode)
        dist = r.distinguishable_from_next
        rows.append({"rank": int(r.rank), "configuration": r.config, "mean": fmt(r.mean), "std": fmt(r.std),
                     "n": int(r.n), "95% CI": "-" if math.isnan(r.ci_low) else f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}]",
                     "seeds": r.seeds,
                     "vs gray copy": "-" if beats is None else (f"{r.mean - base:+.4g}" + ("" if beats
                                                                                        else " (does NOT beat it)")),
                     "next": "" if dist is None or (isinstance(dist, float) and math.isnan(dist))
                     else ("distinguishable" if dist else "not distinguishable")})
    if base is not None:
        rows.append({"rank": "-", "configuration": "gray copy (no colorization)", "mean": fmt(base), "std": "-",
                     "n": "-", "95% CI": "-", "seeds": "-", "vs gray copy": "baseline", "next": ""})
    return pd.DataFrame(rows)


def ranking_sections(study: Study, opts: ReportOptions, primary: str, rankings: dict[str, pd.DataFrame],
                     figs: Path) -> list[Section]:
    t, ns = study.trials, study.nonstandard_weights
    flag = "non-standard Inception weights: not comparable with published values" if ns else None
    main = Section(f"Ranking by {metric_label(primary, ns)}", "ranking")
    if ns and primary in INCEPTION_METRICS:
        main.banner(NONSTANDARD)
    spec = stats.METRICS[primary]
    rank = rankings.get(primary)
    if rank is None or rank.empty:
        main.text(f"No completed trial logged {spec.key}: nothing to rank.")
    else:
        base = baseline_value(t, primary)
        main.text("Configurations are the factor values of a trial; trials that differ only by seed are grouped. "
                  "Mean and std over seeds; 95% percentile-bootstrap CI of the mean "
                  f"({opts.n_boot} resamples); 'not distinguishable' when a configuration's CI overlaps the next "
                  "one's (or either has fewer than 2 seeds). Only trials that completed their budget are ranked here.")
        main.table(ranking_table(rank, base, spec.mode))
        figures.ranking_chart(rank, metric_label=metric_label(primary, ns), mode=spec.mode, out_dir=figs,
                              stem=f"ranking_{primary}", baseline=base,
                              flag=flag if primary in INCEPTION_METRICS else None)
        main.figure(f"figures/ranking_{primary}.png",
                    f"{metric_label(primary, ns)} by configuration (mean, 95% CI whiskers; dashed: gray copy)")
    others = Section("Other metrics and composite rank", "metrics")
    if ns:
        others.banner(NONSTANDARD)
    for name, rank in rankings.items():
        if name in (primary, "composite") or rank.empty:
            continue
        others.table(ranking_table(rank, baseline_value(t, name), stats.METRICS[name].mode),
                     caption=f"{metric_label(name, ns)} ({'lower' if stats.METRICS[name].mode == 'min' else 'higher'} "
                             f"is better)")
    comp = rankings.get("composite")
    if comp is not None and len(comp):
        cols = ["composite_rank", "config", "mean_rank", "n_metrics"] + [c for c in comp.columns
                                                                          if c.startswith("rank.")]
        shown = comp[cols].copy()
        shown.columns = ["composite rank", "configuration", "mean rank", "metrics"] + [
            metric_label(c[5:], ns) if c[5:] in stats.METRICS else c[5:] for c in cols[4:]]
        others.text("Composite rank: the mean of each configuration's rank under every metric it has.")
        others.table(shown.map(fmt))
    return [main, others]


def budget_section(study: Study, opts: ReportOptions, primary: str) -> Section:
    sec = Section("Early-stopped trials", "budget")
    t, h = study.trials, study.history
    stopped = t[t["outcome"] == "stopped early"]
    if stopped.empty:
        sec.text("No trial was stopped early: every ranked trial ran the same budget.")
        return sec
    key = stats.METRICS[primary].key
    pool = t[t["outcome"].isin(["completed", "stopped early"])]
    epoch = stats.last_common_budget(h, list(pool["run_id"]), key)
    sec.text(f"{len(stopped)} trial(s) were stopped early by the scheduler. They are left out of the final "
             f"ranking above (which compares full budgets only).")
    if epoch is None:
        sec.text(f"No epoch at which every trial logged {key}: no ranking at a common budget.")
        return sec
    values = stats.values_at_epoch(h[h["run_id"].isin(pool["run_id"])], key, epoch)
    at = pool.drop(columns=[key]).assign(**{key: pool["run_id"].map(values)})
    at = at.assign(outcome="completed")  # at this budget every one of them ran the same number of epochs
    rank = stats.rank_configurations(at, primary, n_boot=opts.n_boot, seed=opts.seed)
    sec.text(f"Ranking of every trial that was not failed (completed and stopped early) at epoch {epoch}, the last "
             f"budget all of them reached:")
    sec.table(ranking_table(rank, baseline_value(t, primary), stats.METRICS[primary].mode))
    return sec
