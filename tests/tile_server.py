"""A real HTTP tile server for the fetch-tiles tests, serving real aerial JPEG tiles.

It answers XYZ (``/xyz/{z}/{x}/{y}.jpg``), WMTS KVP (``/wmts?...&TILEMATRIX=&TILEROW=&TILECOL=``) and
WMTS RESTful (``/rest/ortho/default/{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}.jpg``) requests for the
same tiles, and WMTS GetCapabilities (tests/wmts_capabilities.py) both ways, so one set of
per-tile behaviours (404, 500 for the first N requests, 429, truncated bodies, HTML error pages, slow
answers ...) can be exercised through every template kind. It counts requests per tile and per path and
records the User-Agent and the peak number of requests in flight.
"""

from __future__ import annotations

import io
import re
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TileKey = tuple[int, int, int]

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_COLOR = REPO_ROOT / "aircolor" / "sample_data" / "color"


def real_tile_files(limit: int = 16) -> list[Path]:
    """Real aerial color JPEG tiles from the repo's bundled sample data (a missing sample is a failure)."""
    files = sorted(SAMPLE_COLOR.glob("**/*.jpg"))
    if not files:
        pytest.fail(f"no real aerial color JPEG tiles under {SAMPLE_COLOR}: the bundled sample data is missing")
    return files[:limit]


def real_tiles(limit: int = 16) -> list[bytes]:
    """The bytes of :func:`real_tile_files`."""
    return [p.read_bytes() for p in real_tile_files(limit)]


@dataclass
class Behaviour:
    """How the server answers one tile.

    ``kind``: ``ok``, ``404``, ``204``, ``403``, ``500``, ``429`` (with ``Retry-After: 0``), ``truncated``
    (Content-Length larger than the bytes sent, then the connection closes), ``corrupt`` (half a JPEG
    with a matching Content-Length), ``html`` (an HTML error page with status 200), ``xml`` (a WMTS
    ExceptionReport with status 200), ``png`` (the tile re-encoded as PNG) or ``slow`` (sleep ``delay``
    seconds, then answer normally). ``times``: misbehave for the first ``times`` requests only, then
    answer normally; ``None`` means always.
    """

    kind: str = "ok"
    times: int | None = None
    delay: float = 0.0


HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Service unavailable</title></head>"
    b"<body><h1>Quota exceeded</h1></body></html>"
)
XML_EXCEPTION = (
    b'<?xml version="1.0" encoding="UTF-8"?><ExceptionReport xmlns="http://www.opengis.net/ows/1.1" version="1.1.0">'
    b'<Exception exceptionCode="TileOutOfRange" locator="TILEROW">'
    b"<ExceptionText>TileRow is out of range</ExceptionText>"
    b"</Exception></ExceptionReport>"
)


