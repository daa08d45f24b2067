"""Where a training loop runs: alone in this process, or as one worker of a Ray Train job.

The loop only talks to a :class:`RunContext`: its rank and world size, its device, how to average gradients,
how to report an evaluation (Ray Train forwards it to Tune), and which checkpoint to resume from. Ray imports
stay in :mod:`aircolor.training.ray_backend`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from aircolor.training.progress import NullProgress


@dataclass
class RunContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # Called at every evaluation with the metrics, and with the checkpoint file on rank 0 when one was written.
    report: Callable[[dict[str, float], Path | None], None] | None = None
    # A checkpoint handed over by the launcher (Ray Train's restored checkpoint); else the run folder's own.
    resume_from: Path | None = None
    # Asked before every epoch: True when the launcher wants the run to stop (Ray Tune's early stopping).
    should_stop: Callable[[], bool] | None = None
    # When the run (or the sweep trial that runs it) started: the loop logs ``startup_s``, the time from here to
    # the end of the first training iteration (process, data and model set-up; Ray start-up for a trial).
    started: float = field(default_factory=time.time)
    # What the loop shows on rank 0 while it trains (aircolor.training.progress): nothing unless asked for.
    progress: Any = field(default_factory=NullProgress)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def grad_sync(self) -> Callable[[list[torch.Tensor]], None] | None:
        """Average gradients over the workers (data parallelism); None when alone."""
        if self.world_size <= 1:
            return None
        return average_gradients

    def barrier(self) -> None:
        if self.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()

    def broadcast_flag(self, flag: bool) -> bool:
        """True on every worker if it is True on any (used to stop all workers together on a NaN)."""
        if self.world_size <= 1 or not torch.distributed.is_initialized():
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item() > 0)


def average_gradients(grads: list[torch.Tensor]) -> None:
    """All-reduce and average ``grads`` in place, in one flat buffer per dtype (few, large messages).

    This is data-parallel training as DistributedDataParallel does it, done explicitly: a GAN step runs D on
    real and fake batches and toggles ``requires_grad`` between G and D updates, which DDP's reducer (built for
    one forward and one backward per step) does not support. Every worker sees its own shard of the data
    (``DistributedSampler``) and all take the same averaged step, so the weights stay identical.
    """
    if not grads:
        return
    world = torch.distributed.get_world_size()
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for g in grads:
        by_dtype.setdefault(g.dtype, []).append(g)
    for group in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in group])
        torch.distributed.all_reduce(flat)
        flat.div_(world)
        offset = 0
        for g in group:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return "cpu"

