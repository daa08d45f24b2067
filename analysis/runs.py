"""A study's MLflow runs as tidy tables: one row per trial, and one long table of every logged step.

:func:`load_study` reads one or more experiments (a sweep's experiment, or any experiment of ``aircolor train``
runs) with the MLflow client, paging through ``search_runs`` so any number of runs comes back:

* ``trials``: one row per trial run (the sweep's parent run is metadata, not a trial): ids and names,
  ``config`` (the configuration label: the trial name without its ``/seedN``; trials that differ only by seed
  share it), ``seed``, ``family``, one ``factor.<key>`` column per ablation factor, MLflow ``status``,
  ``outcome`` (``completed`` / ``stopped early`` / ``failed`` / ``killed`` / ``running``), ``failure_reason``,
  ``start_time`` / ``end_time`` (UTC), ``duration_s``, ``device``, ``workers``, ``gpus``, ``gpu_hours``, epochs
  reached and planned, the Inception weights' sha256 and non-standard flag, every final metric under its MLflow
  key (``val.fid``, ``baseline.val.fid``, ``hist.fid``, ...) and every param as ``param.<key>``;
* ``history``: ``run_id, key, step, epoch, value, timestamp`` for the evaluation metrics (``val.*``,
  ``hist.*``, step = epoch) and the losses (``loss.*``, step = iteration, ``epoch`` = the fractional epoch the
  iteration belongs to, from the ``iteration`` count each run logs at the end of every epoch);
* ``sweeps``: the parent runs' metadata (search space text, metric, scheduler, search, budget).

Failed, killed and early-stopped trials are kept: the report shows them as such.
"""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aircolor.errors import UsageError

HISTORY_PREFIXES = ("val.", "hist.", "loss.")
HISTORY_KEYS = ("epoch", "iteration")
_SEED_SUFFIX = re.compile(r"/seed(-?\d+)$")
_PAGE = 1000


@dataclass
class Study:
    trials: pd.DataFrame
    history: pd.DataFrame
    sweeps: list[dict[str, Any]] = field(default_factory=list)
    tracking_uri: str = ""
    experiments: list[str] = field(default_factory=list)

    @property
    def nonstandard_weights(self) -> bool:
        """True when any trial's FID/IS/KID came from non-standard Inception weights."""
        return bool(self.trials.get("nonstandard_weights", pd.Series(dtype=bool)).fillna(False).astype(bool).any())


def client_for(tracking_uri: str) -> Any:
    """An MLflow client for ``tracking_uri``; a local SQLite store that does not exist is an error, not a new
    empty database."""
    from mlflow import MlflowClient

    from aircolor.tracking.uri import sqlite_path

    db = sqlite_path(tracking_uri)
    if db is not None and not db.is_file():
        raise UsageError(f"no MLflow store at {db}; pass --tracking-uri (the sweep's, e.g. sqlite:////abs/mlruns.db "
                         f"or http://HOST:5000)")
    return MlflowClient(tracking_uri)


def _experiment(client: Any, name: str, tracking_uri: str) -> Any:
    from aircolor.tracking.uri import redact_uri

    tracking_uri = redact_uri(tracking_uri)  # no password in a message
    try:
        exp = client.get_experiment_by_name(name)
    except Exception as exc:  # unreachable server, bad database: one line, not MLflow's retry traceback
        raise UsageError(f"cannot read MLflow at {tracking_uri}: {str(exc).splitlines()[0][:200]}") from exc
    if exp is None:
        names = sorted(e.name for e in client.search_experiments(max_results=200))
        listed = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise UsageError(f"no MLflow experiment named {name!r} at {tracking_uri} (experiments: {listed or 'none'}); "
                         f"the experiment of a sweep is its name (aircolor sweep list)")
    return exp


