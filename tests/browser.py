"""Check a page in real headless Chromium over the Chrome DevTools Protocol (CDP): console errors, images, screenshot.

``chromium --dump-dom`` and ``--screenshot`` cannot tell whether a page logged errors or failed to load an image,
so this module drives Chromium through a tiny CDP client over aiohttp's websocket client (aiohttp is already a
dependency, so no browser-automation package is needed). It is a test helper, not a test module::

    result = check_page(report_dir.joinpath("index.html").as_uri(), screenshot=tmp_path / "report.png")
    assert not result.console_errors and not result.broken_images

Every wait is bounded: a hung Chromium raises :class:`TimeoutError` instead of hanging the test session, and the
browser (with its whole process group) and its throw-away profile are removed whatever happens.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-quic"]
_DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://\S+)")
_POLL_S = 0.1  # how often the settle loop asks the page whether its images are done
_SETTLE_S = 0.3  # quiet time after the page is complete, for console/log events still in flight
_KILL_WAIT_S = 10.0  # how long to wait for a SIGKILLed Chromium to be reaped

# One round trip for everything the checks read. Long ``src`` values (data: URIs) are cut in the middle so that a
# report embedding megabytes of images does not send them all back, while a file name at the end stays visible.
_COLLECT_JS = """(() => {
  const cut = s => s.length > 200 ? s.slice(0, 120) + '\u2026' + s.slice(-79) : s;
  return {
    title: document.title,
    text: document.body ? document.body.innerText : '',
    images: Array.from(document.images, img => ({
      src: cut(img.currentSrc || img.src || ''), complete: img.complete,
      naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight})),
  };
})()"""
# Lazy images far below the fold would never load in a fixed-size window: make them eager, so that every image
# of the page is checked (and the full-page screenshot shows it).
_EAGER_JS = "document.querySelectorAll('img[loading=lazy]').forEach(img => { img.loading = 'eager'; })"
_SETTLED_JS = "document.readyState === 'complete' && Array.from(document.images).every(img => img.complete)"


def find_chromium() -> str | None:
    """Path of a Chromium executable on PATH (Debian calls it ``chromium``, others ``chromium-browser``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageCheck:
    """What a page did in the browser: the errors it reported, its images, its title and text, its screenshot."""

    console_errors: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    title: str = ""
    text: str = ""
    screenshot: Path | None = None

    @property
    def broken_images(self) -> list[dict]:
        """Images the browser could not decode or load (a missing file, a bad data: URI): naturalWidth is 0."""
        return [img for img in self.images if not img.get("naturalWidth")]


class CdpError(RuntimeError):
    """A CDP command answered with an error object (unknown method, bad parameters, closed target ...)."""


class _Deadline:
    """One overall time budget, so that no sequence of individually bounded steps can add up to a hang."""

    def __init__(self, seconds: float, url: str) -> None:
        self.seconds, self.url = seconds, url
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    async def run(self, awaitable: Any, step: str) -> Any:
        """Await ``awaitable`` within the remaining budget; a timeout names the step that hung."""
        try:
            return await asyncio.wait_for(awaitable, self.remaining())
        except asyncio.TimeoutError:
            raise TimeoutError(f"headless Chromium check of {self.url} timed out after {self.seconds:g} s "
                               f"while {step}") from None


class _Cdp:
    """A minimal CDP client: numbered commands answered through futures, events kept in arrival order.

    Flattened sessions (``Target.attachToTarget`` with ``flatten: true``) share the browser's websocket, so page
    commands carry a ``sessionId`` and page events come back tagged with it.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict] = []
        self._next_id = 0
        self._pending: dict[int, asyncio.Future] = {}
        self._waiters: list[tuple[Callable[[dict], bool], asyncio.Future]] = []
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def send(self, method: str, params: dict | None = None, session_id: str | None = None) -> dict:
        """Send one command and return its ``result`` (raise :class:`CdpError` on an error answer)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        future = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self.ws.send_str(json.dumps(message))
        return await future

    def expect(self, predicate: Callable[[dict], bool]) -> asyncio.Future:
        """A future for the first event, from now on, matching ``predicate`` (register it before the trigger)."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return future

    async def close(self) -> None:
        """Stop reading and close the websocket (bounded: Chromium may already be gone)."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)

    async def _read(self) -> None:
        """Dispatch every incoming message; when the socket ends, fail whatever still waits instead of hanging."""
        try:
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._dispatch(json.loads(msg.data))
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    break
        finally:
            gone = ConnectionError("the DevTools websocket closed (did Chromium crash?)")
            for future in [*self._pending.values(), *(f for _, f in self._waiters)]:
                if not future.done():
                    future.set_exception(gone)

    def _dispatch(self, data: dict) -> None:
        if "id" in data:
            future = self._pending.pop(data["id"], None)
            if future is not None and not future.done():
                if "error" in data:
                    future.set_exception(CdpError(f"{data['error'].get('message')} ({data['error']})"))
                else:
                    future.set_result(data.get("result", {}))
            return
        self.events.append(data)
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(data):
                future.set_result(data)
                self._waiters.remove((predicate, future))


def _remote_value(obj: dict) -> str:
    """A console argument (a CDP RemoteObject) as text: primitives by value, objects by their description."""
    if "value" in obj:
        return obj["value"] if isinstance(obj["value"], str) else json.dumps(obj["value"])
    return str(obj.get("unserializableValue") or obj.get("description") or obj.get("type", "?"))


def _where(url: str | None, line: int | None) -> str:
    return f" ({url}:{line + 1})" if url and line is not None else (f" ({url})" if url else "")


def _error_message(event: dict) -> str | None:
    """The text of an error-level event (console.error/assert, uncaught exception, error log entry), else None."""
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        frames = (params.get("stackTrace") or {}).get("callFrames") or [{}]
        text = " ".join(_remote_value(arg) for arg in params.get("args", []))
        return f"console.{params['type']}: {text}{_where(frames[0].get('url'), frames[0].get('lineNumber'))}"
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        description = (details.get("exception") or {}).get("description") or ""
        return f"{details.get('text', 'exception')} {description}".strip() + _where(details.get("url"),
                                                                                    details.get("lineNumber"))
    if method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        return f"{entry.get('source', 'log')}: {entry.get('text', '')}{_where(entry.get('url'), None)}"
    return None


async def _read_devtools_url(proc: asyncio.subprocess.Process, tail: collections.deque) -> str:
    """Chromium prints its browser websocket URL on stderr; an exit before that is an error with the stderr tail."""
    assert proc.stderr is not None
    while True:
        raw = await proc.stderr.readline()
        if not raw:
            code = await proc.wait()
            raise RuntimeError(f"chromium exited (code {code}) before DevTools was listening; stderr tail:\n"
                               + ("\n".join(tail) or "(empty)"))
        line = raw.decode(errors="replace").rstrip()
        tail.append(line)
        found = _DEVTOOLS_LINE.search(line)
        if found:
            return found.group(1)


async def _drain(stream: asyncio.StreamReader, tail: collections.deque) -> None:
    """Keep reading stderr after the URL line, so a chatty Chromium never blocks on a full pipe."""
    while raw := await stream.readline():
        tail.append(raw.decode(errors="replace").rstrip())


async def _launch(exe: str, profile: Path, width: int, height: int) -> asyncio.subprocess.Process:
    """Start Chromium in its own process group, so that killing the group also ends its renderers and zygotes."""
    args = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
            f"--window-size={width},{height}", "about:blank"]
    return await asyncio.create_subprocess_exec(exe, *args, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                                                start_new_session=True)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the whole process group (Chromium needs no graceful exit: its profile is thrown away)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(proc.wait(), _KILL_WAIT_S)


