"""The adapted model's card (``MODEL_CARD.md``) and record (``adapt.json``): the place's validation Delta E of what
is delivered beside the tuned network alone, the unadapted start, the gray copy and the place's priors."""

from __future__ import annotations

from typing import Any

import numpy as np

ARM_LABELS = {"delivered": "delivered (what `colorize` writes)", "network": "tuned network alone",
              "start": "unadapted start model", "gray": "gray copy", "tint": "constant tint (the place's)",
              "lightness": "chroma by lightness (the place's)"}


def mean_ci(values: np.ndarray, seed: int = 0, n_boot: int = 2000) -> tuple[float, float]:
    """95% percentile-bootstrap CI of the mean of per-tile ``values``."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    means = values[np.random.default_rng(seed).integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def arm_rows(per_tile: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """{arm: {delta_e2000, ci}} of every arm's per-tile validation scores."""
    return {arm: {"delta_e2000": float(np.mean(v)), "ci": list(mean_ci(v))} for arm, v in per_tile.items()}


def card_text(record: dict[str, Any]) -> str:
    """MODEL_CARD.md of an adapted model, from its ``adapt.json`` record."""
    rows = record["validation"]
    lines = [
        "# An aircolor model adapted to one place", "",
        f"`aircolor colorize --model {record['out_name']} PHOTOS... --out DIR` colours with it. It was adapted by "
        f"`aircolor adapt` from **{record['start']}** on today's colour imagery of the place "
        f"({record['source']}).", "",
        f"- **Delivers:** {record['choice']} ({record['reason']}).",
        f"- **Imagery:** {record['tiles']['train']} training tiles and {record['tiles']['val']} validation tiles of "
        f"{record['tile_px']} px (scale {record['scale']:g}), in {record['blocks']['train']} + "
        f"{record['blocks']['val']} spatial blocks: the validation blocks were never trained on.",
        f"- **Tuning:** {record['tune']['steps']} steps in {record['tune']['seconds'] / 60:.1f} min "
        f"(budget {record['minutes']:g} min, seed {record['seed']}) on {record['device']}; stopped by "
        f"{record['tune']['stopped']}; best validation score at step {record['tune']['best_step']}.",
        "- **Use it on:** photos of the same place at the same ground scale (colour with the same "
        "`--scale` as the imagery was given here).", "",
        "## Validation blocks (delivered image: input L* + chroma; Delta E 2000, lower is better)", "",
        "| arm | Delta E 2000 [95% CI over tiles] |", "|---|---|",
    ]
    for arm, label in ARM_LABELS.items():
        if arm in rows:
            r = rows[arm]
            lines.append(f"| {label} | {r['delta_e2000']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}] |")
    if "test" in record:
        lines += ["", f"## Held-out test blocks ({record['tiles']['test']} tiles never used for tuning, choosing or "
                      "the priors; `--holdout`)", "", "| arm | Delta E 2000 [95% CI over tiles] |", "|---|---|"]
        for arm, label in ARM_LABELS.items():
            if arm in record["test"]:
                r = record["test"][arm]
                lines.append(f"| {label} | {r['delta_e2000']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}] |")
    lines += ["", "These are validation scores of the blocks the delivered choice was picked on (one of "
              f"{record['candidates']} blends), so they are slightly optimistic; "
              "`python -m benchmarks.quality --protocol place` measures adaptation on tiles it never saw.", ""]
    return "\n".join(lines)
