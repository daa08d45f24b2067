"""``run(config) -> Result``: one training run, in this process or as a Ray Train job.

Example::

    from aircolor.config import load_config
    from aircolor.training import run

    result = run(load_config("aircolor/configs/demo_cpu.yaml", ["train.n_epochs=1"]))
    print(result.status, result.metrics, result.run_id)

The run folder ``<train.output_dir>/<run name>`` holds the resolved ``config.yaml``, ``checkpoints/last.pt``,
``run.json`` (the MLflow run id, so a resumed run logs into the same MLflow run), the loss curves, sample grids
and the exported generator ``model/generator.pt``. The run name is ``tracking.run_name`` or the family plus a
hash of the resolved config, so running the same config again resumes it.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

from aircolor import __version__
from aircolor.config import RunConfig, dump_yaml
from aircolor.training.context import RunContext, describe_device
from aircolor.training.loop import Result, resolve_device, train_loop
from aircolor.utils import atomic_write_text


def run_name_for(cfg: RunConfig) -> str:
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    digest = hashlib.sha256(dump_yaml(cfg).encode()).hexdigest()[:10]
    label = f"{cfg.model.family}-{cfg.model.cut_mode}" if cfg.model.family == "cut" else cfg.model.family
    return f"{label}-{digest}"


def run_dir_for(cfg: RunConfig) -> Path:
    return (Path(cfg.train.output_dir) / run_name_for(cfg)).resolve()


class NullTracker:
    """Stands in for MLflow on workers other than rank 0 (and when tracking is off)."""

    run_id: str | None = None

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _manifest_sha256(cfg: RunConfig) -> str:
    path = Path(cfg.data.root) / "manifest.parquet"
    if not path.is_file():
        return ""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def open_tracker(cfg: RunConfig, run_dir: Path, ctx: RunContext, *, tracking_uri: str | None,
                 parent_run_id: str | None, run_name: str | None = None,
                 extra_tags: dict[str, str] | None = None) -> Any:
    """The MLflow tracker of this run (rank 0 only), reopening the run a resumed run started."""
    if not ctx.is_main or not cfg.tracking.enabled:
        return NullTracker()
    from aircolor.tracking import Tracker, params_from_config, resolve_tracking_uri, run_tags

    state_file = run_dir / "run.json"
    previous = json.loads(state_file.read_text()).get("run_id") if state_file.is_file() else None
    if previous and not cfg.train.resume:
        previous = None
    tracker = Tracker(resolve_tracking_uri(cfg.tracking.tracking_uri, tracking_uri), cfg.tracking.experiment,
                      run_name=run_name or run_dir.name, run_id=previous, parent_run_id=parent_run_id,
                      spool_dir=run_dir / "mlflow-spool").start()
    if tracker.run_id:
        atomic_write_text(state_file, json.dumps({"run_id": tracker.run_id}) + "\n")
    if not previous:
        tracker.log_params(params_from_config(cfg))
        tags = run_tags(cfg)
        tags.update({"device": describe_device(ctx.device), "workers": str(ctx.world_size),
                     "data.manifest_sha256": _manifest_sha256(cfg), "aircolor.version": __version__,
                     "host": socket.gethostname(), **(extra_tags or {})})
        tracker.set_tags(tags)
    return tracker


def open_run(cfg: RunConfig, ctx: RunContext, *, tracking_uri: str | None = None,
             parent_run_id: str | None = None, run_dir: Path | None = None, run_name: str | None = None,
             extra_tags: dict[str, str] | None = None) -> Result:
    """Set up the run folder, tracker and evaluator for ``ctx`` and train.

    ``run_dir``/``run_name``/``extra_tags`` let a sweep put each trial in its own folder (stable across retries and
    resumes, so the trial reopens its own MLflow run) under a readable MLflow name, nested under the sweep's run.
    """
    from aircolor.training.evaluation import Evaluator

    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    done = _finished_result(run_dir) if cfg.train.resume else None
    if done is not None:
        # Already trained to the end (e.g. a sweep trial restarted after its driver died): report, do not rerun,
        # and leave its MLflow run as it is.
        if ctx.report is not None:
            ctx.report({**done.metrics, "epoch": done.epochs, "iteration": done.iterations,
                        "epochs_total": done.epochs}, None)
        return done
    tracker = open_tracker(cfg, run_dir, ctx, tracking_uri=tracking_uri, parent_run_id=parent_run_id,
                           run_name=run_name, extra_tags=extra_tags)
    evaluator = Evaluator(cfg, ctx.device, run_dir) if ctx.is_main else None
    try:
        result = train_loop(cfg, ctx, run_dir=run_dir, tracker=tracker, evaluator=evaluator)
        if ctx.is_main and result.ok:
            saved = {k: v for k, v in result.to_dict().items() if k != "history"}
            atomic_write_text(run_dir / "run.json", json.dumps({"run_id": result.run_id, "finished": True,
                                                               "result": saved}) + "\n")
        return result
    except SystemExit as exc:
        if ctx.is_main:
            if exc.code in (0, None):  # Ray Tune stops a trial (e.g. ASHA) with sys.exit(0) inside report()
                tracker.set_tags({"stopped_early": "true"})
                tracker.end("KILLED", wait_s=cfg.tracking.end_wait_s)
            else:
                tracker.set_tags({"failure_reason": f"SystemExit({exc.code})"})
                tracker.end("FAILED", wait_s=cfg.tracking.end_wait_s)
        raise
    except BaseException as exc:
        if ctx.is_main:
            tracker.set_tags({"failure_reason": f"{exc.__class__.__name__}: {exc}"[:5000]})
            interrupted = isinstance(exc, KeyboardInterrupt)  # a person pressed Ctrl-C: do not make them wait
            tracker.end("KILLED" if interrupted else "FAILED", wait_s=0.0 if interrupted else cfg.tracking.end_wait_s)
        raise


def absolute_paths(cfg: RunConfig) -> RunConfig:
    """``cfg`` with its folders and files made absolute: Ray workers do not share the driver's working folder."""
    import dataclasses

    def absolute(path: str | None) -> str | None:
        return str(Path(path).expanduser().resolve()) if path else path

    return dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, root=absolute(cfg.data.root)),
        train=dataclasses.replace(cfg.train, output_dir=absolute(cfg.train.output_dir)),
        metrics=dataclasses.replace(cfg.metrics, inception_weights=absolute(cfg.metrics.inception_weights)))


