"""The one object the training engine talks to about MLflow: a run that keeps working while the server is down.

Every call is sent at once when the server answers. When it does not (connection refused, timeout, 5xx), the
record (params, tags, metric points with their original step and timestamp, artifacts as file copies) is kept in
memory and appended to a durable spool file (see :mod:`aircolor.tracking.spool`), training goes on, and later calls
retry with a growing pause (``retry_min_s`` doubling up to ``retry_max_s``) so a dead server costs training almost
nothing. When the server is back, the buffer is sent in order and its spooled records are deleted. If the run could
not even be created, it is created by the first successful flush. :meth:`Tracker.end` tries a final flush; what is
left stays in the spool and ``aircolor tracking replay SPOOL_DIR`` sends it later.

Example::

    with Tracker(uri, "aircolor", "pix2pix-ngf32", spool_dir=out / "mlflow-spool") as tracker:
        tracker.log_params(params_from_config(cfg))
        tracker.set_tags(run_tags(cfg))
        for epoch in ...:
            tracker.log_metrics({"loss_G": 0.7, "loss_D": 0.3}, step=epoch)
        tracker.log_artifact(out / "samples.png", "samples")
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from aircolor.errors import UsageError
from aircolor.tracking.sender import (RunSender, artifact_location_for, error_line, is_run_missing, is_transient,
                                      refused_credentials, short_http)
from aircolor.tracking.spool import Record, SpoolWriter
from aircolor.tracking.uri import local_artifact_root, redact_uri, sqlite_path, validate_tracking_uri

log = logging.getLogger(__name__)
STATUSES = ("FINISHED", "FAILED", "KILLED")
METRICS_PER_FLUSH = 1000  # MLflow's limit of metric values per log_batch request


def now_ms() -> int:
    return int(time.time() * 1000)


def _context_tags(extra: dict[str, str]) -> dict[str, str]:
    """MLflow's usual source/user tags (what the fluent API adds), plus ``extra``, captured when the run starts."""
    try:
        from mlflow.tracking.context.registry import resolve_tags

        return {k: str(v) for k, v in resolve_tags(dict(extra)).items()}
    except Exception:  # context providers are best effort; a run without them is still a run
        return dict(extra)


