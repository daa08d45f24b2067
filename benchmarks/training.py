"""Training throughput: aircolor's loop vs the reference-style loop, one configuration per process.

``python -m benchmarks.training '{"family": "pix2pix", "size": 256, "ngf": 64, "batch": 1, "loop": "ours", ...}'``
prints one JSON result record. The orchestrator (:mod:`benchmarks.run`) starts one process per case, so peak
memory (``VmHWM``, ``max_memory_allocated``) belongs to that case alone and no case warms another's caches.

* ``loop: ours``: the real training path: :class:`~aircolor.training.loop.Trainer`'s batches (made from the split
  kept on the device, ``data.on_device``, or from the DataLoader with the decoded cache and worker processes) and
  ``model.train_step(batch, sync=False)`` with its fast paths as configured (``train.amp``,
  ``train.channels_last``, ``train.fused_adam``, ``train.compile``; ``auto`` = the defaults), losses kept on the
  device and averaged in a window as the loop does;
* ``loop: reference``: :mod:`benchmarks.reference` (PIL decode + resize + crop per item, fp32, NCHW, plain
  Adam, ``.item()`` per loss per iteration) around the same networks.

Each case runs ``warmup`` iterations, then ``repeats`` timed passes of ``iters`` iterations (throughput, no
extra syncs), then one instrumented pass that splits the time into data / forward / backward / optimizer.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from benchmarks.timing import median, peak_memory, split_timing, sync

FAMILY_OVERRIDES = {"pix2pix": [], "cyclegan": [], "cut": ["model.cut_mode=cut"], "fastcut": ["model.cut_mode=fastcut"],
                    "bicyclegan": []}


def config_for(case: dict[str, Any]) -> Any:
    from aircolor.config import load_config
    from aircolor.models.zoo import name_overrides

    overrides = [*name_overrides(case["family"]), f"model.ngf={case['ngf']}", f"model.ndf={case['ngf']}",
                 f"data.size={case['size']}", f"train.batch_size={case['batch']}", f"data.root={case['data']}",
                 f"train.device={case['device']}", "tracking.enabled=false", *case.get("overrides", [])]
    if case["family"] == "bicyclegan" and case["batch"] % 2:
        overrides.append(f"train.batch_size={case['batch'] + 1}")  # BicycleGAN halves the batch: must be even
    return load_config(None, overrides)


def _ours(case: dict[str, Any], cfg: Any, device: torch.device) -> tuple[Any, Iterator, Any, list[Any], dict]:
    from aircolor.training.context import RunContext
    from aircolor.training.engine import NullTracker
    from aircolor.training.loop import LossWindow, Trainer

    trainer = Trainer(cfg, RunContext(device=device), Path(tempfile.mkdtemp(prefix="aircolor-bench-")),
                      NullTracker(), None)

    def batches() -> Iterator[dict[str, Any]]:
        while True:
            trainer.sampler.set_epoch(trainer.epoch)
            if hasattr(trainer.train_set, "set_epoch"):
                trainer.train_set.set_epoch(trainer.epoch)
            yield from trainer.batches()
            trainer.epoch += 1

    window = LossWindow()

    def step(batch: dict[str, Any]) -> Any:
        losses = trainer.model.train_step(batch, sync=False)
        window.add(losses)
        return losses

    paths = {"on_device": trainer.device_data is not None, "compile": cfg.train.compile}
    return trainer.model, batches(), step, list(trainer.model.optimizers.values()), paths


def _reference(case: dict[str, Any], cfg: Any, device: torch.device) -> tuple[Any, Iterator, Any, list[Any], dict]:
    from aircolor.models.zoo import build_model
    from benchmarks.reference import ReferenceData, ReferenceLoop

    model = build_model(cfg).to(device)
    loop = ReferenceLoop(model)
    data = ReferenceData(Path(cfg.data.root), aligned=cfg.data.layout == "aligned", size=cfg.data.size,
                         load_size=cfg.data.load_size)

    def batches() -> Iterator[dict[str, Any]]:
        i = 0
        while True:
            items = [data.item(i + k) for k in range(cfg.train.batch_size)]
            i += cfg.train.batch_size
            yield {k: torch.cat([it[k] for it in items]).to(device) for k in ("A", "B")}

    return model, batches(), loop.step, loop.optimizers, {}


def wait_for_peers(folder: Path, n: int, timeout: float = 900.0) -> None:
    """A file barrier: say this process is warmed up, then wait until ``n`` processes are (packed trials start
    their timed window together)."""
    import os

    (folder / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + timeout
    while sum(1 for p in folder.iterdir() if p.name.startswith("ready-")) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only some of {n} packed processes got ready within {timeout:.0f} s")
        time.sleep(0.01)


def steps_for(seconds: float, step: Any, device: torch.device) -> float:
    """Iterations per second of ``step`` over a window of about ``seconds`` (whole steps, synced at the end)."""
    t = time.perf_counter()
    n = 0
    while time.perf_counter() - t < seconds:
        step()
        n += 1
    sync(device)
    return n / (time.perf_counter() - t)


def measure(case: dict[str, Any]) -> dict[str, Any]:
    device = torch.device(case["device"])
    if case.get("threads"):
        torch.set_num_threads(int(case["threads"]))
    cfg = config_for(case)
    build = _ours if case["loop"] == "ours" else _reference
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model, batches, step, optimizers, data_paths = build(case, cfg, device)
    for _ in range(case["warmup"]):
        step(next(batches))
    sync(device)
    if case.get("barrier"):
        wait_for_peers(Path(case["barrier"]["dir"]), int(case["barrier"]["n"]))
    window = case.get("duration_s")  # packed trials: timed windows of equal wall-clock time, no split pass
    if window:
        rates = [steps_for(float(window), lambda: step(next(batches)), device) for _ in range(case["repeats"])]
    else:
        rates = []
        for _ in range(case["repeats"]):
            t = time.perf_counter()
            for _ in range(case["iters"]):
                step(next(batches))
            sync(device)
            rates.append(case["iters"] / (time.perf_counter() - t))
    with split_timing(optimizers, device) as split:
        for _ in range(0 if window else case["iters"]):
            t = time.perf_counter()
            batch = next(batches)
            sync(device)
            split.data += time.perf_counter() - t
            t = time.perf_counter()
            step(batch)
            sync(device)
            split.step += time.perf_counter() - t
            split.iterations += 1
    its = median(rates)
    batch_size = int(cfg.train.batch_size)
    from aircolor.training.loop import fast_paths

    paths = fast_paths(cfg, device) | data_paths if case["loop"] == "ours" else {
        "amp": False, "channels_last": False, "fused_adam": False}
    return {"section": "training", "case": f"{case['family']}-{case['loop']}",
            "config": {k: case[k] for k in ("family", "loop", "size", "ngf", "batch", "iters", "repeats", "warmup")}
            | {"batch": batch_size, "fast_paths": paths, "threads": torch.get_num_threads(),
               "num_workers": cfg.data.num_workers if case["loop"] == "ours" else 0}
            | ({"duration_s": window} if window else {}),
            "metrics": {"iterations_per_s": its, "images_per_s": its * batch_size,
                        **(split.per_iteration() if split.iterations else {}), **peak_memory(device)}}


def first_losses(case: dict[str, Any]) -> dict[str, Any]:
    """Both loops' losses on the first iteration from the same weights, batch and seed (the proof that they do
    the same computation); ours with its fast paths (bf16 may differ from fp32 in the third digit)."""
    from aircolor.models.zoo import build_model
    from benchmarks.reference import ReferenceData, ReferenceLoop

    device = torch.device(case["device"])
    cfg = config_for(case)
    from aircolor.training.loop import fast_paths

    data = ReferenceData(Path(cfg.data.root), aligned=cfg.data.layout == "aligned", size=cfg.data.size,
                         load_size=cfg.data.load_size)
    item = data.item(0)
    batch_ref = {k: v.to(device) for k, v in item.items()}
    ours = build_model(cfg).prepare(device, **fast_paths(cfg, device))
    reference = ReferenceLoop(build_model(cfg).to(device))
    torch.manual_seed(1234)
    ours_losses = {k: float(v) for k, v in ours.train_step({"A": batch_ref["A"][:, :1], "B": batch_ref["B"]}).items()}
    torch.manual_seed(1234)
    ref_losses = reference.step(batch_ref)
    common = sorted(set(ours_losses) & set(ref_losses))
    rel = {k: abs(ours_losses[k] - ref_losses[k]) / max(abs(ref_losses[k]), 1e-6) for k in common}
    return {"section": "training", "case": f"{case['family']}-first-losses",
            "config": {k: case[k] for k in ("family", "size", "ngf", "batch")}
            | {"fast_paths": fast_paths(cfg, device)},
            "metrics": {"max_relative_difference": max(rel.values()) if rel else float("nan"),
                        **{f"ours.{k}": ours_losses[k] for k in common}, **{f"reference.{k}": ref_losses[k]
                                                                            for k in common}}}


MARKER = "AIRCOLOR-BENCH "
REPO = Path(__file__).resolve().parents[1]


def start(case: dict[str, Any], **popen: Any) -> Any:
    """``python -m benchmarks.training CASE`` as a child process (``subprocess.Popen``, output captured as text)."""
    import os
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "benchmarks.training", json.dumps(case)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=env, **popen)


def read_record(stdout: str, stderr: str) -> tuple[dict[str, Any] | None, str]:
    """The child's record, or None and the last line of its stderr (why it failed)."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):]), ""
    return None, (stderr.strip().splitlines() or ["no output"])[-1][:300]


def main() -> None:
    case = json.loads(sys.argv[1])
    record = first_losses(case) if case.get("check") else measure(case)
    print(MARKER + json.dumps(record))


if __name__ == "__main__":
    main()
