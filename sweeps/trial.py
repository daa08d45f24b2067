"""One Ray Tune trial = one training-engine run of one point of the search space.

The trial's typed config is built strictly from its Tune config (``SearchSpace.from_tune`` -> overrides ->
``load_config``): a typo in a space fails validation, it never trains with a default. With one worker per trial
the engine runs inside the trial's own process and reports through ``ray.tune.report`` (cheapest start-up);
with ``workers_per_trial > 1`` the trial is a small driver that runs a Ray Train ``TorchTrainer`` (data parallel)
and forwards its reports to Tune with ``TuneReportCallback`` (see RAY_NOTES: Train V2 inside Tune).

Each trial has a stable folder ``<sweep>/trials/<trial id>``: a retried or resumed trial finds its checkpoint and
its ``run.json`` there, so it continues its own MLflow child run instead of opening a second one.
"""

from __future__ import annotations

import shutil
import time
import tempfile
from pathlib import Path
from typing import Any, Callable

SMOKE_OVERRIDES = ["model.ngf=8", "model.ndf=8", "model.nef=8", "model.num_patches=16", "model.netF_nc=16",
                   "train.n_epochs=1", "train.n_epochs_decay=1", "data.max_images=8", "data.num_workers=0",
                   "metrics.max_images=8", "metrics.kid_subset_size=4", "metrics.batch_size=8",
                   "metrics.eval_every=1", "train.checkpoint_every=1", "tracking.log_every=2",
                   "tracking.sample_images=2"]


def smoke_overrides(cfg: Any) -> list[str]:
    """Tiny sizes for ``--smoke``: 32 px (64 for BicycleGAN's multi-scale D), ngf/ndf 8, 1 + 1 epochs.

    U-Net names become ``unet_auto`` (depth from the image size) so that a U-Net vs ResNet factor keeps its
    meaning at 32 px.
    """
    size = 64 if cfg.model.family == "bicyclegan" else 32
    extra = [*SMOKE_OVERRIDES, f"data.size={size}"]
    if str(cfg.model.netG).startswith("unet"):
        extra.append("model.netG=unet_auto")
    return extra


def trial_config(space: Any, params: dict[str, Any], *, experiment: str, smoke: bool, overrides: list[str]) -> Any:
    """The trial's RunConfig: space (family, fixed, factors, seed) + sweep overrides + smoke sizes."""
    base = [f"tracking.experiment={experiment}", *overrides]
    cfg = space.trial_config(params, base)
    if smoke:
        cfg = space.trial_config(params, [*base, *smoke_overrides(cfg)])
    return cfg


def _stop_requested() -> bool:
    """Has Tune asked this trial to stop (ASHA)? Ray sets its session's stop event and expects the training
    function to exit at its next report; checking it before every epoch saves that epoch's compute."""
    try:
        from ray.train._internal.session import get_session

        session = get_session()
        return bool(session is not None and session.stop_event.is_set())
    except Exception:  # a Ray without this internal: fall back to Ray's own exit at the next report
        return False


def _restored_checkpoint() -> Path | None:
    import ray.tune

    restored = ray.tune.get_checkpoint()
    if restored is None:
        return None
    local = Path(tempfile.mkdtemp(prefix="aircolor-trial-restore-"))
    with restored.as_directory() as folder:
        shutil.copy2(Path(folder) / "last.pt", local / "last.pt")
    return local / "last.pt"


def make_trainable(*, space_path: str, sweep_dir: str, experiment: str, tracking_uri: str,
                   parent_run_id: str | None, smoke: bool, overrides: list[str], workers: int,
                   cpus_per_trial: float, gpus_per_trial: float, sweep_name: str,
                   tracking_env: dict[str, str] | None = None) -> Callable[[dict], None]:
    """The Tune function trainable for this sweep (everything it needs is captured by value).

    ``tracking_env``: the driver's MLflow credentials (:func:`aircolor.tracking.uri.credential_env`), set in the
    trial's process, which does not inherit the driver's environment.
    """

    def trainable(config: dict[str, Any]) -> None:
        started = time.time()  # the trial's start: the run logs startup_s from here to its first iteration
        import ray.tune

        from aircolor.tracking.uri import apply_credential_env
        from sweeps.space import load_space

        apply_credential_env(tracking_env)
        space = load_space(space_path)
        params = space.from_tune(config)
        cfg = trial_config(space, params, experiment=experiment, smoke=smoke, overrides=overrides)
        trial_id = ray.tune.get_context().get_trial_id()
        run_dir = Path(sweep_dir) / "trials" / trial_id
        tags = {"sweep": sweep_name, "tune.trial_id": trial_id, "trial_name": space.trial_name(params),
                **{f"factor_value.{k}": str(v) for k, v in space.factor_values(params).items()}}
        if workers > 1:
            _run_with_ray_train(cfg, run_dir=run_dir, trial_id=trial_id, tracking_uri=tracking_uri,
                                parent_run_id=parent_run_id, run_name=space.trial_name(params), tags=tags,
                                sweep_dir=sweep_dir)
            return
        _run_in_process(cfg, run_dir=run_dir, tracking_uri=tracking_uri, parent_run_id=parent_run_id,
                        run_name=space.trial_name(params), tags=tags, cpus=cpus_per_trial, gpus=gpus_per_trial,
                        started=started)

    return trainable


def _run_in_process(cfg: Any, *, run_dir: Path, tracking_uri: str, parent_run_id: str | None, run_name: str,
                    tags: dict[str, str], cpus: float, gpus: float, started: float | None = None) -> None:
    import dataclasses

    import ray.tune
    import torch

    from aircolor.training.context import RunContext
    from aircolor.training.engine import open_run

    torch.set_num_threads(max(1, int(cpus)))  # fractional trials share cores: do not oversubscribe them
    if gpus <= 0:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, device="cpu"))
    device = torch.device("cuda" if gpus > 0 and torch.cuda.is_available() else "cpu")

    def report(metrics: dict[str, float], checkpoint: Path | None) -> None:
        ckpt = ray.tune.Checkpoint.from_directory(str(checkpoint.parent)) if checkpoint is not None else None
        ray.tune.report(metrics, checkpoint=ckpt)

    ctx = RunContext(device=device, report=report, resume_from=_restored_checkpoint(), should_stop=_stop_requested,
                     started=started or time.time())
    result = open_run(cfg, ctx, tracking_uri=tracking_uri, parent_run_id=parent_run_id, run_dir=run_dir,
                      run_name=run_name, extra_tags=tags)
    if not result.ok:
        raise RuntimeError(f"trial {run_name} failed: {result.reason}")


def _run_with_ray_train(cfg: Any, *, run_dir: Path, trial_id: str, tracking_uri: str, parent_run_id: str | None,
                        run_name: str, tags: dict[str, str], sweep_dir: str) -> None:
    from ray.tune.integration.ray_train import TuneReportCallback

    from aircolor.training.ray_backend import build_torch_trainer

    trainer = build_torch_trainer(cfg, tracking_uri=tracking_uri, name=f"train-{trial_id}",
                                  storage_path=str(Path(sweep_dir) / "ray-train"), callbacks=[TuneReportCallback()],
                                  parent_run_id=parent_run_id, run_dir=str(run_dir), run_name=run_name,
                                  extra_tags=tags)
    result = trainer.fit()
    if result.error is not None:
        raise result.error
