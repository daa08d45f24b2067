"""The sweep driver: a Ray Tune ``Tuner`` over a search space, tracked in MLflow, resumable.

* Search: a space whose factors are all categorical runs as a grid, every combination x seeds exactly once;
  any continuous factor switches to Optuna TPE (``OptunaSearch``) behind a ``ConcurrencyLimiter``.
* Early stopping: ASHA on the validation metric reported at every evaluation, with ``epoch`` as its time
  attribute (``--scheduler none`` turns it off). Trials that ASHA stops are recorded as such.
* Resources: each trial asks for ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs (fractions let small
  trials share a GPU); ``max_concurrent_trials`` is always set, so no trial waits forever for resources that
  running trials hold (RAY_NOTES, issue 54305).
* MLflow: one experiment per sweep, a parent run for the sweep, one nested child run per trial.
* Fault tolerance: ``--max-failures`` retries a failing trial from its last checkpoint; a driver that dies is
  continued with :func:`resume_sweep` (``Tuner.restore``), which does not rerun finished trials.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aircolor.errors import UsageError
from sweeps.state import METRICS, SweepOptions, SweepState, list_sweeps

DEFAULT_STORAGE = "runs/sweeps"


@dataclass
class SweepResult:
    state: SweepState
    trials: list[dict[str, Any]]

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t["status"]] = out.get(t["status"], 0) + 1
        return out


def default_name(space: Any) -> str:
    return f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _init_ray(address: str | None) -> Any:
    import ray

    from aircolor.training.ray_backend import cluster_address

    if not ray.is_initialized():
        ray.init(address=cluster_address(address), include_dashboard=False,
                 log_to_driver=True, ignore_reinit_error=True)
    return ray


def _weights_are_standard(overrides: list[str]) -> bool:
    from aircolor.config import load_config
    from aircolor.metrics.weights import is_standard, resolve_weights

    cfg = load_config(None, list(overrides))
    return is_standard(resolve_weights(cfg.metrics.inception_weights))


def validate(space_path: str, options: SweepOptions) -> Any:
    """Everything that can be checked before Ray starts: the space, the options, every trial config."""
    from sweeps.space import load_space
    from sweeps.trial import trial_config

    if options.metric not in METRICS:
        raise UsageError(f"--metric {options.metric!r}: choose one of {', '.join(METRICS)}")
    if options.scheduler not in ("asha", "none"):
        raise UsageError(f"--scheduler {options.scheduler!r}: choose asha or none")
    for name, value, low in (("--num-samples", options.num_samples, 1), ("--cpus-per-trial", options.cpus_per_trial,
                             0.01), ("--workers-per-trial", options.workers_per_trial, 1),
                             ("--grace-period", options.grace_period, 1), ("--reduction-factor",
                             options.reduction_factor, 2), ("--max-failures", options.max_failures, 0)):
        if not value >= low:
            raise UsageError(f"{name} {value}: must be >= {low}")
    if options.gpus_per_trial is not None and options.gpus_per_trial < 0:
        raise UsageError(f"--gpus-per-trial {options.gpus_per_trial}: must be >= 0")
    space = load_space(space_path)
    check_trial_count(space, options)
    if space.is_categorical:  # every grid point must give a valid config (Optuna points are checked per trial)
        for p in space.grid():
            trial_config(space, p, experiment="check", smoke=options.smoke, overrides=options.overrides)
    return space


def check_trial_count(space: Any, options: SweepOptions) -> int:
    """The number of trials the sweep would run, counted before anything is built; above ``--max-trials`` a
    one-line refusal that gives the count."""
    if space.is_categorical:
        count = space.grid_size()
        sizes = " x ".join(str(len(f.choices)) for f in space.factors.values())
        how = f"a grid of {count:,} trials ({sizes} values{f' x {space.seeds} seeds' if space.seeds > 1 else ''})"
    else:
        count, how = options.num_samples, f"{options.num_samples:,} Optuna trials (--num-samples)"
    if count > options.max_trials:
        raise UsageError(f"{space.path}: {how}, more than --max-trials {options.max_trials:,}; drop factors or "
                         f"values, or pass --max-trials {count} if you mean it")
    return count


def check_name(name: str) -> str:
    """A sweep name is one folder of --storage and an MLflow experiment: one path component, printable."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or not name.isprintable() or name != name.strip():
        raise UsageError(f"--name {name!r}: a sweep name is one folder name (no '/', not '.' or '..', no "
                         "leading or trailing spaces), e.g. --name pix2pix-generator-try2")
    return name


