"""Sending tracking records to MLflow, shared by the live :class:`~aircolor.tracking.Tracker` and ``replay``.

A record (see :mod:`aircolor.tracking.spool`) is sent through an :class:`mlflow.MlflowClient`, never through
MLflow's fluent global state, so several runs can be logged from one process. Errors are sorted into *transient*
(server down, timeouts, 5xx, 429, a locked SQLite file: keep the record and try again later) and everything else
(a bad key, a changed param value: a bug the caller should see).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aircolor.errors import UsageError
from aircolor.tracking.spool import Record

if TYPE_CHECKING:
    from mlflow import MlflowClient

MAX_PARAMS_TAGS_PER_BATCH = 100  # mlflow.utils.validation limits of log_batch
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
TRACKER_KEY_TAG = "aircolor.tracker_key"
PARENT_TAG = "mlflow.parentRunId"
_TRANSIENT_TEXT = ("failed with exception", "timeout exception", "database is locked", "Max retries exceeded",
                   "Connection refused", "Connection aborted", "RemoteDisconnected",
                   # An overloaded server runs out of database connections and says so as a 400 BAD_REQUEST
                   # (SQLAlchemy's pool timeout): measured with 64 writers on SQLite (benchmarks/cases_tracking.py).
                   "QueuePool limit")


# --------------------------------------------------------------------------------------------- HTTP settings
class _HttpSettings:
    """A scoped override of MLflow's HTTP environment variables (nested and concurrent calls are counted).

    MLflow 3 reads ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` (default 7, with exponential backoff: minutes),
    ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``, ``MLFLOW_HTTP_REQUEST_BACKOFF_JITTER`` and ``MLFLOW_HTTP_REQUEST_TIMEOUT``
    (default 120 s) from ``os.environ`` on every request and has no per-client setting. A tracker must not stall
    training for minutes while the server is down, so its calls run with short values; the previous values come
    back when the last concurrent call leaves. Each call sets its own values (overlapping calls from other threads
    may run with the latest caller's values), and other MLflow calls made meanwhile see them too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: dict[str, str | None] = {}

    @contextlib.contextmanager
    def apply(self, timeout_s: int, retries: int) -> Iterator[None]:
        values = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(timeout_s))),
                  "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(max(0, int(retries))),
                  "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0"}
        with self._lock:
            if self._depth == 0:
                self._saved = {k: os.environ.get(k) for k in values}
            os.environ.update(values)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    for key, old in self._saved.items():
                        if old is None:
                            os.environ.pop(key, None)
                        else:
                            os.environ[key] = old


short_http = _HttpSettings()


# --------------------------------------------------------------------------------------------- errors
def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status
    if type(exc).__name__ == "RestException" and hasattr(exc, "get_http_status_code"):
        return int(exc.get_http_status_code())
    match = re.search(r"failed with error code (\d{3}) != 200", str(exc))
    return int(match.group(1)) if match else None


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` says the server is unreachable or busy (try again later), not that the request is wrong."""
    import requests

    for err in _chain(exc):
        if isinstance(err, (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError,
                            ConnectionError, TimeoutError)):
            return True
        if any(text in str(err) for text in _TRANSIENT_TEXT):  # before the status: some come as a 400
            return True
        status = _status_of(err)
        if status is not None:
            return status >= 500 or status in (408, 429)
    return False


def refused_credentials(exc: BaseException, uri: str) -> str | None:
    """One line saying the server refused who we are (HTTP 401/403), or None for any other error."""
    from aircolor.tracking.uri import redact_uri

    status = next((s for s in map(_status_of, _chain(exc)) if s is not None), None)
    if status not in (401, 403):
        return None
    who = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if status == 401:
        what = (f"refused the credentials of user {who!r}" if who else "asks for credentials and none are set")
        return (f"MLflow at {redact_uri(uri)} {what}: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                "(the tracking server's basic-auth account) and try again")
    body = re.search(r"Response body: '?([^'\n]{0,160})", str(exc))
    said = f" ({body.group(1).strip()})" if body else ""
    return (f"MLflow at {redact_uri(uri)} refused the request with HTTP 403{said}: if it runs basic auth, give user "
            f"{who or 'MLFLOW_TRACKING_USERNAME'} the permission; if it blocks this Host header, start it with "
            "--allowed-hosts <its address>")


def is_run_missing(exc: BaseException) -> bool:
    """True when the server says the run does not exist (deleted, or another server than the one it lives on).

    Records for such a run are kept rather than dropped: they belong to a run that may come back or live elsewhere.
    """
    return any(getattr(err, "error_code", None) == "RESOURCE_DOES_NOT_EXIST" for err in _chain(exc))


def error_line(exc: BaseException) -> str:
    """The first line of an error, shortened, for one-line warnings."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------------------------- values
