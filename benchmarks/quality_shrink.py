"""The cautious delivery of the default model, chosen by leave-one-region-out (``--protocol loro``).

Off-domain the network's colours are unsure, so it is delivered blended toward a prior fitted on its training
regions: ``alpha * network + (1 - alpha) * prior``, prior in {gray copy, constant tint, chroma by lightness},
``alpha`` in :data:`SHRINK_ALPHAS`. The blend scored on a held-out region is the one with the lowest
Delta E relative to the gray copy, averaged over the *other* held-out regions: the region scored never chose its
own blend (nested), so its number is what a new place gets. The shipped model takes the choice over all regions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.quality_stats import bootstrap_ci, gain

Choice = tuple[str, float, float]   # (prior, alpha, entropy power); alpha 1 and power 0: the network alone
SHRINK_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)   # quarter steps: the choice is made across regions, finer hardly pays
ENTROPY_ALPHAS = (0.5, 0.75, 1.0)   # networks that classify a*b*: alpha * confidence ** power per pixel
ENTROPY_POWERS = (1.0, 2.0)


def choices(regions: dict[str, Any] | None = None) -> list[Choice]:
    """Every blend; with ``regions``, the entropy-weighted ones only where every region has their scores."""
    from aircolor.adapt.fallback import PRIOR_NAMES

    out: list[Choice] = [("network", 1.0, 0.0)]
    out += [(name, alpha, 0.0) for name in PRIOR_NAMES for alpha in SHRINK_ALPHAS[:-1]]
    entropy = [(name, alpha, power) for name in PRIOR_NAMES for alpha in ENTROPY_ALPHAS for power in ENTROPY_POWERS]
    if regions is not None:
        entropy = [c for c in entropy if all(_key(c, 0) in b for b in regions.values())]
    return out + entropy


def _key(choice: Choice, seed: int) -> str:
    prior, alpha, power = choice
    return f"{prior}:{alpha:g}:e{power:g}:{seed}" if power else f"{prior}:{alpha:g}:{seed}"


def tiles(blends: Any, choice: Choice, seeds: list[int]) -> list[np.ndarray]:
    """Per-tile Delta E of ``choice`` on one region, one array per seed."""
    prior, alpha, power = choice
    if alpha >= 1.0 and not power:
        return [blends[f"network:{s}"] for s in seeds]
    if alpha <= 0.0:
        return [blends[f"{prior}:0"]] * len(seeds)
    return [blends[_key(choice, s)] for s in seeds]


def relative(blends: Any, choice: Choice, seeds: list[int]) -> float:
    """The choice's region mean over the gray copy's (1: as good as doing nothing)."""
    return float(np.mean([t.mean() for t in tiles(blends, choice, seeds)]) / blends["gray:0"].mean())


def choose(regions: dict[str, Any], seeds: list[int], exclude: str | None = None) -> Choice:
    """The blend with the lowest mean relative Delta E over ``regions`` (without ``exclude``); ties: more network."""
    others = [b for r, b in regions.items() if r != exclude]
    return min(choices(regions), key=lambda c: (np.mean([relative(b, c, seeds) for b in others]), -c[1], c[2]))


def nested_rows(regions: dict[str, Any], seeds: list[int]) -> list[dict[str, Any]]:
    """One row per held-out region: the blend chosen on the others, its Delta E [CI] ± seed std, the verdicts."""
    from aircolor.adapt.fallback import PRIOR_NAMES

    rows = []
    for region, blends in regions.items():
        choice = choose(regions, seeds, exclude=region)
        runs = tiles(blends, choice, seeds)
        ours = np.mean(runs, axis=0)
        arms = {name: blends[f"{name}:0"] for name in PRIOR_NAMES}
        network = np.mean(tiles(blends, ("network", 1.0, 0.0), seeds), axis=0)
        best = min(("tint", "lightness"), key=lambda a: arms[a].mean())
        g, lo, hi = gain(runs, arms[best])
        g_gray, lo_gray, hi_gray = gain(runs, arms["gray"])
        ci, gray_ci = bootstrap_ci(ours), bootstrap_ci(arms["gray"])
        rows.append({"region": region, "arm": "cautious", "choice": list(choice), "n_tiles": len(ours),
                     "delta_e2000": float(ours.mean()), "delta_e2000_ci": list(ci),
                     "delta_e2000_seed_std": float(np.std([r.mean() for r in runs])) if len(runs) > 1 else 0.0,
                     "network": float(network.mean()),
                     **{name: float(a.mean()) for name, a in arms.items()}, "gray_ci": list(gray_ci),
                     "strongest_prior": best, "gain": g, "gain_ci": [lo, hi],
                     "gain_vs_gray": g_gray, "gain_vs_gray_ci": [lo_gray, hi_gray],
                     "not_above_gray": bool(ours.mean() <= arms["gray"].mean()),
                     "beats_gray": bool(ci[1] < gray_ci[0])})
    return rows


def blend_label(choice: Choice) -> str:
    from aircolor.adapt.fallback import PRIOR_NAMES

    prior, alpha, power = choice
    if alpha >= 1.0 and not power:
        return "network alone"
    if alpha <= 0.0:
        return PRIOR_NAMES[prior]
    if power:
        return f"network weighted {alpha:.3g} x confidence^{power:g} per pixel, the rest {PRIOR_NAMES[prior]}"
    return f"{alpha:.3g} network + {1 - alpha:.3g} {PRIOR_NAMES[prior]}"


def shrink_markdown(rows: list[dict[str, Any]], shipped: Choice, title: str = "") -> str:
    lines = [f"### Cautious delivery{title}: the network blended toward a prior, the blend chosen on the other "
             "held-out regions", "",
             "| held-out region | tiles | gray copy | constant tint | chroma by lightness | network alone | blend "
             "chosen on the other regions | delivered Delta E | vs gray copy | vs strongest prior |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["delta_e2000_ci"]
        g_lo, g_hi = r["gain_ci"]
        v_lo, v_hi = r["gain_vs_gray_ci"]
        gray_word = "beats it (CIs apart)" if r["beats_gray"] else ("not above" if r["not_above_gray"] else
                                                                    "**above it**")
        lines.append(f"| {r['region']} | {r['n_tiles']} | {r['gray']:.2f} | {r['tint']:.2f} | {r['lightness']:.2f} | "
                     f"{r['network']:.2f} | {blend_label(tuple(r['choice']))} | {r['delta_e2000']:.2f} [{lo:.2f}, "
                     f"{hi:.2f}] ± {r['delta_e2000_seed_std']:.2f} | {r['gain_vs_gray']:+.1%} [{v_lo:+.1%}, "
                     f"{v_hi:+.1%}]: {gray_word} | {r['gain']:+.1%} [{g_lo:+.1%}, {g_hi:+.1%}] |")
    avg = float(np.mean([r["gain"] for r in rows]))
    never_above = all(r["not_above_gray"] for r in rows)
    lines += ["", f"Targets: never above the gray copy on a held-out region: **{'met' if never_above else 'not met'}**"
              + ("" if never_above else " (" + ", ".join(
                  f"{r['region']} {r['delta_e2000']:.2f} vs {r['gray']:.2f}" for r in rows
                  if not r["not_above_gray"]) + ")")
              + f"; on average at least 5% below the strongest prior: **{'met' if avg >= 0.05 else 'not met'}** "
              f"(average {avg:+.1%}). The shipped model's blend (chosen on all regions): {blend_label(shipped)}.", ""]
    return "\n".join(lines)
