"""The ranking sections: the final ranking by the primary metric, every other metric, the composite rank, and the
early-stopped trials ranked at the last budget all trials reached.

Every ranking table ends with the three baselines a colorizer must beat (the gray copy, the constant-tint prior,
the chroma-by-lightness prior) as rows of their own, and says for each configuration whether it beats the gray
copy and the strongest prior. The final tables use the test split when the runs logged it (held out, scored once)
and say which split they use; the ``val rank`` column is the rank on validation, the split that selected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from analysis import figures, stats
from analysis.render import Section
from analysis.report.common import (INCEPTION_METRICS, NONSTANDARD, SPLIT_NAMES, Context, config_means, fmt,
                                    is_better)

RAW_DE, DIVERSITY = "raw Delta E", "diversity"


def _vs(mean: float, base: float | None, mode: str, loses: str) -> str:
    beats = is_better(mean, base, mode)
    return "-" if beats is None else f"{mean - base:+.4g}" + ("" if beats else f" (does NOT beat {loses})")


def _config_row(r: object, values: Mapping[str, float | None], strongest: tuple[str, float] | None,
                mode: str) -> dict:
    dist = r.distinguishable_from_next
    return {"rank": int(r.rank), "configuration": r.config, "mean": fmt(r.mean), "std": fmt(r.std), "n": int(r.n),
            "95% CI": "-" if math.isnan(r.ci_low) else f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}]", "seeds": r.seeds,
            "vs gray copy": _vs(r.mean, values.get("gray"), mode, "it"),
            "vs strongest prior": _vs(r.mean, strongest[1] if strongest else None, mode, "the strongest prior"),
            "next": "" if dist is None or (isinstance(dist, float) and math.isnan(dist))
            else ("distinguishable" if dist else "not distinguishable")}


def _baseline_rows(values: Mapping[str, float | None], strongest: tuple[str, float] | None) -> list[dict]:
    rows = []
    gray = values.get("gray")
    for name, base in stats.BASELINES.items():
        value = values.get(name)
        if value is None:
            vs_gray = vs_prior = "not logged by these runs"
        else:
            vs_gray = "baseline" if name == "gray" else ("-" if gray is None else f"{value - gray:+.4g}")
            vs_prior = ("-" if strongest is None else "strongest prior" if name == strongest[0]
                        else f"{value - strongest[1]:+.4g}")
        rows.append({"rank": "-", "configuration": base.label, "mean": "not logged" if value is None else fmt(value),
                     "std": "-", "n": "-", "95% CI": "-", "seeds": "-", "vs gray copy": vs_gray,
                     "vs strongest prior": vs_prior, "next": ""})
    return rows


def ranking_table(rank: pd.DataFrame, values: Mapping[str, float | None], mode: str, metric: str, *,
                  val_rank: Mapping[str, int] | None = None,
                  extras: Mapping[str, Mapping[str, float]] | None = None) -> pd.DataFrame:
    """The displayed table: one row per configuration, then one per baseline (``values``: from
    :func:`analysis.stats.baseline_values`). ``extras`` adds columns (name -> {config or baseline label: value})
    after ``seeds``; ``val_rank`` adds the rank on validation."""
    strongest = stats.strongest_prior(values, metric)
    rows = [_config_row(r, values, strongest, mode) for r in rank.itertuples(index=False)]
    rows += _baseline_rows(values, strongest)
    table = pd.DataFrame(rows)
    at = list(table.columns).index("seeds") + 1
    for i, (name, per_config) in enumerate((extras or {}).items()):
        table.insert(at + i, name, [fmt(per_config.get(c)) for c in list(table["configuration"])])
    if val_rank is not None:
        table.insert(len(table.columns) - 1, "val rank",
                     [str(val_rank.get(c, "-")) for c in rank["config"]] + ["-"] * len(stats.BASELINES))
    return table


def ranking_csv(rank: pd.DataFrame, values: Mapping[str, float | None], metric: str, split: str, *,
                val_rank: Mapping[str, int] | None = None,
                extras: Mapping[str, Mapping[str, float]] | None = None) -> pd.DataFrame:
    """``ranking_<metric>.csv``: the ranking's columns, the verdicts as booleans, and the baselines as rows
    (``kind`` = "baseline", ``baseline`` = its name, ``mean`` = its value, NaN when not logged)."""
    spec = stats.METRICS[metric]
    strongest = stats.strongest_prior(values, metric)
    gray = values.get("gray")
    out = rank.assign(kind="configuration", baseline=None, split=split)
    base = pd.DataFrame([{"config": b.label, "mean": math.nan if values.get(n) is None else values[n],
                          "kind": "baseline", "baseline": n, "split": split} for n, b in stats.BASELINES.items()])
    out["beats_gray_copy"] = [None if gray is None else spec.better(m, gray) for m in out["mean"]]
    out["strongest_prior"] = strongest[0] if strongest else None
    out["beats_strongest_prior"] = [None if strongest is None else spec.better(m, strongest[1]) for m in out["mean"]]
    for name, per_config in (extras or {}).items():
        out[name.replace(" ", "_")] = out["config"].map(per_config)
        base[name.replace(" ", "_")] = base["config"].map(per_config)
    if val_rank is not None:
        out["val_rank"] = out["config"].map(val_rank)
    return pd.concat([out, base], ignore_index=True)


def table_extras(ctx: Context, metric: str, split: str) -> dict[str, dict[str, float]]:
    """The main table's extra columns: delivered Delta E (when ranking by something else), the generator's raw
    Delta E, and BicycleGAN's diversity, where the runs logged them."""
    de = stats.METRICS["delta_e2000"]
    out = {}
    if metric != "delta_e2000" and config_means(ctx.trials, de.key_on(split)):
        values = ctx.baselines("delta_e2000", split)
        out["Delta E"] = {**config_means(ctx.trials, de.key_on(split)),
                          **{stats.BASELINES[n].label: v for n, v in values.items() if v is not None}}
    out[RAW_DE] = config_means(ctx.trials, de.key_on(f"raw.{split}"))
    out[DIVERSITY] = config_means(ctx.trials, f"{split}.diversity")
    return {name: values for name, values in out.items() if values}