async def _open_page(cdp: _Cdp, deadline: _Deadline) -> str:
    """A fresh about:blank tab with Page, Runtime and Log enabled; returns its flattened session id."""
    target = await deadline.run(cdp.send("Target.createTarget", {"url": "about:blank"}), "creating a tab")
    attached = await deadline.run(cdp.send("Target.attachToTarget", {"targetId": target["targetId"],
                                                                      "flatten": True}), "attaching to the tab")
    session = attached["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        await deadline.run(cdp.send(f"{domain}.enable", session_id=session), f"enabling {domain}")
    return session


async def _evaluate(cdp: _Cdp, session: str, expression: str, deadline: _Deadline, step: str) -> Any:
    """The JSON value of ``expression`` in the page (an exception in it is a harness error, not a page error)."""
    reply = await deadline.run(cdp.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                        session_id=session), step)
    if "exceptionDetails" in reply:
        raise RuntimeError(f"evaluating the page check failed: {reply['exceptionDetails']}")
    return reply["result"].get("value")


async def _load(cdp: _Cdp, session: str, url: str, deadline: _Deadline) -> None:
    """Navigate and wait for the load event; a navigation that fails outright (missing file) is an error."""
    loaded = cdp.expect(lambda e: e.get("method") == "Page.loadEventFired" and e.get("sessionId") == session)
    reply = await deadline.run(cdp.send("Page.navigate", {"url": url}, session_id=session), f"navigating to {url}")
    if reply.get("errorText"):
        loaded.cancel()
        raise RuntimeError(f"navigating to {url} failed: {reply['errorText']}")
    await deadline.run(loaded, "waiting for the page's load event")


