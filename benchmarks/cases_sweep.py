"""Sweep benchmark: what Ray Tune costs around the training, measured through the project's own sweep driver.

Case ``sweep_overhead``: a child process starts a fresh local Ray (``ray.init(address="local", num_cpus=N)``,
N = the largest concurrency measured, a private temp folder, no dashboard), then runs the 4-trial grid of
``search_spaces/pix2pix_generator.yaml`` at ``--smoke`` sizes with :func:`sweeps.driver.run_sweep` (scheduler none,
metric delta_e2000, one CPU per trial, a fresh storage folder and a fresh SQLite MLflow store per sweep), once per
max-concurrent setting: 1 and 2 trials (quick) or 1, 2 and 4 (full). Per setting it reports the sweep's wall time,
trials per hour, and the median ``startup_s`` of its trials: the MLflow metric the training loop logs from the
start of the trial's function to the end of its first training iteration (imports, config, data and model set-up,
MLflow run opening); and, from Tune's own ``time_total_s``, how much of each trial's slot time is spent outside
the trainable (actor start-up, scheduling, final checkpoint and teardown).

The child process keeps Ray out of the benchmark process (``ray.shutdown()`` runs there, and a hung child is killed
with its process group). Its output goes to ``<work>/sweep-bench/<stamp>/child.log``, next to its raw results
(``result.json``) and the sweeps' SQLite MLflow stores; the trials' checkpoints are deleted after a successful run.

Run alone::

    python -m benchmarks.cases_sweep --quick --work runs/bench
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.cases_data import median, prepared, record

SECTION = "sweep"
REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "search_spaces" / "pix2pix_generator.yaml"
METRIC = "delta_e2000"
CPUS_PER_TRIAL = 1.0
CHILD_TIMEOUT_S = {True: 300, False: 3600}


def concurrency_levels(quick: bool) -> list[int]:
    return [1, 2] if quick else [1, 2, 4]


def sweep_args(*, max_concurrent: int, data_root: Path, weights: Path, gpus_per_trial: float = 0.0) -> list[str]:
    """``aircolor sweep run`` arguments of one measured sweep (storage, name and tracking URI are passed apart)."""
    return [str(SPACE), f"data.root={data_root}", f"metrics.inception_weights={weights}", "--smoke",
            "--metric", METRIC, "--scheduler", "none", "--cpus-per-trial", f"{CPUS_PER_TRIAL:g}",
            "--gpus-per-trial", f"{gpus_per_trial:g}", "--max-concurrent", str(max_concurrent),
            "--max-failures", "0"]


def sweep_options(args: list[str]) -> Any:
    """:class:`sweeps.state.SweepOptions` from CLI arguments, through the CLI's own parser and defaults."""
    from sweeps.cli import add_run_arguments, options_from_args

    parser = argparse.ArgumentParser(prog="aircolor sweep run")
    add_run_arguments(parser)
    return options_from_args(parser.parse_args(args))


# ---------------------------------------------------------------- child process
def _startup_times(uri: str, experiment: str) -> tuple[list[float], int]:
    """(``startup_s`` of the sweep's child runs that logged it, number of child runs)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return [], 0
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    kids = [r for r in runs if r.data.tags.get("aircolor.kind") != "sweep"]
    return [float(r.data.metrics["startup_s"]) for r in kids if "startup_s" in r.data.metrics], len(kids)


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    """Start Ray, run every measured sweep, read their MLflow runs back; runs in the child process only."""
    import ray

    from sweeps.driver import run_sweep

    folder = Path(spec["folder"])
    levels: list[int] = spec["levels"]
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=max(levels), num_gpus=spec["num_gpus"], include_dashboard=False,
             log_to_driver=False, _temp_dir=spec["ray_temp"])
    out: dict[str, Any] = {"ray_init_s": time.perf_counter() - t0, "sweeps": []}
    try:
        @ray.remote(num_cpus=1)
        def ping() -> int:
            return os.getpid()

        t0 = time.perf_counter()
        ray.get([ping.remote() for _ in range(max(levels))])
        out["first_tasks_s"] = time.perf_counter() - t0
        plan = [("warmup", max(levels), 0)] if spec["warmup"] else []
        plan += [("timed", c, r) for c in levels for r in range(spec["repeats"])]
        for kind, c, r in plan:
            name = f"{kind}-c{c}-r{r}"
            uri = f"sqlite:///{(folder / f'mlruns-{name}.db').resolve()}"
            gpus = spec["num_gpus"] / c if spec["num_gpus"] else 0.0
            options = sweep_options(sweep_args(max_concurrent=c, data_root=Path(spec["data_root"]),
                                               weights=Path(spec["weights"]), gpus_per_trial=gpus))
            t0 = time.perf_counter()
            result = run_sweep(str(SPACE), options, name=name, storage=str(folder / "storage"), tracking_uri=uri)
            wall = time.perf_counter() - t0
            startups, runs = _startup_times(uri, name)
            print(f"[bench] {name}: {wall:.1f} s, {len(result.trials)} trials {result.counts}, "
                  f"startup_s {startups}", flush=True)
            out["sweeps"].append({"kind": kind, "max_concurrent": c, "repeat": r, "wall_s": wall,
                                  "trials": len(result.trials), "counts": result.counts,
                                  "status": result.state.status, "startup_s": startups, "child_runs": runs,
                                  "trial_time_s": [float(t["metrics"]["time_total_s"]) for t in result.trials
                                                   if "time_total_s" in (t["metrics"] or {})],
                                  "errors": [t["error"][:200] for t in result.trials if t["error"]][:3]})
    finally:
        ray.shutdown()
    return out


def _run_child(spec: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Run :func:`_child` in ``python -m benchmarks.cases_sweep --child SPEC``; its process group dies with it."""
    folder = Path(spec["folder"])
    spec_path, result_path, log_path = folder / "spec.json", folder / "result.json", folder / "child.log"
    spec_path.write_text(json.dumps(spec, indent=2))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # never join another cluster
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])), PYTHONUNBUFFERED="1",
               RAY_USAGE_STATS_ENABLED="0", MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true",
               AIRCOLOR_CACHE_DIR=str(folder / "cache"))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.cases_sweep", "--child", str(spec_path),
                                 str(result_path)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    tail = log_path.read_text(errors="replace")[-3000:]
    if rc != 0 or not result_path.is_file():
        why = f"timed out after {timeout:.0f} s" if rc is None else f"exit status {rc}"
        raise RuntimeError(f"sweep benchmark child process failed ({why}); log {log_path}:\n{tail}")
    return json.loads(result_path.read_text())


