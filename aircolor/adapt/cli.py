"""``aircolor adapt --modern SOURCE --out MODEL_DIR``: a colorizer tuned to the colours of one place."""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

from aircolor.errors import UsageError

_EPILOG = """\
example:
  # a folder of today's colour tiles or photos of the place (no network, no georeferencing needed)
  aircolor adapt --modern ortho_tiles/ --out models/my-town
  aircolor colorize --model models/my-town scans/ --out colorized/
  # today's imagery over georeferenced historical photos (their footprints plus a margin), from a tile server
  aircolor adapt --modern 'https://tiles.example.org/ortho/{z}/{x}/{y}.jpg' --like scans/*.tif --out models/bern
  # from a raster you have, over a box (west south east north, WGS84), at 0.5 m
  aircolor adapt --modern ortho_2023.tif --bbox 7.40 46.93 7.47 46.97 --resolution 0.5 --out models/bern

MODEL_DIR gets generator.pt (use it with --model MODEL_DIR anywhere a model is taken), MODEL_CARD.md (the place's
validation Delta E of the adapted model beside the unadapted start, the gray copy and the place's priors),
adapt.json, split.json (which tiles trained, which checked) and config.yaml. The tiles are split by spatial
blocks; what is delivered is never worse on the validation blocks than the place's best prior: where tuning does
not beat it, the colours fall back toward it, and the last line says which was chosen.
"""