def _val_rank(ctx: Context, metric: str) -> dict[str, int] | None:
    if ctx.split_of(metric) == "val" or metric not in ctx.selection:
        return None
    return dict(zip(ctx.selection[metric]["config"], ctx.selection[metric]["rank"].astype(int)))


def split_sentence(ctx: Context, metric: str) -> str:
    split = ctx.split_of(metric)
    if split == "test":
        return ("Ranked on the test split (held out, scored once when a trial finished its budget); selection used "
                "validation ('val rank': the rank on the split ASHA, Optuna and `sweep promote` saw).")
    return ("Ranked on the VALIDATION split, the one selection used (no completed trial has test.* scores), so these "
            "numbers are optimistic.")


def notes_for(ctx: Context, metric: str) -> list[str]:
    """What the table of ``metric`` cannot show: trials without test scores, missing or differing baselines."""
    split, t = ctx.split_of(metric), ctx.trials
    notes = []
    key = ctx.key(metric)
    done = t[t["outcome"] == "completed"]
    missing = int(pd.to_numeric(done[key], errors="coerce").isna().sum()) if key in done else len(done)
    if split == "test" and missing:
        notes.append(f"{missing} completed trial(s) have no {key} (older runs, or metrics.test_at_end off): they "
                     f"are left out of this table.")
    values = ctx.baselines(metric)
    absent = [stats.BASELINES[n].short for n, v in values.items() if v is None]
    if absent:
        notes.append(f"Not logged by these runs (older aircolor): {', '.join(absent)} baseline(s) on the "
                     f"{SPLIT_NAMES[split]} split; configurations are compared with the baselines that were.")
    differ = stats.baselines_differ(t, metric, split=split)
    if differ:
        notes.append(f"The {', '.join(stats.BASELINES[n].short for n in differ)} baseline(s) differ between trials "
                     f"(several datasets?): the rows show their mean.")
    return notes


def _chart(ctx: Context, rank: pd.DataFrame, sec: Section) -> None:
    primary, values = ctx.primary, ctx.baselines(ctx.primary)
    flag = "non-standard Inception weights: not comparable with published values" if ctx.ns else None
    priors = {stats.BASELINES[n].short: values[n] for n in stats.PRIORS if values.get(n) is not None}
    figures.ranking_chart(rank, metric_label=ctx.label(primary), mode=stats.METRICS[primary].mode,
                          out_dir=ctx.figs, stem=f"ranking_{primary}", baseline=values.get("gray"),
                          flag=flag if primary in INCEPTION_METRICS else None, priors=priors)
    sec.figure(f"figures/ranking_{primary}.png",
               f"{ctx.label(primary)} by configuration on the {SPLIT_NAMES[ctx.split]} split (mean, 95% CI "
               f"whiskers; lines: the baselines; hatched: does not beat the gray copy (//) or the strongest "
               f"prior (..))")


