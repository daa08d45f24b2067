"""Tracking under load: N concurrent trial-like writers through a real ``mlflow server``, killed and restarted once.

Each writer is what a sweep trial does to MLflow: one :class:`aircolor.tracking.Tracker` run with params and tags,
a few loss values at every step (a short sleep stands in for the training step), one artifact at the end, and
``end(wait_s=...)`` as the engine calls it. The writers run as threads in a few processes (a 2-core machine cannot
hold 64 Python processes with MLflow loaded). A third of the way in, the server is killed (SIGKILL, no clean
shutdown) and started again on the same port and store after ``OUTAGE_S``.

Measured per backend (SQLite file, as one machine runs it; PostgreSQL, as ``cluster.yaml`` runs it) and writer
count: values/s delivered, p50/p99 latency of a ``log_metrics`` call as the training loop sees it, values lost
(logged but not in MLflow at the end: must be 0) and records left in spools after the runs ended.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.cases_data import median, record

SECTION = "tracking"
KEYS = ("loss_G", "loss_D", "loss_GAN", "loss_L1", "lr")
OUTAGE_S = 5.0


def plan(quick: bool) -> dict[str, Any]:
    """Steps per writer and the pause that stands in for a training step."""
    return {"steps": 60 if quick else 200, "step_s": 0.05, "processes": 4, "writers": (16, 64),
            "end_wait_s": 120.0, "server_workers": 2}


def _writer(url: str, experiment: str, name: str, spool: Path, steps: int, step_s: float, end_wait_s: float,
            artifact: Path, latencies: list[float], logged: dict[str, int]) -> None:
    from aircolor.tracking import Tracker

    tracker = Tracker(url, experiment, name, spool_dir=spool).start()
    tracker.log_params({f"model.p{i}": i for i in range(30)})
    tracker.set_tags({"family": "pix2pix", "trial_name": name, **{f"factor_value.f{i}": str(i) for i in range(8)}})
    for step in range(steps):
        time.sleep(step_s)
        t = time.perf_counter()
        tracker.log_metrics({k: step * 0.01 + i for i, k in enumerate(KEYS)}, step=step)
        latencies.append(time.perf_counter() - t)
    tracker.log_artifact(artifact, "model")
    tracker.end("FINISHED", wait_s=end_wait_s)
    logged[name] = steps * len(KEYS)


def _process(url: str, experiment: str, names: list[str], work: str, cfg: dict[str, Any], out: str) -> None:
    """One process of writers (threads); writes its latencies and counts to ``out`` as JSON."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    work_dir = Path(work)
    artifact = work_dir / "generator.pt"
    latencies: list[float] = []
    logged: dict[str, int] = {}
    threads = [threading.Thread(target=_writer, args=(url, experiment, n, work_dir / "spools", cfg["steps"],
                                                      cfg["step_s"], cfg["end_wait_s"], artifact, latencies, logged))
               for n in names]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    Path(out).write_text(json.dumps({"latencies": latencies, "logged": logged}))


def _delivered(url: str, experiment: str) -> tuple[dict[str, int], int, int]:
    """({run name: metric values in MLflow}, runs with their artifact, runs beyond one per name)."""
    from mlflow import MlflowClient

    client = MlflowClient(url)
    exp = client.get_experiment_by_name(experiment)
    found: dict[str, int] = {}
    artifacts = runs = 0
    for run in client.search_runs([exp.experiment_id], max_results=1000) if exp else []:
        runs += 1
        values = sum(len(client.get_metric_history(run.info.run_id, k)) for k in KEYS)
        found[run.info.run_name] = found.get(run.info.run_name, 0) + values
        artifacts += any(a.path == "model/generator.pt" for a in client.list_artifacts(run.info.run_id, "model"))
    return found, artifacts, runs - len(found)


