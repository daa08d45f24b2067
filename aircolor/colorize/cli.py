"""``aircolor colorize [--model MODEL] INPUT... --out DIR`` (no ``--model``: the default model in the package)."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any


def _cmd_colorize(args: argparse.Namespace) -> int:
    import torch

    from aircolor.colorize.archive import ArchiveOptions, colorize_archive
    from aircolor.colorize.engine import ColorizeOptions, Colorizer
    from aircolor.colorize.source import load_model
    from aircolor.errors import UsageError

    if args.batch_size < 1 or not 0 < args.scale <= 4 or args.max_pixels < 1:
        raise UsageError("--batch-size must be >= 1, --scale in (0, 4], --max-pixels >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: no CUDA device is visible; use --device cpu or auto")
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    from aircolor.colorize.archive import discover
    from aircolor.utils import check_output_folder

    check_output_folder(Path(args.out), "--out")
    discover(args.inputs, Path(args.out))  # bad INPUTs fail in a second, before the model is fetched
    model, cfg, described = load_model(args.model, device=device, tracking_uri=args.tracking_uri)
    if args.overlap is not None and not 0 <= args.overlap < cfg.data.size:
        raise UsageError(f"--overlap {args.overlap}: must be in [0, {cfg.data.size}) (the model's tile size)")
    colorizer = Colorizer(model, cfg, device, ColorizeOptions(
        overlap=args.overlap, batch_size=args.batch_size, scale=args.scale,
        keep_luminance=not args.model_luminance, amp=not args.no_amp))
    out = Path(args.out)
    summary = colorize_archive(colorizer, args.inputs, ArchiveOptions(
        out_dir=out, max_pixels=int(args.max_pixels), overwrite=args.overwrite, format=args.format,
        progress=not args.quiet), model=described)
    print(f"colorized {summary.count('done')}, skipped {summary.count('skipped')} (already done), failed "
          f"{summary.count('failed')}: {out / 'colorize-summary.json'}")
    for f in summary.failed:
        print(f"  failed: {f.input}: {f.reason}")
    return 1 if summary.failed else 0


def _device(text: str) -> str:
    head, _, index = text.partition(":")
    if text in ("auto", "cpu") or (head == "cuda" and (not index or index.isdigit())):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a device aircolor runs on; use auto, cpu, cuda or cuda:N")


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    example = """
        aircolor colorize photo.jpg --out colorized/          # the model shipped with aircolor, offline
        aircolor colorize --model runs/pix2pix-lab/model/generator.pt scans/ --out colorized/
        aircolor colorize --model models:/aircolor-cut_identity-20261124/1 'archive/**/*.tif' --out out/ --scale 0.5
    """
    p = subparsers.add_parser(
        "colorize", help="colorize grayscale photos (any size, GeoTIFF, 8/16-bit) with a trained generator",
        description="Colorize an archive of grayscale photos: files, folders (recursive) or glob patterns. Large "
                    "photos are processed in overlapping, feather-blended tiles; the output keeps the input's "
                    "luminance, format, georeferencing and transparency. Finished outputs are skipped on rerun.",
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
    p.add_argument("--batch-size", type=int, default=16, help="tiles per forward pass (default 16)")
    p.add_argument("--overlap", type=int,
                   help="tile overlap in pixels (default: half the model's tile size; less is faster, 0 shows seams)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="resize factor of what the model sees, e.g. 0.25 for 4x finer scans than the training "
                        "tiles; the output keeps full resolution (default 1)")
    p.add_argument("--model-luminance", action="store_true",
                   help="RGB models: keep the model's own lightness (default: the input's luminance, model chroma)")
    p.add_argument("--format", default="same", choices=["same", "png", "tiff", "jpeg"],
                   help="output format (default: the input's; JPEG with transparency becomes PNG only if asked)")
    p.add_argument("--max-pixels", type=float, default=300e6,
                   help="skip (and report) photos above this many pixels (default 300e6; about 16 bytes of RAM each)")
    p.add_argument("--overwrite", action="store_true", help="recolorize outputs that already exist")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_colorize)
    return p