def _warm_real_statistics(space: Any, options: SweepOptions) -> None:
    """Compute the Inception features of the fixed image sets once, here, before any trial starts: the real sets
    every trial compares against, and the gray copies every trial scores as its baseline. Skipped, with a note,
    when no trial config can be built up front."""
    import tempfile

    import torch

    from sweeps.space import SEED_KEY
    from sweeps.trial import trial_config

    try:
        if space.is_categorical:
            params = space.grid()[0]
        else:
            params = space.params({**{k: (f.choices[0] if f.choices else f.low) for k, f in space.factors.items()},
                                   SEED_KEY: 0})
        cfg = trial_config(space, params, experiment="warm-up", smoke=options.smoke, overrides=options.overrides)
    except Exception as exc:  # a conditional space whose first point is not a valid trial: trials warm it instead
        print(f"aircolor sweep: note: real-image statistics not warmed up front ({exc})")
        return
    if not (cfg.metrics.fid or cfg.metrics.kid or cfg.metrics.isc):
        return
    from aircolor.training.engine import absolute_paths
    from aircolor.training.evaluation import Evaluator

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="aircolor-warm-") as tmp:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        hits = Evaluator(absolute_paths(cfg), device, Path(tmp)).warm_real_statistics()
    if hits and not all(hits.values()):
        print(f"aircolor sweep: Inception features of {', '.join(hits)} computed once for every trial "
              f"({time.time() - started:.0f} s)")


def _search(space: Any, options: SweepOptions, max_concurrent: int) -> tuple[dict[str, Any], Any, int]:
    """(param_space, search_alg, num_samples) for Tune."""
    if space.is_categorical:
        return space.tune_grid_space(), None, 1
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    search = OptunaSearch(space=space.optuna_space(), metric=options.metric_key, mode=options.mode, seed=0)
    return {}, ConcurrencyLimiter(search, max_concurrent=max_concurrent), options.num_samples


def _scheduler(options: SweepOptions, max_t: int) -> Any:
    if options.scheduler == "none":
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="epoch", metric=options.metric_key, mode=options.mode, max_t=max(1, max_t),
                         grace_period=min(options.grace_period, max(1, max_t)),
                         reduction_factor=options.reduction_factor)