def _number_in(low: float, high: float, rule: str, example: str, *, low_allowed: bool = False) -> Any:
    """An argparse type: a finite number in (low, high] (or [low, high]), else one line with ``rule``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (math.isfinite(value) and (value >= low if low_allowed else value > low) and value <= high):
            raise argparse.ArgumentTypeError(f"{text}: {rule} (e.g. {example})")
        return value
    return parse


minutes_arg = _number_in(0, math.inf, "the time budget must be above 0 minutes", "10")
_scale = _number_in(0, 8, "the scale must be in (0, 8]", "0.5")
_fraction = _number_in(0, 0.5, "the held-out fraction must be in [0, 0.5]", "0.3", low_allowed=True)


def add_source_options(p: Any, prefix: str = "") -> None:
    """The options of a georeferenced source and of the tuning budget, shared with ``colorize --adapt-from``
    (``prefix`` ``adapt-``: ``--adapt-minutes`` ...; the destinations stay ``minutes`` ...)."""
    add = p.add_argument
    add(f"--{prefix}layer", dest="layer", metavar="NAME", help="with a WMTS capabilities URL: the layer")
    add(f"--{prefix}tile-matrix-set", dest="tile_matrix_set", metavar="ID",
        help="with a WMTS capabilities URL: its TileMatrixSet")
    add(f"--{prefix}zoom", dest="zoom", type=int, metavar="Z",
        help="tile zoom (default: the photos' resolution or finer)")
    add(f"--{prefix}max-tiles", dest="max_tiles", type=int, default=4000, metavar="N",
        help="refuse to fetch more tiles (default: 4000)")
    add(f"--{prefix}rate", dest="rate", type=float, default=10.0, metavar="R",
        help="tile requests per second (default: 10)")
    add(f"--{prefix}minutes", dest="minutes", type=minutes_arg, default=10.0, metavar="M",
        help="tuning time budget in minutes (default: 10)")
    add(f"--{prefix}seed", dest="seed", type=int, default=0, metavar="S",
        help="seed of the validation split and of the tuning (default: 0)")


def adapt_namespace(args: argparse.Namespace, modern: str, like: list[str] | None) -> argparse.Namespace:
    """The ``adapt`` arguments of ``colorize --adapt-from`` / ``compare --adapt`` (``args``: theirs)."""
    return argparse.Namespace(
        modern=modern, like=like, bbox=None, resolution=1.0, scale=getattr(args, "scale", 1.0), model=args.model,
        minutes=args.minutes, seed=args.seed, device=getattr(args, "device", None) or "auto",
        tracking_uri=args.tracking_uri, experiment="aircolor-adapt", force=True, quiet=getattr(args, "quiet", False),
        layer=args.layer, tile_matrix_set=args.tile_matrix_set, zoom=args.zoom, max_tiles=args.max_tiles,
        rate=args.rate, like_flag="INPUT")


def adapt_first(args: argparse.Namespace, modern: str, photos: list[str], model_dir: Path, redo: bool,
                tile_cache: Path | None = None) -> str:
    """Adapt once for ``colorize --adapt-from`` / ``compare --adapt`` (``photos``: their georeferenced inputs, used
    when ``modern`` is not a folder); a finished ``model_dir`` is reused unless ``redo``. The model to colour with."""
    if (model_dir / "generator.pt").is_file() and not redo:
        print(f"adapt: reusing {model_dir} (adapted before; --overwrite adapts again)", file=sys.stderr)
        return str(model_dir)
    like = None if Path(modern).is_dir() else photos
    result = run_adapt(adapt_namespace(args, modern, like), model_dir, tile_cache)
    print(summary_line(result), file=sys.stderr)
    return str(model_dir)


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "adapt", help="tune a colorizer to one place's colours, from today's imagery of it",
        description="Learn the colours of one place from today's colour imagery of it: cut it into tiles, hold out "
                    "spatial blocks, tune the model (default: the shipped one) within a time budget and write an "
                    "adapted model with its card.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modern", required=True, metavar="SOURCE",
                   help="a folder of colour images of the place; or a raster file, XYZ/WMTS template or WMTS "
                        "capabilities URL with --like or --bbox")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder of the adapted model (must be new or "
                                                                     "empty, or pass --force)")
    p.add_argument("--model", default="default", metavar="START",
                   help="the model to start from, as for `colorize --model` (default: the shipped default model)")
    p.add_argument("--like", nargs="+", metavar="PHOTO", help="georeferenced historical photos: the imagery over "
                                                              "their footprints (plus a margin) is used")
    p.add_argument("--bbox", nargs=4, type=float, metavar=("W", "S", "E", "N"), help="a WGS84 box instead of --like")
    p.add_argument("--resolution", type=float, default=1.0, metavar="M",
                   help="with --bbox: ground metres per pixel (default: 1)")
    p.add_argument("--scale", type=_scale, default=1.0,
                   help="resize factor of the imagery before it is cut (as `colorize --scale`; default 1)")
    p.add_argument("--holdout", type=_fraction, default=0.0, metavar="F",
                   help="hold out this fraction of the imagery (spatial blocks) as a test set, never used for tuning, "
                        "choosing or the priors, and print every arm's score on it (e.g. 0.3; default: none)")
    p.add_argument("--device", default="auto", help="torch device (default: cuda if present, else cpu)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI: the adaptation is tracked as a run (also taken from "
                                          "$MLFLOW_TRACKING_URI)")
    p.add_argument("--experiment", default="aircolor-adapt", help="MLflow experiment (default: aircolor-adapt)")
    p.add_argument("--force", action="store_true", help="replace a MODEL_DIR that holds something")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_source_options(p)
    p.set_defaults(func=_cmd_adapt)
    return p


def load_tiles(args: argparse.Namespace, size: int, tile_cache: Path) -> tuple[Any, str]:
    """The place's tiles from ``args.modern`` (a folder, or a georeferenced source with --like / --bbox)."""
    from aircolor.adapt.geo_source import bbox_footprint, like_footprints, load_georeferenced
    from aircolor.adapt.place_tiles import load_folder

    source = Path(args.modern)
    if source.is_dir():
        if args.like or args.bbox:
            raise UsageError(f"--modern {args.modern}: a folder is used whole; --like and --bbox go with a raster "
                             "file or a tile source")
        return load_folder(source, size, args.scale), f"folder {source}"
    if not (args.like or args.bbox):
        if source.is_file() or args.modern.startswith(("http://", "https://")):
            raise UsageError(f"--modern {args.modern}: a raster or tile source needs --like PHOTO... (georeferenced "
                             "photos) or --bbox W S E N to say where")
        raise UsageError(f"--modern {args.modern}: no such folder or file")
    if args.like and args.bbox:
        raise UsageError("--like and --bbox: give one of them")
    if args.bbox and not (math.isfinite(args.resolution) and args.resolution > 0):
        raise UsageError(f"--resolution {args.resolution}: must be above 0 metres")
    if args.like:
        footprints = like_footprints(args.like, getattr(args, "like_flag", "--like"))
    else:
        footprints = [bbox_footprint(tuple(args.bbox), args.resolution)]
    what = f"{len(args.like)} photo footprint(s)" if args.like else "the box " + " ".join(map(str, args.bbox))
    return load_georeferenced(args, footprints, size, args.scale, tile_cache), f"{args.modern} over {what}"