def preflight(cfg: RunConfig) -> None:
    """Check what a run needs before anything starts, so bad input is one clear line on the driver rather than a
    traceback from a remote worker: the output folder, the dataset splits (and that the training split fills a
    batch on every worker), the Inception weights file, the device. Nothing is written before it passes."""
    from aircolor.data.datasets import build_dataset, list_images
    from aircolor.errors import UsageError
    from aircolor.metrics.weights import resolve_weights
    from aircolor.utils import check_output_folder

    check_output_folder(Path(cfg.train.output_dir), "train.output_dir")
    train_set = build_dataset(cfg.data, "train", seed=cfg.train.seed)
    batch = int(cfg.train.batch_size or 1)
    workers = int(cfg.train.workers or 1) if cfg.train.backend == "ray" else 1
    if len(train_set) < batch * workers:
        raise UsageError(f"the training split has {len(train_set)} images, fewer than train.batch_size ({batch}) x "
                         f"workers ({workers}); prepare more data or lower train.batch_size")
    list_images(Path(cfg.data.root) / "aligned" / "val")
    if cfg.metrics.fid or cfg.metrics.isc or cfg.metrics.kid:
        resolve_weights(cfg.metrics.inception_weights)
    if cfg.train.backend == "local":
        resolve_device(cfg)


def _finished_result(run_dir: Path) -> Result | None:
    """The stored result of a run that already finished in ``run_dir``, if any."""
    state_file = run_dir / "run.json"
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None
    if not state.get("finished") or not state.get("result"):
        return None
    return Result(**state["result"])


def run(cfg: RunConfig, *, tracking_uri: str | None = None, address: str | None = None,
        progress: Any = None) -> Result:
    """Train one run of ``cfg``: in this process, or with Ray Train when ``train.backend`` is ``ray``.

    ``progress``: what an in-process run shows while it trains (:mod:`aircolor.training.progress`); a Ray Train
    job's workers print to their own logs."""
    cfg = absolute_paths(cfg)
    preflight(cfg)
    if tracking_uri is None and cfg.tracking.enabled:
        from aircolor.tracking import resolve_tracking_uri

        tracking_uri = resolve_tracking_uri(cfg.tracking.tracking_uri)  # made absolute here, for remote workers
    if cfg.train.backend == "ray":
        from aircolor.training.ray_backend import run_on_ray

        return run_on_ray(cfg, address=address, tracking_uri=tracking_uri)
    ctx = RunContext(device=resolve_device(cfg))
    if progress is not None:
        ctx.progress = progress
    return open_run(cfg, ctx, tracking_uri=tracking_uri)