class Tracker:
    """One MLflow run, logged through an :class:`mlflow.MlflowClient`; buffered and spooled while the server is down.

    ``run_id``: resume into this existing run (set RUNNING again, metrics appended) instead of creating a new one,
    e.g. when training resumes from a checkpoint that stored :attr:`run_id`. ``parent_run_id``: nest the new run
    (sweep trials under the sweep's run). ``spool_dir``: where records that could not be sent are kept; one file per
    tracker, so trackers may share a folder. ``http_timeout_s``/``http_retries``: MLflow's own per-request timeout
    and retries while this tracker calls it (MLflow's defaults, 120 s and 7 retries with backoff, would stall
    training for minutes). ``artifact_timeout_s`` is longer: a server that proxies uploads to object storage only
    answers once a large checkpoint is stored, and an upload that keeps timing out would never get through.
    """

    def __init__(self, tracking_uri: str, experiment: str, run_name: str | None = None, *,
                 spool_dir: str | os.PathLike[str], parent_run_id: str | None = None, run_id: str | None = None,
                 tags: dict[str, Any] | None = None, http_timeout_s: int = 10, http_retries: int = 0,
                 artifact_timeout_s: int = 60, retry_min_s: float = 1.0, retry_max_s: float = 30.0) -> None:
        self.tracking_uri = validate_tracking_uri(tracking_uri)
        self.experiment = experiment
        self.run_name = run_name
        self.spool_dir = Path(spool_dir).resolve()
        self.key = uuid.uuid4().hex
        self.http_timeout_s = http_timeout_s
        self.http_retries = http_retries
        self.artifact_timeout_s = artifact_timeout_s
        self.retry_min_s = retry_min_s
        self.retry_max_s = max(retry_max_s, retry_min_s)
        self._resume_id = run_id
        self._tags = {k: str(v) for k, v in (tags or {}).items()}
        root = local_artifact_root(self.tracking_uri)
        self._header: Record = {
            "key": self.key, "tracking_uri": self.tracking_uri, "experiment": experiment,
            "artifact_location": artifact_location_for(root, experiment), "run_name": run_name,
            "parent_run_id": parent_run_id, "run_id": run_id, "host": socket.gethostname(), "created": now_ms(),
        }
        self._lock = threading.RLock()
        self._sender: RunSender | None = None
        self._pending: list[Record] = []
        self._head_uncertain = False  # the first pending record may have reached the server already
        self._seq = 0
        self._writer: SpoolWriter | None = None
        self._spool_broken = False
        self._retry_at = 0.0
        self._delay = retry_min_s
        self._down_since: float | None = None
        self._started = False
        self._ended = False
        self._start_uncertain = False  # a 'start' failed in transit: the server may have made the run twice

    # ----------------------------------------------------------------------------------------- state
    @property
    def run_id(self) -> str | None:
        """The MLflow run id; None while the run could not be created yet (server down since the start)."""
        return self._sender.run_id if self._sender is not None else self._resume_id

    @property
    def pending(self) -> int:
        """Records waiting for the server (also in the spool file)."""
        return len(self._pending)

    @property
    def spool_path(self) -> Path | None:
        """The spool file while there is one (records are waiting), else None."""
        return self._writer.path if self._writer is not None else None

    # ----------------------------------------------------------------------------------------- lifecycle
    def start(self) -> Tracker:
        """Create the run (or reopen ``run_id``); if the server is down, it is created by the first successful flush."""
        with self._lock:
            if self._started:
                return self
            from mlflow import MlflowClient

            db = sqlite_path(self.tracking_uri)
            if db is not None:  # a local store: SQLite needs the folder, and artifacts go next to it
                db.parent.mkdir(parents=True, exist_ok=True)
                local_artifact_root(self.tracking_uri).mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
            self._sender = RunSender(MlflowClient(self.tracking_uri), self._header, self._resume_id, self.spool_dir)
            self._started = True
            try:
                if self._resume_id is not None:
                    self._submit({"kind": "reopen", "run_id": self._resume_id})
                else:
                    self._submit({"kind": "start", "start_time": now_ms(), "tags": _context_tags(self._tags)})
            except Exception as exc:
                refused = refused_credentials(exc, self.tracking_uri)
                if refused is None:
                    raise
                raise UsageError(refused) from exc
            return self

    def end(self, status: str = "FINISHED", wait_s: float = 0.0) -> None:
        """Mark the run ``status`` and send what is buffered, trying for up to ``wait_s`` seconds.

        What still cannot be sent stays in the spool, and one warning says how to send it later.
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        with self._lock:
            if self._ended or not self._started:
                self._ended = True
                return
            try:
                self._submit({"kind": "end", "status": status, "end_time": now_ms()}, force=True)
                deadline = time.monotonic() + wait_s
                while self._pending and time.monotonic() < deadline:
                    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                    self._flush(force=True)
                if self._start_uncertain and not self._pending and self._sender is not None:
                    self._drop_duplicates()
            finally:
                self._ended = True
                if self._pending:
                    where = self._writer.path if self._writer is not None else "memory only (the spool failed)"
                    log.warning("aircolor: %d tracking record(s) of run %s could not be sent to %s; they are kept in "
                                "%s; send them later with: aircolor tracking replay %s", len(self._pending),
                                self.run_id or self.run_name or self.key, redact_uri(self.tracking_uri), where,
                                self.spool_dir)
                if self._writer is not None:
                    self._writer.close()  # releases the lock: the spool now belongs to 'replay'

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.end("FINISHED")
        else:
            self.end("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")

    # ----------------------------------------------------------------------------------------- logging
    def log_params(self, params: dict[str, Any]) -> None:
        """Log params (values become strings; MLflow refuses to change a logged param's value)."""
        if params:
            self._submit({"kind": "params", "params": {str(k): str(v) for k, v in params.items()}})

    def set_tags(self, tags: dict[str, Any]) -> None:
        if tags:
            self._submit({"kind": "tags", "tags": {str(k): str(v) for k, v in tags.items()}})

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log metric values at ``step``, timestamped now (the timestamp travels with them through the spool)."""
        if not metrics:
            return
        stamp = now_ms()
        points = [{"key": str(k), "value": float(v), "timestamp": stamp, "step": int(step)} for k, v in metrics.items()]
        self._submit({"kind": "metrics", "metrics": points})

    def log_artifact(self, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Upload a file or folder; if the server is down, a copy is spooled, so the original may change afterwards."""
        path = Path(local_path).resolve()
        if not path.exists():
            raise FileNotFoundError(f"artifact {path} does not exist")
        self._submit({"kind": "artifact", "source": str(path), "artifact_path": artifact_path})

    def log_text(self, text: str, artifact_file: str) -> None:
        """Log ``text`` as the artifact ``artifact_file`` (e.g. ``"config.yaml"`` or ``"eval/report.txt"``)."""
        self._log_bytes(text.encode("utf-8"), artifact_file)

    def log_dict(self, dictionary: dict[str, Any], artifact_file: str) -> None:
        """Log a dict as YAML (``.yaml``/``.yml``) or JSON (anything else), like ``mlflow.log_dict``."""
        if artifact_file.endswith((".yaml", ".yml")):
            text = yaml.safe_dump(dictionary, sort_keys=False, default_flow_style=False)
        else:
            text = json.dumps(dictionary, indent=2)
        self.log_text(text, artifact_file)

    def _log_bytes(self, data: bytes, artifact_file: str) -> None:
        parent, _, name = artifact_file.strip("/").rpartition("/")
        with tempfile.TemporaryDirectory(prefix="aircolor-artifact-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            self.log_artifact(path, parent or None)

    def flush(self) -> bool:
        """Try to send everything buffered now (ignoring the retry pause); True when nothing is left.

        After :meth:`end` the spool belongs to ``aircolor tracking replay``, and this only reports.
        """
        with self._lock:
            if self._ended:
                return not self._pending
            return self._flush(force=True)

    # ----------------------------------------------------------------------------------------- internals
    def _submit(self, rec: Record, force: bool = False) -> None:
        """Send ``rec`` now if nothing is waiting before it, else queue it behind the others and maybe flush."""
        with self._lock:
            if not self._started:
                raise RuntimeError("Tracker.start() (or 'with Tracker(...)') must come before logging")
            if self._ended:
                raise RuntimeError("this Tracker has ended; start a new one (run_id=...) to log more")
            self._seq += 1
            rec["seq"] = self._seq
            if not self._pending and (force or time.monotonic() >= self._retry_at):
                try:
                    self._send(rec, check_existing=False)
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    self._on_failure(exc)
                    self._buffer(rec)
                    self._head_uncertain = True
                    self._start_uncertain |= rec["kind"] == "start"
                    return
                self._on_success()
                return
            self._buffer(rec)
            self._flush(force=force)

    def _send(self, rec: Record, check_existing: bool) -> None:
        assert self._sender is not None
        timeout = self.artifact_timeout_s if rec["kind"] == "artifact" else self.http_timeout_s
        with short_http.apply(timeout, self.http_retries):
            self._sender.send(rec, check_existing=check_existing)

    def _buffer(self, rec: Record) -> None:
        """Keep ``rec`` in memory and in the spool (artifacts are copied in first)."""
        writer = self._spool_writer()
        if writer is not None and rec["kind"] == "artifact" and rec.get("file") is None:
            try:
                rec["file"] = writer.copy_in(rec["seq"], Path(rec["source"]))
            except OSError as exc:  # this file only (vanished, too big for the disk): upload the original later
                log.warning("aircolor: cannot copy artifact %s into the tracking spool (%s); it will be uploaded "
                            "from its original path", rec["source"], error_line(exc))
        if writer is not None:
            try:
                writer.append(rec)
            except OSError as exc:
                self._spool_failed(exc)
        self._pending.append(rec)

    def _spool_writer(self) -> SpoolWriter | None:
        if self._writer is None and not self._spool_broken:
            try:
                self._writer = SpoolWriter(self.spool_dir, self.key, {**self._header, "run_id": self.run_id})
            except OSError as exc:
                self._spool_failed(exc)
        return self._writer

    def _spool_failed(self, exc: OSError) -> None:
        if not self._spool_broken:
            log.warning("aircolor: cannot write the tracking spool in %s (%s); records wait in memory only",
                        self.spool_dir, error_line(exc))
        self._spool_broken = True

    def _flush(self, force: bool) -> bool:
        """Send pending records in order until one fails; acknowledge what was sent. True when none is left."""
        if not self._pending:
            return True
        if not force and time.monotonic() < self._retry_at:
            return False
        done: list[Record] = []
        failed = False
        while self._pending:
            rec, group = self._next_group()
            try:
                self._send(rec, check_existing=self._head_uncertain)
            except Exception as exc:
                if is_transient(exc) or is_run_missing(exc) or rec["kind"] in ("start", "reopen"):
                    # The run must exist before anything else can go; a refusal here (an experiment deleted while
                    # the server was down) is retried like an outage and, at worst, left to 'replay' to report.
                    self._head_uncertain = True
                    self._start_uncertain |= rec["kind"] == "start"
                    self._on_failure(exc)
                    failed = True
                    break
                # Refused for good (e.g. a param whose value changed): sending it again cannot help, and keeping
                # it would block every record behind it. Say so, and go on with the rest.
                log.warning("aircolor: MLflow refused a buffered %s record of run %s, dropping it: %s", rec["kind"],
                            self.run_id, error_line(exc))
            del self._pending[:group]
            self._head_uncertain = False
            done.append(rec)
        if done:
            self._acknowledge(done)
        if not failed:
            self._on_success()
        return not self._pending

    def _next_group(self) -> tuple[Record, int]:
        """The next record to send and how many pending records it stands for: consecutive metrics records go as
        one batch of up to 1000 points, so a backlog drains in a few requests instead of one per step."""
        head = self._pending[0]
        if head["kind"] != "metrics":
            return head, 1
        points = list(head["metrics"])
        n = 1
        while (n < len(self._pending) and self._pending[n]["kind"] == "metrics"
               and len(points) + len(self._pending[n]["metrics"]) <= METRICS_PER_FLUSH):
            points += self._pending[n]["metrics"]
            n += 1
        if n == 1:
            return head, 1
        return {"kind": "metrics", "metrics": points, "seq": self._pending[n - 1]["seq"]}, n

    def _acknowledge(self, done: list[Record]) -> None:
        """Drop the spool when it is empty, else mark how far it has been sent (and delete sent artifact copies)."""
        writer = self._writer
        if writer is None:
            return
        if not self._pending:
            writer.remove()
            self._writer = None
            return
        try:
            if any(r["kind"] == "start" for r in done):
                writer.append({"kind": "run_id", "run_id": self.run_id})
            writer.append({"kind": "ack", "upto": done[-1]["seq"]})
            writer.drop_files(done)
        except OSError as exc:
            self._spool_failed(exc)

    def _drop_duplicates(self) -> None:
        assert self._sender is not None
        try:
            with short_http.apply(self.http_timeout_s, self.http_retries):
                dropped = self._sender.drop_duplicates()
        except Exception as exc:  # cosmetic: every record is in the run that counts
            log.warning("aircolor: could not look for duplicate runs of %s: %s", self.run_id, error_line(exc))
            return
        if dropped:
            log.info("aircolor: deleted %d empty duplicate(s) of run %s left by a lost answer", dropped, self.run_id)

    def _on_failure(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            log.warning("aircolor: MLflow tracking at %s is unavailable (%s); training goes on, records wait in %s "
                        "and are sent when it is back", redact_uri(self.tracking_uri), error_line(exc), self.spool_dir)
        self._retry_at = now + self._delay
        self._delay = min(self._delay * 2, self.retry_max_s)

    def _on_success(self) -> None:
        if self._down_since is not None:
            log.info("aircolor: MLflow tracking at %s is reachable again after %.0f s; buffered records sent",
                     redact_uri(self.tracking_uri), time.monotonic() - self._down_since)
        self._down_since = None
        self._retry_at = 0.0
        self._delay = self.retry_min_s
