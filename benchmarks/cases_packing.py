"""Packed trials: images/s of one device shared by 1, 2 or 4 training processes.

A sweep packs small trials onto one GPU with fractional GPUs (``--gpus-per-trial 0.5`` or ``0.25``): Ray then
starts that many trial processes that all see the same GPU. This case does the same without Ray's scheduling in
the way: ``n`` processes of :mod:`benchmarks.training` (aircolor's loop, the trial's own fast paths) warm up, wait
for each other at a file barrier, then each steps for the same wall-clock window. The device's throughput is the
sum of their images/s; ``scaling`` is that sum over the single process's.

Case ``trials``: on CUDA the study's configuration (pix2pix, 256 px, ngf/ndf 64, batch 1) with 1, 2 and 4 packed
processes, and one process at a larger batch (16) for comparison; on CPU pix2pix at 64 px, ngf/ndf 16 with 1 and 2
processes (threads split between them: ``cores // n`` each, as Ray gives each trial its CPUs).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.cases_data import prepared, record
from benchmarks.training import read_record, start

SECTION = "packing"


def run_packed(case: dict[str, Any], n: int, *, timeout: float) -> list[dict[str, Any]]:
    """``n`` concurrent processes of ``case`` (one device, a shared timed window); their records, or errors."""
    with tempfile.TemporaryDirectory(prefix="aircolor-pack-") as barrier:
        procs = [start({**case, "barrier": {"dir": barrier, "n": n}}) for _ in range(n)]
        outputs = []
        try:
            for proc in procs:
                outputs.append(proc.communicate(timeout=timeout))
        except subprocess.TimeoutExpired:
            for proc in procs:
                proc.kill()
            raise RuntimeError(f"{n} packed processes did not finish within {timeout:.0f} s") from None
    records = []
    for (out, err), proc in zip(outputs, procs):
        record, why = read_record(out, err)
        if record is None:
            raise RuntimeError(f"a packed process exited {proc.returncode}: {why}")
        records.append(record)
    return records


def plan(quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict[str, Any]]:
    """The packed configurations for ``device``: ``{"case": ..., "n": processes}`` each."""
    cuda = device.type == "cuda"
    if cuda:
        base = {"family": "pix2pix", "size": 256, "ngf": 64, "batch": 1, "data": str(prepared(work, 256))}
        window = 5.0 if quick else 20.0
        runs = [(base, n) for n in (1, 2, 4)] + [({**base, "batch": 16}, 1)]
    else:
        base = {"family": "pix2pix", "size": 64, "ngf": 16, "batch": 1, "data": str(prepared(work, 64)),
                "overrides": ["model.netG=unet_auto", "data.num_workers=0"]}
        window = 4.0 if quick else 15.0
        runs = [(base, n) for n in (1, 2)]
    cores = os.cpu_count() or 1
    return [{"case": {**c, "loop": "ours", "device": str(device), "warmup": 3, "iters": 0, "repeats": repeats,
                      "duration_s": window, "threads": 0 if cuda else max(1, cores // n)}, "n": n}
            for c, n in runs]


NOTES = {"images_per_s_per_device": "training images/s of all packed processes together (median window each)",
         "images_per_s_per_trial": "the same per process",
         "slowest_trial_images_per_s": "images/s of the slowest process",
         "scaling": "device images/s over the single process's at the same configuration",
         "peak_rss_mib_per_trial": "largest peak resident memory of one process, MiB",
         "peak_gpu_mib_per_trial": "largest peak allocated GPU memory of one process, MiB"}


def measure_packed(runs: list[dict[str, Any]], device: torch.device) -> list[dict]:
    """One record per ``{"case", "n"}`` of ``runs`` (a single-process run first gives the others' scaling)."""
    out: list[dict] = []
    single: dict[tuple, float] = {}
    for run in runs:
        case, n = run["case"], run["n"]
        records = run_packed(case, n, timeout=max(600.0, 20 * case["duration_s"] * max(1, case["repeats"])))
        rates = [r["metrics"]["images_per_s"] for r in records]
        total = sum(rates)
        key = (case["family"], case["size"], case["ngf"], case["batch"])
        if n == 1:
            single[key] = total
        metrics = {"images_per_s_per_device": total, "images_per_s_per_trial": total / n,
                   "slowest_trial_images_per_s": min(rates)}
        if key in single:
            metrics["scaling"] = total / single[key]
        metrics |= {f"{k}_per_trial": max(r["metrics"][k] for r in records)
                    for k in ("peak_rss_mib", "peak_gpu_mib") if k in records[0]["metrics"]}
        first = records[0]["config"]
        config = {"family": case["family"], "size": case["size"], "ngf": case["ngf"], "batch": first["batch"],
                  "trials": n, "window_s": case["duration_s"], "repeats": case["repeats"],
                  "threads_per_trial": first["threads"], "device": str(device), "fast_paths": first["fast_paths"]}
        out.append(record(SECTION, f"{case['family']}-batch{first['batch']}-x{n}", config, metrics,
                          {k: NOTES[k] for k in metrics}))
    return out


def trials(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """Images/s per device with 1, 2 (and on CUDA 4) packed training processes, and on CUDA one at batch 16."""
    return measure_packed(plan(quick, device, work, repeats), device)


CASES: dict[str, Callable[..., list[dict]]] = {"trials": trials}
