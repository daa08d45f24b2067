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
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aircolor import __version__
from aircolor.errors import UsageError
from analysis import figures, stats
from analysis.importance import fanova_importances
from analysis.render import Section, to_html, to_markdown
from analysis.runs import Study, load_study

MARKER = ".aircolor-report"
INCEPTION_METRICS = ("fid", "kid", "is")
NONSTANDARD = ("FID, IS and KID were computed with NON-STANDARD Inception weights (not torch-fidelity's "
               "pretrained pt_inception-2015-12-05): they are not comparable with published values, and random "
               "weights cannot judge color. Metrics marked * are affected; judge color with Delta E 2000, PSNR and "
               "SSIM.")


@dataclass
class ReportOptions:
    metric: str = "fid"
    top_k: int = 3
    n_boot: int = 10_000
    seed: int = 0
    data_root: Path | None = None
    samples: bool = True
    device: str = "cpu"
    n_val_samples: int = 3
    n_hist_samples: int = 3


@dataclass
class Report:
    out_dir: Path
    index: Path
    markdown: Path
    rankings: dict[str, pd.DataFrame] = field(default_factory=dict)
    effects: pd.DataFrame | None = None
    diagnostics: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------- helpers
def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, (float, np.floating)):
        return f"{x:.{digits}g}" if abs(x) < 1e5 else f"{x:.3e}"
    return str(x)


def _when(ts: Any) -> str:
    return "-" if ts is None or pd.isna(ts) else f"{pd.Timestamp(ts):%Y-%m-%d %H:%M:%S} UTC"


def _text(x: Any) -> str:
    """A string cell: '' for None/NaN (pandas turns missing tags into NaN)."""
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)


def _label(name: str, nonstandard: bool) -> str:
    spec = stats.METRICS[name]
    return spec.label + ("*" if nonstandard and name in INCEPTION_METRICS else "")


def _available(trials: pd.DataFrame) -> list[str]:
    return [m for m, spec in stats.METRICS.items() if spec.key in trials and trials[spec.key].notna().any()]


def _baseline(trials: pd.DataFrame, name: str) -> float | None:
    key = "baseline." + stats.METRICS[name].key
    if key not in trials:
        return None
    values = trials[key].dropna()
    return float(values.mean()) if len(values) else None


def _beats(mean: float, baseline: float | None, mode: str) -> bool | None:
    if baseline is None or mean is None or math.isnan(mean):
        return None
    return mean < baseline if mode == "min" else mean > baseline


def _family_keys(family: str | None) -> tuple[list[str], list[str]]:
    from aircolor.models.zoo import MODELS

    try:
        cls = MODELS.get(family)
    except Exception:
        return [], []
    return list(cls.adversarial_keys), list(cls.discriminator_keys)


def _factor_columns(trials: pd.DataFrame) -> list[str]:
    return [c for c in trials.columns if c.startswith("factor.") and trials[c].nunique(dropna=True) >= 2]


# ----------------------------------------------------------------------------------------------------- sections
def _overview(study: Study, opts: ReportOptions, primary: str, rankings: dict[str, pd.DataFrame]) -> Section:
    t = study.trials
    sec = Section("Overview", "overview")
    counts = t["outcome"].value_counts().to_dict()
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    sec.text(f"{len(t)} trials in {t['config'].nunique()} configurations ({summary}) from MLflow experiment(s) "
             f"{', '.join(study.experiments)}. Primary metric: {_label(primary, study.nonstandard_weights)} "
             f"({'lower' if stats.METRICS[primary].mode == 'min' else 'higher'} is better), final validation value.")
    rank = rankings.get(primary)
    if rank is not None and len(rank):
        best = rank.iloc[0]
        base = _baseline(t, primary)
        gain = "" if base is None else f"; the gray copy scores {_fmt(base)}"
        sec.text(f"Best configuration by {_label(primary, study.nonstandard_weights)}: {best['config']} "
                 f"(mean {_fmt(best['mean'])} over {int(best['n'])} seed(s){gain}).")
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


