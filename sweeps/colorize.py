"""``aircolor colorize --ray``: colorize an archive on a Ray cluster (``python -m sweeps.colorize`` = the same).

Design: **Ray actors with a bounded work queue** (:mod:`sweeps.colorize_queue`), each actor holding one copy of
the generator (:mod:`sweeps.colorize_worker`). Why not Ray Data's ``map_batches`` over an actor pool: a scan is
split into blocks of tiles that must meet again, in a fixed order, in one output file; Ray Data can only express
that reduction as a shuffle (``groupby``) or by pulling every block through the driver, and it writes its own file
layout, where colorize writes each output atomically beside its input's name so that a rerun skips it. With actors
the pixels stay in the object store and move worker to worker, the driver holds references only, and the queue
decides what runs next (finish started photos before starting new ones), which bounds memory. Ray does the rest:
placing the actors (spread over the nodes), moving objects between nodes, and telling the driver when one dies.

The contract is the single-process one (:func:`aircolor.colorize.archive.colorize_archive`): the same files,
byte for byte on CPU (the stages are :class:`aircolor.colorize.engine.Colorizer`'s own, on the same blocks and
bands), written atomically, inputs never overwritten, finished outputs skipped on a rerun, per-file errors in
``colorize-summary.json``, exit code 1 when a file failed, COGs (``--format cog``, large GeoTIFFs) and the mosaic
VRT over the georeferenced outputs (:mod:`aircolor.colorize.geo`; the driver writes it, from the outputs' headers).

Storage: the workers read the inputs and write the outputs themselves, so every path must mean the same file on
every node: a shared file system mounted at the same path everywhere (NFS, EFS, Lustre, a FUSE mount of a bucket
such as s3fs or gcsfuse). Each worker checks, before any work, that it sees the inputs and can write to ``--out``,
and the run stops in one line otherwise. URLs (``s3://``) are not read directly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aircolor.errors import UsageError
from sweeps.colorize_queue import Photo, WorkQueue


class WorkerPool:
    """The worker actors; a dead one is replaced (at most ``spare`` times in all) with a fresh model copy. When
    none is left, the photos not yet done fail with the last worker's cause of death (the queue says so)."""

    def __init__(self, ray: Any, actor_class: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *, workers: int,
                 spare: int) -> None:
        self.ray, self.actor_class, self.args, self.kwargs, self.spare = ray, actor_class, args, kwargs, spare
        self.workers = [self._start() for _ in range(workers)]
        self.replaced, self.last_death = 0, ""

    def _start(self) -> Any:
        return self.actor_class.remote(*self.args, **self.kwargs)

    def wait_ready(self, paths: list[str], out_dir: str, timeout_s: float, say: Any) -> list[dict[str, Any]]:
        """Wait until every worker has loaded its model and seen ``paths`` and ``out_dir``; one line now and then
        while Ray is placing them. A worker on a node without the shared storage stops the run in one line."""
        pending = {w.ready.remote(paths, out_dir): w for w in self.workers}
        ready, started, last = [], time.time(), time.time()
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=len(pending), timeout=5.0)
            for ref in done:
                pending.pop(ref)
                ready.append(self.ray.get(ref))
                if ready[-1]["problem"]:
                    raise UsageError(f"the Ray node at {ready[-1]['ip']} {ready[-1]['problem']}: with --ray, inputs "
                                     f"and --out must be on storage every node mounts at the same path (e.g. "
                                     f"/mnt/shared); see README 'Colorize an archive on the cluster'")
            if pending and time.time() - last > 30:
                say(f"waiting for {len(pending)} of {len(self.workers)} workers to start (Ray is placing them)")
                last = time.time()
            if pending and time.time() - started > timeout_s:
                raise UsageError(f"{len(pending)} of {len(self.workers)} colorize workers did not start within "
                                 f"{timeout_s:.0f} s: the cluster lacks the CPUs/GPUs they ask for; use fewer "
                                 f"--workers or smaller --cpus-per-worker / --gpus-per-worker")
        return ready

    def idle(self, depth: int, inflight: dict[Any, tuple[Any, Any]]) -> list[Any]:
        """One entry per free call slot, least busy workers first."""
        busy = {id(w): 0 for w in self.workers}
        for worker, _ in inflight.values():
            if id(worker) in busy:
                busy[id(worker)] += 1
        order = sorted(self.workers, key=lambda w: busy[id(w)])
        return [w for level in range(depth) for w in order if busy[id(w)] <= level]

    def replace(self, worker: Any, why: BaseException) -> None:
        if worker not in self.workers:
            return  # already replaced (its other calls failed too)
        self.workers.remove(worker)
        self.ray.kill(worker, no_restart=True)
        self.last_death = str(why).splitlines()[0][:200] if str(why) else why.__class__.__name__
        if self.replaced < self.spare:
            self.replaced += 1
            self.workers.append(self._start())


