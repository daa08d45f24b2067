"""Ship a benchmarked generator as the package's default model: ``aircolor/default_model/{generator.pt,MODEL_CARD.md}``.

The weights are stored in float16 (half the size; ``load_state_dict`` copies them into the float32 parameters, so
inference is unchanged to ~1e-3 in a*b*), the run's local paths are dropped from its config, and the card says
what it was trained on (with the tiles' licences and attribution), how, and how well it colours against the
baselines on held-out tiles (the benchmark's own table).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ATTRIBUTION = """\
| tiles | source | licence and attribution |
|---|---|---|
| Massachusetts (1 m) | MassGIS orthoimagery via V. Mnih's Massachusetts Roads Dataset (200-image subset in `parth1620/Road_seg_dataset`) | MassGIS data reported public domain; the dataset has no licence file. Cite Mnih, *Machine Learning for Aerial Image Labeling*, PhD thesis, University of Toronto, 2013 |
| North Dakota (1 m) | USDA NAIP (crops in `opengeos/data`) | US Government work, public domain. "USDA Farm Service Agency, National Agriculture Imagery Program (NAIP)" |
| Kampala (0.07-0.3 m) | OpenAerialMap chips in `hotosm/fAIr-utilities` | CC BY 4.0: "Imagery (c) OpenAerialMap contributors" |
| Zanzibar, Nairobi (0.15-0.3 m) | OpenAerialMap chips in `hotosm/fAIr-utilities` (HOT fAIr training data) | CC BY 4.0: "Imagery (c) OpenAerialMap contributors, CC BY 4.0; chips from HOT fAIr training data" |
"""


def export_half(generator: Path, dst: Path) -> int:
    """Write ``generator`` to ``dst`` with float16 weights and no local paths in its config; the size in bytes."""
    from aircolor.training.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(generator)
    state.pop("format", None)
    state["nets"] = {name: {k: (v.half() if v.is_floating_point() else v) for k, v in weights.items()}
                     for name, weights in state["nets"].items()}
    state["config"]["data"]["root"] = "data"
    state["config"]["train"]["output_dir"] = "runs"
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(dst, state)
    return dst.stat().st_size


def card(meta: dict[str, Any], table: str, size_bytes: int, recipe_text: str) -> str:
    table = "\n".join(line for line in table.splitlines() if not line.startswith("# "))  # the card has its own title
    minutes = min(meta.get("seed_minutes", [meta["train_minutes"]]))
    return f"""# aircolor's default model

`aircolor colorize INPUT... --out DIR` with no `--model` uses this generator (offline; it ships inside the
package). It is a pix2pix U-Net that predicts a\\*b\\* from the gray photo's L\\*; the output keeps the input's own
lightness at full resolution.

- **File:** `generator.pt`, {size_bytes / 1e6:.1f} MB (float16 weights), loadable with
  `torch.load(..., weights_only=True)`; `aircolor.models.exported.load_generator` returns the model and its config.
- **Trained by:** `python -m benchmarks.quality --ship aircolor/default_model` (seed 0 of the run below), recipe
  `{meta['recipe']}` ({meta['recipe_summary']}), {minutes:.1f} min on {meta['device']}.
- **Training data:** {meta['n_train']} real 256 px colour orthophoto tiles ({meta['train_regions']}), shown at
  the recipe's tile size, split by source image / area so that no tile's neighbours are in the test set.
- **Tile size and scale:** the model sees tiles of the recipe's size; the training tiles are 1 m/px
  (Massachusetts, North Dakota) and 0.07-0.3 m/px (Kampala) shown at half resolution. For scans much finer than
  that, pass `--scale` (e.g. `--scale 0.5` for 0.5 m/px scans) so that the model sees ground at a familiar scale.
- **Limits:** modern leaf-off New England, Great Plains farmland and East African towns are what it has seen.
  Elsewhere expect muted, average colours; check the table below for how it does on regions it never saw.

## How well it colours (held-out test tiles, delivered image)

{table}

## Recipe

```yaml
{recipe_text.strip()}
```

## Training tiles: sources, licences, attribution

{ATTRIBUTION}
Only image bytes were copied from those repositories; no code was taken.
"""


def cautious_card(meta: dict[str, Any], loro: str, in_domain: str, size_bytes: int, recipe_text: str,
                  blend: str) -> str:
    """The card of the default model trained on every region and delivered through its cautious blend."""
    loro = "\n".join(line for line in loro.splitlines() if not line.startswith("# "))
    in_domain = "\n".join(line for line in in_domain.splitlines() if not line.startswith("# "))
    return f"""# aircolor's default model

`aircolor colorize INPUT... --out DIR` with no `--model` uses this generator (offline; it ships inside the
package), and `aircolor adapt` starts from it. It is a pix2pix U-Net that predicts a\\*b\\* from the gray photo's
L\\*; the output keeps the input's own lightness at full resolution.

- **Delivered colours: cautious.** Off-domain a colorizer's colours are unsure and every learned colorizer
  measured so far lost to the gray copy somewhere, so the network's chroma is delivered as **{blend}** (the prior
  fitted on the training tiles). The blend was chosen by leave-one-region-out (below): the one with the lowest
  Delta E relative to the gray copy over held-out regions. It is a buffer in the weights
  (`model.place_blend`); `aircolor adapt` re-fits it on your place's own imagery, which is what to do for real
  colours (README, colour section).
- **File:** `generator.pt`, {size_bytes / 1e6:.1f} MB (float16 weights), loadable with
  `torch.load(..., weights_only=True)`; `aircolor.models.exported.load_generator` returns the model and its config.
- **Trained by:** `python -m benchmarks.quality --protocol loro --ship aircolor/default_model` (the recipe trained
  once more, seed 0, on every region), recipe `{meta['recipe']}` ({meta['recipe_summary']}).
- **Training data:** {meta['n_train']} real 256 px colour orthophoto tiles of all five shared regions
  ({meta['train_regions']}), shown at the recipe's tile size, split by source image / spatial blocks so that no
  tile's neighbours are in the test set.
- **Tile size and scale:** the training tiles are 1 m/px (Massachusetts, North Dakota) and 0.07-0.3 m/px (Kampala,
  Zanzibar, Nairobi) shown at half resolution. For scans much finer than that, pass `--scale`.

## How well it colours on a region it never saw (leave one region out)

{loro}

## In-domain test tiles of the shipped network (before the blend)

{in_domain}

## Recipe

```yaml
{recipe_text.strip()}
```

## Training tiles: sources, licences, attribution

{ATTRIBUTION}
Only image bytes were copied from those repositories; no code was taken.
"""