def _resources(ray: Any, options: SweepOptions) -> tuple[dict[str, float], float, int]:
    """(per-trial resource request, GPUs per trial, max concurrent trials)."""
    cluster = ray.cluster_resources()
    gpus = options.gpus_per_trial if options.gpus_per_trial is not None else (1.0 if cluster.get("GPU") else 0.0)
    if options.workers_per_trial > 1:
        request = {"cpu": 0.05}  # the trial is a driver; its Train workers ask for their own resources
        per_trial_cpu = options.workers_per_trial * options.cpus_per_trial + 0.05
    else:
        request = {"cpu": options.cpus_per_trial, "gpu": gpus}
        per_trial_cpu = options.cpus_per_trial
    fit = int(cluster.get("CPU", 1) // per_trial_cpu) or 1
    if gpus > 0:
        fit = min(fit, int(cluster.get("GPU", 0) // (gpus * options.workers_per_trial)) or 1)
    return request, gpus, options.max_concurrent or fit


def _open_parent(state: SweepState, space: Any, resources: dict[str, Any]) -> None:
    from aircolor.tracking import Tracker

    tracker = Tracker(state.tracking_uri, state.experiment, run_name=f"sweep:{state.name}",
                      spool_dir=state.folder / "mlflow-spool").start()
    o = state.options
    tracker.log_params({"sweep.space": state.space_path, "sweep.space_sha256": state.space_sha256,
                        "sweep.metric": o.metric_key, "sweep.mode": o.mode, "sweep.scheduler": o.scheduler,
                        "sweep.grace_period": o.grace_period, "sweep.reduction_factor": o.reduction_factor,
                        "sweep.search": "grid" if space.is_categorical else "optuna-tpe",
                        "sweep.num_samples": o.num_samples, "sweep.seeds": space.seeds, "sweep.smoke": o.smoke,
                        "sweep.max_failures": o.max_failures, **{f"sweep.resources.{k}": v
                                                                 for k, v in resources.items()}})
    tracker.set_tags({"sweep": state.name, "sweep.status": "RUNNING", "aircolor.kind": "sweep",
                      "mlflow.note.content": space.description or state.name})
    tracker.log_text(state.space_text, f"search_space/{Path(state.space_path).name}")
    tracker.flush()
    state.parent_run_id = tracker.run_id  # the parent stays RUNNING until the sweep ends (_finish_parent)
    state.notes.append(f"parent run {tracker.run_id}")


def _finish_parent(state: SweepState, result: SweepResult) -> None:
    if not state.parent_run_id:
        return
    from mlflow import MlflowClient

    client = MlflowClient(state.tracking_uri)
    counts = result.counts
    for key, value in {"trials.total": len(result.trials), **{f"trials.{k.lower()}": v
                                                              for k, v in counts.items()}}.items():
        client.log_metric(state.parent_run_id, key, float(value))
    client.set_tag(state.parent_run_id, "sweep.status", state.status)
    client.set_terminated(state.parent_run_id, status="FINISHED" if state.status == "FINISHED" else "FAILED")


def _trials_of(grid: Any) -> list[dict[str, Any]]:
    out = []
    for r in grid:
        metrics = r.metrics or {}
        out.append({"trial_id": metrics.get("trial_id") or (r.path and Path(r.path).name), "status":
                    "ERROR" if r.error is not None else "TERMINATED", "metrics": metrics,
                    "error": str(r.error)[:500] if r.error is not None else None, "config": r.config})
    return out


def _fit(tuner: Any, state: SweepState) -> SweepResult:
    from sweeps.status import replay_leftovers

    grid = tuner.fit()
    trials = _trials_of(grid)
    state.status = "FINISHED"
    state.save()
    replay_leftovers(state)  # what trials could not send while the server was down goes now, then the driver's own
    for callback in _callbacks_of(tuner):
        callback.send_pending()
    result = SweepResult(state, trials)
    try:
        _finish_parent(state, result)
    except Exception as exc:  # a tracking outage at the very end must not hide the sweep's result
        state.notes.append(f"could not close the MLflow parent run: {exc}")
        state.save()
    return result


def _callbacks_of(tuner: Any) -> list[Any]:
    """The sweep's MLflow callbacks as the tuner runs them (a restored tuner unpickled its own copies)."""
    from sweeps.callbacks import MlflowSweepCallback

    try:
        callbacks = tuner._local_tuner.get_run_config().callbacks or []
    except Exception:  # a Ray whose Tuner internals moved: the records that waited are named in the warnings
        return []
    return [c for c in callbacks if isinstance(c, MlflowSweepCallback)]


def _tuner(state: SweepState, space: Any, *, restore: bool) -> Any:
    import ray
    from ray import tune

    from aircolor.tracking.uri import credential_env
    from sweeps.callbacks import MlflowSweepCallback
    from sweeps.trial import make_trainable, trial_config

    o = state.options
    request, gpus, max_concurrent = _resources(ray, o)
    trainable = make_trainable(space_path=str(state.folder / "search_space.yaml"), sweep_dir=str(state.folder),
                               experiment=state.experiment, tracking_uri=state.tracking_uri,
                               parent_run_id=state.parent_run_id, smoke=o.smoke, overrides=o.overrides,
                               workers=o.workers_per_trial, cpus_per_trial=o.cpus_per_trial, gpus_per_trial=gpus,
                               sweep_name=state.name, tracking_env=credential_env())
    trainable = tune.with_resources(trainable, request)
    tune_dir = str(state.folder / "tune")
    if restore:
        if not tune.Tuner.can_restore(tune_dir):
            raise UsageError(f"sweep {state.name!r} has no Tune state to resume in {tune_dir}; start it again with "
                             "'aircolor sweep run'")
        param_space = space.tune_grid_space() if space.is_categorical else None
        return tune.Tuner.restore(tune_dir, trainable=trainable, resume_errored=True, param_space=param_space)
    max_t = _max_epochs(space, o, trial_config, state.experiment)
    param_space, search, num_samples = _search(space, o, max_concurrent)
    callback = MlflowSweepCallback(tracking_uri=state.tracking_uri, experiment=state.experiment,
                                   parent_run_id=state.parent_run_id, metric_key=o.metric_key, mode=o.mode,
                                   space_path=str(state.folder / "search_space.yaml"))
    return tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=search, scheduler=_scheduler(o, max_t), num_samples=num_samples,
                                    max_concurrent_trials=max_concurrent,
                                    metric=None if search is not None or o.scheduler == "asha" else o.metric_key,
                                    mode=None if search is not None or o.scheduler == "asha" else o.mode),
        run_config=tune.RunConfig(name="tune", storage_path=str(state.folder), callbacks=[callback],
                                  failure_config=tune.FailureConfig(max_failures=o.max_failures),
                                  verbose=1))


def _max_epochs(space: Any, o: SweepOptions, trial_config: Any, experiment: str) -> int:
    """ASHA's max_t: the longest trial's epochs (grid: over all points; Optuna: a few sampled points)."""
    if space.is_categorical:
        points = space.grid()
    else:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        define = space.optuna_space()
        points = []
        for _ in range(16):
            trial = study.ask()
            define(trial)
            points.append(space.from_tune(trial.params))
    longest = 1
    for p in points:
        cfg = trial_config(space, p, experiment=experiment, smoke=o.smoke, overrides=o.overrides)
        longest = max(longest, int(cfg.train.n_epochs or 0) + int(cfg.train.n_epochs_decay or 0))
    return longest


def run_sweep(space_path: str, options: SweepOptions, *, name: str | None = None, address: str | None = None,
              storage: str = DEFAULT_STORAGE, tracking_uri: str | None = None) -> SweepResult:
    """Validate, then run a new sweep of ``space_path`` to the end."""
    from aircolor.tracking import resolve_tracking_uri
    from aircolor.utils import check_output_folder
    from sweeps.reach import trial_tracking_uri

    if name is not None:
        check_name(name)
    space = validate(space_path, options)
    name = name or default_name(space)
    storage = str(Path(storage).expanduser().resolve()) if "://" not in storage else storage
    if "://" not in storage:
        check_output_folder(Path(storage), "--storage")
    if name in list_sweeps(storage):
        raise UsageError(f"a sweep named {name!r} already exists in {storage}; continue it with "
                         f"'aircolor sweep resume {name}' or choose another --name")
    if options.metric in ("fid", "kid", "is") and not _weights_are_standard(options.overrides):
        print(f"aircolor sweep: warning: the Inception weights are not the standard ones, so {options.metric} "
              "cannot judge color; consider --metric delta_e2000 (or psnr, ssim)")
    uri = resolve_tracking_uri(None, tracking_uri)
    text = Path(space_path).read_text()
    state = SweepState(name=name, storage=storage, space_path=str(space_path), space_sha256=space.sha256,
                       space_text=text, options=options, experiment=name, tracking_uri=uri, created=time.time())
    ray = _init_ray(address)
    request, gpus, max_concurrent = _resources(ray, options)
    state.tracking_uri = trial_tracking_uri(uri, ray)  # the last check: nothing is written before it
    state.folder.mkdir(parents=True, exist_ok=True)
    (state.folder / "search_space.yaml").write_text(text)
    _warm_real_statistics(space, options)
    _open_parent(state, space, {**request, "max_concurrent": max_concurrent, "workers_per_trial":
                                options.workers_per_trial, "gpus_per_trial": gpus})
    state.save()
    from sweeps.watch import watch_lines

    print(f"aircolor sweep {name}: {check_trial_count(space, options)} trials, optimising {options.metric}",
          *watch_lines(state), sep="\n", flush=True)
    return _fit(_tuner(state, space, restore=False), state)


def resume_sweep(name: str, *, address: str | None = None, storage: str = DEFAULT_STORAGE) -> SweepResult:
    """Continue a sweep whose driver stopped: finished trials are kept, unfinished ones resume."""
    from sweeps.reach import trial_tracking_uri
    from sweeps.space import load_space
    from sweeps.status import replay_leftovers

    storage = str(Path(storage).expanduser().resolve()) if "://" not in storage else storage
    state = SweepState.load(storage, name)
    space = load_space(state.folder / "search_space.yaml")
    ray = _init_ray(address)
    state.tracking_uri = trial_tracking_uri(state.tracking_uri, ray)
    replay_leftovers(state)  # spools of the trials the stopped driver left behind
    state.status = "RUNNING"
    state.save()
    return _fit(_tuner(state, space, restore=True), state)