class Progress:
    """Files, tiles and megapixels per second over the whole cluster, and an ETA: a bar on a terminal, else a line
    every 15 s (``ray job logs``); nothing with ``--quiet``."""

    def __init__(self, *, files: int, tiles: int, pixels: int, enabled: bool) -> None:
        self.total = {"files": files, "tiles": max(tiles, 1), "pixels": pixels}
        self.done = {"files": 0, "tiles": 0, "pixels": 0, "failed": 0}
        self.started, self.last = time.time(), 0.0
        self.enabled = enabled
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total["tiles"], unit="tile", dynamic_ncols=True, desc="colorize --ray")

    def event(self, kind: str, photo: Photo, tiles: int) -> None:
        if kind == "tiles":
            self.done["tiles"] += tiles
            if self.bar is not None:
                self.bar.update(tiles)
        elif kind == "written":
            self.done["files"] += 1
            self.done["pixels"] += photo.meta["width"] * photo.meta["height"]
        elif kind == "failed":
            self.done["failed"] += 1
        self._show()

    def rates(self) -> dict[str, float]:
        seconds = max(time.time() - self.started, 1e-9)
        return {"seconds": seconds, "files_per_s": self.done["files"] / seconds,
                "tiles_per_s": self.done["tiles"] / seconds, "megapixels_per_s": self.done["pixels"] / 1e6 / seconds}

    def line(self) -> str:
        r = self.rates()
        left = max(self.total["tiles"] - self.done["tiles"], 0)
        eta = left / r["tiles_per_s"] if r["tiles_per_s"] > 0 else float("nan")
        return (f"{self.done['files']}/{self.total['files']} files ({self.done['failed']} failed), "
                f"{self.done['tiles']}/{self.total['tiles']} tiles: {r['files_per_s']:.2f} files/s, "
                f"{r['tiles_per_s']:.1f} tiles/s, {r['megapixels_per_s']:.2f} MP/s, ETA {_duration(eta)}")

    def _show(self) -> None:
        if self.bar is not None:
            r = self.rates()
            self.bar.set_postfix_str(f"files {self.done['files']}/{self.total['files']}, "
                                     f"{r['megapixels_per_s']:.2f} MP/s, failed {self.done['failed']}")
        elif self.enabled and time.time() - self.last > 15:
            self.last = time.time()
            print(f"colorize --ray: {self.line()}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "unknown"
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"


# ------------------------------------------------------------------------------------------------ set-up
def _connect(address: str | None) -> Any:
    import ray

    from aircolor.training.ray_backend import cluster_address

    target = cluster_address(address)
    where = f"--address {address}" if address else f"RAY_ADDRESS={target}"
    if target and not _answers(target):  # ray.init would retry for minutes
        raise UsageError(f"{where}: no Ray cluster answers there; start one (`ray start --head`), check the "
                         f"address, or leave the address out for a local Ray")
    if not ray.is_initialized():
        try:
            ray.init(address=target, include_dashboard=False, log_to_driver=True, ignore_reinit_error=True,
                     logging_level=logging.WARNING)  # no "Connecting to..." lines: the driver says what it does
        except ConnectionError as exc:
            raise UsageError(f"{where}: no Ray cluster answers there ({str(exc).splitlines()[0][:160]}); start one "
                             f"(`ray start --head`) or leave the address out for a local Ray") from None
    return ray


def _answers(address: str, timeout_s: float = 5.0) -> bool:
    """Does something accept TCP connections at ``address`` (``HOST:PORT``, ``ray://HOST:PORT``)? True for
    addresses Ray resolves itself (``auto``, ``local``, a dashboard URL)."""
    import socket

    host_port = address[len("ray://"):] if address.startswith("ray://") else address
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit() or "/" in host_port:
        return True
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def _worker_count(ray: Any, args: argparse.Namespace, cpus: float, gpus: float) -> int:
    """``--workers``, or as many as the cluster's CPUs (and GPUs) fit; refuses a request it can never place."""
    from sweeps.reach import _autoscaler_running

    total = ray.cluster_resources()
    fit = int(total.get("CPU", 0) // cpus)
    if gpus > 0:
        fit = min(fit, int(total.get("GPU", 0) // gpus))
    workers = args.workers or max(fit, 1)
    if workers > fit and not _autoscaler_running():
        need = f"{workers * cpus:g} CPUs" + (f" and {workers * gpus:g} GPUs" if gpus else "")
        have = f"{total.get('CPU', 0):g} CPUs" + (f" and {total.get('GPU', 0):g} GPUs" if gpus else "")
        raise UsageError(f"--workers {workers} needs {need}; the Ray cluster has {have} and no autoscaler; use "
                         f"--workers {max(fit, 1)} or fewer CPUs/GPUs per worker")
    return workers


def _headers(todo: list[tuple[Path, Path]]) -> list[tuple[int, int] | None]:
    """Every photo's size from its header (threads: shared storage is slow to answer, not to compute)."""
    from aircolor.colorize.imageio import photo_size

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda job: photo_size(job[0]), todo))


def _resolved(options: Any, gpus: float) -> Any:
    """``options`` with the batch size and block side the workers' device gets by default, made explicit: the
    driver plans the blocks, so it must plan them as the workers will cut them."""
    from dataclasses import replace

    import torch

    from aircolor.colorize.engine import default_batch, default_block

    device = torch.device("cuda" if gpus > 0 else "cpu")
    batch = options.batch_size or default_batch(options.tile, device)
    return replace(options, batch_size=batch, block=options.block or default_block(batch))


def _start_workers(ray: Any, model: Any, cfg: Any, options: Any, *, workers: int, cpus: float, gpus: float,
                   paths: list[str], out_dir: str, output_format: str,
                   say: Any) -> tuple[WorkerPool, list[dict[str, Any]]]:
    """The worker actors, each with the model loaded and the storage checked."""
    from aircolor.models.exported import generator_payload
    from sweeps.colorize_worker import ColorizeWorker

    actor = ray.remote(ColorizeWorker).options(num_cpus=cpus, num_gpus=gpus, max_restarts=0,
                                               max_concurrency=max(1, int(cpus)), scheduling_strategy="SPREAD")
    payload = ray.put(generator_payload(model, cfg))
    pool = WorkerPool(ray, actor, (payload, asdict(options)),
                      {"device": "cuda" if gpus > 0 else "cpu", "output_format": output_format},
                      workers=workers, spare=2 * workers + 2)
    hosts = pool.wait_ready(paths, out_dir, float(os.environ.get("AIRCOLOR_WORKER_START_S", 900)), say)
    say(f"{workers} workers on {len({h['host'] for h in hosts})} node(s)")
    return pool, hosts


def colorize_on_ray(args: argparse.Namespace) -> Any:
    """Run ``aircolor colorize`` with ``--ray`` (arguments already checked); returns the archive's Summary."""
    import torch

    from aircolor.colorize.archive import clean_stale_temps, finish_archive, plan_archive
    from aircolor.colorize.cli import archive_options, colorize_options
    from aircolor.colorize.engine import Colorizer
    from aircolor.colorize.source import load_model

    cpus, gpus = args.cpus_per_worker or 1.0, args.gpus_per_worker or 0.0
    ray = _connect(args.address)  # a wrong address or request fails here, before anything is written
    workers = _worker_count(ray, args, cpus, gpus)
    model, cfg, described = load_model(args.model, device=torch.device("cpu"), tracking_uri=args.tracking_uri)
    options = _resolved(colorize_options(args, cfg), gpus)
    archive = archive_options(args)
    todo, summary = plan_archive(args.inputs, archive, model=described)
    if not todo:
        finish_archive(summary, archive)  # the mosaic too: it lists the outputs a rerun skipped
        return summary
    absolute = [(src.resolve(), target.resolve()) for src, target in todo]
    say = (lambda line: print(f"colorize --ray: {line}", file=sys.stderr, flush=True)) if archive.progress \
        else (lambda line: None)
    pool, hosts = _start_workers(ray, model, cfg, options, workers=workers, cpus=cpus, gpus=gpus, say=say,
                                 paths=sorted({str(absolute[i][0]) for i in (0, len(absolute) // 2, -1)}),
                                 out_dir=str(archive.out_dir.resolve()), output_format=archive.format)
    planner = Colorizer(model, cfg, torch.device("cpu"), options)  # geometry only: the workers run the model
    sizes = _headers(absolute)
    progress = Progress(files=len(todo), pixels=sum(w * h for w, h in filter(None, sizes)),
                        tiles=sum(planner.count_tiles(*s) for s in sizes if s), enabled=archive.progress)
    say(f"{len(todo)} photos to colorize, {progress.total['tiles']} tiles")
    queue = WorkQueue(ray, pool, planner, max_pixels=archive.max_pixels, open_files=2 * workers,
                      depth=max(1, int(cpus)) + 1, on_event=progress.event)
    try:
        summary.files.extend(queue.run([Photo(src, target, str(s0), str(t0))
                                        for (src, target), (s0, t0) in zip(absolute, todo)]))
    finally:
        progress.close()
    clean_stale_temps(archive.out_dir)  # what a worker killed mid-write left: never a complete output
    summary.run = {"ray": True, "workers": workers, "cpus_per_worker": cpus, "gpus_per_worker": gpus,
                   "nodes": len({h["host"] for h in hosts}), "workers_replaced": pool.replaced, **progress.rates()}
    finish_archive(summary, archive)  # mosaic VRT (read from the outputs' headers here) and summary
    say(progress.line().split(", ETA")[0] + f" on {workers} workers")
    return summary


def main(argv: list[str] | None = None) -> int:
    """``python -m sweeps.colorize ...`` = ``aircolor colorize --ray ...``."""
    from aircolor.cli import main as aircolor_main

    argv = list(sys.argv[1:] if argv is None else argv)
    head = [a for a in argv if a == "--debug"]
    rest = [a for a in argv if a != "--debug"]
    return aircolor_main([*head, "colorize", *([] if "--ray" in rest else ["--ray"]), *rest])


if __name__ == "__main__":
    sys.exit(main())