def _sweep_section(study: Study) -> Section:
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
                ("started", _when(sw["start_time"])), ("ended", _when(sw["end_time"]))]
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
                              "epochs": [f"{_fmt(e, 3)}/{_fmt(tot, 3)}" for e, tot in
                                         zip(bad["epochs"], bad["epochs_total"])],
                              "why": [(_text(r) or ("stopped by the scheduler" if o == "stopped early" else "-"))[:240]
                                      for r, o in zip(bad["failure_reason"], bad["outcome"])]})
        sec.table(frame, caption="Trials that did not complete (kept, never silently dropped)")
    else:
        sec.text("Every trial completed its budget.")
    return sec


def _ranking_table(rank: pd.DataFrame, base: float | None, mode: str) -> pd.DataFrame:
    rows = []
    for r in rank.itertuples(index=False):
        beats = _beats(r.mean, base, mode)
        dist = r.distinguishable_from_next
        rows.append({"rank": int(r.rank), "configuration": r.config, "mean": _fmt(r.mean), "std": _fmt(r.std),
                     "n": int(r.n), "95% CI": "-" if math.isnan(r.ci_low) else f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]",
                     "seeds": r.seeds,
                     "vs gray copy": "-" if beats is None else (f"{r.mean - base:+.4g}" + ("" if beats
                                                                                        else " (does NOT beat it)")),
                     "next": "" if dist is None or (isinstance(dist, float) and math.isnan(dist))
                     else ("distinguishable" if dist else "not distinguishable")})
    if base is not None:
        rows.append({"rank": "-", "configuration": "gray copy (no colorization)", "mean": _fmt(base), "std": "-",
                     "n": "-", "95% CI": "-", "seeds": "-", "vs gray copy": "baseline", "next": ""})
    return pd.DataFrame(rows)


def _ranking_sections(study: Study, opts: ReportOptions, primary: str, rankings: dict[str, pd.DataFrame],
                      figs: Path) -> list[Section]:
    t, ns = study.trials, study.nonstandard_weights
    flag = "non-standard Inception weights: not comparable with published values" if ns else None
    main = Section(f"Ranking by {_label(primary, ns)}", "ranking")
    if ns and primary in INCEPTION_METRICS:
        main.banner(NONSTANDARD)
    spec = stats.METRICS[primary]
    rank = rankings.get(primary)
    if rank is None or rank.empty:
        main.text(f"No completed trial logged {spec.key}: nothing to rank.")
    else:
        base = _baseline(t, primary)
        main.text("Configurations are the factor values of a trial; trials that differ only by seed are grouped. "
                  "Mean and std over seeds; 95% percentile-bootstrap CI of the mean "
                  f"({opts.n_boot} resamples); 'not distinguishable' when a configuration's CI overlaps the next "
                  "one's (or either has fewer than 2 seeds). Only trials that completed their budget are ranked here.")
        main.table(_ranking_table(rank, base, spec.mode))
        figures.ranking_chart(rank, metric_label=_label(primary, ns), mode=spec.mode, out_dir=figs,
                              stem=f"ranking_{primary}", baseline=base,
                              flag=flag if primary in INCEPTION_METRICS else None)
        main.figure(f"figures/ranking_{primary}.png", f"{_label(primary, ns)} by configuration (mean, 95% CI "
                                                       f"whiskers; dashed: gray copy)")
    others = Section("Other metrics and composite rank", "metrics")
    if ns:
        others.banner(NONSTANDARD)
    for name, rank in rankings.items():
        if name in (primary, "composite") or rank.empty:
            continue
        others.table(_ranking_table(rank, _baseline(t, name), stats.METRICS[name].mode),
                     caption=f"{_label(name, ns)} ({'lower' if stats.METRICS[name].mode == 'min' else 'higher'} "
                             f"is better)")
    comp = rankings.get("composite")
    if comp is not None and len(comp):
        cols = ["composite_rank", "config", "mean_rank", "n_metrics"] + [c for c in comp.columns
                                                                          if c.startswith("rank.")]
        shown = comp[cols].copy()
        shown.columns = ["composite rank", "configuration", "mean rank", "metrics"] + [
            _label(c[5:], ns) if c[5:] in stats.METRICS else c[5:] for c in cols[4:]]
        others.text("Composite rank: the mean of each configuration's rank under every metric it has.")
        others.table(shown.map(_fmt))
    return [main, others]


