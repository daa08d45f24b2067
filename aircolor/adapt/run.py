"""``adapt``: tune a colorizer to one place's imagery and write it with its card (see :mod:`aircolor.adapt`)."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aircolor.adapt.card import arm_rows, card_text
from aircolor.adapt.fallback import ALPHAS, PRIOR_NAMES, Delivery, choose_delivery, prior_table, prior_tiles
from aircolor.adapt.place_tiles import PlaceTiles, split_blocks
from aircolor.adapt.tune import TuneOptions, TuneResult, delivered_u8, fine_tune, predict_ab, tile_delta_e
from aircolor.errors import UsageError
from aircolor.metrics.priors import fit_priors


ADAPTED_MODEL = "adapted-model"   # where `colorize --adapt-from` and `compare --adapt` put the model, inside OUT


@dataclass(frozen=True)
class AdaptOptions:
    out: Path
    start: str = "default"
    minutes: float = 10.0
    seed: int = 0
    scale: float = 1.0
    val_fraction: float = 0.2
    device: str = "auto"
    tracking_uri: str | None = None
    experiment: str = "aircolor-adapt"
    force: bool = False
    max_steps: int | None = None
    holdout: float = 0.0      # this fraction of the tiles (spatial blocks) is a test set: scored, never used


@dataclass
class Adapted:
    out: Path
    delivery: Delivery
    tune: TuneResult
    record: dict[str, Any]


def check_out(out: Path, force: bool) -> None:
    """Refuse an output folder that holds something (unless ``force``), before any work."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; give a folder for the adapted model")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"--out {out}: the folder is not empty; give a new folder, or --force to replace it")


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA device is visible; use --device cpu or auto")
    return torch.device(name if name != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))


def load_start(spec: str, device: torch.device, tracking_uri: str | None) -> tuple[Any, Any, str]:
    """The start model, checked to be a Lab generator that tuning can train."""
    from aircolor.colorize.source import load_model

    model, cfg, described = load_model(spec, device=device, tracking_uri=tracking_uri)
    if model.color_space != "lab" or not hasattr(model, "G") or cfg.model.family == "bicyclegan":
        raise UsageError(f"--model {spec}: adapt tunes Lab generators (pix2pix with data.color_space lab, as the "
                         f"default model); this one is {cfg.model.family} in {model.color_space}")
    return model, cfg, described


def _adapted_model(cfg: Any, model: Any, delivery: Delivery, priors: Any, device: torch.device) -> tuple[Any, Any]:
    """A model with the tuned network and the chosen blend in its weights, and its config."""
    from aircolor.adapt.tune import generator_net
    from aircolor.models.place_blend import blended

    adapted, cfg = blended(cfg, generator_net(model), prior_table(priors, delivery.prior), delivery.alpha)
    return adapted.prepare(device).eval(), cfg


@dataclass
class PlaceSplit:
    """The place's tiles split by blocks, its priors (fitted on the training blocks) and the validation scores of
    everything tuning is measured against."""

    train: PlaceTiles
    val: PlaceTiles
    priors: Any
    references: dict[str, float]       # gray, tint, lightness on the validation blocks
    start_tiles: np.ndarray            # the unadapted start, per validation tile


def split_place(tiles: PlaceTiles, model: Any, val_fraction: float, seed: int, where: str) -> PlaceSplit:
    train, val = split_blocks(tiles, val_fraction, seed, where)
    priors = fit_priors(train.gray, train.color)
    start_tiles = tile_delta_e(delivered_u8(val.gray, predict_ab(model, val.gray)), val.color)
    references = {name: float(v.mean()) for name, v in prior_tiles(priors, val.gray, val.color).items()}
    if getattr(model.G, "alpha", None) is not None:
        model.G.alpha.fill_(1.0)  # an adapted start: tune its network alone
    return PlaceSplit(train, val, priors, references, start_tiles)


def deliver_tuned(model: Any, cfg: Any, place: PlaceSplit, device: torch.device) -> tuple[Delivery, Any, Any]:
    """What to deliver with ``model``'s tuned network (chosen on the validation blocks), and that model + config."""
    val = place.val
    delivery = choose_delivery(predict_ab(model, val.gray), place.priors, val.gray, val.color)
    adapted, adapted_cfg = _adapted_model(cfg, model, delivery, place.priors, device)
    check = tile_delta_e(delivered_u8(val.gray, predict_ab(adapted, val.gray)), val.color).mean()
    if abs(check - delivery.delta_e) > 0.05:
        raise RuntimeError(f"the adapted model scores {check:.3f}, not the chosen {delivery.delta_e:.3f}")
    return delivery, adapted, adapted_cfg


def adapt(tiles: PlaceTiles, source: str, model: Any, cfg: Any, start: str, options: AdaptOptions, *,
          device: torch.device, progress: Any = None) -> Adapted:
    """Split ``tiles`` by blocks, tune ``model`` on the training part, pick what to deliver on the validation
    part and write the adapted model to ``options.out`` (all or nothing)."""
    test = None
    if options.holdout > 0:
        tiles, test = split_blocks(tiles, options.holdout, options.seed + 1, f"--modern {source} (--holdout)")
        start_test = tile_delta_e(delivered_u8(test.gray, predict_ab(model, test.gray)), test.color)
    place = split_place(tiles, model, options.val_fraction, options.seed, f"--modern {source}")
    tracker = _open_tracker(options, source, start, len(place.train), len(place.val))
    try:
        on_check = (lambda step, seconds, value: tracker.log_metrics(
            {"val.delta_e2000": value, "seconds": seconds}, step=step)) if tracker else None
        tuned = fine_tune(model, place.train, place.val,
                          TuneOptions(options.minutes * 60, options.seed, max_steps=options.max_steps),
                          progress=progress, on_check=on_check, references=place.references)
        delivery, adapted, adapted_cfg = deliver_tuned(model, cfg, place, device)
        per_tile = {"delivered": delivery.per_tile, "network": delivery.tiles["network"],
                    "start": place.start_tiles, **{name: delivery.tiles[name] for name in PRIOR_NAMES}}
        record = _record(options, source, start, place.train, place.val, tuned, delivery, per_tile, device)
        if test is not None:
            record["test"] = arm_rows(_test_arms(adapted, place, test, start_test))
            record["tiles"]["test"] = len(test)
        _write(options.out, adapted, adapted_cfg, record, _split_record(place.train, place.val, test), tracker,
               options.force)
    except BaseException:
        if tracker:
            tracker.end("FAILED")
        raise
    return Adapted(options.out, delivery, tuned, record)


