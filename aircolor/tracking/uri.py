"""Which MLflow tracking store a run talks to, and where a local store keeps its artifacts.

Precedence: ``--tracking-uri`` > config ``tracking.tracking_uri`` > ``$MLFLOW_TRACKING_URI`` > a local SQLite store
``sqlite:///<cwd>/mlruns.db`` whose artifacts go to ``<cwd>/mlartifacts`` (the folder ``mlflow ui
--backend-store-uri sqlite:///mlruns.db`` serves by default). Relative local paths are made absolute here, because
Ray workers and Tune trials run in other working directories than the driver that resolved the URI.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from aircolor.errors import UsageError

DEFAULT_DB_NAME = "mlruns.db"
DEFAULT_ARTIFACT_DIR = "mlartifacts"
# Schemes MLflow 3 ships stores for; plugins may register more (checked lazily, see _plugin_schemes).
KNOWN_SCHEMES = frozenset({"http", "https", "sqlite", "postgresql", "mysql", "mssql", "file", "databricks",
                           "databricks-uc", "uc"})
_BARE_NAMES = frozenset({"databricks", "databricks-uc", "uc"})


def default_tracking_uri(cwd: Path | None = None) -> str:
    """``sqlite:////abs/cwd/mlruns.db``: a local store next to the working directory."""
    return sqlite_uri(Path(cwd or Path.cwd()).resolve() / DEFAULT_DB_NAME)


def sqlite_uri(db_path: Path) -> str:
    """SQLAlchemy's form of an absolute SQLite path: three slashes, then the absolute path (so four in all)."""
    return "sqlite:///" + str(Path(db_path).resolve())


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for other stores (and in-memory SQLite)."""
    if not uri.lower().startswith("sqlite:///"):
        return None
    raw = urllib.parse.unquote(uri[len("sqlite:///"):].split("?", 1)[0])
    if not raw or raw == ":memory:":
        return None
    return Path(raw)


def local_artifact_root(tracking_uri: str) -> Path | None:
    """``<db folder>/mlartifacts`` for a local SQLite store; None where the server decides (http, databases).

    Without it MLflow's SQL store would put artifacts in ``./mlruns`` relative to whichever process created the
    experiment, which is not where ``mlflow ui`` looks and differs between Ray workers.
    """
    db = sqlite_path(tracking_uri)
    return db.parent / DEFAULT_ARTIFACT_DIR if db is not None else None


def _scheme(uri: str) -> str:
    """The store type of a URI: ``postgresql+psycopg2://`` is ``postgresql``; a bare path has scheme ``""``."""
    if uri in _BARE_NAMES:
        return uri
    return urllib.parse.urlparse(uri).scheme.lower().split("+", 1)[0]


def _plugin_schemes() -> set[str]:
    """Schemes added by MLflow tracking-store plugins (imports MLflow, so only asked for unknown schemes)."""
    try:
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry

        return set(_tracking_store_registry._registry)
    except Exception:  # a private API: if it moves, fall back to the schemes we know
        return set()


def validate_tracking_uri(uri: str, source: str = "tracking URI") -> str:
    """Check ``uri`` and return it with local paths made absolute; raise :class:`UsageError` naming ``source``."""
    uri = uri.strip()
    scheme = _scheme(uri)
    hint = "use e.g. http://HOST:5000 or sqlite:////abs/path/mlruns.db"
    if scheme == "":
        return Path(uri).expanduser().resolve().as_uri()  # a plain folder: MLflow's file store
    if scheme not in KNOWN_SCHEMES and scheme not in _plugin_schemes():
        raise UsageError(f"{source}: {uri!r} has an unknown scheme {scheme + ':'!r}; {hint}")
    parsed = urllib.parse.urlparse(uri)
    if scheme in ("http", "https") and not parsed.hostname:
        raise UsageError(f"{source}: {uri!r} names no host; {hint}")
    if scheme == "sqlite":
        if not uri.lower().startswith("sqlite:///") or sqlite_path(uri) is None:
            raise UsageError(f"{source}: {uri!r} names no database file; {hint}")
        return sqlite_uri(Path(os.path.expanduser(str(sqlite_path(uri)))))
    if scheme == "file":
        return Path(urllib.parse.unquote(parsed.path) or ".").expanduser().resolve().as_uri()
    return uri


def resolve_tracking_uri(config_uri: str | None, cli_uri: str | None = None) -> str:
    """The tracking URI of a run: CLI flag, else config, else ``$MLFLOW_TRACKING_URI``, else the local default."""
    candidates = (("--tracking-uri", cli_uri), ("config tracking.tracking_uri", config_uri),
                  ("$MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI")))
    for source, value in candidates:
        if value is not None and value.strip():
            return validate_tracking_uri(value, source)
    return default_tracking_uri()


def redact_uri(uri: str) -> str:
    """``uri`` without a password (``http://user:***@host``), for logs, tags and params."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.password is None:
        return uri
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return urllib.parse.urlunparse(parsed._replace(netloc=netloc))


# What MLflow's client reads from the environment to authenticate to a tracking server (basic auth, a token, TLS).
CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                   "MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH",
                   "MLFLOW_TRACKING_CLIENT_CERT_PATH")


def credential_env() -> dict[str, str]:
    """This process's MLflow credentials (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, token, TLS settings), to hand
    to the Ray workers and trials that log for it: they run in processes that do not inherit this environment."""
    return {k: os.environ[k] for k in CREDENTIAL_VARS if os.environ.get(k)}


def apply_credential_env(env: dict[str, str] | None) -> None:
    """Set the credentials :func:`credential_env` captured in another process, in this one."""
    for key, value in (env or {}).items():
        if key in CREDENTIAL_VARS:
            os.environ[key] = value