def _budget_section(study: Study, opts: ReportOptions, primary: str) -> Section:
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
    sec.table(_ranking_table(rank, _baseline(t, primary), stats.METRICS[primary].mode))
    return sec


def _fid_section(study: Study) -> Section:
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
        rows.append({"configuration": config, "FID" + ("*" if ns else ""): _fmt(group["val.fid"].mean()),
                     "generated images": _fmt(n_fake.max() if len(n_fake) else None),
                     "real images": _fmt(n_real.max() if len(n_real) else None),
                     "FID-infinity" + ("*" if ns else ""): _fmt(np.mean([f.value for f in infs])) if infs else "-",
                     "fit R^2": _fmt(np.mean([f.r2 for f in infs]), 3) if infs else "-",
                     "sizes": ",".join(str(int(s)) for s in sorted(first_sizes or {})) or "-"})
    sec.text("FID is biased upwards at small sample sizes, and the bias depends on the generator (Chong & Forsyth, "
             "CVPR 2020). Completed trials only, mean over seeds. Where the runs logged FID at several numbers of "
             "generated images (val.fid_n<N>, "
             "metrics.fid_points), FID_N is fitted as linear in 1/N and extrapolated to N = infinity.")
    sec.table(pd.DataFrame(rows))
    if reasons:
        sec.text("FID-infinity not computed for some runs: " + "; ".join(sorted(reasons)) + ".")
    return sec


def _effects_section(study: Study, opts: ReportOptions, metrics: list[str], figs: Path) -> tuple[Section, Any]:
    t, ns = study.trials, study.nonstandard_weights
    sec = Section("Factor effects", "effects")
    factors = _factor_columns(t[t["outcome"] == "completed"])
    first = None
    if not factors:
        sec.text("No factor took two or more values among the completed trials: no factor effects.")
    for name in metrics:
        if not factors:
            break
        eff = stats.factor_effects(t, name, factors=factors, n_boot=opts.n_boot, seed=opts.seed)
        first = eff if first is None else first
        label = _label(name, ns)
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
            "mean at level": eff["mean_level"].map(_fmt),
            "mean otherwise": eff["mean_rest"].map(_fmt), "difference": eff["diff"].map(_fmt),
            "95% CI": [f"[{_fmt(a)}, {_fmt(b)}]" for a, b in zip(eff["ci_low"], eff["ci_high"])],
            "Welch p": eff["welch_p"].map(_fmt), "Holm p": eff["p_holm"].map(_fmt),
            "Mann-Whitney p (Holm)": eff["p_holm_mwu"].map(_fmt),
            "verdict": ["better" if b else "-" for b in eff["better"]]})
        sec.table(shown, caption=f"Factor effects on {label}")
        stem = f"effects_{name}"
        if figures.effects_chart(eff, metric_label=label, out_dir=figs, stem=stem):
            sec.figure(f"figures/{stem}.png", f"Factor effects on {label} (difference of means, 95% CI; * Holm "
                                              f"p < 0.05)")
    return sec, first


def _importance_section(study: Study, primary: str) -> Section | None:
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
        sec.table(pd.DataFrame({"parameter": list(result), "importance": [_fmt(v, 3) for v in result.values()]}),
                  caption=f"{sw['name']}: Optuna fANOVA importances for {primary} (completed trials)")
    return sec


def _diagnostics(study: Study) -> pd.DataFrame:
    rows = []
    for r in study.trials.to_dict("records"):
        g_keys, d_keys = _family_keys(r.get("family"))
        gan_mode = r.get("param.model.gan_mode")
        gan_mode = gan_mode if isinstance(gan_mode, str) and gan_mode in ("vanilla", "lsgan", "wgangp") else "vanilla"
        out = stats.d_overpowering_g(study.history, r["run_id"], d_keys=d_keys, g_keys=g_keys, gan_mode=gan_mode)
        rows.append({"run_id": r["run_id"], "trial": r["run_name"], "config": r["config"], "flag": out["flag"],
                     "began_epoch": out["began_epoch"], "reason": out["reason"]})
    return pd.DataFrame(rows)


