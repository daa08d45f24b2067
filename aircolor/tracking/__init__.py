"""MLflow tracking for aircolor runs: a tracker that loses nothing when the server is down, and its helpers.

* :func:`resolve_tracking_uri` picks the store (CLI flag > config > ``$MLFLOW_TRACKING_URI`` > local SQLite).
* :class:`Tracker` is the one object the training engine logs through (an ``MlflowClient`` per run, so Ray workers
  and tests can hold several); it buffers and spools records while the server is unreachable.
* :func:`replay` (``aircolor tracking replay SPOOL_DIR``) sends spooled records exactly once.
* :func:`run_tags` and :func:`params_from_config` say what a run records about its config.

MLflow itself is imported only when a tracker starts or a replay runs, so importing this package is cheap.
"""

from aircolor.tracking.cli import register_cli
from aircolor.tracking.replay import ReplayResult, replay
from aircolor.tracking.tags import factor_tags, git_info, params_from_config, run_tags
from aircolor.tracking.tracker import STATUSES, Tracker
from aircolor.tracking.uri import (default_tracking_uri, local_artifact_root, redact_uri, resolve_tracking_uri,
                                   validate_tracking_uri)

__all__ = ["STATUSES", "ReplayResult", "Tracker", "default_tracking_uri", "factor_tags", "git_info",
           "local_artifact_root", "params_from_config", "redact_uri", "register_cli", "replay",
           "resolve_tracking_uri", "run_tags", "validate_tracking_uri"]