def run_adapt(args: argparse.Namespace, out: Path, tile_cache: Path | None = None) -> Any:
    """Adapt as ``args`` say and write the model to ``out``; the result (see :func:`aircolor.adapt.run.adapt`).
    Fetched tiles go to ``tile_cache/modern-tiles`` (kept: ``compare`` reuses them), else to a temporary folder."""
    from aircolor.adapt.run import AdaptOptions, adapt, check_out, load_start, resolve_device
    from aircolor.training.progress import ConsoleProgress, NullProgress

    check_out(out, getattr(args, "force", False))
    device = resolve_device(getattr(args, "device", None) or "auto")
    args.prog = "adapt"
    model, cfg, described = load_start(getattr(args, "start_model", None) or args.model, device,
                                       getattr(args, "tracking_uri", None))
    with tempfile.TemporaryDirectory(prefix="aircolor-adapt-tiles-") as cache:
        tiles, source = load_tiles(args, int(cfg.data.size), tile_cache or Path(cache))
    options = AdaptOptions(out=out, start=described, minutes=args.minutes, seed=args.seed,
                           scale=getattr(args, "scale", 1.0), device=str(device),
                           tracking_uri=getattr(args, "tracking_uri", None),
                           experiment=getattr(args, "experiment", "aircolor-adapt"),
                           force=getattr(args, "force", False), holdout=getattr(args, "holdout", 0.0))
    quiet = getattr(args, "quiet", False)
    progress = NullProgress() if quiet else ConsoleProgress(unit="round")
    if not quiet:
        print(f"adapt: {len(tiles)} tiles of {cfg.data.size} px from {source}; tuning {described} for up to "
              f"{args.minutes:g} min on {device}", file=sys.stderr)
    return adapt(tiles, source, model, cfg, described, options, device=device, progress=progress)


def summary_line(result: Any) -> str:
    rows = result.record["validation"]
    name, value = result.delivery.best_prior
    return (f"adapt: {result.out} delivers {result.record['choice']}: validation Delta E "
            f"{rows['delivered']['delta_e2000']:.2f} (unadapted {rows['start']['delta_e2000']:.2f}, gray "
            f"{rows['gray']['delta_e2000']:.2f}, best prior {value:.2f}); {result.record['reason']}")


def test_table(record: dict[str, Any]) -> list[str]:
    """The held-out test blocks' scores as aligned lines (``--holdout``)."""
    from aircolor.adapt.card import ARM_LABELS

    rows = record["test"]
    lines = [f"adapt: held-out test blocks ({record['tiles']['test']} tiles never used), Delta E 2000 [95% CI]:"]
    for arm, label in ARM_LABELS.items():
        if arm in rows:
            r = rows[arm]
            lines.append(f"  {label:<40} {r['delta_e2000']:6.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]")
    return lines


def _cmd_adapt(args: argparse.Namespace) -> int:
    result = run_adapt(args, Path(args.out))
    if "test" in result.record:
        print("\n".join(test_table(result.record)))
    print(summary_line(result))
    return 0
