"""The perception-distortion section: Delta E 2000 (distortion) against the colourfulness gap (how far the output's
colourfulness is from the real images'), configurations and baselines, and the Pareto front of the two."""

from __future__ import annotations

import pandas as pd

from analysis import figures, stats
from analysis.render import Section
from analysis.report.common import SPLIT_NAMES, Context, fmt

X, Y = "delta_e2000", "colorfulness_gap"
STEM = "perception_distortion"


def tradeoff_points(ctx: Context, split: str) -> pd.DataFrame:
    """One row per completed trial with both values on ``split``: ``config, seed, x, y``."""
    t = ctx.trials
    kx, ky = stats.METRICS[X].key_on(split), stats.METRICS[Y].key_on(split)
    if kx not in t or ky not in t:
        return pd.DataFrame(columns=["config", "seed", "x", "y"])
    done = t[t["outcome"] == "completed"]
    points = pd.DataFrame({"config": done["config"], "seed": done["seed"],
                           "x": pd.to_numeric(done[kx], errors="coerce"),
                           "y": pd.to_numeric(done[ky], errors="coerce")})
    return points.dropna(subset=["x", "y"]).reset_index(drop=True)


def pareto_table(points: pd.DataFrame, baselines: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Every configuration (mean over seeds) and baseline with ``on_front`` (lower-left is better on both)."""
    means = points.groupby("config", sort=False).agg(x=("x", "mean"), y=("y", "mean"), n=("x", "size")).reset_index()
    rows = [{"point": r.config, "kind": "configuration", "x": r.x, "y": r.y, "n": int(r.n)}
            for r in means.itertuples(index=False)]
    rows += [{"point": label, "kind": "baseline", "x": x, "y": y, "n": None} for label, (x, y) in baselines.items()]
    table = pd.DataFrame(rows, columns=["point", "kind", "x", "y", "n"])
    table["on_front"] = stats.pareto_front(table["x"], table["y"]) if len(table) else []
    return table


def _baseline_points(ctx: Context, split: str) -> tuple[dict[str, tuple[float, float]], list[str]]:
    bx, by = ctx.baselines(X, split), ctx.baselines(Y, split)
    points, missing = {}, []
    for name, base in stats.BASELINES.items():
        if bx.get(name) is None or by.get(name) is None:
            missing.append(base.short)
        else:
            points[base.short] = (bx[name], by[name])
    return points, missing


def tradeoff_section(ctx: Context) -> tuple[Section, pd.DataFrame | None]:
    sec = Section("Perception-distortion trade-off", "tradeoff")
    split = ctx.split_of(X)
    points = tradeoff_points(ctx, split)
    sec.text("A colorizer can always lower its Delta E by desaturating (Blau & Michaeli, CVPR 2018, the "
             "perception-distortion trade-off), so Delta E alone rewards gray-ish output. Here each configuration "
             f"sits at (Delta E 2000, |colourfulness - real colourfulness|) on the {SPLIT_NAMES[split]} split, both "
             "lower is better: the configurations and baselines that nothing beats on both axes form the Pareto "
             "front.")
    if points.empty:
        sec.text(f"No completed trial logged both {stats.METRICS[X].key_on(split)} and "
                 f"{split}.colorfulness / {split}.colorfulness_real: no perception-distortion figure.")
        return sec, None
    baselines, missing = _baseline_points(ctx, split)
    if missing:
        sec.text(f"Not logged by these runs (older aircolor): the {', '.join(missing)} baseline(s) on both axes; "
                 f"they are not drawn.")
    table = pareto_table(points, baselines)
    front = list(table.loc[table["on_front"], "point"])
    figures.perception_distortion(points, baselines=baselines, front=front, x_label="Delta E 2000 (lower is better)",
                                  y_label="|colourfulness - real colourfulness| (lower is better)",
                                  out_dir=ctx.figs, stem=STEM,
                                  title=f"Perception-distortion trade-off ({SPLIT_NAMES[split]} split)")
    sec.figure(f"figures/{STEM}.png", "Configurations (large: mean over seeds, whiskers: std; small: each seed), "
                                      "the baselines (square: gray copy, triangle: constant tint, diamond: chroma by "
                                      "lightness) and the Pareto front (dashed, ringed)")
    members = table[table["on_front"]]
    sec.table(pd.DataFrame({"Pareto front member": members["point"], "kind": members["kind"],
                            "Delta E 2000": members["x"].map(fmt), "|colourfulness gap|": members["y"].map(fmt),
                            "seeds": members["n"].map(lambda n: "-" if pd.isna(n) else str(int(n)))}),
              caption=f"On the Pareto front: {len(members)} of {len(table)} points "
                      f"({int((table['kind'] == 'configuration').sum())} configurations, {len(baselines)} baselines)")
    return sec, table.assign(split=split)