def _test_arms(adapted: Any, place: PlaceSplit, test: PlaceTiles, start_test: np.ndarray) -> dict[str, np.ndarray]:
    """Per-tile Delta E on the held-out test blocks: the adapted model, the start, the gray copy and the priors."""
    return {"delivered": tile_delta_e(delivered_u8(test.gray, predict_ab(adapted, test.gray)), test.color),
            "start": start_test, **prior_tiles(place.priors, test.gray, test.color)}


def _record(options: AdaptOptions, source: str, start: str, train: PlaceTiles, val: PlaceTiles, tuned: TuneResult,
            delivery: Delivery, per_tile: dict[str, np.ndarray], device: torch.device) -> dict[str, Any]:
    from aircolor.training.context import describe_device

    return {
        "format": 1, "out_name": options.out.name, "source": source, "start": start, "minutes": options.minutes,
        "seed": options.seed, "scale": options.scale, "tile_px": int(train.gray.size(-1)),
        "device": describe_device(device),
        "tiles": {"train": len(train), "val": len(val)},
        "blocks": {"train": len(set(train.blocks)), "val": len(set(val.blocks))},
        "choice": delivery.choice(), "reason": delivery.reason(), "prior": delivery.prior, "alpha": delivery.alpha,
        "candidates": len(PRIOR_NAMES) * (len(ALPHAS) - 1) + 1,
        "validation": arm_rows(per_tile),
        "tune": {"steps": tuned.steps, "seconds": tuned.seconds, "stopped": tuned.stopped,
                 "best_step": tuned.best_step, "curve": [list(p) for p in tuned.curve]},
    }


def _split_record(train: PlaceTiles, val: PlaceTiles, test: PlaceTiles | None) -> dict[str, Any]:
    """Which file and block every tile came from, on which side: the proof that validation (and the held-out
    test blocks) were never trained on."""
    parts = (("train", train), ("val", val)) + ((("test", test),) if test is not None else ())
    return {side: [{"source": s, "block": b} for s, b in zip(part.sources, part.blocks)] for side, part in parts}


def _write(out: Path, model: Any, cfg: Any, record: dict[str, Any], split: dict[str, Any], tracker: Any,
           force: bool) -> None:
    """The model folder, staged next to ``out`` and renamed into place (an old one replaced only with ``force``)."""
    from aircolor.config import dump_yaml
    from aircolor.training.loop import export_generator
    from aircolor.utils import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        export_generator(model, cfg, stage / "generator.pt")
        atomic_write_text(stage / "config.yaml", dump_yaml(cfg))
        atomic_write_text(stage / "adapt.json", json.dumps(record, indent=1) + "\n")
        atomic_write_text(stage / "split.json", json.dumps(split) + "\n")
        atomic_write_text(stage / "MODEL_CARD.md", card_text(record))
        if tracker:
            _track_result(tracker, stage, record)
        check_out(out, force)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            stage.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            stage.rename(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _open_tracker(options: AdaptOptions, source: str, start: str, n_train: int, n_val: int) -> Any:
    """An MLflow run for the adaptation when a tracking URI is given (flag or $MLFLOW_TRACKING_URI), else None."""
    import os

    uri = options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return None
    from aircolor.tracking import Tracker, resolve_tracking_uri

    spool = options.out.with_name(f"{options.out.name}.mlflow-spool")   # written only while MLflow is unreachable
    tracker = Tracker(resolve_tracking_uri(None, uri), options.experiment, run_name=f"adapt-{options.out.name}",
                      spool_dir=spool, tags={"aircolor.kind": "adapt"}).start()
    tracker.log_params({"source": source[:500], "start": start[:500], "minutes": options.minutes,
                        "seed": options.seed, "scale": options.scale, "val_fraction": options.val_fraction,
                        "tiles.train": n_train, "tiles.val": n_val})
    return tracker


def _track_result(tracker: Any, folder: Path, record: dict[str, Any]) -> None:
    """The validation scores as metrics, the choice as tags, the card and the model as artifacts; then the end."""
    tracker.log_metrics({f"val.{arm}.delta_e2000": row["delta_e2000"] for arm, row in record["validation"].items()},
                        step=record["tune"]["steps"])
    tracker.set_tags({"adapt.choice": record["choice"], "adapt.alpha": str(record["alpha"]),
                      "adapt.prior": record["prior"]})
    tracker.log_artifact(folder / "MODEL_CARD.md")
    tracker.log_artifact(folder / "adapt.json")
    tracker.log_artifact(folder / "generator.pt", "model")
    tracker.log_artifact(folder / "config.yaml", "model")
    tracker.end("FINISHED", wait_s=30.0)
    if tracker.pending:
        import sys

        print(f"adapt: MLflow at {tracker.tracking_uri} did not take {tracker.pending} record(s); they are kept in "
              f"{tracker.spool_dir}: send them with `aircolor tracking replay {tracker.spool_dir}`", file=sys.stderr)
