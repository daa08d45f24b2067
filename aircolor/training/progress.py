"""What ``aircolor train`` shows while it trains, on stderr (stdout keeps the final summary).

* On a terminal: a tqdm bar per epoch (iterations/s, the window-mean losses of the last log step, ETA of the
  epoch) and, after each epoch, one line with the run's ETA.
* Not on a terminal (a log file, CI): the per-epoch lines and the evaluation lines only.
* ``--quiet``: nothing.

Each evaluation prints one line: the selection metrics beside the gray copy and the two priors, so a user sees
at every evaluation whether the model beats doing almost nothing. The training loop calls the hooks on rank 0
only; :class:`NullProgress` (the default of :class:`~aircolor.training.context.RunContext`) does nothing, so
sweeps and Ray workers print nothing of this.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

# The metrics an evaluation line shows, in this order, where present (lower is better except is_mean).
SHOWN = ("delta_e2000", "fid", "kid_mean", "is_mean", "psnr", "ssim")
BASELINES = (("baseline", "gray"), ("prior_tint", "tint"), ("prior_lightness", "lightness"))


class NullProgress:
    """Shows nothing."""

    def note(self, text: str) -> None:
        pass

    def start_epoch(self, epoch: int, total: int, batches: int) -> None:
        pass

    def step(self) -> None:
        pass

    def losses(self, means: dict[str, float]) -> None:
        pass

    def end_epoch(self, epoch: int, total: int) -> None:
        pass

    def evaluated(self, epoch: int, metrics: dict[str, float], baseline: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class ConsoleProgress(NullProgress):
    """Bars on a terminal, one line per epoch and per evaluation everywhere (see the module docstring)."""

    def __init__(self, stream: TextIO | None = None, *, bars: bool | None = None, unit: str = "epoch") -> None:
        self.stream = stream or sys.stderr
        self.unit = unit   # what one pass between checks is called ("round" for `aircolor adapt`)
        self.bars = bool(self.stream.isatty()) if bars is None else bars
        self.bar: Any = None
        self.started = time.time()
        self.epoch_started = self.started
        self.epochs_done = 0
        self.last_losses: dict[str, float] = {}
        self.iterations = 0

    def note(self, text: str) -> None:
        self._line(text)

    def start_epoch(self, epoch: int, total: int, batches: int) -> None:
        self.epoch_started, self.iterations = time.time(), 0
        if self.bars:
            from tqdm import tqdm

            self.bar = tqdm(total=batches, desc=f"{self.unit} {epoch + 1}/{total}", unit="it", file=self.stream,
                            leave=False, dynamic_ncols=True)

    def step(self) -> None:
        self.iterations += 1
        if self.bar is not None:
            self.bar.update(1)

    def losses(self, means: dict[str, float]) -> None:
        self.last_losses = dict(means)
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in sorted(means.items())}, refresh=False)

    def end_epoch(self, epoch: int, total: int) -> None:
        self._close_bar()
        now = time.time()
        seconds = max(now - self.epoch_started, 1e-9)
        self.epochs_done += 1
        eta = (now - self.started) / self.epochs_done * max(total - epoch, 0)
        losses = "  ".join(f"{k} {v:.3g}" for k, v in sorted(self.last_losses.items()))
        self._line(f"{self.unit} {epoch}/{total}  {self.iterations / seconds:.2f} it/s  {losses}  ETA {_clock(eta)}")

    def evaluated(self, epoch: int, metrics: dict[str, float], baseline: dict[str, float]) -> None:
        self._line(evaluation_line(epoch, metrics, baseline, self.unit))

    def close(self) -> None:
        self._close_bar()

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)


def evaluation_line(epoch: int, metrics: dict[str, float], baseline: dict[str, float], unit: str = "epoch") -> str:
    """``eval epoch 4: val.delta_e 9.81 (gray 12.1, tint 10.3, lightness 10.0)  val.fid ...``."""
    cells = []
    for name in SHOWN:
        key = f"val.{name}"
        if key not in metrics:
            continue
        refs = ", ".join(f"{label} {baseline[f'{prefix}.{key}']:.4g}" for prefix, label in BASELINES
                         if f"{prefix}.{key}" in baseline)
        cells.append(f"{key} {metrics[key]:.4g}" + (f" ({refs})" if refs else ""))
    return f"eval {unit} {epoch}: " + ("  ".join(cells) if cells else "no metrics")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
