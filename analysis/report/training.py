"""The training sections: "D overpowering G" diagnostics with the best and worst losses, and the curves."""

from __future__ import annotations

import pandas as pd

from analysis import figures, stats
from analysis.render import Section
from analysis.report.common import INCEPTION_METRICS, Context, factor_columns, family_keys, fmt
from analysis.runs import Study


def _no_adversary(value: object) -> bool:
    """True for a run logged with ``model.lambda_GAN`` 0 (params are strings; older runs have none)."""
    try:
        return float(value) == 0.0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def diagnostics_table(study: Study) -> pd.DataFrame:
    rows = []
    for r in study.trials.to_dict("records"):
        g_keys, d_keys = family_keys(r.get("family"))
        gan_mode = r.get("param.model.gan_mode")
        gan_mode = gan_mode if isinstance(gan_mode, str) and gan_mode in ("vanilla", "lsgan", "wgangp") else "vanilla"
        if _no_adversary(r.get("param.model.lambda_GAN")):
            out = {"flag": False, "began_epoch": None, "reason": "no adversarial term (model.lambda_GAN = 0)"}
        else:
            out = stats.d_overpowering_g(study.history, r["run_id"], d_keys=d_keys, g_keys=g_keys, gan_mode=gan_mode)
        rows.append({"run_id": r["run_id"], "trial": r["run_name"], "config": r["config"], "flag": out["flag"],
                     "began_epoch": out["began_epoch"], "reason": out["reason"]})
    return pd.DataFrame(rows)


def diagnostics_section(ctx: Context, diag: pd.DataFrame) -> Section:
    sec = Section("Training diagnostics", "diagnostics")
    flagged = diag[diag["flag"]]
    sec.text("A run is flagged 'D overpowering G' when, from some epoch to the end, the discriminator's loss has "
             "fallen to a quarter of its first-epoch value or less while the generator's adversarial loss has risen "
             "to 1.5 times its first-epoch value or more (not applicable to WGAN-GP critics).")
    if flagged.empty:
        sec.text(f"No run was flagged ({len(diag)} checked).")
    else:
        sec.table(pd.DataFrame({"trial": flagged["trial"], "configuration": flagged["config"],
                                "began at epoch": flagged["began_epoch"].map(fmt), "detail": flagged["reason"]}),
                  caption="D overpowering G")
    rank = ctx.picks()
    if rank is None or rank.empty:
        return sec
    ends = [("best", rank.iloc[0]["config"])] + ([("worst", rank.iloc[-1]["config"])] if len(rank) > 1 else [])
    picks = {f"{which}: {config}": run["run_id"] for which, config in ends
             if (run := ctx.best_run(config)) is not None}
    if not picks:
        return sec
    family = ctx.trials.loc[ctx.trials["run_id"] == next(iter(picks.values())), "family"].iloc[0]
    g_keys, d_keys = family_keys(family)
    began = {label: diag.loc[diag["run_id"] == rid, "began_epoch"].iloc[0] for label, rid in picks.items()}
    onset = {label: None if pd.isna(v) else int(v) for label, v in began.items()}
    written = figures.loss_curves(ctx.study.history, runs=picks, g_keys=[f"loss.{k}" for k in g_keys],
                                  d_keys=[f"loss.{k}" for k in d_keys], out_dir=ctx.figs,
                                  stem="loss_best_worst", onset=onset)
    if written:
        sec.figure("figures/loss_best_worst.png", "G adversarial and D losses of the best and worst configurations "
                                                  "by validation (their best seed)")
    return sec


def curves_section(ctx: Context) -> Section:
    sec = Section("Curves and the search", "curves")
    study, primary, ns = ctx.study, ctx.primary, ctx.ns
    keys = [primary] + (["fid"] if primary != "fid" else [])
    for name in keys:
        key = stats.METRICS[name].key
        if not (study.history["key"] == key).any():
            continue
        figures.metric_curves(study.history, study.trials, key=key, metric_label=ctx.label(name),
                              out_dir=ctx.figs, stem=f"curve_{name}",
                              flag="non-standard Inception weights" if ns and name in INCEPTION_METRICS else None)
        sec.figure(f"figures/curve_{name}.png", f"Validation {ctx.label(name)} vs epoch per configuration (mean "
                                                f"over seeds; band: min-max; dashed: stopped early or failed)")
    factors = factor_columns(study.trials)
    key = stats.METRICS[primary].key
    if factors and key in study.trials:
        figures.parallel_coordinates(study.trials, factors=factors, metric_key=key,
                                     metric_label=ctx.label(primary), mode=stats.METRICS[primary].mode,
                                     out_dir=ctx.figs, stem="parallel_coordinates")
        sec.figure("figures/parallel_coordinates.png", "The search, on validation (the split it optimised): one "
                                                       "line per trial (grey dashed: failed or stopped early)")
    return sec
