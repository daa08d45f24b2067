"""Today's imagery as tiles for a footprint: which tiles of an XYZ/WMTS source cover it, and fetching them.

Used by ``aircolor compare`` and ``aircolor adapt``; ``args`` carries the source options both share (``modern``,
``layer``, ``tile_matrix_set``, ``zoom``, ``max_tiles``, ``rate``, and ``prog``: the command's name in messages).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aircolor.errors import UsageError


def tile_source(args: argparse.Namespace, kind: str) -> tuple[Any, Any, str]:
    """The template and grid of a tile source, and the zoom cap of automatic choice."""
    from aircolor.data.tiles.grid import WEB_MERCATOR
    from aircolor.data.tiles.http import DocumentError, default_user_agent, fetch_document
    from aircolor.data.tiles.templates import parse_template
    from aircolor.data.tiles.wmts import capabilities_url, open_layer

    if kind == "template":
        return parse_template(args.modern), WEB_MERCATOR, args.modern
    try:
        xml = fetch_document(capabilities_url(args.modern), retries=3, backoff=0.5, timeout=30,
                             user_agent=default_user_agent())
    except DocumentError as err:
        raise UsageError(f"--modern {args.modern}: could not read the capabilities: {err}") from None
    layer = open_layer(args.modern, xml, args.layer, args.tile_matrix_set)
    return layer.template, layer.grid, f"layer {layer.layer} in {layer.grid.name}"


@dataclass(frozen=True)
class TilePlan:
    template: Any
    grid: Any
    zoom: int
    count: int
    bbox: tuple[float, float, float, float]
    what: str


def plan_tiles(args: argparse.Namespace, kind: str, photo: Any) -> TilePlan:
    """Which tiles cover the photo, at which zoom: checked before the photo is colorized."""
    from aircolor.compare.modern import MAX_AUTO_ZOOM

    template, grid, what = tile_source(args, kind)
    bbox = photo.wgs84_bbox()
    top = grid.zooms[-1] if kind == "wmts" else min(grid.zooms[-1], MAX_AUTO_ZOOM)
    zoom = args.zoom if args.zoom is not None else grid.tms.zoom_for_res(
        photo.resolution_in(grid.tms.rasterio_crs), max_z=top, zoom_level_strategy="upper")
    grid.check_zoom(zoom)
    count = grid.count(bbox, zoom)
    if args.max_tiles and count > args.max_tiles:
        raise UsageError(f"the photo's footprint needs {count} tiles at zoom {zoom}, more than --max-tiles "
                         f"{args.max_tiles}; pass a coarser --zoom or raise --max-tiles")
    return TilePlan(template, grid, zoom, count, bbox, what)


def fetch_planned(args: argparse.Namespace, plan: TilePlan, out: Path) -> tuple[list[Path], dict]:
    """Fetch the planned tiles into ``out/modern-tiles`` (resumable); returns their files and what was fetched."""
    from aircolor.data.tiles.fetch import TileOutput, fetch_tiles

    grid, zoom = plan.grid, plan.zoom
    prog = getattr(args, "prog", "aircolor")
    print(f"{prog}: {plan.count} modern tiles at zoom {zoom} ({grid.matrix_id(zoom)}) from {plan.what}",
          file=sys.stderr)
    summary = fetch_tiles(plan.template, grid.tiles(plan.bbox, zoom), out / "modern-tiles", rate=args.rate,
                          progress=False, total=plan.count, bbox=plan.bbox, zooms=[zoom],
                          output=TileOutput(grid, "same", "world"))
    files = [out / "modern-tiles" / summary.files[t] for t in (*summary.fetched, *summary.skipped)]
    if not files:
        raise UsageError(f"--modern {args.modern}: no tile over the photo could be fetched ({len(summary.missing)} "
                         f"missing, {len(summary.failed)} failed; see {out / 'modern-tiles'})")
    return files, {"zoom": zoom, "tile_matrix": grid.matrix_id(zoom), "tile_matrix_set": grid.name,
                   "tiles": len(files), "missing": len(summary.missing), "failed": len(summary.failed)}