def _diagnostics_section(study: Study, diag: pd.DataFrame, primary: str, rank: pd.DataFrame | None,
                         figs: Path) -> Section:
    sec = Section("Training diagnostics", "diagnostics")
    flagged = diag[diag["flag"]]
    sec.text("A run is flagged 'D overpowering G' when, from some epoch to the end, the discriminator's loss has "
             "fallen to a quarter of its first-epoch value or less while the generator's adversarial loss has risen "
             "to 1.5 times its first-epoch value or more (not applicable to WGAN-GP critics).")
    if flagged.empty:
        sec.text(f"No run was flagged ({len(diag)} checked).")
    else:
        sec.table(pd.DataFrame({"trial": flagged["trial"], "configuration": flagged["config"],
                                "began at epoch": flagged["began_epoch"].map(_fmt), "detail": flagged["reason"]}),
                  caption="D overpowering G")
    if rank is None or rank.empty:
        return sec
    t = study.trials
    key = stats.METRICS[primary].key
    mode = stats.METRICS[primary].mode

    def best_run(config: str) -> str:
        g = t[(t["config"] == config) & t[key].notna()]
        return str(g.sort_values(key, ascending=mode == "min")["run_id"].iloc[0])

    picks = {f"best: {rank.iloc[0]['config']}": best_run(rank.iloc[0]["config"])}
    if len(rank) > 1:
        picks[f"worst: {rank.iloc[-1]['config']}"] = best_run(rank.iloc[-1]["config"])
    family = t.loc[t["run_id"] == next(iter(picks.values())), "family"].iloc[0]
    g_keys, d_keys = _family_keys(family)
    began = {label: diag.loc[diag["run_id"] == rid, "began_epoch"].iloc[0] for label, rid in picks.items()}
    onset = {label: None if pd.isna(v) else int(v) for label, v in began.items()}
    written = figures.loss_curves(study.history, runs=picks, g_keys=[f"loss.{k}" for k in g_keys],
                                  d_keys=[f"loss.{k}" for k in d_keys], out_dir=figs,
                                  stem="loss_best_worst", onset=onset)
    if written:
        sec.figure("figures/loss_best_worst.png", "G adversarial and D losses of the best and worst configurations "
                                                  "(their best seed)")
    return sec


def _curves_section(study: Study, primary: str, figs: Path) -> Section:
    sec = Section("Curves and the search", "curves")
    ns = study.nonstandard_weights
    keys = [primary] + (["fid"] if primary != "fid" else [])
    for name in keys:
        key = stats.METRICS[name].key
        if not (study.history["key"] == key).any():
            continue
        figures.metric_curves(study.history, study.trials, key=key, metric_label=_label(name, ns), out_dir=figs,
                              stem=f"curve_{name}", flag="non-standard Inception weights" if ns and name in
                              INCEPTION_METRICS else None)
        sec.figure(f"figures/curve_{name}.png", f"{_label(name, ns)} vs epoch per configuration (mean over seeds; "
                                                f"band: min-max; dashed: stopped early or failed)")
    factors = _factor_columns(study.trials)
    key = stats.METRICS[primary].key
    if factors and key in study.trials:
        figures.parallel_coordinates(study.trials, factors=factors, metric_key=key, metric_label=_label(primary, ns),
                                     mode=stats.METRICS[primary].mode, out_dir=figs, stem="parallel_coordinates")
        sec.figure("figures/parallel_coordinates.png", "The search: one line per trial (grey dashed: failed or "
                                                       "stopped early)")
    return sec


