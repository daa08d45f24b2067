"""``aircolor compare``: a colorized historical photo beside today's color imagery of the same ground."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aircolor.adapt.cli import minutes_arg
from aircolor.errors import UsageError

SUMMARY_NAME = "compare-summary.json"

_EPILOG = """\
example:
  # today's imagery from an XYZ server, the zoom picked to match the photo's resolution
  aircolor compare scans/bern_1946.tif --model runs/best/model.pt --out compare/bern \\
      --modern 'https://tiles.example.org/ortho/{z}/{x}/{y}.jpg'
  # from a WMTS service on a national grid
  aircolor compare scans/bern_1946.tif --model models:/aircolor-pix2pix/1 --out compare/bern \\
      --modern https://wmts.example.ch/1.0.0/WMTSCapabilities.xml --layer ortho --tile-matrix-set 2056
  # from a raster you have
  aircolor compare scans/bern_1946.tif --model model.pt --out compare/bern --modern ortho_2023.tif

OUT gets: the colorized photo (as `aircolor colorize` writes it), STEM-modern.tif (RGBA, the photo's CRS,
extent and resolution), STEM-colorized.png + STEM-modern.png (a swipe pair: same size, same grid),
STEM-side-by-side.png, compare-summary.json (sources, zoom, tiles, and the Delta E 2000 of the colorized photo
and of its gray copy against today's imagery: a guide only, the land has changed since), and modern-tiles/
(the fetched tiles; a rerun reuses them). The photo must be georeferenced.
"""


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare", help="a colorized historical photo and today's imagery on the same grid",
        description="Colorize a georeferenced historical photo and put today's color imagery (a file, an XYZ/WMTS "
                    "tile template or a WMTS service) on exactly its grid, with PNG previews to compare them.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("historical", metavar="HISTORICAL", help="a georeferenced historical photo (GeoTIFF, or with a "
                                                            "world file and CRS)")
    p.add_argument("--model", help="the colorizer, as for `aircolor colorize --model` (with --adapt: the model to "
                                   "start from, default the shipped one)")
    p.add_argument("--adapt", action="store_true",
                   help="first adapt the model to --modern's imagery over the photo's footprint (plus a margin); the "
                        "adapted model goes to OUT/adapted-model/ (reused on a rerun) and colours the photo")
    p.add_argument("--adapt-minutes", dest="minutes", type=minutes_arg, default=10.0, metavar="M",
                   help="with --adapt: the tuning time budget in minutes (default: 10)")
    p.add_argument("--adapt-seed", dest="seed", type=int, default=0, metavar="S",
                   help="with --adapt: the seed of the validation split and of the tuning (default: 0)")
    p.add_argument("--modern", required=True, metavar="SOURCE",
                   help="today's imagery: a raster file, an XYZ/WMTS tile URL template, or a WMTS capabilities URL")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--layer", metavar="NAME", help="with a WMTS capabilities URL: the layer")
    p.add_argument("--tile-matrix-set", metavar="ID", help="with a WMTS capabilities URL: its TileMatrixSet")
    p.add_argument("--zoom", type=int, metavar="Z",
                   help="tile zoom (default: the photo's resolution or finer, at most 19 for XYZ)")
    p.add_argument("--max-tiles", type=int, default=4000, metavar="N", help="refuse to fetch more (default: 4000)")
    p.add_argument("--rate", type=float, default=10.0, metavar="R", help="tile requests per second (default: 10)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI for a models:/ or runs:/ --model")
    p.add_argument("--device", default=None, help="torch device for colorizing (default: cuda if present, else cpu)")
    p.set_defaults(func=_cmd_compare)
    return p


def _colorize(args: argparse.Namespace, out: Path) -> Path:
    """Colorize the photo with `aircolor colorize` itself (same outputs, atomic, skipped on a rerun)."""
    from aircolor.cli import build_parser

    argv = ["colorize", "--model", args.model, args.historical, "--out", str(out), "--quiet"]
    argv += ["--tracking-uri", args.tracking_uri] if args.tracking_uri else []
    argv += ["--device", args.device] if args.device else []
    colorize_args = build_parser().parse_args(argv)
    colorize_args.func(colorize_args)
    summary = json.loads((out / "colorize-summary.json").read_text())
    [result] = [f for f in summary["files"] if Path(f["input"]).resolve() == Path(args.historical).resolve()]
    if result["status"] == "failed":
        raise UsageError(f"HISTORICAL {args.historical}: could not be colorized: {result['reason']}")
    return Path(result["output"])


def _cmd_compare(args: argparse.Namespace) -> int:
    from aircolor.compare.fetch import fetch_planned, plan_tiles
    from aircolor.compare.modern import footprint_of, modern_from_file, modern_from_tiles, source_kind
    from aircolor.compare.pair import color_agreement, preview, write_modern, write_pngs
    from aircolor.utils import atomic_write_text

    historical = Path(args.historical)
    if not historical.is_file():
        raise UsageError(f"HISTORICAL {historical}: no such file")
    grid = footprint_of(historical)
    kind = source_kind(args.modern, args.layer)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    args.prog = "compare"
    plan = plan_tiles(args, kind, grid) if kind != "file" else None
    if args.model is None and not args.adapt:
        raise UsageError("--model is needed (or --adapt, to adapt the shipped model to --modern's imagery first)")
    if args.adapt:
        from aircolor.adapt.cli import adapt_first
        from aircolor.adapt.run import ADAPTED_MODEL

        args.model = args.model or "default"
        args.model = adapt_first(args, args.modern, [str(historical)], out / ADAPTED_MODEL, redo=False,
                                 tile_cache=out)
        args.prog = "compare"
    colorized = _colorize(args, out)
    info: dict[str, Any] = {"source": args.modern, "kind": kind}
    if plan is None:
        modern = modern_from_file(Path(args.modern), grid)
    else:
        files, fetched = fetch_planned(args, plan, out)
        info.update(fetched)
        modern = modern_from_tiles(files, grid)
    stem = historical.stem
    write_modern(modern, grid, out / f"{stem}-modern.tif")
    (c_rgb, c_ok), (m_rgb, m_ok), (g_rgb, _) = (preview(colorized), preview(out / f"{stem}-modern.tif"),
                                               preview(historical))
    pngs = write_pngs(c_rgb, m_rgb, out, stem)
    h, w = min(c_rgb.shape[0], m_rgb.shape[0]), min(c_rgb.shape[1], m_rgb.shape[1])
    agreement = color_agreement(c_rgb[:h, :w], g_rgb[:h, :w], m_rgb[:h, :w], c_ok[:h, :w] & m_ok[:h, :w])
    summary = {"historical": str(historical), "colorized": str(colorized), "modern": str(out / f"{stem}-modern.tif"),
               "grid": {"crs": grid.crs.to_string(), "transform": list(grid.transform)[:6], "width": grid.width,
                        "height": grid.height},
               "modern_source": info, "pngs": pngs, "agreement": agreement,
               "agreement_note": "Delta E 2000 against today's imagery, where both have pixels: a guide only (the "
                                 "land changed since the photo); the gray copy is the do-nothing baseline"}
    atomic_write_text(out / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")
    a = agreement
    versus = (f"; Delta E 2000 vs today: colorized {a['delta_e2000_colorized']:.2f}, gray copy "
              f"{a['delta_e2000_gray']:.2f} (a guide: the land changed)") if a["pixels"] else ""
    print(f"compare: {colorized.name} and {stem}-modern.tif on one grid in {out}{versus}")
    return 0
