"""``aircolor colorize [--model MODEL] INPUT... --out DIR`` (no ``--model``: the default model in the package)."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from functools import partial
from typing import Any, Callable

from aircolor.cli import _positive_int, ray_address


def colorize_options(args: argparse.Namespace, cfg: Any) -> Any:
    """The :class:`ColorizeOptions` of the parsed arguments, checked against the model's config ``cfg``."""
    from aircolor.colorize.engine import ColorizeOptions
    from aircolor.errors import UsageError

    size = int(cfg.data.size)
    tile = args.tile or size
    if tile % size:
        raise UsageError(f"--tile {tile}: must be a multiple of the model's tile size {size} (e.g. {4 * size}): "
                         f"its generator was trained on {size} px tiles")
    if args.overlap is not None and not 0 <= args.overlap < tile:
        raise UsageError(f"--overlap {args.overlap}: must be in [0, {tile}) (the tile size)")
    return ColorizeOptions(overlap=args.overlap, batch_size=args.batch_size, scale=args.scale, tile=tile,
                           keep_luminance=not args.model_luminance, amp=not args.no_amp, block=args.block_tiles,
                           channels_last=not args.no_channels_last)


def archive_options(args: argparse.Namespace) -> Any:
    from aircolor.colorize.archive import ArchiveOptions

    return ArchiveOptions(out_dir=Path(args.out), max_pixels=int(args.max_pixels), overwrite=args.overwrite,
                          format=args.format, progress=not args.quiet)


def _check_args(args: argparse.Namespace) -> None:
    from aircolor.colorize.archive import discover
    from aircolor.errors import UsageError
    from aircolor.utils import check_output_folder

    if not 0 < args.scale <= 4 or args.max_pixels < 1:
        raise UsageError("--scale must be in (0, 4] and --max-pixels >= 1")
    ray_only = [flag for flag, value in (("--address", args.address), ("--workers", args.workers),
                                         ("--cpus-per-worker", args.cpus_per_worker),
                                         ("--gpus-per-worker", args.gpus_per_worker)) if value is not None]
    if ray_only and not args.ray:
        raise UsageError(f"{ray_only[0]} is an option of --ray; add --ray to colorize on a Ray cluster")
    if args.ray and args.device != "auto":
        raise UsageError("--device is for one process; with --ray, workers use a GPU when --gpus-per-worker > 0")
    check_output_folder(Path(args.out), "--out")
    discover(args.inputs, Path(args.out))  # bad INPUTs fail in a second, before the model is fetched


def _print_summary(summary: Any, out: Path) -> int:
    print(f"colorized {summary.count('done')}, skipped {summary.count('skipped')} (already done), failed "
          f"{summary.count('failed')}: {out / 'colorize-summary.json'}")
    for f in summary.failed:
        print(f"  failed: {f.input}: {f.reason}")
    for m in summary.mosaics:
        print(f"mosaic of {m['files']} georeferenced output{'s' * (m['files'] != 1)} ({m['crs']}): {m['path']}")
    for path in summary.mosaic_left_out:
        print(f"  not in the mosaic: {path}: rotated georeferencing (warp it to north-up with gdalwarp)")
    if summary.mosaic_error:
        print(f"  failed: the mosaic VRT: {summary.mosaic_error} (the outputs are complete; rerun to retry)")
    return 1 if summary.failed or summary.mosaic_error else 0


def _cmd_colorize(args: argparse.Namespace, run_on_ray: Callable[..., Any] | None = None) -> int:
    import torch

    from aircolor.colorize.archive import colorize_archive, discover
    from aircolor.colorize.engine import Colorizer
    from aircolor.colorize.source import load_model
    from aircolor.errors import UsageError

    _check_args(args)
    if args.adapt_from:
        from aircolor.adapt.cli import adapt_first
        from aircolor.adapt.run import ADAPTED_MODEL

        photos = [str(path) for path, _ in discover(args.inputs, Path(args.out))]
        args.model = adapt_first(args, args.adapt_from, photos, Path(args.out) / ADAPTED_MODEL, args.overwrite)
    if args.ray:
        if run_on_ray is None:
            raise UsageError("this entry point cannot run on Ray; use `aircolor colorize --ray` or "
                             "`python -m aircolor.colorize --ray`")
        return _print_summary(run_on_ray(args), Path(args.out))
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: no CUDA device is visible; use --device cpu or auto")
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    model, cfg, described = load_model(args.model, device=device, tracking_uri=args.tracking_uri)
    colorizer = Colorizer(model, cfg, device, colorize_options(args, cfg))
    summary = colorize_archive(colorizer, args.inputs, archive_options(args), model=described)
    return _print_summary(summary, Path(args.out))


def _float(text: str, *, zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 <= value if zero else 0 < value) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a {'non-negative' if zero else 'positive'} number, "
                                         f"e.g. 1 or 0.5")
    return value


def _positive_float(text: str) -> float:
    return _float(text, zero=False)


def _nonnegative_float(text: str) -> float:
    return _float(text, zero=True)


def _device(text: str) -> str:
    head, _, index = text.partition(":")
    if text in ("auto", "cpu") or (head == "cuda" and (not index or index.isdigit())):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a device aircolor runs on; use auto, cpu, cuda or cuda:N")


