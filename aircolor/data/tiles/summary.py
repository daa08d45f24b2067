"""What a fetch did: ``fetch-summary.json`` (counts, missing and failed tiles) and ``tiles-index.csv``.

The index has one row per tile any run into the folder has dealt with: its key and TileMatrix identifier, its
bounds in the tile matrix set's CRS and in WGS84, the CRS, its file (relative to the folder), its status
(``fetched``, ``present``, ``missing``, ``failed``) and its WGS84 footprint as WKT (QGIS' Delimited Text layer). A rerun updates the rows of its tiles and keeps the others,
so the index of a resumed or widened download still lists every tile on disk. ``aircolor data prepare`` carries
the rows of the tiles it uses into its manifest.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aircolor.data.tiles.georef import write_bytes_atomic
from aircolor.data.tiles.grid import TileGrid, TileKey

#: Name of the machine-readable report written into the output directory.
SUMMARY_NAME = "fetch-summary.json"
#: Name of the tile index written into the output directory.
INDEX_NAME = "tiles-index.csv"
INDEX_COLUMNS = ("tile", "tile_matrix", "crs", "minx", "miny", "maxx", "maxy", "west", "south", "east", "north",
                 "file", "status", "reason", "wkt")


def tile_str(tile: TileKey) -> str:
    return f"{tile[0]}/{tile[1]}/{tile[2]}"


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@dataclass
class FetchSummary:
    """What a fetch did, tile by tile. ``failed`` holds ``(tile, url, reason)``; ``files`` each tile's file."""

    template: str = ""
    out_dir: str = ""
    bbox: tuple[float, float, float, float] | None = None
    zooms: list[int] = field(default_factory=list)
    fetched: list[TileKey] = field(default_factory=list)
    skipped: list[TileKey] = field(default_factory=list)
    missing: list[TileKey] = field(default_factory=list)
    failed: list[tuple[TileKey, str, str]] = field(default_factory=list)
    files: dict[TileKey, str] = field(default_factory=dict)
    bytes: int = 0
    requests: int = 0
    stale_parts_removed: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0
    tile_matrix_set: str = ""
    crs: str = ""

    @property
    def ok(self) -> bool:
        """True when no tile failed. Missing (404/204) tiles are normal at the edge of a coverage."""
        return not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary_line(self) -> str:
        """One line for the terminal."""
        line = (
            f"fetched {len(self.fetched)}, skipped {len(self.skipped)} (already present), "
            f"missing {len(self.missing)} (404/204), failed {len(self.failed)}; "
            f"{_human_bytes(self.bytes)} in {self.elapsed_s:.1f} s"
        )
        return ("interrupted: " + line) if self.interrupted else line

    def format(self, max_failures: int = 20) -> str:
        """The summary line plus the first failures with their reasons, and where the full report is."""
        lines = [self.summary_line()]
        for tile, url, reason in self.failed[:max_failures]:
            lines.append(f"  failed {tile_str(tile)}: {reason} ({url})")
        if len(self.failed) > max_failures:
            lines.append(f"  ... and {len(self.failed) - max_failures} more failures")
        if self.out_dir:
            lines.append(f"report: {os.path.join(self.out_dir, SUMMARY_NAME)}; "
                         f"index: {os.path.join(self.out_dir, INDEX_NAME)}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The machine-readable report (counts, missing and failed tiles) for ``fetch-summary.json``."""
        return {
            "template": self.template,
            "tile_matrix_set": self.tile_matrix_set,
            "crs": self.crs,
            "bbox": list(self.bbox) if self.bbox else None,
            "zooms": self.zooms,
            "interrupted": self.interrupted,
            "elapsed_s": round(self.elapsed_s, 3),
            "counts": {
                "fetched": len(self.fetched),
                "skipped": len(self.skipped),
                "missing": len(self.missing),
                "failed": len(self.failed),
                "requests": self.requests,
                "bytes": self.bytes,
                "stale_parts_removed": self.stale_parts_removed,
            },
            "missing": [tile_str(t) for t in sorted(self.missing)],
            "failed": [{"tile": tile_str(t), "url": u, "reason": r} for t, u, r in sorted(self.failed)],
        }


def write_summary(out_dir: Path, summary: FetchSummary) -> Path:
    """Write ``fetch-summary.json`` atomically, so a reader never sees half a report."""
    path = out_dir / SUMMARY_NAME
    write_bytes_atomic(path, (json.dumps(summary.to_json(), indent=2) + "\n").encode("utf-8"))
    return path


def _rows(summary: FetchSummary, grid: TileGrid) -> Iterable[dict[str, str]]:
    statuses = [("fetched", t, "") for t in summary.fetched] + [("present", t, "") for t in summary.skipped] + \
               [("missing", t, "") for t in summary.missing] + [("failed", t, r) for t, _, r in summary.failed]
    for status, tile, reason in statuses:
        xy, (w, s, e, n) = grid.xy_bounds(tile), grid.lonlat_bounds(tile)
        yield {"tile": tile_str(tile), "tile_matrix": grid.matrix_id(tile[0]), "crs": grid.crs_name,
               **{k: repr(v) for k, v in zip(INDEX_COLUMNS[3:11], (*xy, w, s, e, n))},
               "file": summary.files.get(tile, ""), "status": status, "reason": reason,
               "wkt": f"POLYGON(({w!r} {s!r},{e!r} {s!r},{e!r} {n!r},{w!r} {n!r},{w!r} {s!r}))"}


def read_index(path: Path) -> list[dict[str, str]]:
    """The rows of a ``tiles-index.csv``; raises ``ValueError`` naming the file if it is not one."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("tile", "crs", "minx", "miny", "maxx", "maxy", "file", "status")
                   if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} is not a tile index: it lacks the column(s) {', '.join(missing)}")
        return list(reader)


def write_index(out_dir: Path, summary: FetchSummary, grid: TileGrid) -> Path:
    """Merge this run's tiles into ``tiles-index.csv`` (rows of other tiles are kept) and write it atomically."""
    path = out_dir / INDEX_NAME
    rows: dict[str, dict[str, str]] = {}
    if path.exists():
        try:
            rows = {r["tile"]: r for r in read_index(path)}
        except (OSError, ValueError, csv.Error):
            rows = {}  # an unreadable index is rebuilt from this run
    for row in _rows(summary, grid):
        rows[row["tile"]] = row
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for key in sorted(rows, key=lambda k: tuple(int(p) for p in k.split("/"))):
        writer.writerow(rows[key])
    write_bytes_atomic(path, buf.getvalue().encode("utf-8"))
    return path


#: The index columns that ``aircolor data prepare`` carries into its manifest.
GEO_COLUMNS = ("tile", "tile_matrix", "crs", "minx", "miny", "maxx", "maxy")


def geo_by_file(root: Path) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str]]]:
    """The rows of every ``tiles-index.csv`` under ``root`` by the tile file's path relative to ``root``, and
    ``(index path, sha256)`` of each index (for a fingerprint). Raises ``ValueError`` naming a broken index."""
    import hashlib

    by_file: dict[str, dict[str, Any]] = {}
    digests: list[tuple[str, str]] = []
    for index in sorted(root.rglob(INDEX_NAME)):
        digests.append((index.relative_to(root).as_posix(), hashlib.sha256(index.read_bytes()).hexdigest()))
        try:
            rows = read_index(index)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ValueError(f"{index} is not a readable tile index ({exc})") from None
        for row in rows:
            if not row.get("file"):
                continue
            rel = (index.parent / row["file"]).relative_to(root).as_posix()
            try:
                by_file[rel] = {c: (float(row[c]) if c in ("minx", "miny", "maxx", "maxy") else row.get(c, ""))
                                for c in GEO_COLUMNS}
            except ValueError:
                raise ValueError(f"{index}: the row of tile {row.get('tile')} has bounds that are not numbers") \
                    from None
    return by_file, digests
