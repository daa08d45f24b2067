"""Downloading tiles: validation, retries with backoff, rate limiting, atomic writes, the summary."""

from __future__ import annotations

import concurrent.futures as cf
import email.utils
import http.client
import io
import json
import math
import os
import random
import re
import secrets
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any



from aircolor.data.tiles.mercator import TileKey
from aircolor.utils import atomic_write
from aircolor.data.tiles.templates import TileTemplate

#: Image formats we accept from a tile server, mapped to the file extension we save them under.
FORMAT_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tif"}
#: Every extension a finished tile may have; a tile with any of these files is skipped on resume.
TILE_EXTENSIONS = tuple(FORMAT_EXTENSIONS.values())
#: The longest we sleep because a server said ``Retry-After``; some send absurd values.
RETRY_AFTER_CAP_S = 120.0
#: The longest exponential-backoff sleep between two attempts at one tile.
BACKOFF_CAP_S = 60.0
#: Name of the machine-readable report written into the output directory.
SUMMARY_NAME = "fetch-summary.json"

_PART_MARK = ".part-"
_PART_RE = re.compile(r"^\..+\.part-[0-9a-f]+$")


# --------------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------------


def _tile_str(tile: TileKey) -> str:
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
    """What a fetch did, tile by tile. ``failed`` holds ``(tile, url, reason)``."""

    template: str = ""
    out_dir: str = ""
    bbox: tuple[float, float, float, float] | None = None
    zooms: list[int] = field(default_factory=list)
    fetched: list[TileKey] = field(default_factory=list)
    skipped: list[TileKey] = field(default_factory=list)
    missing: list[TileKey] = field(default_factory=list)
    failed: list[tuple[TileKey, str, str]] = field(default_factory=list)
    bytes: int = 0
    requests: int = 0
    stale_parts_removed: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0

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
            lines.append(f"  failed {_tile_str(tile)}: {reason} ({url})")
        if len(self.failed) > max_failures:
            lines.append(f"  ... and {len(self.failed) - max_failures} more failures")
        if self.out_dir:
            lines.append(f"report: {os.path.join(self.out_dir, SUMMARY_NAME)}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The machine-readable report (counts, missing and failed tiles) for ``fetch-summary.json``."""
        return {
            "template": self.template,
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
            "missing": [_tile_str(t) for t in sorted(self.missing)],
            "failed": [{"tile": _tile_str(t), "url": u, "reason": r} for t, u, r in sorted(self.failed)],
        }


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


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` either does not exist or holds all of it, even across SIGKILL.

    The temporary name starts with a dot and carries ``.part-`` so that it is never mistaken for a tile
    and a later run can find and remove it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}{_PART_MARK}{secrets.token_hex(6)}")
    atomic_write(path, lambda fh: fh.write(data), tmp=tmp)


def remove_stale_parts(out_dir: Path) -> int:
    """Delete the ``.part-`` files a killed run left behind; returns how many."""
    removed = 0
    if not out_dir.is_dir():
        return 0
    for root, _dirs, files in os.walk(out_dir):
        for name in files:
            if _PART_MARK in name and _PART_RE.match(name):
                try:
                    os.unlink(os.path.join(root, name))
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


def write_summary(out_dir: Path, summary: FetchSummary) -> Path:
    """Write ``fetch-summary.json`` atomically, so a reader never sees half a report."""
    path = out_dir / SUMMARY_NAME
    _write_atomic(path, (json.dumps(summary.to_json(), indent=2) + "\n").encode("utf-8"))
    return path


# --------------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------------


def default_user_agent() -> str:
    """``aircolor/<version> (+https://github.com/aircolor/aircolor)`` — tile servers ask for an identifiable UA."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        ver = version("aircolor")
    except PackageNotFoundError:
        ver = "0.0.0"
    return f"aircolor/{ver} (+https://github.com/aircolor/aircolor)"


class RateLimiter:
    """A global, thread-safe request pacer: at most ``rate`` request starts per second across all threads.

    Each caller reserves the next free slot under the lock and sleeps outside it, so waiting threads do
    not serialise on the lock. :meth:`defer` pushes every future slot back, which is how one 429 with
    ``Retry-After`` slows the whole pool rather than one worker. ``rate <= 0`` means no pacing.
    """

    def __init__(self, rate: float, stop: threading.Event | None = None) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._stop = stop or threading.Event()

    def acquire(self) -> bool:
        """Wait for our slot; returns False if the fetch is being stopped."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        delay = slot - now
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()

    def defer(self, seconds: float) -> None:
        """Make no request start for ``seconds`` from now."""
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


@dataclass
class _Attempt:
    """The outcome of one HTTP request, classified."""

    status: str  # "ok", "missing", "retry", "fail"
    reason: str = ""
    body: bytes = b""
    ext: str = ""
    retry_after: float | None = None


@dataclass
class _TileResult:
    tile: TileKey
    url: str
    status: str  # "fetched", "missing", "failed", "cancelled"
    reason: str = ""
    nbytes: int = 0
    requests: int = 0


def _parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` is either delta-seconds or an HTTP date; anything else is ignored."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), RETRY_AFTER_CAP_S)


def _snippet(body: bytes, limit: int = 120) -> str:
    """A short, single-line, printable excerpt of an error body for the failure reason."""
    text = body[:2048].decode("utf-8", "replace")
    text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def _looks_like_markup(body: bytes, content_type: str) -> bool:
    """Servers report errors as HTML pages or XML ExceptionReports, sometimes with status 200."""
    ct = content_type.lower()
    if "html" in ct or "xml" in ct or ct.startswith("text/"):
        return True
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith(b"<")


def _decode_image(body: bytes) -> tuple[str | None, str]:
    """Fully decode the body with Pillow; returns ``(extension, "")`` or ``(None, reason)``.

    ``Image.open`` only reads the header and ``verify`` skips most of the pixel data, so a truncated
    JPEG passes both; ``load()`` decodes every pixel and raises on a short file.
    """
    from PIL import Image  # imported here so that `--help` stays fast

    try:
        with Image.open(io.BytesIO(body), formats=list(FORMAT_EXTENSIONS)) as img:
            fmt = img.format or ""
            img.load()
    except Exception as exc:  # Pillow raises a zoo of types for bad data
        return None, f"body is not a decodable JPEG/PNG/WebP/TIFF image ({type(exc).__name__}: {exc})"
    ext = FORMAT_EXTENSIONS.get(fmt)
    if ext is None:  # pragma: no cover - formats= restricts what opens
        return None, f"unsupported image format {fmt}"
    return ext, ""


def _classify_body(status: int, headers: Any, body: bytes) -> _Attempt:
    """Turn a complete 2xx response into ok / missing / retry / fail."""
    if status == 204:
        return _Attempt("missing", "HTTP 204 No Content")
    if status != 200:
        return _Attempt("fail", f"unexpected HTTP {status}")
    length = headers.get("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) != len(body):
        return _Attempt("retry", f"truncated body: got {len(body)} of {int(length)} bytes")
    if not body:
        return _Attempt("retry", "empty body")
    content_type = headers.get("Content-Type") or ""
    if _looks_like_markup(body, content_type):
        kind = "XML" if b"<?xml" in body[:100].lower() or "xml" in content_type.lower() else "HTML/text"
        return _Attempt("fail", f"server sent {kind} instead of an image (status 200): {_snippet(body)!r}")
    ext, reason = _decode_image(body)
    if ext is None:
        return _Attempt("retry", reason)
    return _Attempt("ok", body=body, ext=ext)


def _request_once(url: str, timeout: float, user_agent: str) -> _Attempt:
    """One GET, with every network failure mode mapped to a classified attempt."""
    req = urllib.request.Request(url, headers={"User-Agent": user_agent, "Accept": "image/*,*/*;q=0.5"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            return _classify_body(resp.status, resp.headers, body)
    except urllib.error.HTTPError as err:
        code = err.code
        try:
            detail = _snippet(err.read())
        except Exception:
            detail = ""
        finally:
            err.close()
        suffix = f": {detail!r}" if detail else ""
        if code == 404:
            return _Attempt("missing", "HTTP 404 Not Found")
        retry_after = _parse_retry_after(err.headers.get("Retry-After")) if code in (429, 503) else None
        if code == 429:
            return _Attempt("retry", "HTTP 429 Too Many Requests", retry_after=retry_after)
        if code >= 500:
            return _Attempt("retry", f"HTTP {code} {err.reason}{suffix}", retry_after=retry_after)
        return _Attempt("fail", f"HTTP {code} {err.reason}{suffix}")
    except http.client.IncompleteRead as err:
        return _Attempt("retry", f"truncated body: connection closed after {len(err.partial)} bytes")
    except (TimeoutError, socket.timeout):
        return _Attempt("retry", f"timed out after {timeout:g} s")
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return _Attempt("retry", f"timed out after {timeout:g} s")
        return _Attempt("retry", f"connection error: {reason}")
    except (http.client.HTTPException, ConnectionError, OSError) as err:
        return _Attempt("retry", f"connection error: {type(err).__name__}: {err}")


@dataclass(frozen=True)
class _Settings:
    retries: int
    backoff: float
    timeout: float
    user_agent: str


def _backoff_delay(backoff: float, attempt: int) -> float:
    """Exponential backoff, capped, times a random factor in [0.5, 1.5) so that retrying workers spread out."""
    return min(BACKOFF_CAP_S, backoff * (2**attempt)) * random.uniform(0.5, 1.5)


def _fetch_one(
    template: TileTemplate,
    tile: TileKey,
    out_dir: Path,
    settings: _Settings,
    limiter: RateLimiter,
    stop: threading.Event,
) -> _TileResult:
    """Download, validate and save one tile, retrying what is worth retrying."""
    z, x, y = tile
    url = template.url_for(z, x, y)
    reason = ""
    requests = 0
    for attempt in range(settings.retries + 1):
        if not limiter.acquire():
            return _TileResult(tile, url, "cancelled", requests=requests)
        requests += 1
        result = _request_once(url, settings.timeout, settings.user_agent)
        if result.status == "ok":
            path = _tile_dir(out_dir, z, x) / f"{y}.{result.ext}"
            try:
                _write_atomic(path, result.body)
            except OSError as err:
                return _TileResult(tile, url, "failed", f"could not write {path}: {err}", requests=requests)
            return _TileResult(tile, url, "fetched", nbytes=len(result.body), requests=requests)
        if result.status == "missing":
            return _TileResult(tile, url, "missing", result.reason, requests=requests)
        if result.status == "fail":
            return _TileResult(tile, url, "failed", result.reason, requests=requests)
        reason = result.reason
        if attempt == settings.retries:
            break
        if result.retry_after is not None:
            limiter.defer(result.retry_after)
            delay = result.retry_after
        else:
            delay = _backoff_delay(settings.backoff, attempt)
        if stop.wait(delay):
            return _TileResult(tile, url, "cancelled", requests=requests)
    tries = settings.retries + 1
    gave_up = f"{reason} (gave up after {tries} attempt{'s' if tries != 1 else ''})"
    return _TileResult(tile, url, "failed", gave_up, requests=requests)


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
) -> FetchSummary:
    """Fetch ``tiles`` into ``out_dir/{z}/{x}/{y}.{ext}``; returns what happened and writes ``fetch-summary.json``.

    Tiles already on disk are skipped without a request. At most ``2 * concurrency`` tiles are in
    flight, so ``tiles`` may be a lazy iterator over millions. On KeyboardInterrupt no new request starts,
    running downloads finish (or give up at their next wait), the summary is written with
    ``interrupted: true``, and the KeyboardInterrupt is re-raised.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if total is None and isinstance(tiles, Sequence):
        total = len(tiles)
    summary = FetchSummary(template=template.url, out_dir=str(out), bbox=bbox)
    summary.stale_parts_removed = remove_stale_parts(out)
    settings = _Settings(retries, backoff, timeout, user_agent or default_user_agent())
    stop = threading.Event()
    limiter = RateLimiter(rate, stop)
    seen_zooms: set[int] = set(zooms or ())
    bar = _progress_bar(total, progress)
    started = time.monotonic()
    pool = cf.ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="fetch-tiles")
    pending: set[cf.Future[_TileResult]] = set()

    def collect(done: Iterable[cf.Future[_TileResult]]) -> None:
        # Each future leaves `pending` just before it is recorded, so that a Ctrl-C arriving anywhere
        # here loses at most the one result in hand and never counts a tile twice.
        for fut in done:
            pending.discard(fut)
            _record(summary, fut.result())
            bar.update(1)
        bar.set_postfix_str(f"failed {len(summary.failed)} missing {len(summary.missing)}", refresh=False)

    def wait_until_fewer_than(limit: int) -> None:
        while len(pending) >= limit:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            collect(done)

    try:
        for tile in tiles:
            seen_zooms.add(tile[0])
            if existing_tile(out, tile) is not None:
                summary.skipped.append(tile)
                bar.update(1)
                continue
            wait_until_fewer_than(2 * max(1, concurrency))
            pending.add(pool.submit(_fetch_one, template, tile, out, settings, limiter, stop))
        wait_until_fewer_than(1)
    except BaseException:
        # Ctrl-C (or a bug): start nothing new, let running downloads end, keep what completed.
        summary.interrupted = True
        stop.set()
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        collect([f for f in pending if f.done() and not f.cancelled() and f.exception() is None])
        raise
    finally:
        pool.shutdown(wait=True)
        bar.close()
        summary.zooms = sorted(seen_zooms)
        summary.elapsed_s = time.monotonic() - started
        try:
            write_summary(out, summary)
        except OSError as err:
            print(f"aircolor: warning: could not write {out / SUMMARY_NAME}: {err}", file=sys.stderr)
    return summary


def _record(summary: FetchSummary, result: _TileResult) -> None:
    summary.requests += result.requests
    if result.status == "fetched":
        summary.fetched.append(result.tile)
        summary.bytes += result.nbytes
    elif result.status == "missing":
        summary.missing.append(result.tile)
    elif result.status == "failed":
        summary.failed.append((result.tile, result.url, result.reason))
    # "cancelled" tiles are neither done nor failed: a rerun fetches them.


