"""Where ``aircolor colorize --model MODEL`` finds its generator.

MODEL is one of:

* a file: an exported generator (``<run>/model/generator.pt``) or a training checkpoint
  (``<run>/checkpoints/last.pt``);
* a folder: a run folder (its ``model/generator.pt``, else ``checkpoints/last.pt``) or a downloaded model folder
  holding ``generator.pt``;
* an MLflow run id (32 hex digits): that run's ``model/generator.pt`` artifact;
* an MLflow model URI: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` (what ``aircolor sweep promote``
  registers) or ``runs:/RUN_ID/model``;
* ``default`` (or no ``--model`` at all): the generator shipped inside the package, ``aircolor/default_model/``
  (its ``MODEL_CARD.md`` says how it was trained and how well it colours): works offline.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from aircolor.config import RunConfig, config_from_dict
from aircolor.errors import UsageError

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "default_model" / "generator.pt"
FORMS = ("a generator.pt / checkpoint file, a run folder, an MLflow run id, models:/NAME/VERSION or "
         "runs:/RUN_ID/model")


def _from_checkpoint(path: Path, device: torch.device) -> tuple[Any, RunConfig]:
    """A training checkpoint (``last.pt``): the whole model's weights with the run's config."""
    from aircolor.models.zoo import build_model
    from aircolor.training.checkpoint import load_checkpoint

    from aircolor.models.exported import load_weights

    state = load_checkpoint(path)
    cfg = config_from_dict(state["config"], source=str(path))
    model = build_model(cfg)
    nets = state["model"].get("nets") if isinstance(state["model"], dict) else None
    if not isinstance(nets, dict):
        raise UsageError(f"--model {path}: a checkpoint without network weights; pass a run's checkpoints/last.pt")
    load_weights(model, nets, path, "the model")
    return model.prepare(device).eval(), cfg


def load_file(path: Path, device: torch.device) -> tuple[Any, RunConfig]:
    from aircolor.models.exported import load_generator
    from aircolor.training.checkpoint import load_checkpoint

    try:
        state = load_checkpoint(path)
    except (ValueError, OSError) as exc:  # weights_only=True: a crafted pickle fails here instead of running
        raise UsageError(f"--model {path}: not an aircolor generator or checkpoint (the file {exc}); pass a "
                         f"run's model/generator.pt or checkpoints/last.pt") from None
    if state.get("kind") == "generator":
        return load_generator(path, device)
    if "model" in state and "config" in state:
        return _from_checkpoint(path, device)
    raise UsageError(f"--model {path}: neither an exported generator nor a training checkpoint")


def _download(uri: str, tracking_uri: str, dst: Path) -> Path:
    import mlflow

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst),
                                                        tracking_uri=tracking_uri))
    except Exception as exc:
        raise UsageError(f"--model {uri}: cannot fetch it from MLflow at {tracking_uri} "
                         f"({str(exc).splitlines()[0][:200]})") from exc


def _registered_source(spec: str, tracking_uri: str) -> str:
    """The artifact location of ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` in the registry at
    ``tracking_uri`` (the registry lives in the tracking store, as `aircolor sweep promote` registers it)."""
    from mlflow import MlflowClient

    body = spec[len("models:/"):]
    name, alias = body.split("@", 1) if "@" in body else (None, None)
    if name is None:
        name, _, version = body.rpartition("/")
        if not name or not version:
            raise UsageError(f"--model {spec}: use models:/NAME/VERSION or models:/NAME@ALIAS")
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    try:
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
        return client.get_model_version_download_uri(name, mv.version)
    except Exception as exc:
        raise UsageError(f"--model {spec}: not in the model registry at {tracking_uri} "
                         f"({str(exc).splitlines()[0][:200]}); register one with `aircolor sweep promote NAME`"
                         ) from exc


def load_model(spec: str | None, *, device: torch.device, tracking_uri: str | None = None) -> tuple[Any, RunConfig, str]:
    """The generator named by ``spec`` (see the module docstring), its run config, and a description."""
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if spec in (None, "default"):
        if not DEFAULT_MODEL.is_file():
            raise UsageError(f"this aircolor install has no default model ({DEFAULT_MODEL} is missing); pass "
                             f"--model with {FORMS}")
        return (*load_file(DEFAULT_MODEL, device), f"the default model ({DEFAULT_MODEL})")
    path = Path(spec).expanduser()
    if path.is_file():
        return (*load_file(path, device), str(path.resolve()))
    if path.is_dir():
        for candidate in (path / "model" / "generator.pt", path / "generator.pt", path / "checkpoints" / "last.pt"):
            if candidate.is_file():
                return (*load_file(candidate, device), str(candidate.resolve()))
        raise UsageError(f"--model {path}: the folder has no model/generator.pt, generator.pt or "
                         f"checkpoints/last.pt; pass {FORMS}")
    from aircolor.tracking.uri import resolve_tracking_uri

    uri = resolve_tracking_uri(None, tracking_uri)
    if spec.startswith(("models:/", "runs:/")) or _RUN_ID.match(spec):
        from aircolor.tracking.reach import open_for_reading

        open_for_reading(uri, what="model registry or run store")  # read-only: never creates a store, fails fast if silent
        artifact = f"runs:/{spec}/model" if _RUN_ID.match(spec) else spec
        if spec.startswith("models:/"):
            artifact = _registered_source(spec, uri)
        with tempfile.TemporaryDirectory(prefix="aircolor-model-") as tmp:
            local = _download(artifact, uri, Path(tmp))
            found = local if local.is_file() else local / "generator.pt"
            if not found.is_file():
                raise UsageError(f"--model {spec}: the MLflow artifact has no generator.pt (was the run trained "
                                 f"with tracking.log_model=false, or did it fail?)")
            model, cfg = load_file(found, device)
        return model, cfg, spec
    raise UsageError(f"--model {spec}: no such file or folder, and not an MLflow run id or URI; pass {FORMS}")