def _kill_and_restart(server: Any, at_s: float, outage: dict[str, float]) -> None:
    time.sleep(at_s)
    server.kill()
    t = time.perf_counter()
    time.sleep(OUTAGE_S)
    server.start()
    outage["s"] = time.perf_counter() - t


def load_case(backend: str, writers: int, quick: bool, work: Path, **overrides: Any) -> dict[str, Any]:
    """One measured case; ``overrides`` replace :func:`plan` entries (the tests run a tiny one)."""
    from aircolor.tracking import replay
    from aircolor.tracking.spool import find_spools, parse_spool
    from benchmarks.servers import MlflowServer, PostgresServer

    cfg = {**plan(quick), **overrides}
    root = Path(tempfile.mkdtemp(prefix=f"trk-{backend}-{writers}-", dir=work))
    (root / "generator.pt").write_bytes(os.urandom(256 * 1024))
    pg = PostgresServer(Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))) if backend == "postgresql" else None
    try:
        backend_uri = None
        if pg is not None:
            backend_uri = pg.start().create_database("mlflow")
        server = MlflowServer(root / "server", backend_uri=backend_uri, workers=cfg["server_workers"]).start()
        try:
            names = [f"w{i:03d}" for i in range(writers)]
            groups = [names[i::cfg["processes"]] for i in range(cfg["processes"])]
            ctx = mp.get_context("spawn")
            outs = [root / f"proc{i}.json" for i in range(len(groups))]
            procs = [ctx.Process(target=_process, args=(server.url, "load", g, str(root), cfg, str(o)))
                     for g, o in zip(groups, outs)]
            outage: dict[str, float] = {}
            started = time.perf_counter()
            for p in procs:
                p.start()
            killer = threading.Thread(target=_kill_and_restart,
                                      args=(server, cfg["steps"] * cfg["step_s"] / 3 + 3.0, outage))
            killer.start()
            for p in procs:
                p.join()
            killer.join()
            wall = time.perf_counter() - started
            latencies: list[float] = []
            logged: dict[str, int] = {}
            failed = [p.exitcode for p in procs if p.exitcode != 0]
            if failed:
                raise RuntimeError(f"{len(failed)} writer process(es) failed (exit codes {failed})")
            for o in outs:
                got = json.loads(o.read_text())
                latencies += got["latencies"]
                logged.update(got["logged"])
            spools = find_spools(root / "spools") if (root / "spools").exists() else []
            left = sum(len(parse_spool(p, p.read_bytes()).pending) for p in spools)
            replayed = replay(root / "spools").sent if spools else 0
            found, artifacts, duplicates = _delivered(server.url, "load")
        finally:
            server.stop()
    finally:
        if pg is not None:
            pg.stop()
    sent = sum(found.values())
    lat = sorted(latencies)
    return record(SECTION, f"{backend}-{writers}", {"backend": backend, "writers": writers, "steps": cfg["steps"],
                                                    "step_s": cfg["step_s"], "outage_s": OUTAGE_S},
                  {"values_logged": sum(logged.values()), "values_in_mlflow": sent, "values_per_s": sent / wall,
                   "log_p50_ms": 1000 * median(lat), "log_p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))],
                   "values_lost": writers * cfg["steps"] * len(KEYS) - sent, "runs": len(found),
                   "duplicate_runs": duplicates,
                   "artifacts": artifacts, "records_left_in_spools": left, "records_replayed": replayed,
                   "outage_s": outage.get("s", 0.0), "wall_s": wall},
                  {"values_lost": "logged by a writer but not in MLflow at the end (must be 0)",
                   "duplicate_runs": "runs beyond one per writer (a lost answer to a run creation; must be 0)",
                   "records_left_in_spools": "after every run ended (end_wait_s waits for the server)"})


def load(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict[str, Any]]:
    out = []
    for backend in ("sqlite", "postgresql"):
        for writers in plan(quick)["writers"]:
            out.append(load_case(backend, writers, quick, work))
    return out


CASES = {"load": load}
