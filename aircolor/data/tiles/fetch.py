"""Downloading tiles: the fetch loop, atomic tile files with their georeferencing, resume."""

from __future__ import annotations

import concurrent.futures as cf
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aircolor.data.tiles.georef import PART_MARK, to_geotiff, write_bytes_atomic, write_sidecars
from aircolor.data.tiles.grid import WEB_MERCATOR, TileGrid, TileKey
from aircolor.data.tiles.http import FORMAT_EXTENSIONS, RateLimiter, TileClient, default_user_agent
from aircolor.data.tiles.summary import FetchSummary, write_index, write_summary
from aircolor.data.tiles.templates import TileTemplate

#: Every extension a finished tile may have; a tile with any of these files is skipped on resume.
TILE_EXTENSIONS = tuple(FORMAT_EXTENSIONS.values())
_PART_RE = re.compile(r"^\..+\.part-[0-9a-f]+$")


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def _tile_dir(out_dir: Path, z: int, x: int) -> Path:
    return out_dir / str(z) / str(x)


def existing_tile(out_dir: Path, tile: TileKey) -> Path | None:
    """The finished file of a tile, if any. Files only appear by atomic rename, so existing means whole."""
    z, x, y = tile
    d = _tile_dir(out_dir, z, x)
    for ext in TILE_EXTENSIONS:
        p = d / f"{y}.{ext}"
        try:
            if p.stat().st_size > 0:
                return p
        except OSError:
            continue
    return None


def remove_stale_parts(out_dir: Path) -> int:
    """Delete the ``.part-`` files a killed run left behind; returns how many."""
    removed = 0
    if not out_dir.is_dir():
        return 0
    for root, _dirs, files in os.walk(out_dir):
        for name in files:
            if PART_MARK in name and _PART_RE.match(name):
                try:
                    os.unlink(os.path.join(root, name))
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


@dataclass(frozen=True)
class TileOutput:
    """How tiles are saved: ``fmt`` ``same`` (the server's bytes) or ``tif``; ``georef`` ``world`` or ``none``."""

    grid: TileGrid = WEB_MERCATOR
    fmt: str = "same"
    georef: str = "world"

    def save(self, out_dir: Path, tile: TileKey, body: bytes, ext: str) -> Path:
        """Write a downloaded tile (sidecars first, the tile last: a tile that exists has its sidecars)."""
        z, x, y = tile
        if self.fmt == "tif":
            path = _tile_dir(out_dir, z, x) / f"{y}.tif"
            to_geotiff(body, self.grid.xy_bounds(tile), self.grid.crs, path)
            return path
        path = _tile_dir(out_dir, z, x) / f"{y}.{ext}"
        if self.georef == "world":
            write_sidecars(path, body, self.grid.xy_bounds(tile), self.grid.crs)
        write_bytes_atomic(path, body)
        return path

    def complete(self, tile: TileKey, path: Path) -> None:
        """Give a tile of an earlier run the sidecars it lacks (fetched with ``--georef none``, or by an old
        version); no request is made."""
        if self.georef == "world" and path.suffix != ".tif" and not path.with_name(path.name + ".aux.xml").exists():
            write_sidecars(path, path.read_bytes(), self.grid.xy_bounds(tile), self.grid.crs)


@dataclass
class _TileResult:
    tile: TileKey
    url: str
    status: str  # "fetched", "missing", "failed", "cancelled"
    reason: str = ""
    nbytes: int = 0
    requests: int = 0
    file: str = ""


def _fetch_one(template: TileTemplate, tile: TileKey, out_dir: Path, client: TileClient,
               output: TileOutput) -> _TileResult:
    """Download, validate and save one tile (the client retries what is worth retrying)."""
    z, x, y = tile
    url = template.url_for(z, x, y)
    answer = client.get(url)
    if answer.status != "ok":
        return _TileResult(tile, url, answer.status, answer.reason, requests=answer.attempts)
    try:
        path = output.save(out_dir, tile, answer.body, answer.ext)
    except OSError as err:
        return _TileResult(tile, url, "failed", f"could not write tile {z}/{x}/{y} in {out_dir}: {err}",
                           requests=answer.attempts)
    return _TileResult(tile, url, "fetched", nbytes=len(answer.body), requests=answer.attempts,
                       file=path.relative_to(out_dir).as_posix())


# --------------------------------------------------------------------------------------------------
# The fetch loop
# --------------------------------------------------------------------------------------------------


def _progress_bar(total: int | None, enabled: bool) -> Any:
    """A tqdm bar on stderr, or a stand-in with the same methods when progress is off."""
    if enabled:
        from tqdm import tqdm

        return tqdm(total=total, unit="tile", file=sys.stderr, dynamic_ncols=True, desc="fetch-tiles")

    class _Null:
        def update(self, n: int = 1) -> None: ...
        def set_postfix_str(self, s: str, refresh: bool = True) -> None: ...
        def close(self) -> None: ...

    return _Null()