async def _settle(cdp: _Cdp, session: str, deadline: _Deadline) -> None:
    """Wait until the document and every image are complete, then a short quiet time for late events.

    The load event already waits for ordinary images; this also covers lazy images (made eager first) and images
    added by scripts during ``onload``. Images that never complete stop the wait once a quarter of the budget (at
    most 10 s) is left, so that the check still reports them, as broken, instead of timing out.
    """
    await _evaluate(cdp, session, _EAGER_JS, deadline, "making lazy images eager")
    reserve = min(10.0, deadline.seconds / 4)
    while deadline.remaining() > reserve:
        if await _evaluate(cdp, session, _SETTLED_JS, deadline, "waiting for the images"):
            break
        await asyncio.sleep(_POLL_S)
    await asyncio.sleep(min(_SETTLE_S, deadline.remaining()))


async def _screenshot(cdp: _Cdp, session: str, path: Path, deadline: _Deadline) -> Path:
    """A PNG of the whole page, not just the window: clip to the CSS content size and capture beyond the viewport."""
    metrics = await deadline.run(cdp.send("Page.getLayoutMetrics", session_id=session), "measuring the page")
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = await deadline.run(cdp.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                                  "clip": clip}, session_id=session),
                              "taking the screenshot")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


async def _check(exe: str, url: str, profile: Path, screenshot: Path | None, deadline: _Deadline,
                 width: int, height: int) -> PageCheck:
    """Launch, load, collect and screenshot; Chromium is killed in ``finally`` whatever happened."""
    tail: collections.deque = collections.deque(maxlen=40)
    proc = await _launch(exe, profile, width, height)
    drain: asyncio.Task | None = None
    try:
        ws_url = await deadline.run(_read_devtools_url(proc, tail), "waiting for Chromium's DevTools URL")
        assert proc.stderr is not None
        drain = asyncio.get_running_loop().create_task(_drain(proc.stderr, tail))
        async with aiohttp.ClientSession() as http:
            ws = await deadline.run(http.ws_connect(ws_url, max_msg_size=0), "connecting to DevTools")
            cdp = _Cdp(ws)
            try:
                return await _inspect(cdp, url, screenshot, deadline)
            finally:
                await cdp.close()
    finally:
        await _kill(proc)
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await drain


async def _inspect(cdp: _Cdp, url: str, screenshot: Path | None, deadline: _Deadline) -> PageCheck:
    """The page part of the check, on an open DevTools connection."""
    session = await _open_page(cdp, deadline)
    await _load(cdp, session, url, deadline)
    await _settle(cdp, session, deadline)
    page = await _evaluate(cdp, session, _COLLECT_JS, deadline, "reading the images, title and text")
    shot = await _screenshot(cdp, session, screenshot, deadline) if screenshot is not None else None
    errors = [m for e in cdp.events if e.get("sessionId") == session and (m := _error_message(e)) is not None]
    return PageCheck(console_errors=errors, images=page["images"], title=page["title"], text=page["text"],
                     screenshot=shot)


def check_page(url: str, *, screenshot: Path | None = None, timeout: float = 60, chromium: str | None = None,
               width: int = 1400, height: int = 1000) -> PageCheck:
    """Open ``url`` in a fresh headless Chromium and report its console errors, images, title, text and screenshot.

    ``timeout`` bounds the whole check (launch, load, screenshot); exceeding it raises :class:`TimeoutError`
    naming the step. Errors are collected from the moment the tab is created until the page is read, so failed
    resource loads (``net::ERR_FILE_NOT_FOUND``), ``console.error`` calls and uncaught exceptions all count.
    """
    exe = chromium or find_chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    profile = Path(tempfile.mkdtemp(prefix="aircolor-chromium-"))
    try:
        return asyncio.run(_check(exe, url, profile, screenshot, _Deadline(timeout, url), width, height))
    finally:
        shutil.rmtree(profile, ignore_errors=True)
