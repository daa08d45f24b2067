"""Timing helpers: medians, device syncs, and a split of a training step into data / forward / backward /
optimizer time.

The split patches ``torch.Tensor.backward`` and the given optimizers' ``step`` for the duration of a block and
adds up their wall time (with a device sync around each, so CUDA work is charged to the phase that launched it);
forward is what remains of the step. The syncs cost a little, so throughput is measured in a separate pass
without them.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


@dataclass
class Split:
    data: float = 0.0
    backward: float = 0.0
    optimizer: float = 0.0
    step: float = 0.0          # the whole train step (forward + backward + optimizer)
    iterations: int = 0
    _patched: list[tuple[Any, str, Any]] = field(default_factory=list, repr=False)

    def per_iteration(self) -> dict[str, float]:
        n = max(self.iterations, 1)
        forward = max(self.step - self.backward - self.optimizer, 0.0)
        return {"data_s": self.data / n, "forward_s": forward / n, "backward_s": self.backward / n,
                "optimizer_s": self.optimizer / n}


@contextlib.contextmanager
def split_timing(optimizers: list[Any], device: torch.device) -> Iterator[Split]:
    """Within the block, time every ``Tensor.backward`` call and every ``step`` of ``optimizers``."""
    split = Split()
    original_backward = torch.Tensor.backward

    def backward(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        sync(device)
        t = time.perf_counter()
        out = original_backward(self, *args, **kwargs)
        sync(device)
        split.backward += time.perf_counter() - t
        return out

    def timed_step(step: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            sync(device)
            t = time.perf_counter()
            out = step(*args, **kwargs)
            sync(device)
            split.optimizer += time.perf_counter() - t
            return out
        return run

    torch.Tensor.backward = backward  # type: ignore[method-assign]
    originals = [(opt, opt.step) for opt in optimizers]
    for opt, step in originals:
        opt.step = timed_step(step)
    try:
        yield split
    finally:
        torch.Tensor.backward = original_backward  # type: ignore[method-assign]
        for opt, _ in originals:
            del opt.step   # back to the class's (hook-wrapped) step


def peak_memory(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process (MiB) and, on CUDA, the peak allocated GPU memory (MiB).

    Linux: ``VmHWM`` of ``/proc/self/status``, the peak of this process's own address space. ``ru_maxrss`` is not
    used there: it keeps the high-water mark of the address space that ``exec`` replaced, so a case started from a
    big orchestrator process would report the orchestrator's size.
    """
    import resource
    import sys

    try:
        with open("/proc/self/status") as fh:
            hwm_kib = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
        rss_mib = hwm_kib / 1024
    except (OSError, StopIteration, ValueError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_mib = rss / (1024 if sys.platform != "darwin" else 1024 * 1024)
    out = {"peak_rss_mib": rss_mib}
    if device.type == "cuda":
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    return out
