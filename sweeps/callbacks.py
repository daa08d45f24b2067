"""Ray Tune callback that keeps MLflow truthful about the trials (runs in the sweep's driver process).

The trials log everything themselves (their child runs are the training engine's). What only the driver knows is
recorded here: the best trial so far on the sweep's parent run, and how each trial ended in Tune. A trial that
ASHA stops is killed mid-run, so its child run is closed here as KILLED with ``stopped_early=true``; a trial that
failed for good is closed as FAILED with its error.

While the tracking server is down, these records wait in memory (each MLflow call is given 10 s and no retries,
so a dead server never stalls Tune's event loop) and the driver sends them at the end with :meth:`send_pending`,
after it replayed the trials' spools: a trial that ended during the outage has its run only in its spool until
then, and closing it earlier would create a second run.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
import warnings
from typing import Any

from ray.tune import Callback


class MlflowSweepCallback(Callback):
    def __init__(self, *, tracking_uri: str, experiment: str, parent_run_id: str | None, metric_key: str,
                 mode: str, space_path: str | None = None) -> None:
        self.tracking_uri, self.experiment, self.space_path = tracking_uri, experiment, space_path
        self.parent_run_id, self.metric_key, self.mode = parent_run_id, metric_key, mode
        self.best: tuple[float, str] | None = None
        self.results = 0
        self.pending: list[tuple[str, Any]] = []  # (what, record) waiting for the server

    # ------------------------------------------------------------------ helpers
    def _name(self, trial: Any) -> str:
        try:
            from sweeps.space import load_space

            space = load_space(self.space_path)
            return space.trial_name(space.from_tune(trial.config))
        except Exception:
            return trial.trial_id

    def _client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(self.tracking_uri)

    def _child(self, client: Any, trial_id: str) -> Any:
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            return None
        found = client.search_runs([exp.experiment_id], filter_string=f"tags.`tune.trial_id` = '{trial_id}'",
                                   max_results=5)
        return found[0] if found else None

    def _safely(self, what: str, fn: Any) -> None:
        from aircolor.tracking.sender import is_transient, short_http

        if self.pending:  # the server was down: keep the order, send everything at the end
            self.pending.append((what, fn))
            return
        try:
            with short_http.apply(10, 0):
                fn()
        except Exception as exc:  # MLflow trouble must never stop a sweep; say so instead
            if is_transient(exc):
                self.pending.append((what, fn))
                print(f"aircolor sweep: the tracking server does not answer ({exc.__class__.__name__}); the sweep's "
                      "own records wait and are sent when the sweep ends", flush=True)
                return
            warnings.warn(f"aircolor sweep: could not record {what} in MLflow ({exc.__class__.__name__}: {exc})",
                          stacklevel=2)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "pending": []}  # records are closures over clients: never checkpointed

    def send_pending(self, wait_s: float = 60.0) -> int:
        """Send the records that waited for the server, in order, trying for up to ``wait_s``; returns how many
        could not be sent (each is named in a warning)."""
        from aircolor.tracking.sender import is_transient, short_http

        deadline = time.monotonic() + wait_s
        lost = 0
        while self.pending:
            what, fn = self.pending[0]
            try:
                with short_http.apply(10, 0):
                    fn()
            except Exception as exc:
                if is_transient(exc) and time.monotonic() < deadline:
                    time.sleep(1.0)
                    continue
                lost += 1
                warnings.warn(f"aircolor sweep: could not record {what} in MLflow ({exc.__class__.__name__}: {exc})",
                              stacklevel=2)
            self.pending.pop(0)
        return lost

    # ------------------------------------------------------------------ Tune hooks
    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric_key)
        if value is None or not math.isfinite(float(value)) or self.parent_run_id is None:
            return
        value = float(value)
        better = self.best is None or (value < self.best[0] if self.mode == "min" else value > self.best[0])
        self.results += 1
        if not better:
            return
        self.best = (value, trial.trial_id)
        name = self._name(trial)

        stamp, step = int(time.time() * 1000), self.results  # as of now, even if it is sent later

        def record() -> None:
            client = self._client()
            client.log_metric(self.parent_run_id, f"best.{self.metric_key}", value, timestamp=stamp, step=step)
            client.set_tag(self.parent_run_id, "best_trial", trial.trial_id)
            client.set_tag(self.parent_run_id, "best_trial_name", name)

        self._safely("the best trial", record)

    def _create_child(self, client: Any, trial: Any) -> Any:
        """A child run for a trial that failed before its training run could start (so it is not lost)."""
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None or self.parent_run_id is None:
            return None
        tags = {"mlflow.parentRunId": self.parent_run_id, "tune.trial_id": trial.trial_id,
                "mlflow.runName": self._name(trial), "trial_name": self._name(trial)}
        return client.create_run(exp.experiment_id, run_name=self._name(trial), tags=tags)

    def _close(self, trial: Any, status: str, tags: dict[str, str], *, force: bool = False) -> None:
        """Tag the trial's child run and set its final status (``force``: even if the trial already ended it,
        e.g. a trial that ASHA stopped saw the stop as an exception and closed its own run as FAILED)."""
        def record() -> None:
            client = self._client()
            child = self._child(client, trial.trial_id)
            if child is None and status == "FAILED":
                child = self._create_child(client, trial)
            if child is None:
                return
            for key, value in tags.items():
                client.set_tag(child.info.run_id, key, value)
            if force and "failure_reason" in child.data.tags:
                client.delete_tag(child.info.run_id, "failure_reason")
            if child.info.status == "RUNNING" or status == "FAILED" or force:
                client.set_terminated(child.info.run_id, status=status)

        self._safely(f"the end of trial {trial.trial_id}", record)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        total = last.get("epochs_total")
        epoch = int(last.get("epoch", 0))
        # A trial that ASHA stops while it runs its last epoch finishes that epoch before it sees the stop, and its
        # last report is dropped: the run's own `epoch` metric says how far it really got.
        try:
            child = self._child(self._client(), trial.trial_id)
            logged = child.data.metrics.get("epoch") if child is not None else None
            epoch = max(epoch, int(logged)) if logged is not None else epoch
        except Exception:
            pass
        stopped = bool(total) and epoch < int(total)
        self._close(trial, "KILLED" if stopped else "FINISHED",
                    {"tune.status": "TERMINATED", "stopped_early": str(stopped).lower(),
                     "tune.last_epoch": str(epoch)}, force=stopped)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = ""
        try:
            err = trial.get_error()
            error = str(err) if err is not None else ""
        except Exception:
            error = ""
        if not error:
            try:
                error = Path(trial.error_file).read_text() if trial.error_file else ""
            except Exception:
                error = ""
        error = error.strip()[-4000:]
        self._close(trial, "FAILED", {"tune.status": "ERROR", "stopped_early": "false",
                                      "error": error or "see the trial's error.txt in the sweep folder"})
