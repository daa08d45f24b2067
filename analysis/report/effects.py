"""The statistics sections: sample sizes and FID-infinity, factor effects, and fANOVA parameter importances."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analysis import figures, stats
from analysis.importance import fanova_importances
from analysis.render import Section
from analysis.report.common import SPLIT_NAMES, Context, factor_columns, fmt


def _fid_fits(ctx: Context, group: pd.DataFrame, split: str) -> tuple[list[stats.FidInfinity], dict, set[str]]:
    """FID-infinity per run: from the history of val.fid_n<N> (last epoch), or from the test row's test.fid_n<N>."""
    fits, first, reasons = [], None, set()
    for _, row in group.iterrows():
        sizes = (stats.fid_sizes_from_history(ctx.study.history, row["run_id"]) if split == "val"
                 else stats.fid_sizes_from_row(row, prefix=f"{split}.fid_n"))
        first = sizes if first is None else first
        fit = stats.fid_infinity(list(sizes), list(sizes.values()))
        if math.isnan(fit.value):
            reasons.add(fit.reason)
        else:
            fits.append(fit)
    return fits, first or {}, reasons


def _fid_row(ctx: Context, config: str, group: pd.DataFrame, split: str) -> tuple[dict, set[str]]:
    star = "*" if ctx.ns else ""
    fits, sizes, reasons = _fid_fits(ctx, group, split)
    counts = {c: group[f"{split}.{c}"].dropna() if f"{split}.{c}" in group else pd.Series(dtype=float)
              for c in ("n_fake", "n_real")}
    return {"configuration": config, f"FID{star}": fmt(group[f"{split}.fid"].mean()),
            "generated images": fmt(counts["n_fake"].max() if len(counts["n_fake"]) else None),
            "real images": fmt(counts["n_real"].max() if len(counts["n_real"]) else None),
            f"FID-infinity{star}": fmt(np.mean([f.value for f in fits])) if fits else "-",
            "fit R^2": fmt(np.mean([f.r2 for f in fits]), 3) if fits else "-",
            "sizes": ",".join(str(int(s)) for s in sorted(sizes)) or "-"}, reasons


def fid_section(ctx: Context) -> Section:
    t, split = ctx.trials, ctx.split_of("fid")
    key = f"{split}.fid"
    sec = Section("Sample sizes and FID-infinity", "fid")
    if key not in t or t[key].isna().all():
        sec.text("No run logged a FID.")
        return sec
    rows, reasons = [], set()
    for config, group in t[t[key].notna() & (t["outcome"] == "completed")].groupby("config", sort=False):
        row, why = _fid_row(ctx, config, group, split)
        rows.append(row)
        reasons |= why
    star = "*" if ctx.ns else ""
    for name, value in ctx.baselines("fid", split).items():
        if value is not None:
            rows.append({"configuration": stats.BASELINES[name].label, f"FID{star}": fmt(value)})
    sec.text(f"FID on the {SPLIT_NAMES[split]} split is biased upwards at small sample sizes, and the bias depends "
             "on the generator (Chong & Forsyth, CVPR 2020). Completed trials only, mean over seeds; the baselines "
             f"below them. Where the runs logged FID at several numbers of generated images ({split}.fid_n<N>, "
             "metrics.fid_points), FID_N is fitted as linear in 1/N and extrapolated to N = infinity.")
    sec.table(pd.DataFrame(rows).fillna("-"))
    if reasons:
        sec.text("FID-infinity not computed for some runs: " + "; ".join(sorted(reasons)) + ".")
    return sec


def _effects_table(eff: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "factor": eff["factor"].str.replace("factor.", "", regex=False), "level": eff["level"],
        "n": [f"{a}/{b}" for a, b in zip(eff["n_level"], eff["n_rest"])],
        "mean at level": eff["mean_level"].map(fmt),
        "mean otherwise": eff["mean_rest"].map(fmt), "difference": eff["diff"].map(fmt),
        "95% CI": [f"[{fmt(a)}, {fmt(b)}]" for a, b in zip(eff["ci_low"], eff["ci_high"])],
        "Welch p": eff["welch_p"].map(fmt), "Holm p": eff["p_holm"].map(fmt),
        "Mann-Whitney p (Holm)": eff["p_holm_mwu"].map(fmt),
        "verdict": ["better" if b else "-" for b in eff["better"]]})


def effects_section(ctx: Context, metrics: list[str]) -> tuple[Section, Any]:
    t = ctx.trials
    sec = Section("Factor effects", "effects")
    factors = factor_columns(t[t["outcome"] == "completed"])
    first = None
    if not factors:
        sec.text("No factor took two or more values among the completed trials: no factor effects.")
        return sec, None
    for name in metrics:
        split = ctx.split_of(name)
        eff = stats.factor_effects(t, name, factors=factors, n_boot=ctx.opts.n_boot, seed=ctx.opts.seed, split=split)
        first = eff if first is None else first
        label = ctx.label(name)
        for factor, why in (eff.attrs.get("skipped") or {}).items():
            sec.text(f"{factor}: {why}")
        if eff.empty:
            continue
        sec.text(f"Effect of each level on {label} on the {SPLIT_NAMES[split]} split: mean at the level minus mean "
                 f"over the other levels, with a 95% bootstrap CI; Welch's t-test and Mann-Whitney U across trials "
                 f"(seeds), p-values Holm-corrected over all the comparisons of this table.")
        sec.table(_effects_table(eff), caption=f"Factor effects on {label} ({SPLIT_NAMES[split]} split)")
        stem = f"effects_{name}"
        if figures.effects_chart(eff, metric_label=label, out_dir=ctx.figs, stem=stem):
            sec.figure(f"figures/{stem}.png", f"Factor effects on {label}, {SPLIT_NAMES[split]} split (difference "
                                              f"of means, 95% CI; * Holm p < 0.05)")
    return sec, first


def importance_section(ctx: Context) -> Section | None:
    study, primary = ctx.study, ctx.primary
    optuna_sweeps = [s for s in study.sweeps if s["params"].get("sweep.search") == "optuna-tpe"]
    if not optuna_sweeps:
        return None
    sec = Section("Parameter importances (fANOVA)", "importance")
    key = ctx.key(primary)
    for sw in optuna_sweeps:
        t = study.trials[(study.trials["experiment"] == sw["experiment"]) & (study.trials["outcome"] == "completed")]
        result = fanova_importances(t, key, mode=stats.METRICS[primary].mode)
        if isinstance(result, str):
            sec.text(f"{sw['name']}: {result}")
            continue
        sec.table(pd.DataFrame({"parameter": list(result), "importance": [fmt(v, 3) for v in result.values()]}),
                  caption=f"{sw['name']}: Optuna fANOVA importances for {key} (completed trials)")
    return sec
