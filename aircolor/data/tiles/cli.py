"""The ``aircolor data fetch-tiles`` command."""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import secrets
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aircolor.errors import UsageError


from aircolor.data.tiles.fetch import TileOutput, existing_tile, fetch_tiles
from aircolor.data.tiles.georef import PART_MARK
from aircolor.data.tiles.grid import WEB_MERCATOR, TileGrid, TileKey, parse_bbox, parse_zooms
from aircolor.data.tiles.http import DocumentError, default_user_agent, fetch_document
from aircolor.data.tiles.summary import SUMMARY_NAME
from aircolor.data.tiles.templates import TileTemplate, parse_template
from aircolor.data.tiles.wmts import capabilities_url, open_layer

# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------

_EPILOG = """\
example:
  # zoom 15-16 color orthophotos of southern Osaka from GSI's seamlessphoto layer
  aircolor data fetch-tiles \\
      --url 'https://cyberjapandata.gsi.go.jp/xyz/seamlessphoto/{z}/{x}/{y}.jpg' \\
      --bbox 135.50,34.59,135.53,34.61 --zoom 15-16 --out data/tiles/osaka --rate 5

URL templates:
  XYZ          https://host/path/{z}/{x}/{y}.jpg      ({-y} for TMS row order)
  WMTS KVP     https://host/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=ortho&STYLE=default
               &FORMAT=image/jpeg&TILEMATRIXSET=WebMercatorQuad
               &TILEMATRIX={TileMatrix}&TILEROW={TileRow}&TILECOL={TileCol}
  WMTS REST    https://host/wmts/ortho/default/WebMercatorQuad/{TileMatrix}/{TileRow}/{TileCol}.jpg
  WMTS must use a Web-Mercator (GoogleMapsCompatible) tile matrix set; --matrix-id 'EPSG:3857:{z}'
  if its matrix identifiers are not plain zoom numbers.

Tiles are saved as OUT/{z}/{x}/{y}.{jpg,png,webp,tif}. A rerun skips tiles already present, so an
interrupted download resumes where it stopped. OUT/fetch-summary.json lists missing (404/204) and failed
tiles. Exit code: 0 if no tile failed (missing tiles are fine), 1 if some failed after all retries.
Respect the tile server's terms of use and keep --rate modest.
"""


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``fetch-tiles`` to the ``aircolor data`` subcommand group."""
    p = subparsers.add_parser(
        "fetch-tiles",
        help="download web-map tiles (color orthophotos) for a bbox, resumably",
        description=(
            "Download the Web-Mercator tiles that cover a bbox at the given zoom levels from an XYZ or WMTS "
            "tile server. Every saved tile is a complete, decodable image; reruns resume."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", metavar="TEMPLATE",
                        help="tile URL template (XYZ, or WMTS KVP / REST on a Web-Mercator matrix set; see below)")
    source.add_argument("--wmts", metavar="CAPABILITIES_URL",
                        help="a WMTS service: its GetCapabilities URL (or endpoint); needs --layer")
    p.add_argument("--layer", metavar="NAME", help="with --wmts: the layer to fetch (an error lists the layers)")
    p.add_argument("--tile-matrix-set", metavar="ID",
                   help="with --wmts: the layer's TileMatrixSet (default: its only one, else its Web-Mercator one)")
    p.add_argument("--bbox", required=True, metavar="W,S,E,N", help="area in WGS84 degrees: west,south,east,north")
    p.add_argument("--zoom", required=True, metavar="Z", help="zoom level, range or list: 16, 15-16, 15,17")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory; tiles go to DIR/{z}/{x}/{y}.{ext}")
    p.add_argument("--concurrency", type=int, default=8, metavar="N", help="parallel downloads (default: 8)")
    p.add_argument("--rate", type=float, default=10.0, metavar="R",
                   help="max requests per second over all downloads, 0 = unlimited (default: 10)")
    p.add_argument("--retries", type=int, default=5, metavar="N",
                   help="retries per tile on 5xx/429/timeouts/bad bodies (default: 5)")
    p.add_argument("--backoff", type=float, default=0.5, metavar="S",
                   help="backoff factor S: retries wait about 0, 2S, 4S, ... seconds (capped at 60, with up "
                        "to S of jitter); a Retry-After header wins (default: 0.5)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="per-request network timeout in seconds (default: 30)")
    p.add_argument("--user-agent", default=None, metavar="UA",
                   help=f"User-Agent header (default: {default_user_agent()!r})")
    p.add_argument("--max-tiles", type=int, default=20000, metavar="N",
                   help="refuse bboxes covering more tiles than this, 0 = no limit (default: 20000)")
    p.add_argument("--matrix-id", default="{z}", metavar="FMT",
                   help="WMTS TileMatrix identifier for a zoom, e.g. 'EPSG:3857:{z}' (default: '{z}')")
    p.add_argument("--format", default="same", choices=["same", "tif"],
                   help="save tiles as the server sends them (same) or as GeoTIFF (tif, lossless, CRS inside)")
    p.add_argument("--georef", default="world", choices=["world", "none"],
                   help="world: a world file and a CRS sidecar (.aux.xml) beside each tile (default); none: bare")
    p.add_argument("--dry-run", action="store_true", help="only print how many tiles per zoom would be fetched")
    p.set_defaults(func=_cli_fetch)
    # A bbox west of Greenwich or south of the equator starts with '-' ("--bbox -74.1,40.6,-73.9,40.8"): let it
    # be a value, as argparse already does for a single negative number, rather than "expected one argument".
    p._negative_number_matcher = re.compile(r"^-\.?\d[\d.,\-]*$")
    return p


def _check_numbers(args: argparse.Namespace) -> None:
    """Range checks that argparse's ``type=`` cannot express."""
    if args.concurrency < 1:
        raise UsageError(f"--concurrency: {args.concurrency} is less than 1; use e.g. --concurrency 8")
    if not math.isfinite(args.rate) or args.rate < 0:
        raise UsageError(f"--rate: {args.rate} must be a number >= 0 requests per second (0 = unlimited)")
    if args.retries < 0:
        raise UsageError(f"--retries: {args.retries} is negative; use 0 for no retries")
    if not math.isfinite(args.backoff) or args.backoff < 0:
        raise UsageError(f"--backoff: {args.backoff} must be a number of seconds >= 0")
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise UsageError(f"--timeout: {args.timeout} must be a number of seconds > 0")
    if args.max_tiles < 0:
        raise UsageError(f"--max-tiles: {args.max_tiles} is negative; use 0 for no limit")


