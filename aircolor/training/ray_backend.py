"""Run the training loop as a Ray Train job: ``TorchTrainer`` with one or more workers (data parallel).

Each worker builds the same model from the same config; ``torch.distributed`` (gloo on CPU, NCCL on GPU) is
set up by Ray Train, the data is sharded with ``DistributedSampler`` and gradients are averaged before every
optimizer step (see :func:`aircolor.training.context.average_gradients`). Rank 0 evaluates, logs to MLflow and
writes checkpoints, which it hands to ``ray.train.report`` so that Ray Train can restart a failed worker group
from the last one and Ray Tune can early-stop on the reported metrics.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

from aircolor.config import RunConfig, config_from_dict, config_to_dict
from aircolor.tracking.uri import credential_env


def _worker(loop_config: dict[str, Any]) -> dict[str, Any]:
    import ray.train
    import ray.train.torch

    from aircolor.tracking.uri import apply_credential_env
    from aircolor.training.context import RunContext
    from aircolor.training.engine import open_run

    apply_credential_env(loop_config.get("tracking_env"))  # the driver's MLflow credentials
    cfg = config_from_dict(loop_config["config"])
    context = ray.train.get_context()
    resume_from = None
    restored = ray.train.get_checkpoint()
    if restored is not None:
        local = Path(tempfile.mkdtemp(prefix="aircolor-restore-"))
        with restored.as_directory() as folder:
            shutil.copy2(Path(folder) / "last.pt", local / "last.pt")
        resume_from = local / "last.pt"

    def report(metrics: dict[str, float], checkpoint: Path | None) -> None:
        ckpt = ray.train.Checkpoint.from_directory(str(checkpoint.parent)) if checkpoint is not None else None
        ray.train.report(metrics, checkpoint=ckpt)

    ctx = RunContext(rank=context.get_world_rank(), world_size=context.get_world_size(),
                     device=ray.train.torch.get_device(), report=report, resume_from=resume_from)
    run_dir = loop_config.get("run_dir")
    result = open_run(cfg, ctx, tracking_uri=loop_config.get("tracking_uri"),
                      parent_run_id=loop_config.get("parent_run_id"), run_dir=Path(run_dir) if run_dir else None,
                      run_name=loop_config.get("run_name"), extra_tags=loop_config.get("extra_tags"))
    return result.to_dict()


def build_torch_trainer(cfg: RunConfig, *, tracking_uri: str | None, name: str, storage_path: str,
                        callbacks: Sequence[Any] = (), parent_run_id: str | None = None,
                        use_gpu: bool | None = None, max_failures: int = 0, run_dir: str | None = None,
                        run_name: str | None = None, extra_tags: dict[str, str] | None = None) -> Any:
    """The ``TorchTrainer`` for ``cfg`` (also used by the sweeps, inside a Tune trial); the workers get this
    process's MLflow credentials (:func:`aircolor.tracking.uri.credential_env`)."""
    import ray
    from ray.train import FailureConfig, RunConfig as RayRunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if use_gpu is None:
        use_gpu = cfg.train.use_gpu if cfg.train.use_gpu is not None else (
            cfg.train.device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0)
    resources = {"CPU": cfg.train.cpus_per_worker}
    scaling = ScalingConfig(num_workers=cfg.train.workers, use_gpu=bool(use_gpu), resources_per_worker=resources)
    return TorchTrainer(
        _worker,
        train_loop_config={"config": config_to_dict(cfg), "tracking_uri": tracking_uri,
                           "parent_run_id": parent_run_id, "run_dir": run_dir, "run_name": run_name,
                           "extra_tags": extra_tags, "tracking_env": credential_env()},
        scaling_config=scaling,
        run_config=RayRunConfig(name=name, storage_path=storage_path, callbacks=list(callbacks),
                                failure_config=FailureConfig(max_failures=max_failures)))


def cluster_address(address: str | None) -> str | None:
    """``address``, else ``$RAY_ADDRESS``, else None (a local Ray). A set but empty ``RAY_ADDRESS`` counts as
    unset: it is removed, because Ray reads the variable itself and fails on "" with "Invalid address format"."""
    if not os.environ.get("RAY_ADDRESS", "x").strip():
        del os.environ["RAY_ADDRESS"]
    return address or os.environ.get("RAY_ADDRESS") or None


def run_on_ray(cfg: RunConfig, *, address: str | None = None, tracking_uri: str | None = None) -> Any:
    """Fit ``cfg`` with Ray Train on the cluster at ``address`` (None: a local Ray started here)."""
    import ray

    from aircolor.training.engine import run_dir_for
    from aircolor.training.loop import Result

    if not ray.is_initialized():
        ray.init(address=cluster_address(address), include_dashboard=False, log_to_driver=True)
    run_dir = run_dir_for(cfg)
    storage = str((Path(cfg.train.output_dir) / "ray").resolve())
    trainer = build_torch_trainer(cfg, tracking_uri=tracking_uri, name=run_dir.name, storage_path=storage)
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    return Result(**result.return_value)