def search_all_runs(client: Any, experiment_ids: list[str]) -> list[Any]:
    """Every run of the experiments (active and deleted-view excluded), following ``search_runs`` page tokens."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(experiment_ids, max_results=_PAGE, page_token=token,
                                  order_by=["attributes.start_time ASC"])
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def config_label(tags: dict[str, str], params: dict[str, str], run_name: str) -> str:
    """The configuration a trial belongs to: its sweep trial name without ``/seedN``; for runs outside a sweep,
    the family and factor tags (so repeated ``aircolor train`` runs of one config still group)."""
    name = tags.get("trial_name")
    if name:
        return _SEED_SUFFIX.sub("", name)
    factors = [f"{k.split('.', 1)[1]}={v}" for k, v in sorted(tags.items()) if k.startswith("factor.")]
    if factors:
        return " ".join([tags.get("family", params.get("model.family", "?")), *factors])
    return _SEED_SUFFIX.sub("", run_name or "run")


def outcome(status: str, tags: dict[str, str]) -> str:
    if status == "FINISHED":
        return "stopped early" if tags.get("stopped_early") == "true" else "completed"
    if status == "KILLED":
        return "stopped early" if tags.get("stopped_early") == "true" else "killed"
    if status == "FAILED":
        return "failed"
    return "running"


def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _gpus(tags: dict[str, str], sweep_params: dict[str, str]) -> float:
    """GPUs a trial held: none on CPU; a trial's fraction (``sweep.resources.gpu``) for single-worker sweep trials;
    one per worker otherwise."""
    if not tags.get("device", "").startswith("cuda"):
        return 0.0
    workers = int(_number(tags.get("workers", 1)) or 1)
    fraction = _number(sweep_params.get("sweep.resources.gpu"))
    if workers == 1 and fraction > 0:
        return fraction
    return float(workers)


def trial_row(run: Any, experiment: str, sweep_params: dict[str, str]) -> dict[str, Any]:
    info, tags, params, metrics = run.info, run.data.tags, run.data.params, run.data.metrics
    start = pd.Timestamp(info.start_time, unit="ms", tz="UTC") if info.start_time else pd.NaT
    end = pd.Timestamp(info.end_time, unit="ms", tz="UTC") if info.end_time else pd.NaT
    duration = (end - start).total_seconds() if start is not pd.NaT and end is not pd.NaT else math.nan
    if math.isnan(duration) and "train_seconds" in metrics:
        duration = metrics["train_seconds"]
    gpus = _gpus(tags, sweep_params)
    run_name = tags.get("mlflow.runName", info.run_name or "")
    seed = _number(params.get("train.seed"))
    row: dict[str, Any] = {
        "run_id": info.run_id, "experiment": experiment, "sweep": tags.get("sweep", experiment),
        "run_name": run_name, "trial_id": tags.get("tune.trial_id"),
        "config": config_label(tags, params, run_name), "seed": seed, "family": tags.get("family"),
        "status": info.status, "outcome": outcome(info.status, tags),
        "stopped_early": tags.get("stopped_early") == "true",
        "failure_reason": tags.get("failure_reason") or None, "tune_status": tags.get("tune.status"),
        "start_time": start, "end_time": end, "duration_s": duration, "device": tags.get("device"),
        "workers": _number(tags.get("workers", 1)), "gpus": gpus,
        "gpu_hours": duration * gpus / 3600 if not math.isnan(duration) else math.nan,
        "epochs": metrics.get("epoch", 0.0),
        "epochs_total": _number(params.get("train.n_epochs")) + _number(params.get("train.n_epochs_decay")),
        "nonstandard_weights": tags.get("nonstandard_weights") == "true",
        "weights_sha256": tags.get("inception.weights_sha256"),
        "data_manifest_sha256": tags.get("data.manifest_sha256"), "git_commit": tags.get("git.commit"),
    }
    factor_values = {k[len("factor_value."):]: v for k, v in tags.items() if k.startswith("factor_value.")}
    if not factor_values:  # a run outside a sweep: the study's factor tags
        factor_values = {k[len("factor."):]: v for k, v in tags.items() if k.startswith("factor.")}
    row.update({f"factor.{k}": v for k, v in sorted(factor_values.items())})
    row.update({k: float(v) for k, v in metrics.items()})
    row.update({f"param.{k}": v for k, v in params.items()})
    return row


def _history_of(client: Any, run: Any) -> list[dict[str, Any]]:
    keys = [k for k in run.data.metrics if k.startswith(HISTORY_PREFIXES) or k in HISTORY_KEYS]
    rows = []
    for key in keys:
        for m in client.get_metric_history(run.info.run_id, key):
            rows.append({"run_id": run.info.run_id, "key": key, "step": int(m.step), "value": float(m.value),
                         "timestamp": int(m.timestamp)})
    return rows


def epochs_of_iterations(steps: np.ndarray, epoch_ends: dict[int, float]) -> np.ndarray:
    """Fractional epochs of iteration counts, given the iteration count at the end of each epoch (1-based).

    Iteration i of an epoch that ran from iteration a (exclusive) to b (inclusive) lies at epoch
    ``(e - 1) + (i - a) / (b - a)``; so a loss logged at the last iteration of epoch 3 sits at 3.0.
    """
    if not epoch_ends:
        return np.full(len(steps), np.nan)
    ends = sorted(epoch_ends.items())
    epochs = np.array([0] + [e for e, _ in ends], dtype=float)
    iters = np.array([0.0] + [i for _, i in ends], dtype=float)
    # np.interp needs increasing x: a resumed run may log an epoch end twice with the same count
    keep = np.concatenate([[True], np.diff(iters) > 0])
    return np.interp(steps.astype(float), iters[keep], epochs[keep], right=np.nan)


def tidy_history(rows: list[dict[str, Any]]) -> pd.DataFrame:
    cols = ["run_id", "key", "step", "epoch", "value", "timestamp"]
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(rows)
    df["epoch"] = df["step"].astype(float)
    for run_id, group in df.groupby("run_id"):
        ends = group[group["key"] == "iteration"]
        epoch_ends = dict(zip(ends["step"].astype(int), ends["value"]))
        loss = (df["run_id"] == run_id) & df["key"].str.startswith("loss.")
        df.loc[loss, "epoch"] = epochs_of_iterations(df.loc[loss, "step"].to_numpy(), epoch_ends)
    return df.sort_values(["run_id", "key", "step", "timestamp"]).drop_duplicates(
        ["run_id", "key", "step"], keep="last")[cols].reset_index(drop=True)


def _sweep_meta(client: Any, run: Any, experiment: str) -> dict[str, Any]:
    """A sweep parent run's params, status, trial counts and search-space file text."""
    import tempfile
    from pathlib import Path

    space_text = None
    try:
        listed = client.list_artifacts(run.info.run_id, "search_space")
        if listed:
            with tempfile.TemporaryDirectory() as tmp:
                local = client.download_artifacts(run.info.run_id, listed[0].path, tmp)
                space_text = Path(local).read_text()
    except Exception:  # the artifact store may be unreachable from here; the params still say which file
        space_text = None
    return {"experiment": experiment, "run_id": run.info.run_id, "name": run.data.tags.get("sweep", experiment),
            "status": run.data.tags.get("sweep.status", run.info.status),
            "description": run.data.tags.get("mlflow.note.content"),
            "params": dict(run.data.params), "metrics": dict(run.data.metrics), "space_text": space_text,
            "start_time": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC") if run.info.start_time else None,
            "end_time": pd.Timestamp(run.info.end_time, unit="ms", tz="UTC") if run.info.end_time else None}


