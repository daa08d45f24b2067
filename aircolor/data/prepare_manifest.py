"""The manifest of a prepared dataset: one row per output image and per rejected input."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from aircolor.data.tiles.summary import GEO_COLUMNS

MANIFEST_COLUMNS = ("path", "split", "role", "layout", "width", "height", "bytes", "sha256", "source",
                    "source_sha256", "group", "status", "reason", *GEO_COLUMNS)


@dataclass
class Record:
    """One manifest row."""

    path: str
    split: str
    role: str
    layout: str
    width: int
    height: int
    bytes: int
    sha256: str
    source: str
    source_sha256: str
    group: str
    status: str = "ok"
    reason: str = ""
    # Where the tile lies, from the fetch's tiles-index.csv (empty for files that no index lists).
    tile: str = ""
    tile_matrix: str = ""
    crs: str = ""
    minx: float | None = None
    miny: float | None = None
    maxx: float | None = None
    maxy: float | None = None


def write_manifest(path: Path, records: Iterable[Record]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [asdict(r) for r in records]
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        (c, pa.int64() if c in ("width", "height", "bytes") else pa.float64() if c in ("minx", "miny", "maxx", "maxy")
         else pa.string()) for c in MANIFEST_COLUMNS]))
    pq.write_table(table, path)
