"""Tile HTTP through urllib3: one connection pool per run, urllib3's ``Retry`` as the retry policy.

What urllib3 does for us: pooled keep-alive connections, retries of connection errors, timeouts, truncated
bodies and the statuses 429/5xx with exponential backoff and jitter, and ``Retry-After``. What it cannot know,
and this module adds through the same ``Retry`` object: that a 200 whose body is not a decodable image is worth
another try (it counts against the same budget, with the same backoff), that one ``Retry-After`` should slow
every download of the run (the shared :class:`RateLimiter`), and that a Ctrl-C must end a backoff sleep at once.
"""

from __future__ import annotations

import io
import re
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.exceptions import (ConnectTimeoutError, HTTPError, InvalidHeader, MaxRetryError, NewConnectionError,
                                ProtocolError, ReadTimeoutError)

#: Image formats we accept from a tile server, mapped to the file extension we save them under.
FORMAT_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tif"}
#: The longest we sleep because a server said ``Retry-After``; some send absurd values.
RETRY_AFTER_CAP_S = 120.0
#: The longest exponential-backoff sleep between two attempts at one tile.
BACKOFF_CAP_S = 60.0
#: Statuses worth another try: rate limited, or the server's own trouble.
RETRY_STATUSES = frozenset({429, *range(500, 600)})


def default_user_agent() -> str:
    """``aircolor/<version> (+https://github.com/aircolor/aircolor)``: tile servers ask for an identifiable UA."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("aircolor")
    except PackageNotFoundError:
        ver = "0.0.0"
    return f"aircolor/{ver} (+https://github.com/aircolor/aircolor)"


class Cancelled(Exception):
    """The run is stopping (Ctrl-C): no new attempt starts."""


class BadBody(HTTPError):
    """A 200 whose body is not a tile image: retried like a truncated read, within the same budget."""


class RateLimiter:
    """A global, thread-safe request pacer: at most ``rate`` request starts per second across all threads.

    Each caller reserves the next free slot under the lock and sleeps outside it, so waiting threads do not
    serialise on the lock. :meth:`defer` pushes every future slot back, which is how one 429 with
    ``Retry-After`` slows the whole pool rather than one download. ``rate <= 0`` means no pacing.
    """

    def __init__(self, rate: float, stop: threading.Event | None = None) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._stop = stop or threading.Event()

    def acquire(self) -> bool:
        """Wait for our slot; returns False if the run is being stopped."""
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


class PacedRetry(urllib3.Retry):
    """urllib3's ``Retry`` whose sleeps go through the run's rate limiter and stop event.

    ``Retry-After`` is capped at :data:`RETRY_AFTER_CAP_S`, an unparseable one is ignored (the backoff applies),
    and ``Retry-After: 0`` means "now" rather than "use the backoff".
    """

    limiter: RateLimiter | None = None
    stop: threading.Event | None = None

    def new(self, **kw: Any) -> PacedRetry:
        retry = super().new(**kw)
        retry.limiter, retry.stop = self.limiter, self.stop
        return retry

    def parse_retry_after(self, retry_after: str) -> float:
        try:
            seconds = super().parse_retry_after(retry_after)
        except (InvalidHeader, OverflowError, ValueError):
            return -1.0  # ignored: see sleep()
        return min(max(0.0, seconds), RETRY_AFTER_CAP_S)

    def sleep(self, response: Any = None) -> None:
        delay = None
        if response is not None and self.respect_retry_after_header:
            header = response.headers.get("Retry-After")
            delay = self.parse_retry_after(header) if header is not None else None
        if delay is None or delay < 0:
            delay = self.get_backoff_time()
        elif self.limiter is not None:
            self.limiter.defer(delay)
        stop = self.stop or threading.Event()
        if (delay > 0 and stop.wait(delay)) or (self.limiter is not None and not self.limiter.acquire()):
            raise Cancelled
        if stop.is_set():
            raise Cancelled


@dataclass
class Answer:
    """One tile request's outcome: ``ok`` (with the body), ``missing`` (404/204), ``failed`` or ``cancelled``."""

    status: str
    reason: str = ""
    body: bytes = b""
    ext: str = ""
    attempts: int = 0


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
    return body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith(b"<")


def _decode_image(body: bytes) -> tuple[str | None, str]:
    """Fully decode the body with Pillow (``load()``: a truncated JPEG passes ``open`` and ``verify``)."""
    from PIL import Image  # imported here so that `--help` stays fast

    try:
        with Image.open(io.BytesIO(body), formats=list(FORMAT_EXTENSIONS)) as img:
            fmt = img.format or ""
            img.load()
    except Exception as exc:  # Pillow raises a zoo of types for bad data
        return None, f"body is not a decodable JPEG/PNG/WebP/TIFF image ({type(exc).__name__}: {exc})"
    return FORMAT_EXTENSIONS[fmt], ""


def _plural(n: int) -> str:
    return f"{n} attempt{'s' if n != 1 else ''}"


def _error_reason(err: BaseException, timeout: float) -> str:
    """What a urllib3 error means for a tile, in words."""
    if isinstance(err, NewConnectionError):  # before the timeouts: urllib3 makes it a ConnectTimeoutError
        return f"connection error: {err}"
    if isinstance(err, (ReadTimeoutError, ConnectTimeoutError)):
        return f"timed out after {timeout:g} s"
    if isinstance(err, ProtocolError) and "IncompleteRead" in repr(err):
        return f"truncated body: {err}"
    if isinstance(err, BadBody):
        return str(err)
    return f"connection error: {type(err).__name__}: {err}"