def _check_request_parts(url: str, flag: str) -> None:
    """What would only fail at the first request: a malformed host or port."""
    try:
        parts = urlsplit(url)
        parts.port
    except ValueError as err:
        raise UsageError(f"{flag}: {url!r} has a malformed host or port ({err}); "
                         f"e.g. {flag} 'https://tiles.example.org:8080/...'") from None
    if flag == "--wmts" and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise UsageError(f"--wmts: {url!r} is not an http(s) URL; pass the service's GetCapabilities URL, e.g. "
                         "--wmts 'https://wmts.example.org/1.0.0/WMTSCapabilities.xml'")


def _check_user_agent(user_agent: str | None) -> None:
    """A header with a line break would only fail at the first request."""
    if user_agent is not None and (not user_agent.strip() or any(ord(c) < 32 or ord(c) == 127 for c in user_agent)):
        raise UsageError(f"--user-agent {user_agent!r}: must be one line of printable text, e.g. "
                         "--user-agent 'my-project/1.0 (me@example.org)'")


def _check_out_dir(out: Path) -> None:
    """Make sure we can write into ``--out`` before spending a single request."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a directory; pass a directory path")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test{PART_MARK}{secrets.token_hex(6)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"--out: cannot write to {out} ({err.strerror or err}); choose a writable directory") from None


@dataclass(frozen=True)
class _Source:
    template: TileTemplate
    grid: TileGrid
    what: str  # for the first line: where the tiles come from


def _source(args: argparse.Namespace) -> _Source:
    """The tiles' URL template and grid: from ``--url`` (Web Mercator) or from a WMTS service's capabilities."""
    if args.wmts is None:
        for flag, value in (("--layer", args.layer), ("--tile-matrix-set", args.tile_matrix_set)):
            if value is not None:
                raise UsageError(f"{flag} goes with --wmts CAPABILITIES_URL; with --url the template says it all")
        _check_request_parts(args.url, "--url")
        template = parse_template(args.url, matrix_id=args.matrix_id)
        return _Source(template, WEB_MERCATOR, template.url)
    if not args.layer:
        raise UsageError("--wmts needs --layer NAME: the layer to fetch (a wrong name lists the service's layers)")
    if args.matrix_id != "{z}":
        raise UsageError("--matrix-id goes with --url; with --wmts the identifiers come from the capabilities")
    _check_request_parts(args.wmts, "--wmts")
    url = capabilities_url(args.wmts)
    try:
        xml = fetch_document(url, retries=args.retries, backoff=args.backoff, timeout=args.timeout,
                             user_agent=args.user_agent or default_user_agent())
    except DocumentError as err:
        raise UsageError(f"--wmts: could not read the capabilities at {url}: {err}") from None
    layer = open_layer(args.wmts, xml, args.layer, args.tile_matrix_set)
    return _Source(layer.template, layer.grid,
                   f"layer {layer.layer} ({layer.image_format}) in {layer.grid.name} of {args.wmts}")


def _check_same_grid(out: Path, grid: TileGrid) -> None:
    """Tiles of two tile matrix sets would share names in one folder: refuse a second set."""
    try:
        earlier = json.loads((out / SUMMARY_NAME).read_text()).get("tile_matrix_set") or WEB_MERCATOR.name
    except (OSError, ValueError, AttributeError):
        return
    if earlier != grid.name:
        raise UsageError(f"--out {out} holds tiles of the tile matrix set {earlier}, not {grid.name}; tiles of "
                         "two sets cannot share a folder: choose another --out")


def _cli_fetch(args: argparse.Namespace) -> int:
    """Run ``aircolor data fetch-tiles``: validate every input, then fetch and print the summary."""
    _check_user_agent(args.user_agent)
    bbox = parse_bbox(args.bbox)
    zooms = parse_zooms(args.zoom)
    _check_numbers(args)
    source = _source(args)
    grid = source.grid
    counts = {z: grid.count(bbox, z) for z in zooms}
    total = sum(counts.values())
    out = Path(args.out)
    too_many = bool(args.max_tiles) and total > args.max_tiles

    if args.dry_run:
        return _dry_run(out, bbox, grid, counts, total, args.max_tiles if too_many else 0)
    per_zoom = ", ".join(f"z{z}: {n}" for z, n in counts.items())
    if too_many:
        raise UsageError(
            f"--bbox {args.bbox} at --zoom {args.zoom} covers {total} tiles ({per_zoom}), more than "
            f"--max-tiles {args.max_tiles}; shrink the bbox, drop a zoom level, or raise --max-tiles"
        )
    _check_out_dir(out)
    _check_same_grid(out, grid)

    def all_tiles() -> Iterator[TileKey]:
        for z in zooms:
            yield from grid.tiles(bbox, z)

    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # retries are counted, not logged
    print(f"fetch-tiles: {total} tiles ({per_zoom}) from {source.what} into {out}", file=sys.stderr)
    try:
        summary = fetch_tiles(
            source.template, all_tiles(), out, concurrency=args.concurrency, rate=args.rate, retries=args.retries,
            backoff=args.backoff, timeout=args.timeout, user_agent=args.user_agent, progress=True, total=total,
            bbox=bbox, zooms=zooms, output=TileOutput(grid, args.format, args.georef),
        )
    except KeyboardInterrupt:
        print(f"\nfetch-tiles: interrupted; finished tiles are kept, rerun the same command to resume "
              f"(see {out / SUMMARY_NAME})", file=sys.stderr)
        return 130
    print(summary.format())
    return summary.exit_code


def _dry_run(out: Path, bbox: tuple[float, float, float, float], grid: TileGrid, counts: dict[int, int],
             total: int, over_limit: int) -> int:
    """Print the tile counts per zoom (and how many are already on disk, when that is cheap to know)."""
    print(f"dry run: bbox {','.join(f'{v:.6f}' for v in bbox)} covers {total} tiles of {grid.name}")
    check_disk = out.is_dir() and not over_limit
    for z, n in counts.items():
        matrix = grid.tms.matrix(z)
        about = f"(TileMatrix {grid.matrix_id(z)}, {matrix.cellSize:.3g} {grid.crs.axis_info[0].unit_name}/px)"
        if check_disk:
            present = sum(1 for t in grid.tiles(bbox, z) if existing_tile(out, t) is not None)
            print(f"  z{z}: {n} tiles {about}, {present} already in {out}, {n - present} to fetch")
        else:
            print(f"  z{z}: {n} tiles {about}")
    if over_limit:
        print(f"note: {total} tiles is more than --max-tiles {over_limit}; a real run would refuse")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m aircolor.data.tiles --url ... --bbox ... --zoom ... --out ...``."""
    parser = argparse.ArgumentParser(prog="aircolor data")
    sub = parser.add_subparsers(dest="command", required=True)
    register_cli(sub)
    args = parser.parse_args(["fetch-tiles", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except UsageError as err:
        print(f"aircolor: error: {err}", file=sys.stderr)
        return 2

