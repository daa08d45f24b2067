"""``aircolor sweep promote NAME``: register the sweep's best trial's generator in the MLflow model registry.

The best trial is the finished (not failed, not stopped early) child run with the best final value of the
metric (the sweep's own metric unless ``--metric`` says otherwise) that has a ``model/generator.pt`` artifact.
Its ``model`` artifact folder becomes a new version of the registered model ``aircolor-<sweep>`` (tagged with
the trial, the metric and its value), and the alias ``best`` points at it, so both
``aircolor colorize --model models:/aircolor-<sweep>/<version>`` and ``models:/aircolor-<sweep>@best`` work.
Promoting the same run twice returns its existing version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aircolor.errors import UsageError
from sweeps.state import METRICS

ALIAS = "best"


@dataclass
class Promotion:
    model_name: str
    version: str
    run_id: str
    trial: str
    metric_key: str
    value: float
    created: bool
    nonstandard_weights: bool

    @property
    def uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"


def _candidates(client: Any, experiment_id: str, key: str) -> list[Any]:
    from analysis.runs import search_all_runs

    runs = []
    for run in search_all_runs(client, [experiment_id]):
        tags = run.data.tags
        if tags.get("aircolor.kind") == "sweep" or run.info.status != "FINISHED" or tags.get("stopped_early") == "true":
            continue
        value = run.data.metrics.get(key)
        if value is not None and math.isfinite(value):
            runs.append(run)
    return runs


def _has_generator(client: Any, run_id: str) -> bool:
    try:
        return any(a.path == "model/generator.pt" for a in client.list_artifacts(run_id, "model"))
    except Exception:
        return False


def promote(name: str, *, tracking_uri: str, experiment: str, metric: str, model_name: str | None = None) -> Promotion:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if metric not in METRICS:
        raise UsageError(f"--metric {metric!r}: use one of {', '.join(sorted(METRICS))}")
    key, mode = METRICS[metric].key, METRICS[metric].mode
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise UsageError(f"no MLflow experiment {experiment!r} at {tracking_uri}; check the sweep name or "
                         f"--tracking-uri")
    runs = sorted(_candidates(client, exp.experiment_id, key), key=lambda r: r.data.metrics[key],
                  reverse=mode == "max")
    best = next((r for r in runs if _has_generator(client, r.info.run_id)), None)
    if best is None:
        raise UsageError(f"sweep {name}: no finished trial logged {key} with a model/generator.pt artifact; "
                         f"wait for a trial to finish (aircolor sweep status {name})")
    model_name = model_name or f"aircolor-{name}"
    try:
        client.create_registered_model(model_name, description=f"Best generator of the aircolor sweep {name}, "
                                                               f"promoted by `aircolor sweep promote`.")
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    run_id = best.info.run_id
    existing = [v for v in client.search_model_versions(f"name = '{model_name}'") if v.run_id == run_id]
    trial = best.data.tags.get("trial_name") or best.data.tags.get("mlflow.runName", run_id)
    value = float(best.data.metrics[key])
    if existing:
        version, created = existing[0], False
    else:
        version = client.create_model_version(
            model_name, source=f"{best.info.artifact_uri}/model", run_id=run_id,
            tags={"sweep": name, "trial_name": trial, "metric": key, "value": f"{value:.6g}",
                  "nonstandard_weights": best.data.tags.get("nonstandard_weights", "unknown")},
            description=f"{trial}: {key} = {value:.6g} (best of sweep {name})")
        created = True
    client.set_registered_model_alias(model_name, ALIAS, version.version)
    return Promotion(model_name, str(version.version), run_id, trial, key, value, created,
                     best.data.tags.get("nonstandard_weights") == "true")