# ---------------------------------------------------------------- case
def sweep_overhead(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """Wall time, trials/hour and trial start-up of a smoke sweep at each max-concurrency setting."""
    from benchmarks.cases_eval import inception_weights

    levels = concurrency_levels(quick)
    repeats = 1 if quick else repeats  # one sweep per setting keeps quick mode near 90 s; a sweep is 4 trials
    warmup = not quick
    data_root = prepared(work, 32)
    weights, weights_source = inception_weights(work)
    folder = Path(work) / "sweep-bench" / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=False)
    ray_temp = tempfile.mkdtemp(prefix="rb", dir="/tmp")  # short: Ray's socket paths must stay under 107 chars
    num_gpus = 1 if device.type == "cuda" else 0
    spec = {"folder": str(folder.resolve()), "levels": levels, "repeats": repeats, "warmup": warmup,
            "data_root": str(Path(data_root).resolve()), "weights": str(Path(weights).resolve()),
            "num_gpus": num_gpus, "ray_temp": ray_temp}
    try:
        out = _run_child(spec, timeout=CHILD_TIMEOUT_S[quick])
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)
    shutil.rmtree(folder / "storage", ignore_errors=True)  # ~85 MB of Tune state and trial checkpoints
    records = []
    for c in levels:
        runs = [s for s in out["sweeps"] if s["kind"] == "timed" and s["max_concurrent"] == c]
        walls = [s["wall_s"] for s in runs]
        trials = [s["trials"] for s in runs]
        ok = [s["counts"].get("TERMINATED", 0) for s in runs]
        startups = [v for s in runs for v in s["startup_s"]]
        startup_note = ("median over the child runs of startup_s (MLflow metric): trial start to the end of its "
                        "first training iteration")
        if not startups:
            startup_note += "; MISSING: no child run logged startup_s, reported as NaN"
        wall = median(walls)
        trial_time = median([v for s in runs for v in s.get("trial_time_s", [])])
        slot = wall * c / median(trials) if trials and median(trials) > 0 else math.nan
        config = {"space": SPACE.name, "smoke": True, "scheduler": "none", "metric": METRIC,
                  "max_concurrent": c, "cpus_per_trial": CPUS_PER_TRIAL,
                  "gpus_per_trial": num_gpus / c if num_gpus else 0.0, "ray_num_cpus": max(levels),
                  "host_cpus": os.cpu_count(), "trials_per_sweep": max(trials) if trials else 0,
                  "startup_runs": len(startups), "weights": weights_source, "tracking": "sqlite",
                  "device": str(device), "repeats": len(runs), "warmup": int(warmup),
                  "errors": sorted({e for s in runs for e in s["errors"]})[:2]}
        metrics = {"wall_s": wall, "trials_per_hour": median(trials) / (wall / 3600) if runs else math.nan,
                   "startup_s_median": median(startups), "trials": median(trials) if trials else math.nan,
                   "trials_ok": min(ok) if ok else math.nan, "ray_init_s": out["ray_init_s"],
                   "slot_s_per_trial": slot, "trial_time_s_median": trial_time,
                   "outside_trainable_s": slot - trial_time}
        notes = {"wall_s": "median seconds of run_sweep (validation, MLflow parent run, Tune fit of every trial)",
                 "trials_per_hour": "trials / wall hours",
                 "startup_s_median": startup_note,
                 "trials": "trials per sweep", "trials_ok": "trials that ended TERMINATED (fewest over repeats)",
                 "ray_init_s": "seconds of ray.init for a fresh local instance (once per measurement, not in wall_s)",
                 "slot_s_per_trial": "wall_s * max_concurrent / trials: seconds a concurrency slot spends per "
                                     "trial (the sweep's own set-up and close amortised over its trials)",
                 "trial_time_s_median": "median of Tune's time_total_s at each trial's last report (time inside "
                                        "the trainable, from its start to its last report)",
                 "outside_trainable_s": "slot_s_per_trial - trial_time_s_median: per-trial time outside the "
                                        "trainable (actor start, scheduling, final checkpoint and teardown)"}
        records.append(record(SECTION, "sweep_overhead", config, metrics, notes))
    return records


CASES: dict[str, Callable[..., list[dict]]] = {"sweep_overhead": sweep_overhead}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Sweep overhead benchmark (the child mode is internal).")
    p.add_argument("--child", nargs=2, metavar=("SPEC", "RESULT"), help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--work", default="runs/bench")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.child:
        spec_path, result_path = map(Path, args.child)
        result = _child(json.loads(spec_path.read_text()))
        result_path.write_text(json.dumps(result, indent=2))
        return 0
    records = sweep_overhead(quick=args.quick, device=torch.device(args.device), work=Path(args.work),
                             repeats=args.repeats)
    print(json.dumps(records, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