@dataclass
class _Run:
    """The bookkeeping of one fetch: the summary, the progress bar, the downloads in flight."""

    out: Path
    summary: FetchSummary
    bar: Any
    zooms: set[int]
    pending: set[cf.Future[_TileResult]] = field(default_factory=set)

    def skip_present(self, tile: TileKey, output: TileOutput) -> bool:
        """Count a tile whose file exists (giving it missing sidecars) and say so; no request is made."""
        self.zooms.add(tile[0])
        present = existing_tile(self.out, tile)
        if present is None:
            return False
        output.complete(tile, present)
        self.summary.skipped.append(tile)
        self.summary.files[tile] = present.relative_to(self.out).as_posix()
        self.bar.update(1)
        return True

    def collect(self, done: Iterable[cf.Future[_TileResult]]) -> None:
        # Each future leaves `pending` just before it is recorded, so that a Ctrl-C arriving anywhere
        # here loses at most the one result in hand and never counts a tile twice.
        for fut in done:
            self.pending.discard(fut)
            _record(self.summary, fut.result())
            self.bar.update(1)
        self.bar.set_postfix_str(f"failed {len(self.summary.failed)} missing {len(self.summary.missing)}",
                                 refresh=False)

    def wait_until_fewer_than(self, limit: int) -> None:
        while len(self.pending) >= limit:
            done, _ = cf.wait(self.pending, return_when=cf.FIRST_COMPLETED)
            self.collect(done)


def fetch_tiles(
    template: TileTemplate,
    tiles: Iterable[TileKey],
    out_dir: str | os.PathLike[str],
    *,
    concurrency: int = 8,
    rate: float = 10.0,
    retries: int = 5,
    backoff: float = 0.5,
    timeout: float = 30.0,
    user_agent: str | None = None,
    progress: bool = True,
    total: int | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    zooms: Sequence[int] | None = None,
    output: TileOutput = TileOutput(),
) -> FetchSummary:
    """Fetch ``tiles`` into ``out_dir/{z}/{x}/{y}.{ext}``; returns what happened and writes ``fetch-summary.json``
    and ``tiles-index.csv``.

    Tiles already on disk are skipped without a request. At most ``2 * concurrency`` tiles are in flight, so
    ``tiles`` may be a lazy iterator over millions. On KeyboardInterrupt no new request starts, running downloads
    finish (or give up at their next wait), the summary is written with ``interrupted: true``, and the
    KeyboardInterrupt is re-raised.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if total is None and isinstance(tiles, Sequence):
        total = len(tiles)
    summary = FetchSummary(template=template.url, out_dir=str(out), bbox=bbox, tile_matrix_set=output.grid.name,
                           crs=output.grid.crs_name)
    summary.stale_parts_removed = remove_stale_parts(out)
    stop = threading.Event()
    client = TileClient(template.url, concurrency=concurrency, retries=retries, backoff=backoff, timeout=timeout,
                        user_agent=user_agent or default_user_agent(), limiter=RateLimiter(rate, stop), stop=stop)
    run = _Run(out, summary, _progress_bar(total, progress), set(zooms or ()))
    started = time.monotonic()
    pool = cf.ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="fetch-tiles")
    try:
        for tile in tiles:
            if not run.skip_present(tile, output):
                run.wait_until_fewer_than(2 * max(1, concurrency))
                run.pending.add(pool.submit(_fetch_one, template, tile, out, client, output))
        run.wait_until_fewer_than(1)
    except BaseException:
        # Ctrl-C (or a bug): start nothing new, let running downloads end, keep what completed.
        summary.interrupted = True
        stop.set()
        for fut in run.pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        run.collect([f for f in run.pending if f.done() and not f.cancelled() and f.exception() is None])
        raise
    finally:
        pool.shutdown(wait=True)
        client.pool.clear()
        run.bar.close()
        summary.zooms = sorted(run.zooms)
        summary.elapsed_s = time.monotonic() - started
        _write_reports(out, summary, output.grid)
    return summary


def _write_reports(out: Path, summary: FetchSummary, grid: TileGrid) -> None:
    for what, write in (("summary", lambda: write_summary(out, summary)),
                        ("tile index", lambda: write_index(out, summary, grid))):
        try:
            write()
        except OSError as err:
            print(f"aircolor: warning: could not write the {what} in {out}: {err}", file=sys.stderr)


def _record(summary: FetchSummary, result: _TileResult) -> None:
    summary.requests += result.requests
    if result.status == "fetched":
        summary.fetched.append(result.tile)
        summary.files[result.tile] = result.file
        summary.bytes += result.nbytes
    elif result.status == "missing":
        summary.missing.append(result.tile)
    elif result.status == "failed":
        summary.failed.append((result.tile, result.url, result.reason))
    # "cancelled" tiles are neither done nor failed: a rerun fetches them.
