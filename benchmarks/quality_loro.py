"""Leave one region out: ``python -m benchmarks.quality --protocol loro``.

Every shared region is held out once, the recipe trained on the other four, and the held-out region's rows kept.
A fold needs validation tiles from the four training regions, and Nairobi, Zanzibar and North Dakota are one group
each under the holdout protocol's grouping; so the tiles are seen through a view (links, renamed) whose names carry
a spatial block: Nairobi, Zanzibar and Kampala by k-d blocks of their web-map tile coordinates (chips of several
zooms over the same ground in one block, as ``aircolor adapt`` does), North Dakota by its tile column (the same
ground in every year stays together). Massachusetts keeps the holdout protocol's groups (its source images).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.quality import REGIONS, markdown, region_of, run_fold, write_results
from benchmarks.quality_shrink import ENTROPY_ALPHAS, ENTROPY_POWERS, SHRINK_ALPHAS, choose, nested_rows, shrink_markdown

# The view's block prefix first (leftmost match wins), then Massachusetts' source images.
LORO_GROUP_BY = r"/(blk[A-Za-z]+\d+)--|(\d+)_15_"
BLOCKED = {"oam_nairobi": "NAI", "oam_zanzibar": "ZAN", "oam_kampala_fair": "KLA"}
_ND_COLUMN = "naip_northdakota"


def block_prefixes(folder: str, names: list[str]) -> dict[str, str]:
    """The block prefix of every file of one region folder ("" where the holdout grouping is kept)."""
    from aircolor.adapt.place_tiles import assign_blocks, name_position

    if folder == _ND_COLUMN:
        return {n: "blkND" + n.rsplit("_x", 1)[1].split(".")[0] + "--" for n in names}
    if folder not in BLOCKED:
        return {n: "" for n in names}
    places = [name_position(n) for n in names]
    if any(p is None for p in places):
        raise SystemExit(f"quality: {folder}: a tile name without web-map coordinates; cannot block it")
    blocks = assign_blocks([p[0] for p in places], [(p[1], p[2]) for p in places], [256 * p[3] for p in places])
    leaf = {b: i for i, b in enumerate(sorted(set(blocks)))}
    return {n: f"blk{BLOCKED[folder]}{leaf[b]:02d}--" for n, b in zip(names, blocks)}


def blocked_view(src: Path, work: Path) -> Path:
    """A folder of links to ``src``'s tiles, renamed with their block prefixes (rebuilt each time)."""
    view = work / "tiles-view"
    for folder in sorted(p.name for p in src.iterdir() if p.is_dir()):
        names = sorted(p.name for p in (src / folder).iterdir() if p.is_file())
        (view / folder).mkdir(parents=True, exist_ok=True)
        for old in (view / folder).iterdir():
            old.unlink()
        for name, prefix in block_prefixes(folder, names).items():
            os.symlink((src / folder / name).resolve(), view / folder / f"{prefix}{name}")
    return view