def _samples_section(study: Study, opts: ReportOptions, primary: str, rankings: dict[str, pd.DataFrame],
                     figs: Path) -> Section:
    from analysis.runs import client_for
    from analysis.samples import load_samples, sample_rows

    sec = Section("Colorized samples", "samples")
    rank = rankings.get(primary)
    if not opts.samples:
        sec.text("Sample grid skipped (--no-samples).")
        return sec
    if rank is None or rank.empty:
        sec.text("No ranked configuration: no sample grid.")
        return sec
    t = study.trials
    key, mode = stats.METRICS[primary].key, stats.METRICS[primary].mode
    picks = []
    for config in rank["config"].head(opts.top_k):
        g = t[(t["config"] == config) & (t["outcome"] == "completed") & t[key].notna()]
        best = g.sort_values(key, ascending=mode == "min").iloc[0]
        picks.append((f"#{len(picks) + 1} {config}", str(best["run_id"]), best.get("param.data.root")))
    root = opts.data_root or (Path(picks[0][2]) if picks[0][2] else None)
    if root is None or not Path(root).is_dir():
        sec.text(f"Sample grid skipped: the prepared dataset {root} is not on this machine; pass --data ROOT "
                 f"(the folder made by `aircolor data prepare`).")
        return sec
    samples = load_samples(Path(root), n_val=opts.n_val_samples, n_hist=opts.n_hist_samples)
    if not samples:
        sec.text(f"Sample grid skipped: no validation tiles or historical photos under {root}.")
        return sec
    rows, notes = sample_rows(client_for(study.tracking_uri), [(label, rid) for label, rid, _ in picks], samples,
                              device=opts.device)
    for note in notes:
        sec.text(note)
    figures.image_grid(rows, out_dir=figs, stem="samples", title=f"Top {len(picks)} configurations by "
                                                               f"{_label(primary, study.nonstandard_weights)}")
    names = "; ".join(f"{kind} {i + 1}: {s.name}" for kind in ("validation", "historical")
                      for i, s in enumerate(x for x in samples if x.kind == kind))
    sec.text(f"The same {sum(s.kind == 'validation' for s in samples)} validation tiles (gray copy in, ground truth "
             f"right) and {sum(s.kind == 'historical' for s in samples)} historical photos (no ground truth) from "
             f"{root}, colorized by the best seed of each of the top configurations ({names}).")
    sec.figure("figures/samples.png", "Gray input, the top configurations' colorizations, ground truth")
    return sec


def _trials_section(study: Study, primary: str) -> Section:
    t = study.trials
    key = stats.METRICS[primary].key
    sec = Section("All trials", "trials")
    sec.text("Every trial, as loaded from MLflow. The same data with every param and metric: trials.parquet (one row "
             "per trial) and history.parquet (one row per logged step).")
    sec.table(pd.DataFrame({
        "trial": t["run_name"], "configuration": t["config"], "seed": t["seed"].map(lambda s: _fmt(s, 6)),
        "outcome": t["outcome"],
        "epochs": [f"{_fmt(a, 3)}/{_fmt(b, 3)}" for a, b in zip(t["epochs"], t["epochs_total"])],
        stats.METRICS[primary].label: t[key].map(_fmt) if key in t else "-",
        "duration (min)": (t["duration_s"] / 60).map(lambda x: _fmt(x, 3)), "GPU-h": t["gpu_hours"].map(
            lambda x: _fmt(x, 3)), "device": t["device"].fillna("-"), "run id": t["run_id"]}))
    return sec


# ----------------------------------------------------------------------------------------------------- build
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
                for m in _available(trials)}
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
        have = _available(t)
        raise UsageError(f"no trial logged {stats.METRICS[primary].key} (--metric {primary}); the runs have "
                         f"{', '.join(have) or 'no validation metrics yet'}")
    rankings = compute_rankings(t, opts)
    effect_metrics = [primary] + (["fid"] if primary != "fid" and "fid" in rankings else [])
    effects_sec, effects = _effects_section(study, opts, effect_metrics, figs)
    diag = _diagnostics(study)
    sections = [_overview(study, opts, primary, rankings), _sweep_section(study),
                *_ranking_sections(study, opts, primary, rankings, figs), _budget_section(study, opts, primary),
                _fid_section(study), effects_sec]
    importance = _importance_section(study, primary)
    if importance is not None:
        sections.append(importance)
    sections += [_diagnostics_section(study, diag, primary, rankings.get(primary), figs),
                 _curves_section(study, primary, figs), _samples_section(study, opts, primary, rankings, figs),
                 _trials_section(study, primary)]
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