def register_cli(subparsers: Any, *, run_on_ray: Callable[..., Any] | None = None) -> argparse.ArgumentParser:
    """``aircolor colorize``; ``run_on_ray(args) -> Summary`` runs it with ``--ray`` (the command line passes
    the Ray driver, :func:`sweeps.colorize.colorize_on_ray`: the library itself never imports Ray)."""
    from aircolor.colorize.geo import COG_BLOCK, COG_MIN_SIDE, MOSAIC

    example = """
        aircolor colorize photo.jpg --out colorized/          # the model shipped with aircolor, offline
        aircolor colorize --model runs/pix2pix-lab/model/generator.pt scans/ --out colorized/
        aircolor colorize --model models:/aircolor-cut_identity-20261124/1 'archive/**/*.tif' --out out/ --scale 0.5
        aircolor colorize orthophotos/ --out colorized/ --format cog   # COGs + colorized/colorized-mosaic.vrt for QGIS
    """
    p = subparsers.add_parser(
        "colorize", help="colorize grayscale photos (any size, GeoTIFF, 8/16-bit) with a trained generator",
        description="Colorize an archive of grayscale photos: files, folders (recursive) or glob patterns. Large "
                    "photos are processed in overlapping, feather-blended tiles; the output keeps the input's "
                    "luminance, format, georeferencing and transparency. Finished outputs are skipped on rerun. "
                    f"When outputs are georeferenced, OUT/{MOSAIC} lists them all, so GIS software opens the "
                    "archive as one layer (one VRT per CRS or band layout when they differ, named by EPSG code "
                    "or layout).",
        epilog="example:\n" + textwrap.indent(textwrap.dedent(example).strip(), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (searched recursively) or globs")
    p.add_argument("--model", default="default",
                   help="generator.pt / checkpoint / run folder, MLflow run id, models:/NAME/VERSION, "
                        "runs:/RUN_ID/model, or 'default' (the default: the model shipped with aircolor, offline; "
                        "see aircolor/default_model/MODEL_CARD.md)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (inputs are never overwritten)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI for run ids and models:/ URIs")
    p.add_argument("--device", default="auto", type=_device,
                   help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--scale", type=float, default=1.0,
                   help="resize factor of what the model sees, e.g. 0.25 for 4x finer scans than the training "
                        "tiles; the output keeps full resolution (default 1)")
    p.add_argument("--model-luminance", action="store_true",
                   help="RGB models: keep the model's own lightness (default: the input's luminance, model chroma)")
    p.add_argument("--format", default="same", choices=["same", "png", "tiff", "jpeg", "cog"],
                   help=f"output format. same (the default): the input's; a GeoTIFF with a side above {COG_MIN_SIDE} "
                        f"px becomes a COG. cog: Cloud-Optimized GeoTIFF (.tif: {COG_BLOCK} px tiles, overviews, "
                        f"lossless DEFLATE) for every photo; one without georeferencing gets the same layout without "
                        f"coordinates. tiff: a plain tiled GeoTIFF, also for large scans. JPEG with transparency "
                        f"becomes PNG only if asked. Existing outputs are skipped: add --overwrite to convert them")
    p.add_argument("--max-pixels", type=float, default=300e6,
                   help="skip (and report) photos above this many pixels (default 300e6; about 16 bytes of RAM each)")
    p.add_argument("--overwrite", action="store_true", help="recolorize outputs that already exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_adapt_options(p.add_argument_group("adapt to the place first (--adapt-from)"))
    _add_speed_options(p.add_argument_group("speed"))
    _add_ray_options(p.add_argument_group("on a Ray cluster (--ray)"))
    p.set_defaults(func=partial(_cmd_colorize, run_on_ray=run_on_ray))
    return p


def _add_adapt_options(group: Any) -> None:
    from aircolor.adapt.cli import add_source_options

    group.add_argument("--adapt-from", metavar="SOURCE",
                       help="first adapt --model to today's colour imagery of the place: a folder of it, or a raster "
                            "file / XYZ or WMTS source over the inputs' footprints (they must be georeferenced); the "
                            "adapted model goes to OUT/adapted-model/ (reused on a rerun) and colours the inputs")
    add_source_options(group, prefix="adapt-")


def _add_speed_options(group: Any) -> None:
    """How the work is cut up and run: speed and memory (the README says how much --tile moves colours)."""
    group.add_argument("--batch-size", type=_positive_int,
                       help="tiles per forward pass (default: on a CPU 16 tiles up to 128 px, 4 of 256 px; on a GPU "
                            "about 1 Mpx of tiles)")
    group.add_argument("--tile", type=_positive_int, metavar="PX",
                       help="tile side the generator sees: a multiple of its training size (default: that size). "
                            "Larger tiles are fewer, so faster; see the README for how much the colours move")
    group.add_argument("--overlap", type=int,
                       help="tile overlap in pixels (default: half the model's tile size; less is faster, "
                            "0 shows seams)")
    group.add_argument("--no-amp", action="store_true", help="no bf16 autocast (default: on CUDA and on CPUs with "
                                                             "native bf16)")
    group.add_argument("--no-channels-last", action="store_true", help="NCHW convolutions (default: channels_last)")
    group.add_argument("--block-tiles", type=_positive_int, metavar="N",
                       help="tiles per side of a block, the unit of work spread over --ray workers (default: enough "
                            "for two batches, at least 8)")


def _add_ray_options(group: Any) -> None:
    group.add_argument("--ray", action="store_true",
                       help="colorize on a Ray cluster: photos, and the tile blocks of large photos, spread over "
                            "worker actors that each hold one model copy")
    group.add_argument("--address", type=ray_address,
                       help="the cluster: auto, HOST:6379 or ray://HOST:10001 (default $RAY_ADDRESS, else a local "
                            "Ray on this machine)")
    group.add_argument("--workers", type=_positive_int, help="worker actors (default: as many as the cluster fits)")
    group.add_argument("--cpus-per-worker", type=_positive_float, metavar="C",
                       help="CPUs per worker, also its torch threads (default 1)")
    group.add_argument("--gpus-per-worker", type=_nonnegative_float, metavar="F",
                       help="GPUs per worker, may be a fraction such as 0.5 (default 0: CPU workers)")
