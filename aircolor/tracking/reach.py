"""Fail fast on a tracking store that is not there: read-only clients (report, promote, colorize of an MLflow
model, sweep status) call :func:`open_for_reading` before they ask MLflow anything.

* A local SQLite file or file-store folder must already exist: a read-only command never creates a store (MLflow
  would create an empty ``mlruns.db`` on first contact).
* An HTTP server must answer within the tracking timeout (``$AIRCOLOR_TRACKING_TIMEOUT`` seconds, default 15,
  ``aircolor --tracking-timeout``); MLflow's own request timeout and retries are bounded to match, so a server that
  goes away mid-command fails within about the same time instead of MLflow's default of minutes of retries.
* A database server (PostgreSQL, MySQL, ...) must accept a TCP connection within the timeout.
"""

from __future__ import annotations

import math
import os
import socket
import urllib.parse

from aircolor.errors import UsageError
from aircolor.tracking.uri import redact_uri, sqlite_path

TIMEOUT_ENV = "AIRCOLOR_TRACKING_TIMEOUT"
DEFAULT_TIMEOUT_S = 15.0
_DB_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


def tracking_timeout() -> float:
    """Seconds a read-only client waits for a tracking store: ``$AIRCOLOR_TRACKING_TIMEOUT`` or 15."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"${TIMEOUT_ENV}={raw!r} is not a positive number of seconds; e.g. 15, or unset it")
    return value


def bound_mlflow_requests(timeout_s: float) -> None:
    """Cap MLflow's HTTP request timeout and retries (unless the user set them): at most ~``timeout_s`` per call."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, math.ceil(timeout_s))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def open_for_reading(uri: str, *, what: str = "tracking store") -> str:
    """Check that the store at ``uri`` exists and answers; return ``uri``. Raise :class:`UsageError` otherwise."""
    timeout = tracking_timeout()
    shown = redact_uri(uri)
    db = sqlite_path(uri)
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.lower().split("+", 1)[0]
    if db is not None:
        if not db.is_file():
            raise UsageError(f"no {what} at {db} (nothing has been tracked there); pass --tracking-uri, set "
                             f"$MLFLOW_TRACKING_URI, or run from the folder that holds {db.name}")
    elif scheme == "file":
        folder = urllib.parse.unquote(parsed.path)
        if not os.path.isdir(folder):
            raise UsageError(f"no {what} at {folder} (folder not found); pass --tracking-uri or set "
                             f"$MLFLOW_TRACKING_URI")
    elif scheme in ("http", "https"):
        bound_mlflow_requests(timeout)
        _probe_http(uri, shown, timeout, what)
    elif scheme in _DB_PORTS and parsed.hostname:
        _probe_tcp(parsed.hostname, parsed.port or _DB_PORTS[scheme], shown, timeout, what)
    return uri


def _probe_http(uri: str, shown: str, timeout: float, what: str) -> None:
    import requests

    try:  # any HTTP answer (even 401 or 404) means a server is there; MLflow reports what it says later
        requests.get(uri.rstrip("/") + "/health", timeout=(min(timeout, 10.0), timeout))
    except requests.exceptions.RequestException as exc:
        raise UsageError(f"cannot reach the {what} at {shown} ({_reason(exc)}, waited {timeout:g} s); start the "
                         f"server (mlflow server ...), check --tracking-uri, or wait longer with "
                         f"--tracking-timeout SECONDS") from exc


def _probe_tcp(host: str, port: int, shown: str, timeout: float, what: str) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise UsageError(f"cannot reach the {what} at {shown} ({_reason(exc)}, waited {timeout:g} s); check that "
                         f"the database server runs and --tracking-uri, or wait longer with "
                         f"--tracking-timeout SECONDS") from exc


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for needle, reason in (("refused", "connection refused"), ("timed out", "timed out"),
                           ("Name or service not known", "unknown host"), ("nodename nor servname", "unknown host"),
                           ("Temporary failure in name resolution", "unknown host")):
        if needle.lower() in text.lower():
            return reason
    return type(exc).__name__