def clip(value: str, limit: int) -> str:
    """MLflow rejects longer param/tag values; keep the head and say that it was cut."""
    if len(value) <= limit:
        return value
    marker = f"...[cut from {len(value)} chars]"
    return value[: limit - len(marker)] + marker


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _same_value(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


# --------------------------------------------------------------------------------------------- experiments
def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, created (with ``artifact_location``) if missing; safe against racing creators."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            # MLflow 3's UI opens GenAI experiments on a traces overview; ours are model training: open the runs.
            return client.create_experiment(name, artifact_location=artifact_location,
                                            tags={"mlflow.experimentKind": "custom_model_development"})
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise UsageError(f"MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore "
                         f"--experiment-id {exp.experiment_id}) or set tracking.experiment to another name")
    return exp.experiment_id


def artifact_location_for(root: Path | None, experiment: str) -> str | None:
    """``file:///<root>/<experiment>`` for a local store (one folder per experiment), else None (the server's)."""
    if root is None:
        return None
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("._") or "experiment"
    return (root.resolve() / slug).as_uri()


# --------------------------------------------------------------------------------------------- sending
class RunSender:
    """Sends one run's records in order. ``header`` is a spool header (experiment, run name, tracker key, ...)."""

    def __init__(self, client: MlflowClient, header: Record, run_id: str | None, spool_dir: Path | None) -> None:
        self.client = client
        self.header = header
        self.run_id = run_id
        self.spool_dir = spool_dir

    def send(self, rec: Record, *, check_existing: bool = False) -> int:
        """Send one record; return how many items (params, points, files, ...) went out.

        ``check_existing``: the record may have reached the server before (a timeout, a crash before its
        acknowledgement): look for it there first, so metric points and runs are not created twice.
        """
        kind = rec["kind"]
        if kind == "start":
            return self._start(rec, check_existing)
        if self.run_id is None:
            raise RuntimeError(f"cannot send a {kind!r} record before the run exists")
        if kind == "reopen":
            self._reopen(rec["run_id"])
        elif kind == "params":
            return self._params(rec["params"])
        elif kind == "tags":
            return self._tags(rec["tags"])
        elif kind == "metrics":
            return self._metrics(rec["metrics"], check_existing)
        elif kind == "artifact":
            self._artifact(rec)
        elif kind == "end":
            self.client.set_terminated(self.run_id, status=rec["status"], end_time=rec["end_time"])
        else:
            raise ValueError(f"unknown tracking record kind {kind!r}")
        return 1

    def _start(self, rec: Record, check_existing: bool) -> int:
        header = self.header
        exp_id = ensure_experiment(self.client, header["experiment"], header.get("artifact_location"))
        if check_existing:
            found = self.client.search_runs([exp_id], filter_string=f"tags.`{TRACKER_KEY_TAG}` = '{header['key']}'",
                                            max_results=1)
            if found:
                self.run_id = found[0].info.run_id
                return 0
        tags = {k: clip(str(v), MAX_TAG_VAL_LENGTH) for k, v in rec.get("tags", {}).items()}
        tags[TRACKER_KEY_TAG] = header["key"]
        if header.get("parent_run_id"):
            tags[PARENT_TAG] = header["parent_run_id"]
        run = self.client.create_run(exp_id, start_time=rec["start_time"], tags=tags, run_name=header.get("run_name"))
        self.run_id = run.info.run_id
        return 1

    def drop_duplicates(self) -> int:
        """Delete the other runs that carry this sender's tracker key; returns how many.

        A ``start`` whose answer was lost (a timeout while an overloaded or dying server still created the run) is
        looked up by its tracker key before it is sent again, but a request still queued on the server can commit
        after that lookup: two runs then carry the key. Only the one this sender logs to has records; the others
        are empty shells, deleted (MLflow's soft delete) once the run's records are all in.
        """
        if self.run_id is None:
            return 0
        exp_id = ensure_experiment(self.client, self.header["experiment"], self.header.get("artifact_location"))
        found = self.client.search_runs([exp_id], filter_string=f"tags.`{TRACKER_KEY_TAG}` = '{self.header['key']}'",
                                        max_results=50)
        extra = [r.info.run_id for r in found if r.info.run_id != self.run_id]
        for run_id in extra:
            self.client.delete_run(run_id)
        return len(extra)

    def _reopen(self, run_id: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise UsageError(f"MLflow run {run_id} to resume does not exist at {self.client.tracking_uri}; "
                                 "use the tracking URI it was logged to, or start a new run") from None
            raise
        self.client.update_run(run_id, status="RUNNING")

    def _params(self, params: dict[str, str]) -> int:
        from mlflow.entities import Param

        items = [Param(k, clip(str(v), MAX_PARAM_VAL_LENGTH)) for k, v in params.items()]
        for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, params=chunk, synchronous=True)
        return len(items)

    def _tags(self, tags: dict[str, str]) -> int:
        from mlflow.entities import RunTag

        items = [RunTag(k, clip(str(v), MAX_TAG_VAL_LENGTH)) for k, v in tags.items()]
        for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, tags=chunk, synchronous=True)
        return len(items)

    def _metrics(self, points: list[Record], check_existing: bool) -> int:
        from mlflow.entities import Metric

        if check_existing:
            points = self._not_on_server(points)
        items = [Metric(p["key"], float(p["value"]), int(p["timestamp"]), int(p["step"])) for p in points]
        for chunk in _chunks(items, MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=chunk, synchronous=True)
        return len(items)

    def _not_on_server(self, points: list[Record]) -> list[Record]:
        """The points of ``points`` that the server does not have yet (same key, step, timestamp and value)."""
        history: dict[str, list[Any]] = {}
        out = []
        for p in points:
            if p["key"] not in history:
                history[p["key"]] = self.client.get_metric_history(self.run_id, p["key"])
            if not any(m.step == p["step"] and m.timestamp == p["timestamp"] and _same_value(m.value, float(p["value"]))
                       for m in history[p["key"]]):
                out.append(p)
        return out

    def _artifact(self, rec: Record) -> None:
        if rec.get("file") is not None:
            if self.spool_dir is None:
                raise RuntimeError("a spooled artifact needs the spool folder")
            local = self.spool_dir / rec["file"]
        else:
            local = Path(rec["source"])
        self.client.log_artifact(self.run_id, str(local), rec.get("artifact_path"))