class TileServer:
    """A threaded HTTP server on 127.0.0.1 with a free port; use as a context manager."""

    def __init__(self, tiles: list[bytes], delay: float = 0.0) -> None:
        self.tiles = tiles
        self.delay = delay  # applied to every request
        # Requests after the first ``hold_after`` wait until ``gate`` is set: the kill-and-resume tests use
        # this to stop a fetch after exactly that many tiles, whatever the machine's speed.
        self.hold_after: int | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.total = 0
        self.capabilities_requests = 0
        self.behaviours: dict[TileKey, Behaviour] = {}
        self.counts: Counter[TileKey] = Counter()
        self.path_counts: Counter[str] = Counter()
        self.user_agents: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- test-facing helpers ------------------------------------------------------------------------
    def body_for(self, tile: TileKey) -> bytes:
        """The JPEG bytes served for a tile: a real aerial tile picked deterministically."""
        z, x, y = tile
        return self.tiles[(x * 7 + y * 13 + z) % len(self.tiles)]

    def png_for(self, tile: TileKey) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        with Image.open(io.BytesIO(self.body_for(tile))) as img:
            img.save(buf, format="PNG")
        return buf.getvalue()

    def hold(self, after: int) -> None:
        """Answer ``after`` more requests, then hold every later one until :meth:`release`."""
        with self._lock:
            self.hold_after = self.total + after
            self.gate.clear()

    def release(self) -> None:
        with self._lock:
            self.hold_after = None
            self.gate.set()

    def reset(self) -> None:
        self.release()
        with self._lock:
            self.behaviours.clear()
            self.counts.clear()
            self.path_counts.clear()
            self.user_agents.clear()
            self.max_in_flight = 0
            self.total = 0
            self.capabilities_requests = 0
            self.delay = 0.0

    @property
    def base(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def xyz_url(self) -> str:
        return self.base + "/xyz/{z}/{x}/{y}.jpg"

    @property
    def kvp_url(self) -> str:
        return (
            self.base + "/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=ortho&STYLE=default&FORMAT=image/jpeg"
            "&TILEMATRIXSET=WebMercatorQuad&TILEMATRIX={TileMatrix}&TILEROW={TileRow}&TILECOL={TileCol}"
        )

    @property
    def rest_url(self) -> str:
        return self.base + "/rest/ortho/default/WebMercatorQuad/{TileMatrix}/{TileRow}/{TileCol}.jpg"

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> TileServer:
        server = self

        class Handler(_TileHandler):
            tile_server = server

        class Httpd(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:  # noqa: ANN001
                pass  # clients that time out or get killed are part of the tests

        self._httpd = Httpd(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- request bookkeeping -----------------------------------------------------------------------
    def _start(self, tile: TileKey, path: str, ua: str) -> tuple[int, Behaviour, float, bool]:
        with self._lock:
            self.counts[tile] += 1
            self.total += 1
            held = self.hold_after is not None and self.total > self.hold_after
            self.path_counts[path] += 1
            self.user_agents.append(ua)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.counts[tile], self.behaviours.get(tile, Behaviour()), self.delay, held

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1


def _matrix_to_zoom(matrix: str) -> int:
    """``15`` or ``EPSG:3857:15`` -> 15."""
    m = re.search(r"(\d+)$", matrix)
    if not m:
        raise ValueError(matrix)
    return int(m.group(1))


class _TileHandler(BaseHTTPRequestHandler):
    tile_server: TileServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _tile_from_request(self) -> TileKey | None:
        parsed = urllib.parse.urlsplit(self.path)
        m = re.fullmatch(r"/xyz/(\d+)/(\d+)/(\d+)\.jpg", parsed.path)
        if m:
            return int(m.group(1)), int(m.group(2)), int(m.group(3))
        m = re.fullmatch(r"/rest/ortho/default/[^/]+/([^/]+)/(\d+)/(\d+)\.jpg", parsed.path)
        if m:
            return _matrix_to_zoom(urllib.parse.unquote(m.group(1))), int(m.group(3)), int(m.group(2))
        if parsed.path == "/wmts":
            q = {k.upper(): v for k, v in urllib.parse.parse_qsl(parsed.query)}
            if q.get("REQUEST", "").lower() != "gettile":
                return None
            return _matrix_to_zoom(q["TILEMATRIX"]), int(q["TILECOL"]), int(q["TILEROW"])
        return None

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "image/jpeg",
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()

    def _capabilities(self) -> bytes | None:
        """The WMTS capabilities (KVP at /wmts?REQUEST=GetCapabilities, RESTful at /rest/WMTSCapabilities.xml)."""
        from wmts_capabilities import capabilities

        parsed = urllib.parse.urlsplit(self.path)
        query = {k.upper(): v.lower() for k, v in urllib.parse.parse_qsl(parsed.query)}
        if parsed.path == "/wmts" and query.get("REQUEST") == "getcapabilities":
            return capabilities(self.tile_server.base, kvp=True)
        if parsed.path == "/rest/WMTSCapabilities.xml":
            return capabilities(self.tile_server.base, kvp=False)
        return None

    def do_GET(self) -> None:  # noqa: N802
        srv = self.tile_server
        document = self._capabilities()
        if document is not None:
            srv.capabilities_requests += 1
            self._send(200, document, "application/xml")
            return
        try:
            tile = self._tile_from_request()
        except (KeyError, ValueError):
            tile = None
        if tile is None:
            self._send(400, XML_EXCEPTION, "application/xml")
            return
        n, behaviour, delay, held = srv._start(tile, self.path, self.headers.get("User-Agent", ""))
        try:
            if held:
                srv.gate.wait(30)
            if delay:
                time.sleep(delay)
            self._answer(tile, n, behaviour)
        finally:
            srv._end()

    def _answer(self, tile: TileKey, n: int, b: Behaviour) -> None:
        srv = self.tile_server
        body = srv.body_for(tile)
        misbehave = b.times is None or n <= b.times
        kind = b.kind if misbehave else "ok"
        if kind == "slow":
            time.sleep(b.delay)
            kind = "ok"
        if kind == "ok":
            self._send(200, body)
        elif kind == "png":
            self._send(200, srv.png_for(tile), "image/png")
        elif kind == "404":
            self._send(404, b"Not Found", "text/plain")
        elif kind == "204":
            self._send(204)
        elif kind == "403":
            self._send(403, b"Forbidden", "text/plain")
        elif kind == "500":
            self._send(500, b"Internal Server Error", "text/plain")
        elif kind == "429":
            self._send(429, b"Too Many Requests", "text/plain", headers={"Retry-After": "0"})
        elif kind == "truncated":
            self._send(200, body[: len(body) // 2], length=len(body))
            self.close_connection = True
        elif kind == "corrupt":
            self._send(200, body[: len(body) // 2])
        elif kind == "html":
            self._send(200, HTML_PAGE, "text/html; charset=utf-8")
        elif kind == "xml":
            self._send(200, XML_EXCEPTION, "application/vnd.ogc.se_xml")
        else:  # pragma: no cover - a typo in a test
            raise ValueError(f"unknown behaviour {kind!r}")
