"""The training loop shared by every model and every launcher (in-process or a Ray Train worker).

Per epoch: seed from ``(seed, epoch, rank)``, iterate the shuffled shard of the training set (batches made on the
device from the decoded split, :mod:`aircolor.data.device`, or from a DataLoader), take one
``train_step`` per batch, log the losses every ``tracking.log_every`` iterations (window means; the only host
syncs of the loop), step the learning-rate schedules, evaluate every ``metrics.eval_every`` epochs, and
checkpoint every ``train.checkpoint_every`` epochs and at the end.

Seeding each epoch from ``(seed, epoch, rank)`` (model init is seeded separately) makes a run's randomness a
function of the epoch alone: a run resumed from the checkpoint of epoch k continues exactly as the run that
never stopped (tested on CPU). A NaN/Inf loss stops the run at the next log step with status FAILED and the
reason; the last checkpoint, written while every loss was finite, is kept.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch.utils.data import DataLoader, DistributedSampler

from aircolor.config import RunConfig, config_to_dict, dump_yaml
from aircolor.data.datasets import build_dataset
from aircolor.data.device import DeviceData
from aircolor.data.device import wanted as on_device_wanted
from aircolor.errors import UsageError
from aircolor.models import build_model
from aircolor.models.base import GANModel
from aircolor.training.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from aircolor.training.context import RunContext
from aircolor.training.plots import loss_curve_png
from aircolor.training.progress import NullProgress
from aircolor.utils import atomic_write_text


@dataclass
class Result:
    status: str                      # FINISHED or FAILED
    epochs: int                      # epochs completed
    iterations: int
    metrics: dict[str, float]        # the last evaluation
    run_dir: str
    checkpoint: str | None = None
    generator: str | None = None     # the exported generator (what `aircolor colorize` loads)
    run_id: str | None = None        # MLflow run id
    reason: str | None = None        # why the run failed
    baseline: dict[str, float] = field(default_factory=dict)   # the baselines' metrics (baseline.val.*, prior_*.val.*)
    test: dict[str, float] = field(default_factory=dict)       # test.* once at the end (never used to select)
    metrics_info: dict[str, Any] = field(default_factory=dict)  # Inception weights sha256, non-standard flag
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "FINISHED"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Diverged(RuntimeError):
    """A loss became NaN or Inf."""


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + rank * 101) % (2 ** 63)


def total_epochs(cfg: RunConfig) -> int:
    return int(cfg.train.n_epochs or 0) + int(cfg.train.n_epochs_decay or 0)


def resolve_device(cfg: RunConfig) -> torch.device:
    want = cfg.train.device
    if want == "cuda" and not torch.cuda.is_available():
        raise UsageError("train.device is 'cuda' but no CUDA device is visible; use train.device=cpu or auto")
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(want)


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Native bf16 on this CPU (AVX512-BF16 or AMX): bf16 autocast is then faster than fp32 on CPU too."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def fast_paths(cfg: RunConfig, device: torch.device) -> dict[str, bool]:
    """The fast choices, where measured to help (benchmarks/results): ``auto`` turns on bf16 autocast on CUDA and
    on CPUs with native bf16, fused Adam everywhere, and channels_last on CUDA only (on CPU it slowed a CycleGAN
    step by 14%)."""
    cuda = device.type == "cuda"

    def pick(value: str, auto: bool) -> bool:
        return auto if value == "auto" else value in ("on", "bf16")

    return {"amp": pick(cfg.train.amp, cuda or cpu_has_bf16()), "channels_last": pick(cfg.train.channels_last, cuda),
            "fused_adam": pick(cfg.train.fused_adam, True)}


def check_compile(mode: str, device: torch.device) -> None:
    """``train.compile`` on CPU builds C++ kernels: say so up front instead of failing inside the first step."""
    if mode == "off" or device.type != "cpu":
        return
    import os
    import shutil

    if not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c):
        raise UsageError(f"train.compile={mode} on CPU needs a C++ compiler (none of CXX, g++, c++, clang++ found); "
                         "install one (apt-get install g++) or use train.compile=off")


class LossWindow:
    """Sums of detached loss tensors since the last log; read (and synced) only at log steps. Each loss is averaged
    over the steps that returned it (with ``train.n_critic`` > 1, G's losses come from every n_critic-th step)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.count = 0

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums[k] + v.float() if k in self.sums else v.float().clone()
            self.counts[k] = self.counts.get(k, 0) + 1
        self.count += 1

    def flush(self) -> dict[str, float]:
        if not self.count:
            return {}
        means = {k: float(v) / self.counts[k] for k, v in self.sums.items()}
        self.sums, self.counts, self.count = {}, {}, 0
        return means


class Trainer:
    """One run's state; :func:`train_loop` drives it. Kept small: evaluation and tracking live elsewhere."""

    def __init__(self, cfg: RunConfig, ctx: RunContext, run_dir: Path, tracker: Any, evaluator: Any) -> None:
        self.cfg, self.ctx, self.run_dir = cfg, ctx, run_dir
        self.tracker, self.evaluator = tracker, evaluator
        if ctx.device.type == "cuda" and cfg.train.cudnn_benchmark != "off":
            torch.backends.cudnn.benchmark = True  # fixed crop size: autotuned convolutions pay off after a step
        check_compile(cfg.train.compile, ctx.device)
        self.model: GANModel = build_model(cfg).prepare(
            ctx.device, grad_sync=ctx.grad_sync(), compile_mode=cfg.train.compile, **fast_paths(cfg, ctx.device))
        self.train_set = build_dataset(cfg.data, "train", seed=cfg.train.seed)
        self.batch_size = int(cfg.train.batch_size or 1)
        if len(self.train_set) < self.batch_size * ctx.world_size:
            raise UsageError(f"the training split has {len(self.train_set)} images, fewer than train.batch_size "
                             f"({self.batch_size}) x workers ({ctx.world_size}); prepare more data")
        self.device_data: DeviceData | None = None
        if on_device_wanted(cfg.data.on_device, self.train_set, ctx.device):
            try:
                self.device_data = DeviceData(self.train_set, ctx.device)
            except UsageError:
                if cfg.data.on_device == "on":
                    raise  # auto: images of several sizes (preprocess none) stay with the DataLoader
        if self.device_data is None and cfg.data.cache and cfg.data.num_workers > 0:
            self.train_set.preload()  # decoded once here; forked loader workers share it copy-on-write
        self.sampler = DistributedSampler(self.train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                          seed=cfg.train.seed)
        self.epoch = 0
        self.iteration = 0
        self.startup_logged = False
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.last_metrics: dict[str, float] = {}
        self.baseline: dict[str, float] = {}
        self.checkpoint_path = run_dir / "checkpoints" / "last.pt"

    # ------------------------------------------------------------------ checkpoints
    def resume(self, path: Path) -> str | None:
        try:
            state = load_checkpoint(path)
        except (ValueError, OSError) as exc:
            raise UsageError(f"cannot resume from {path}: the file {exc}; move it away to start over, or set "
                             f"train.resume=false") from None
        self.model.load_training_state(state["model"])
        self.epoch, self.iteration = int(state["epoch"]), int(state["iteration"])
        self.history = {k: [(int(s), float(v)) for s, v in pts] for k, pts in state.get("history", {}).items()}
        self.last_metrics = dict(state.get("metrics", {}))
        self.baseline = dict(state.get("baseline", {}))
        restore_rng_state(state["rng"])
        return state.get("run_id") or None

    def save(self) -> Path:
        return save_checkpoint(self.checkpoint_path, {
            "epoch": self.epoch, "iteration": self.iteration, "model": self.model.training_state(),
            "rng": rng_state(), "history": {k: [list(p) for p in v] for k, v in self.history.items()},
            "metrics": self.last_metrics, "baseline": self.baseline, "config": config_to_dict(self.cfg),
            "run_id": getattr(self.tracker, "run_id", None) or ""})

    # ------------------------------------------------------------------ one epoch
    def loader(self) -> DataLoader:
        cuda = self.ctx.device.type == "cuda"
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=self.sampler, drop_last=True,
                          num_workers=self.cfg.data.num_workers, pin_memory=cuda)

    def batches(self) -> Iterable[dict[str, Any]]:
        """This epoch's batches (call after the sampler's and the dataset's ``set_epoch``): from the training set on
        the device, or from the DataLoader."""
        if self.device_data is None:
            return self.loader()
        seed = epoch_seed(self.cfg.train.seed, self.epoch, self.ctx.rank)
        return self.device_data.epoch(list(self.sampler), self.batch_size, seed)

    def run_epoch(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        torch.manual_seed(epoch_seed(cfg.train.seed, self.epoch, ctx.rank))
        self.sampler.set_epoch(self.epoch)
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(self.epoch)
        window = LossWindow()
        progress = ctx.progress if ctx.is_main else NullProgress()
        progress.start_epoch(self.epoch, total_epochs(cfg), len(self.sampler) // self.batch_size)
        for batch in self.batches():
            window.add(self.model.train_step(batch, sync=False))
            self.iteration += 1
            progress.step()
            if not self.startup_logged:
                self.log_startup()
            if self.iteration % cfg.tracking.log_every == 0:
                self.log_losses(window.flush())
        self.log_losses(window.flush())
        self.model.end_epoch()
        self.epoch += 1
        progress.end_epoch(self.epoch, total_epochs(cfg))
        if ctx.is_main:
            self.tracker.log_metrics({**self.model.learning_rates(), "epoch": float(self.epoch),
                                      "iteration": float(self.iteration)}, step=self.epoch)

    def log_startup(self) -> None:
        """``startup_s``: from the context's start (the trial's start in a sweep) to the end of the first
        iteration of this process; once per process, so a resumed run logs its own restart cost."""
        self.startup_logged = True
        if self.ctx.device.type == "cuda":
            torch.cuda.synchronize(self.ctx.device)
        if self.ctx.is_main:
            self.tracker.log_metrics({"startup_s": time.time() - self.ctx.started}, step=self.iteration)

    def log_losses(self, means: dict[str, float]) -> None:
        if not means:
            return
        bad = sorted(k for k, v in means.items() if not math.isfinite(v))
        if self.ctx.broadcast_flag(bool(bad)):
            what = ", ".join(bad) if bad else "a loss on another worker"
            raise Diverged(f"non-finite loss ({what}) by iteration {self.iteration} (epoch {self.epoch + 1})")
        for k, v in means.items():
            self.history.setdefault(k, []).append((self.iteration, v))
        if self.ctx.is_main:
            self.ctx.progress.losses(means)
            self.tracker.log_metrics({f"loss.{k}": v for k, v in means.items()}, step=self.iteration)


def _due(epoch: int, every: int, last: int) -> bool:
    return epoch % every == 0 or epoch == last


def train_loop(cfg: RunConfig, ctx: RunContext, *, run_dir: Path, tracker: Any, evaluator: Any) -> Result:
    """Train ``cfg`` to the end (or to a NaN); everything is logged through ``tracker`` on rank 0."""
    trainer = Trainer(cfg, ctx, run_dir, tracker, evaluator)
    resume_from = ctx.resume_from or (trainer.checkpoint_path if cfg.train.resume and
                                      trainer.checkpoint_path.is_file() else None)
    if resume_from is not None:
        trainer.resume(Path(resume_from))
    last = total_epochs(cfg)
    status, reason = "FINISHED", None
    started = time.time()
    if ctx.is_main:
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
        if trainer.epoch == 0:
            ctx.progress.note("scoring the baselines (gray copy, constant tint, tint by lightness) on the "
                              "validation split")
            trainer.baseline = evaluator.baseline(tracker)
    try:
        while trainer.epoch < last:
            if ctx.should_stop is not None and ctx.should_stop():
                raise SystemExit(0)  # stopped from outside (ASHA): the caller records it as stopped early
            trainer.run_epoch()
            metrics: dict[str, float] = {}
            if _due(trainer.epoch, cfg.metrics.eval_every, last) and ctx.is_main:
                metrics = evaluator.evaluate(trainer.model, trainer.epoch, tracker)
                trainer.last_metrics = metrics
                ctx.progress.evaluated(trainer.epoch, metrics, trainer.baseline)
            ckpt_due = _due(trainer.epoch, cfg.train.checkpoint_every, last)
            ckpt = trainer.save() if ckpt_due and ctx.is_main else None
            ctx.barrier()
            # Every worker reports at the same epochs (Ray Train needs that); rank 0's metrics are the ones used.
            if ctx.report is not None and (ckpt_due or _due(trainer.epoch, cfg.metrics.eval_every, last)):
                try:
                    ctx.report({**metrics, "epoch": trainer.epoch, "iteration": trainer.iteration,
                                "epochs_total": last}, ckpt)
                except SystemExit as exc:
                    # Tune stops a trial with sys.exit(0) inside report(); at the final report the trial has run
                    # its whole budget, so it finished (not stopped early).
                    if exc.code not in (0, None) or trainer.epoch < last:
                        raise
    except Diverged as exc:
        status, reason = "FAILED", str(exc)
    finally:
        ctx.progress.close()
    generator, test = None, {}
    if ctx.is_main:
        if status == "FINISHED":  # the held-out split, once: logged to MLflow, never reported to Tune
            test = evaluator.evaluate_test(trainer.model, trainer.epoch, tracker)
        generator = _finish(trainer, tracker, evaluator, status, reason, time.time() - started)
    return Result(test=test, status=status, epochs=trainer.epoch, iterations=trainer.iteration, metrics=trainer.last_metrics,
                  run_dir=str(run_dir), reason=reason, run_id=getattr(tracker, "run_id", None),
                  checkpoint=str(trainer.checkpoint_path) if trainer.checkpoint_path.is_file() else None,
                  generator=generator, history=trainer.history, baseline=trainer.baseline,
                  metrics_info=dict(getattr(evaluator, "info", {}) or {}))


def export_generator(model: GANModel, cfg: RunConfig, path: Path) -> Path:
    """The generator alone, with its config: what ``aircolor colorize`` loads (weights_only-safe)."""
    nets = {name: net.state_dict() for name, net in model.named_children() if name in ("G", "G_A")}
    return save_checkpoint(path, {"kind": "generator", "family": cfg.model.family, "config": config_to_dict(cfg),
                                  "nets": nets})


def _finish(trainer: Trainer, tracker: Any, evaluator: Any, status: str, reason: str | None,
            seconds: float) -> str | None:
    cfg, run_dir = trainer.cfg, trainer.run_dir
    model = trainer.model
    curve = loss_curve_png(trainer.history, run_dir / "loss_curves.png", adversarial=model.adversarial_keys,
                           discriminator=model.discriminator_keys, title=f"{cfg.model.family} ({run_dir.name})")
    if curve is not None:
        tracker.log_artifact(curve)
    tracker.log_artifact(run_dir / "config.yaml")
    generator = None
    if status == "FINISHED":
        generator = export_generator(model, cfg, run_dir / "model" / "generator.pt")
        atomic_write_text(run_dir / "model" / "config.yaml", dump_yaml(cfg))
        if cfg.tracking.log_model:
            tracker.log_artifact(run_dir / "model" / "generator.pt", "model")
            tracker.log_artifact(run_dir / "model" / "config.yaml", "model")
    else:
        tracker.set_tags({"failure_reason": reason or ""})
    tracker.log_metrics({"train_seconds": seconds}, step=trainer.epoch)
    tracker.end("FINISHED" if status == "FINISHED" else "FAILED", wait_s=cfg.tracking.end_wait_s)
    return str(generator) if generator else None