def blend_scores(fold: Path, region: str, seeds: list[int]) -> Path:
    """Per-tile Delta E on the held-out region of every seed's network blended toward each prior (fitted on the
    fold's training split) with every weight in ``SHRINK_ALPHAS``: ``fold/blends.npz`` (keys ``prior:alpha:seed``,
    ``prior:0`` for the prior alone, ``network:seed`` for the network alone), the
    material of the cautious-shrink arm (:func:`nested_shrink`)."""
    from aircolor.adapt.fallback import PRIOR_NAMES, prior_chroma, prior_table
    from aircolor.adapt.tune import delivered_u8, predict_ab, tile_delta_e
    from aircolor.models.exported import load_generator
    from aircolor.models.place_blend import blended
    from aircolor.training.evaluation import EvalSet, Evaluator

    root = _data_root(fold)
    generators = [_generator(fold / f"runs-seed{seed}") for seed in seeds]
    model, cfg = load_generator(generators[0])
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(root)),
                              metrics=dataclasses.replace(cfg.metrics, max_images=None))
    ev = Evaluator(cfg, torch.device("cpu"), root / "eval")
    test = EvalSet.load(root, "test", ev.common)
    keep = [i for i, n in enumerate(test.names) if region_of(n) == region]
    gray = ((test.gray[keep] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    real = test.real[keep]
    out: dict[str, np.ndarray] = {}
    priors = {name: prior_chroma(ev.priors, name, gray) for name in PRIOR_NAMES}
    for name, prior in priors.items():            # alpha 0: the prior alone, the same for every seed
        out[f"{name}:0"] = tile_delta_e(delivered_u8(gray, prior), real)
    for seed, path in zip(seeds, generators):
        model, cfg = load_generator(path)
        network = predict_ab(model, gray)
        out[f"network:{seed}"] = tile_delta_e(delivered_u8(gray, network), real)
        for name, prior in priors.items():
            for alpha in SHRINK_ALPHAS[1:-1]:
                ab = alpha * network + (1 - alpha) * prior
                out[f"{name}:{alpha:g}:{seed}"] = tile_delta_e(delivered_u8(gray, ab), real)
            if cfg.model.ab_bins:   # a*b* classified: also weigh the network per pixel by its confidence
                for alpha, power in itertools.product(ENTROPY_ALPHAS, ENTROPY_POWERS):
                    weighted, _ = blended(cfg, model.G, prior_table(ev.priors, name), alpha, power)
                    ab = predict_ab(weighted.eval(), gray)
                    out[f"{name}:{alpha:g}:e{power:g}:{seed}"] = tile_delta_e(delivered_u8(gray, ab), real)
    path = fold / "blends.npz"
    np.savez(path, **out)
    return path


def _data_root(fold: Path) -> Path:
    return next(iter(sorted(fold.glob("data-*"))))


def _generator(run_root: Path) -> Path:
    found = sorted(run_root.rglob("model/generator.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"quality: no trained generator under {run_root}")
    return found[-1]


def leave_one_region_out(args: argparse.Namespace, seeds: list[int], extra: list[str]) -> int:
    """Every region held out once (trained on the other four); the held-out region's rows of each fold."""
    from aircolor.errors import UsageError

    view = blocked_view(args.data, args.work)
    wanted = {f.strip().lower() for f in args.folds.split(",")} if args.folds else None
    rows, metas, skipped = [], [], []
    for folder, label in REGIONS.items():
        if not (args.data / folder).is_dir() or (wanted is not None and label.lower() not in wanted
                                                 and folder not in wanted):
            continue
        try:
            fold_rows, meta, _, _ = run_fold(args, f"^{folder}/", args.work / f"loro-{folder}", seeds, extra,
                                             data=view, group_by=LORO_GROUP_BY)
        except UsageError as exc:  # e.g. the other regions' groups cannot fill a validation split
            print(f"quality: fold {label} skipped: {exc}", file=sys.stderr)
            skipped.append(f"{label} ({exc})")
            continue
        rows += [r for r in fold_rows if r["region"] == label]
        metas.append(meta)
        blend_scores(args.work / f"loro-{folder}", label, seeds)
        print(f"quality: fold {label} done", flush=True)
    if not metas:
        print("quality: every leave-one-region-out fold was skipped", file=sys.stderr)
        return 1
    meta = {**metas[0], "held_out_regions": [r["region"] for r in rows if r["arm"] == "recipe"],
            "n_train": f"{len(metas) + len(skipped) - 1} regions", "skipped": skipped,
            "train_regions": "the other regions, in turn",
            "n_test": sum(r["n_tiles"] for r in rows if r["arm"] == "recipe"),
            "train_minutes": float(np.mean([m["train_minutes"] for m in metas])),
            "seed_minutes": [float(np.mean([m["seed_minutes"][i] for m in metas])) for i in range(len(seeds))]}
    blends = {row["region"]: dict(np.load(args.work / f"loro-{folder}" / "blends.npz"))
              for folder, label in REGIONS.items() for row in rows if row["region"] == label and row["arm"] == "gray"}
    cautious = nested_rows(blends, seeds)
    meta["shipped_blend"] = list(choose(blends, seeds))
    text = markdown(rows, meta) + "\n" + shrink_markdown(cautious, tuple(meta["shipped_blend"]))
    write_results(args.out, "quality_loro", rows + cautious, meta, text=text)
    print(text)
    if args.ship:
        ship_cautious(args, extra, view, tuple(meta["shipped_blend"]), text)
    return 0


def ship_cautious(args: argparse.Namespace, extra: list[str], view: Path, choice: tuple[str, float, float],
                  loro_text: str) -> None:
    """Train the recipe on every region (seed 0) and write it, with the blend ``choice``, as the default model."""
    import tempfile

    from aircolor.adapt.fallback import prior_table
    from aircolor.adapt.tune import generator_net
    from aircolor.models.exported import load_generator
    from aircolor.models.place_blend import blended
    from aircolor.training.evaluation import Evaluator
    from aircolor.training.loop import export_generator
    from aircolor.utils import atomic_write_text
    from benchmarks.model_card import cautious_card, export_half
    from benchmarks.quality_shrink import blend_label

    rows, meta, _, generators = run_fold(args, None, args.work / "all-regions", [0], extra, data=view,
                                         group_by=LORO_GROUP_BY)
    model, cfg = load_generator(generators[0])
    root = _data_root(args.work / "all-regions")
    ev = Evaluator(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(root))), torch.device("cpu"),
                   root / "eval")
    shipped, shipped_cfg = blended(cfg, generator_net(model), prior_table(ev.priors, choice[0]), choice[1], choice[2])
    with tempfile.TemporaryDirectory() as tmp:
        full = export_generator(shipped, shipped_cfg, Path(tmp) / "generator.pt")
        size = export_half(full, args.ship / "generator.pt")
    recipe_text = args.recipe.read_text() + "".join(f"# override: {o}\n" for o in extra)
    atomic_write_text(args.ship / "MODEL_CARD.md", cautious_card(meta, loro_text, markdown(rows, meta), size,
                                                                 recipe_text, blend_label(choice)))
    print(f"quality: shipped to {args.ship} ({size / 1e6:.1f} MB, blend: {blend_label(choice)})")