def load_study(experiments: list[str], tracking_uri: str, *, threads: int = 8,
               before_history: Callable[[pd.DataFrame, list[dict[str, Any]]], None] | None = None) -> Study:
    """Every trial run of ``experiments`` with its history; see the module docstring for the columns.

    ``before_history(trials, sweeps)`` runs once the runs are listed, before their histories (one request per
    run and key) are read: a caller checks there what it needs (and may raise) before the slow part."""
    client = client_for(tracking_uri)
    rows: list[dict[str, Any]] = []
    trial_runs: list[Any] = []
    sweeps: list[dict[str, Any]] = []
    for name in experiments:
        exp = _experiment(client, name, tracking_uri)
        runs = search_all_runs(client, [exp.experiment_id])
        parents = [r for r in runs if r.data.tags.get("aircolor.kind") == "sweep"]
        for parent in parents:
            sweeps.append(_sweep_meta(client, parent, name))
        sweep_params = parents[0].data.params if parents else {}
        for run in runs:
            if run.data.tags.get("aircolor.kind") == "sweep":
                continue
            rows.append(trial_row(run, name, sweep_params))
            trial_runs.append(run)
    if not rows:
        from aircolor.tracking.uri import redact_uri

        raise UsageError(f"no trial runs in MLflow experiment(s) {', '.join(experiments)} at "
                         f"{redact_uri(tracking_uri)}; has the sweep started a trial yet? (aircolor sweep status NAME)")
    trials = pd.DataFrame(rows)
    if before_history is not None:
        before_history(trials, sweeps)
    with ThreadPoolExecutor(max_workers=threads) as pool:  # one request per (run, key) on a tracking server
        history_rows = [row for part in pool.map(lambda r: _history_of(client, r), trial_runs) for row in part]
    return Study(trials=trials, history=tidy_history(history_rows), sweeps=sweeps, tracking_uri=tracking_uri,
                 experiments=list(experiments))
