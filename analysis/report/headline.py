"""The headline: the configuration selected on validation, its held-out numbers, and its gain over the strongest
prior with a 95% CI over its seeds (the prior is a fixed number per dataset)."""

from __future__ import annotations

import math

import pandas as pd

from analysis import stats
from analysis.report.common import SPLIT_NAMES, Context, fmt


def best_values(ctx: Context) -> pd.Series:
    """The selected configuration's completed trials' values of the primary metric on the headline split."""
    t, key = ctx.trials, ctx.key(ctx.primary)
    if ctx.best is None or key not in t:
        return pd.Series(dtype=float)
    mine = t[(t["config"] == ctx.best) & (t["outcome"] == "completed")]
    return pd.to_numeric(mine[key], errors="coerce").dropna()


def _verdict(gain: stats.Gain) -> str:
    if math.isnan(gain.pct):
        return f"the prior scores 0, so no relative gain (difference {gain.diff:+.4g})"
    if gain.beats is True:
        return f"{gain.pct:.1f}% better (95% CI {gain.ci_low:.1f}-{gain.ci_high:.1f}%)"
    if gain.beats is None:
        return f"{gain.pct:.1f}% better on its one seed (no confidence interval with one seed)"
    ci = "" if math.isnan(gain.ci_low) else f", 95% CI {gain.ci_low:.1f} to {gain.ci_high:.1f}%"
    return f"does not beat the strongest prior ({gain.pct:+.1f}%{ci})"


def headline(ctx: Context) -> tuple[str, stats.Gain | None]:
    """The sentence, and the gain behind it (None when it cannot be computed: no values, no prior logged)."""
    primary, label, split = ctx.primary, ctx.label(ctx.primary), ctx.split
    if ctx.best is None:
        return "", None
    values = best_values(ctx)
    head = f"Best configuration (selected on validation by {label}): {ctx.best}"
    if values.empty:
        return f"{head}; it has no {ctx.key(primary)} value, so no held-out number.", None
    baselines = ctx.baselines(primary)
    gray = baselines.get("gray")
    gray_text = "" if gray is None else f"; the gray copy scores {fmt(gray)}"
    head += f": {SPLIT_NAMES[split]} {label} {fmt(values.mean())} over {len(values)} seed(s){gray_text}"
    strongest = stats.strongest_prior(baselines, primary)
    if strongest is None:
        return (f"{head}. The constant-tint and chroma-by-lightness priors were not logged by these runs (older "
                f"aircolor): its gain over the strongest prior is unknown."), None
    gain = stats.gain_over(values, strongest[1], mode=stats.METRICS[primary].mode, n_boot=ctx.opts.n_boot,
                           seed=ctx.opts.seed)
    prior = stats.BASELINES[strongest[0]].short
    return f"{head}. Against the strongest prior, {prior} {fmt(strongest[1])}: {_verdict(gain)}.", gain