def _pool_manager(url: str, concurrency: int, timeout: float) -> urllib3.PoolManager:
    """A pool for the tile server, through the environment's proxy (``https_proxy``, ``no_proxy``) if it has one."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    opts = dict(num_pools=4, maxsize=max(1, concurrency), timeout=urllib3.Timeout(timeout))
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        return urllib3.ProxyManager(proxy, **opts)
    return urllib3.PoolManager(**opts)


class TileClient:
    """GETs tiles through one pool, paced by ``limiter``, retried by a :class:`PacedRetry` of ``retries``."""

    def __init__(self, url: str, *, concurrency: int, retries: int, backoff: float, timeout: float, user_agent: str,
                 limiter: RateLimiter, stop: threading.Event) -> None:
        self.pool = _pool_manager(url, concurrency, timeout)
        self.timeout = timeout
        self.headers = {"User-Agent": user_agent, "Accept": "image/*,*/*;q=0.5"}
        self.retry = PacedRetry(total=retries, redirect=5, status_forcelist=RETRY_STATUSES, allowed_methods={"GET"},
                                backoff_factor=backoff, backoff_max=BACKOFF_CAP_S, backoff_jitter=backoff,
                                raise_on_status=False, raise_on_redirect=False)
        self.retry.limiter, self.retry.stop = limiter, stop

    def get(self, url: str) -> Answer:
        """Download one tile; every outcome is an :class:`Answer`, never an exception (except Ctrl-C)."""
        retry: PacedRetry = self.retry.new()
        if not (retry.limiter.acquire() if retry.limiter else True):
            return Answer("cancelled")
        try:
            while True:
                resp = self.pool.request("GET", url, headers=self.headers, retries=retry)
                retry = resp.retries or retry
                answer = self._classify(resp, len(retry.history) + 1)
                if answer.status != "retry":
                    return answer
                retry = retry.increment("GET", url, error=BadBody(answer.reason))
                retry.sleep()
        except Cancelled:
            return Answer("cancelled", attempts=len(retry.history) + 1)
        except MaxRetryError as err:
            tries = self.retry.total + 1  # the budget is spent
            return Answer("failed", f"{_error_reason(err.reason or err, self.timeout)} (gave up after "
                                    f"{_plural(tries)})", attempts=tries)
        except HTTPError as err:  # not retryable (e.g. a malformed URL after a redirect)
            return Answer("failed", _error_reason(err, self.timeout), attempts=len(retry.history) + 1)

    def _classify(self, resp: Any, attempts: int) -> Answer:
        """Turn a final response into ok / missing / failed, or ``retry`` for a body that is not an image."""
        status, body = resp.status, resp.data
        if status == 404 or status == 204:
            return Answer("missing", f"HTTP {status} {'Not Found' if status == 404 else 'No Content'}",
                          attempts=attempts)
        if status != 200:
            detail = _snippet(body)
            gave_up = f" (gave up after {_plural(attempts)})" if status in RETRY_STATUSES else ""
            return Answer("failed", f"HTTP {status} {resp.reason or ''}".rstrip() + (f": {detail!r}" if detail else "")
                          + gave_up, attempts=attempts)
        content_type = resp.headers.get("Content-Type") or ""
        if not body:
            return Answer("retry", "empty body", attempts=attempts)
        if _looks_like_markup(body, content_type):
            kind = "XML" if b"<?xml" in body[:100].lower() or "xml" in content_type.lower() else "HTML/text"
            return Answer("failed", f"server sent {kind} instead of an image (status 200): {_snippet(body)!r}",
                          attempts=attempts)
        ext, reason = _decode_image(body)
        if ext is None:
            return Answer("retry", reason, attempts=attempts)
        return Answer("ok", body=body, ext=ext, attempts=attempts)


class DocumentError(Exception):
    """A service document (WMTS capabilities) could not be downloaded; the message says why, in one line."""


def fetch_document(url: str, *, retries: int, backoff: float, timeout: float, user_agent: str) -> bytes:
    """GET a small document with the tiles' retry policy (no pacing); raises :class:`DocumentError`."""
    retry = urllib3.Retry(total=retries, redirect=5, status_forcelist=RETRY_STATUSES, backoff_factor=backoff,
                          backoff_max=BACKOFF_CAP_S, raise_on_status=False)
    pool = _pool_manager(url, 1, timeout)
    try:
        resp = pool.request("GET", url, headers={"User-Agent": user_agent}, retries=retry)
    except MaxRetryError as err:
        raise DocumentError(f"{_error_reason(err.reason or err, timeout)} (gave up after "
                            f"{_plural(retries + 1)})") from None
    except HTTPError as err:
        raise DocumentError(_error_reason(err, timeout)) from None
    finally:
        pool.clear()
    if resp.status != 200:
        detail = _snippet(resp.data)
        raise DocumentError(f"HTTP {resp.status} {resp.reason or ''}".rstrip() + (f": {detail!r}" if detail else ""))
    return resp.data
