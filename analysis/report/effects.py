"""The statistics sections: sample sizes and FID-infinity, factor effects, and fANOVA parameter importances."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import figures, stats
from analysis.importance import fanova_importances
from analysis.render import Section
from analysis.report.common import ReportOptions, factor_columns, fmt, metric_label
from analysis.runs import Study


def fid_section(study: Study) -> Section:
    t, h = study.trials, study.history
    ns = study.nonstandard_weights
    sec = Section("Sample sizes and FID-infinity", "fid")
    if "val.fid" not in t or t["val.fid"].isna().all():
        sec.text("No run logged a validation FID.")
        return sec
    rows, reasons = [], set()
    for config, group in t[t["val.fid"].notna() & (t["outcome"] == "completed")].groupby("config", sort=False):
        infs, first_sizes = [], None
        for run_id in group["run_id"]:
            sizes = stats.fid_sizes_from_history(h, run_id)
            first_sizes = sizes if first_sizes is None else first_sizes
            fit = stats.fid_infinity(list(sizes), list(sizes.values()))
            if math.isnan(fit.value):
                reasons.add(fit.reason)
            else:
                infs.append(fit)
        n_fake = group["val.n_fake"].dropna() if "val.n_fake" in group else pd.Series(dtype=float)
        n_real = group["val.n_real"].dropna() if "val.n_real" in group else pd.Series(dtype=float)
        rows.append({"configuration": config, "FID" + ("*" if ns else ""): fmt(group["val.fid"].mean()),
                     "generated images": fmt(n_fake.max() if len(n_fake) else None),
                     "real images": fmt(n_real.max() if len(n_real) else None),
                     "FID-infinity" + ("*" if ns else ""): fmt(np.mean([f.value for f in infs])) if infs else "-",
                     "fit R^2": fmt(np.mean([f.r2 for f in infs]), 3) if infs else "-",
                     "sizes": ",".join(str(int(s)) for s in sorted(first_sizes or {})) or "-"})
    sec.text("FID is biased upwards at small sample sizes, and the bias depends on the generator (Chong & Forsyth, "
             "CVPR 2020). Completed trials only, mean over seeds. Where the runs logged FID at several numbers of "
             "generated images (val.fid_n<N>, "
             "metrics.fid_points), FID_N is fitted as linear in 1/N and extrapolated to N = infinity.")
    sec.table(pd.DataFrame(rows))
    if reasons:
        sec.text("FID-infinity not computed for some runs: " + "; ".join(sorted(reasons)) + ".")
    return sec


def effects_section(study: Study, opts: ReportOptions, metrics: list[str], figs: Path) -> tuple[Section, Any]:
    t, ns = study.trials, study.nonstandard_weights
    sec = Section("Factor effects", "effects")
    factors = factor_columns(t[t["outcome"] == "completed"])
    first = None
    if not factors:
        sec.text("No factor took two or more values among the completed trials: no factor effects.")
    for name in metrics:
        if not factors:
            break
        eff = stats.factor_effects(t, name, factors=factors, n_boot=opts.n_boot, seed=opts.seed)
        first = eff if first is None else first
        label = metric_label(name, ns)
        for factor, why in (eff.attrs.get("skipped") or {}).items():
            sec.text(f"{factor}: {why}")
        if eff.empty:
            continue
        sec.text(f"Effect of each level on {label}: mean at the level minus mean over the other levels, with a "
                 f"95% bootstrap CI; Welch's t-test and Mann-Whitney U across trials (seeds), p-values "
                 f"Holm-corrected over all the comparisons of this table.")
        shown = pd.DataFrame({
            "factor": eff["factor"].str.replace("factor.", "", regex=False), "level": eff["level"],
            "n": [f"{a}/{b}" for a, b in zip(eff["n_level"], eff["n_rest"])],
            "mean at level": eff["mean_level"].map(fmt),
            "mean otherwise": eff["mean_rest"].map(fmt), "difference": eff["diff"].map(fmt),
            "95% CI": [f"[{fmt(a)}, {fmt(b)}]" for a, b in zip(eff["ci_low"], eff["ci_high"])],
            "Welch p": eff["welch_p"].map(fmt), "Holm p": eff["p_holm"].map(fmt),
            "Mann-Whitney p (Holm)": eff["p_holm_mwu"].map(fmt),
            "verdict": ["better" if b else "-" for b in eff["better"]]})
        sec.table(shown, caption=f"Factor effects on {label}")
        stem = f"effects_{name}"
        if figures.effects_chart(eff, metric_label=label, out_dir=figs, stem=stem):
            sec.figure(f"figures/{stem}.png", f"Factor effects on {label} (difference of means, 95% CI; * Holm "
                                              f"p < 0.05)")
    return sec, first


def importance_section(study: Study, primary: str) -> Section | None:
    optuna_sweeps = [s for s in study.sweeps if s["params"].get("sweep.search") == "optuna-tpe"]
    if not optuna_sweeps:
        return None
    sec = Section("Parameter importances (fANOVA)", "importance")
    for sw in optuna_sweeps:
        t = study.trials[(study.trials["experiment"] == sw["experiment"]) & (study.trials["outcome"] == "completed")]
        result = fanova_importances(t, stats.METRICS[primary].key, mode=stats.METRICS[primary].mode)
        if isinstance(result, str):
            sec.text(f"{sw['name']}: {result}")
            continue
        sec.table(pd.DataFrame({"parameter": list(result), "importance": [fmt(v, 3) for v in result.values()]}),
                  caption=f"{sw['name']}: Optuna fANOVA importances for {primary} (completed trials)")
    return sec
