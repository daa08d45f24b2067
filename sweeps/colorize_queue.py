"""The bounded work queue of ``aircolor colorize --ray``: which worker does what next, and what a failure costs.

Each photo goes through four kinds of work (:mod:`sweeps.colorize_worker`): read, its blocks of tiles, its bands
of output rows, write. The queue hands work to worker actors, at most ``depth`` calls per actor (one running, one
waiting, so no worker idles between calls), the most finished photo first (write, then finish, then blocks, then
reads of new photos, with at most ``open_files`` photos between read and write), so memory stays bounded and
outputs appear early. The driver holds only object references: the pixels go from worker to worker through Ray's
object store, and the driver learns that a call ended from a small status object returned beside the data.

Failures: a worker that dies (killed, out of memory, its node lost) is replaced and its calls are handed out
again, up to ``attempts`` times each; an error inside a call (an unreadable photo, NaN outputs) fails that photo
only. Either way the photo's output is never half-written, and a rerun picks it up.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from aircolor.colorize.archive import FileResult, failure_reason

KINDS = ("write", "finish", "block", "read")  # in the order they are handed out


@dataclass
class Photo:
    """One photo on its way through the queue."""

    src: Path
    target: Path
    summary_src: str
    summary_target: str
    meta: dict[str, Any] | None = None
    photo: Any = None                                      # ObjectRef of the decoded photo
    image: Any = None                                      # ObjectRef of the model's input
    plan: Any = None                                       # BlockPlan
    bands: list[tuple[int, int]] = field(default_factory=list)
    needs: list[list[int]] = field(default_factory=list)   # per band: the blocks that cover it
    partials: dict[int, Any] = field(default_factory=dict)
    rows: dict[int, Any] = field(default_factory=dict)     # band -> ObjectRef of its rows
    blocks_left: set[int] = field(default_factory=set)     # blocks not yet computed
    workers: set[int] = field(default_factory=set)         # the workers that computed its blocks
    bands_done: set[int] = field(default_factory=set)
    started: float = 0.0
    tiles: int = 0
    failed: str | None = None


@dataclass
class Call:
    kind: str
    photo: Photo
    index: int = 0              # the block or band
    attempts: int = 0


class WorkQueue:
    """Hands :class:`Call` s to the workers of ``pool`` and follows each photo to its output."""

    def __init__(self, ray: Any, pool: Any, colorizer: Any, *, max_pixels: int, open_files: int, depth: int = 2,
                 attempts: int = 3, on_event: Callable[[str, Photo, int], None] = lambda *_: None) -> None:
        self.ray, self.pool, self.colorizer = ray, pool, colorizer
        self.max_pixels, self.open_files, self.depth, self.attempts = max_pixels, open_files, depth, attempts
        self.on_event = on_event
        self.queues: dict[str, deque[Call]] = {kind: deque() for kind in KINDS}
        self.inflight: dict[Any, tuple[Any, Call]] = {}   # status ref -> (worker, call)
        self.open = 0
        self.results: list[FileResult] = []

    # --------------------------------------------------------------------------------------------- handing out
    def run(self, photos: list[Photo]) -> list[FileResult]:
        self.queues["read"].extend(Call("read", p) for p in photos)
        while self.inflight or any(self.queues.values()):
            self._hand_out()
            if not self.inflight:  # work left and no worker to take it: every worker died, spares included
                for call in [c for queue in self.queues.values() for c in queue]:
                    self._fail(call.photo, f"every colorize worker died ({self.pool.last_death}); see the Ray logs")
                break
            done, rest = self.ray.wait(list(self.inflight), num_returns=1, timeout=1.0, fetch_local=False)
            if done and rest:  # settle every call that has ended, not one per round
                done += self.ray.wait(rest, num_returns=len(rest), timeout=0, fetch_local=False)[0]
            for ref in done:
                worker, call = self.inflight.pop(ref)
                self._settle(ref, worker, call)
        return self.results

    def _next(self) -> Call | None:
        for kind in KINDS:
            queue = self.queues[kind]
            while queue and queue[0].photo.failed:
                queue.popleft()
            if kind == "read" and self.open >= self.open_files:
                continue
            if queue:
                if kind == "read":
                    self.open += 1
                return queue.popleft()
        return None

    def _hand_out(self) -> None:
        for worker in self.pool.idle(self.depth, self.inflight):
            call = self._next()
            if call is None:
                return
            self.inflight[self._submit(worker, call)] = (worker, call)

    def _submit(self, worker: Any, call: Call) -> Any:
        p = call.photo
        if call.kind == "read":
            p.started = p.started or time.time()
            meta, p.photo, p.image = worker.read.options(num_returns=3).remote(str(p.src), str(p.target),
                                                                              self.max_pixels)
            return meta
        w, h = p.meta["width"], p.meta["height"]
        if call.kind == "block":
            status, p.partials[call.index] = worker.block.options(num_returns=2).remote(p.image, w, h, call.index)
            return status
        if call.kind == "finish":
            blocks = p.needs[call.index]
            status, p.rows[call.index] = worker.finish.options(num_returns=2).remote(
                p.photo, w, h, [p.bands[call.index]], blocks, *[p.partials[b] for b in blocks])
            return status
        return worker.write.remote(p.photo, str(p.src), str(p.target), *[p.rows[i] for i in range(len(p.bands))])

    # --------------------------------------------------------------------------------------------- results
    def _settle(self, ref: Any, worker: Any, call: Call) -> None:
        from ray.exceptions import RayActorError, RayTaskError

        p = call.photo
        try:
            value = self.ray.get(ref)
        except RayTaskError as exc:
            self._fail(p, failure_reason(exc.cause if isinstance(exc.cause, BaseException) else exc))
            return
        except RayActorError as exc:
            self.pool.replace(worker, exc)
            call.attempts += 1
            if call.attempts >= self.attempts:
                self._fail(p, f"the worker died {call.attempts} times on it ({_first_line(exc)})")
            elif not p.failed:
                self.queues[call.kind].appendleft(call)
                if call.kind == "read":
                    self.open -= 1
            return
        if p.failed:
            return
        if call.kind == "block":
            p.workers.add(id(worker))
        getattr(self, f"_{call.kind}_done")(p, call, value)

    def _read_done(self, p: Photo, call: Call, meta: dict[str, Any]) -> None:
        if "error" in meta:
            self._fail(p, meta["error"])
            return
        p.meta = meta
        w, h = meta["width"], meta["height"]
        p.plan = self.colorizer.plan(w, h)
        p.bands = self.colorizer.bands(h)
        p.needs = [[b.index for b in p.plan.covering(*self.colorizer.model_rows(y0, y1, w, h))] for y0, y1 in p.bands]
        p.blocks_left = {b.index for b in p.plan.blocks}
        self.queues["block"].extend(Call("block", p, b.index) for b in p.plan.blocks)
        self.on_event("read", p, 0)

    def _block_done(self, p: Photo, call: Call, tiles: int) -> None:
        p.tiles += tiles
        p.blocks_left.discard(call.index)
        self.on_event("tiles", p, tiles)
        for band, needed in enumerate(p.needs):
            if band not in p.rows and call.index in needed and not p.blocks_left.intersection(needed):
                p.rows[band] = None  # handed out with the next free worker, which puts its ref here
                self.queues["finish"].append(Call("finish", p, band))

    def _finish_done(self, p: Photo, call: Call, _rows: int) -> None:
        p.bands_done.add(call.index)
        for block in list(p.partials):  # a block that no unfinished band needs leaves the object store
            if all(band in p.bands_done for band, needed in enumerate(p.needs) if block in needed):
                del p.partials[block]
        if len(p.bands_done) == len(p.bands):
            self.queues["write"].append(Call("write", p))

    def _write_done(self, p: Photo, call: Call, _value: Any) -> None:
        self.open -= 1
        seconds = time.time() - p.meta["started"]
        self.results.append(FileResult(p.summary_src, p.summary_target, "done", "", seconds, p.tiles,
                                       p.meta["width"] * p.meta["height"], len(p.workers)))
        self._release(p)
        self.on_event("written", p, 0)

    def _fail(self, p: Photo, reason: str) -> None:
        if p.failed:
            return
        p.failed = reason
        self.open -= 1
        seconds = time.time() - p.started if p.started else 0.0
        self.results.append(FileResult(p.summary_src, p.summary_target, "failed", reason, seconds))
        self._release(p)
        self.on_event("failed", p, 0)

    @staticmethod
    def _release(p: Photo) -> None:
        p.photo = p.image = None
        p.partials.clear()
        p.rows.clear()


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else exc.__class__.__name__)[:200]