def main_section(ctx: Context) -> Section:
    primary, spec = ctx.primary, stats.METRICS[ctx.primary]
    main = Section(f"Ranking by {ctx.label(primary)}", "ranking")
    if ctx.ns and primary in INCEPTION_METRICS:
        main.banner(NONSTANDARD)
    if ctx.split == "val":
        main.banner(split_sentence(ctx, primary))
    rank = ctx.rankings.get(primary)
    if rank is None or rank.empty:
        main.text(f"No completed trial logged {ctx.key(primary)}: nothing to rank.")
        return main
    main.text((split_sentence(ctx, primary) + " " if ctx.split == "test" else "") +
              "Configurations are the factor values of a trial; trials that differ only by seed are grouped. Mean "
              f"and std over seeds; 95% percentile-bootstrap CI of the mean ({ctx.opts.n_boot} resamples); 'not "
              "distinguishable' when a configuration's CI overlaps the next one's (or either has fewer than 2 seeds). "
              "Only trials that completed their budget are ranked here. The last rows are the baselines a colorizer "
              "must beat; 'vs strongest prior' compares with the better of the two priors.")
    for note in notes_for(ctx, primary):
        main.text(note)
    extras = table_extras(ctx, primary, ctx.split)
    if RAW_DE not in extras:
        main.text("The generator's raw output was not scored by these runs (no raw.* keys): no 'raw Delta E' column.")
    else:
        main.text("'raw Delta E' is the generator's own output before delivery (input L* + its chroma, "
                  "gamut-fitted), for reference; everything is ranked on the delivered image.")
    main.table(ranking_table(rank, ctx.baselines(primary), spec.mode, primary, val_rank=_val_rank(ctx, primary),
                             extras=extras))
    _chart(ctx, rank, main)
    return main


def others_section(ctx: Context) -> Section:
    others = Section("Other metrics and composite rank", "metrics")
    if ctx.ns:
        others.banner(NONSTANDARD)
    for name, rank in ctx.rankings.items():
        if name in (ctx.primary, "composite") or rank.empty:
            continue
        spec = stats.METRICS[name]
        for note in notes_for(ctx, name):
            others.text(f"{ctx.label(name)}: {note}")
        others.table(ranking_table(rank, ctx.baselines(name), spec.mode, name, val_rank=_val_rank(ctx, name)),
                     caption=f"{ctx.label(name)} ({'lower' if spec.mode == 'min' else 'higher'} is better; "
                             f"{SPLIT_NAMES[ctx.split_of(name)]} split)")
    comp = ctx.rankings.get("composite")
    if comp is not None and len(comp):
        cols = ["composite_rank", "config", "mean_rank", "n_metrics"] + [c for c in comp.columns
                                                                          if c.startswith("rank.")]
        shown = comp[cols].copy()
        shown.columns = ["composite rank", "configuration", "mean rank", "metrics"] + [
            ctx.label(c[5:]) if c[5:] in stats.METRICS else c[5:] for c in cols[4:]]
        others.text("Composite rank: the mean of each configuration's rank under every metric it has (the final "
                    "tables' ranks).")
        others.table(shown.map(fmt))
    return others


def ranking_sections(ctx: Context) -> list[Section]:
    return [main_section(ctx), others_section(ctx)]


def csv_tables(ctx: Context) -> dict[str, pd.DataFrame]:
    """``{metric: frame}`` written as ``ranking_<metric>.csv``: every final ranking with its baseline rows."""
    out = {}
    for name, rank in ctx.rankings.items():
        if name == "composite":
            out[name] = rank
            continue
        split = ctx.split_of(name)
        out[name] = ranking_csv(rank, ctx.baselines(name), name, split, val_rank=_val_rank(ctx, name),
                                extras=table_extras(ctx, name, split) if name == ctx.primary else None)
    return out


def budget_section(ctx: Context) -> Section:
    sec = Section("Early-stopped trials", "budget")
    t, h, primary = ctx.trials, ctx.study.history, ctx.primary
    stopped = t[t["outcome"] == "stopped early"]
    if stopped.empty:
        sec.text("No trial was stopped early: every ranked trial ran the same budget.")
        return sec
    key = stats.METRICS[primary].key
    pool = t[t["outcome"].isin(["completed", "stopped early"])]
    epoch = stats.last_common_budget(h, list(pool["run_id"]), key)
    sec.text(f"{len(stopped)} trial(s) were stopped early by the scheduler. They are left out of the final "
             f"ranking above (which compares full budgets only), and never scored the test split.")
    if epoch is None:
        sec.text(f"No epoch at which every trial logged {key}: no ranking at a common budget.")
        return sec
    values = stats.values_at_epoch(h[h["run_id"].isin(pool["run_id"])], key, epoch)
    at = pool.drop(columns=[key]).assign(**{key: pool["run_id"].map(values)})
    at = at.assign(outcome="completed")  # at this budget every one of them ran the same number of epochs
    rank = stats.rank_configurations(at, primary, n_boot=ctx.opts.n_boot, seed=ctx.opts.seed)
    sec.text(f"Ranking of every trial that was not failed (completed and stopped early) at epoch {epoch}, the last "
             f"budget all of them reached, on the validation split (the baselines: on validation too):")
    sec.table(ranking_table(rank, ctx.baselines(primary, "val"), stats.METRICS[primary].mode, primary))
    return sec
