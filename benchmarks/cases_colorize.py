"""Colorize benchmarks (``--sections colorize``): megapixels/s of ``aircolor colorize``, how much its faster options
move the colours, and how it scales over Ray workers.

* ``speed``: one process on a large photo (the real 1024 x 1024 GSI 1936-1942 z17 photo repeated into a larger
  one), the colorize loop as it ran before the speed work (:mod:`benchmarks.colorize_reference`) side by side with
  today's defaults and with larger tiles (``--tile``), for two generators: the demo's (64 px pix2pix L*a*b* U-Net,
  ngf 16, eval mode: ``aircolor/configs/demo_cpu.yaml``) and the study's (256 px U-Net, ngf 64, reference mode
  with BatchNorm and dropout). Weights are freshly initialised: speed does not depend on them.
* ``threads``: the generators alone on this CPU's cores, as one stream of multi-threaded ops (torch's default)
  and as one stream per core of single-threaded ops (what colorize does): tiles/s of each.
* ``agreement``, ``accuracy``: how far settings move the colours, and what that costs against ground truth
  (:mod:`benchmarks.colorize_agreement`).
* ``ray``: an archive of copies of the real photos, colorized by ``aircolor colorize`` in one process and with
  ``--ray`` on a local Ray (1 worker x all CPUs, then 1 CPU per worker), each as its own command: megapixels/s
  while colorizing, the start-up, and the scaling over the one-process run. On CUDA: 1 worker per GPU, 2 per GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.cases_data import median, record, sample_dir, timed
from benchmarks.colorize_agreement import accuracy, agreement

SECTION = "colorize"
PHOTO = Path("historical/gsi_1936-1942_z17/OHG-Z17-X114852-Y51992.jpg")
MODELS = {
    "demo": ["model.ngf=16", "model.ndf=16", "data.size=64", "model.netG=unet_auto", "model.dropout=false",
             "data.color_space=lab", "metrics.generator_mode=eval"],
    "unet256": ["model.ngf=64", "data.size=256", "model.netG=unet_256"],
}
# The photo per model: (times the 1024 px photo is repeated per side, crop to this many px or None).
QUICK_PHOTOS = {"demo": (2, None), "unet256": (1, None)}
FULL_PHOTOS = {"demo": (4, None), "unet256": (2, None)}


def large_gray(tiling: int, crop: int | None = None) -> np.ndarray:
    """The sample photo as float32 gray in [0, 1], repeated ``tiling`` x ``tiling`` times (and cropped)."""
    from PIL import Image

    with Image.open(sample_dir() / PHOTO) as im:
        gray = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    big = np.tile(gray, (tiling, tiling))
    return np.ascontiguousarray(big[:crop, :crop] if crop else big)


def _model(name: str, device: torch.device) -> Any:
    from aircolor.models.zoo import build_named

    torch.manual_seed(0)
    return build_named("pix2pix", MODELS[name]).prepare(device).eval()


def _variants(name: str, device: torch.device) -> list[tuple[str, dict[str, Any]]]:
    size = int(dict(o.split("=") for o in MODELS[name])["data.size"])
    out = [("now", {}), ("now, --no-channels-last", {"channels_last": False}),
           (f"now, --tile {2 * size}", {"tile": 2 * size}), (f"now, --tile {4 * size}", {"tile": 4 * size})]
    if device.type == "cuda":
        out.append(("now, --no-amp", {"amp": False}))
    return out


def speed(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """Megapixels/s of the pre-change loop and of today's Colorizer on the same photo, model and device."""
    from aircolor.colorize.engine import ColorizeOptions, Colorizer
    from benchmarks.colorize_reference import colorize_before

    records = []
    for name in MODELS:
        tiling, crop = (QUICK_PHOTOS if quick else FULL_PHOTOS)[name]
        image = large_gray(tiling, crop)
        h, w = image.shape
        model = _model(name, device)
        before = median(timed(lambda: colorize_before(model, image), repeats=repeats, device=device))
        base = {"model": name, "image_px": f"{w}x{h}", "device": str(device), "threads": torch.get_num_threads(),
                "repeats": repeats, "weights": "random init"}
        records.append(_speed_record({**base, "variant": "before", "tile_px": int(model.cfg.data.size)},
                                     h * w, before, before))
        for label, extra in _variants(name, device):
            model = _model(name, device)
            colorizer = Colorizer(model, model.cfg, device, ColorizeOptions(**extra))
            seconds = median(timed(lambda: colorizer(image), repeats=repeats, device=device))
            records.append(_speed_record({**base, "variant": label, "tile_px": colorizer.tile,
                                          "batch_size": colorizer.batch_size, "streams": colorizer.streams,
                                          "amp_bf16": colorizer.use_amp, "tiles": colorizer.count_tiles(w, h)},
                                         h * w, seconds, before))
    return records


def _speed_record(config: dict[str, Any], pixels: int, seconds: float, before: float) -> dict:
    return record(SECTION, "speed", config, {"megapixels_per_s": pixels / 1e6 / seconds, "seconds": seconds,
                                            "speedup": before / seconds},
                  {"megapixels_per_s": "input megapixels per second, end to end (tiling, model, blending, "
                                       "full-resolution L* recombination)",
                   "seconds": "median seconds for the whole photo",
                   "speedup": "megapixels/s over the pre-change loop's, same photo, model and device"})


def threads(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """Tiles/s of the generators: one stream of ops on all cores vs one single-threaded stream per core (CPU)."""
    from concurrent.futures import ThreadPoolExecutor

    if device.type != "cpu":
        return []
    cores = torch.get_num_threads()
    records = []
    for name in MODELS:
        model = _model(name, device).to(memory_format=torch.channels_last)
        size, batch = int(model.cfg.data.size), (16 if int(model.cfg.data.size) <= 128 else 4)
        n = max(2 * cores, (64 if quick else 256) // batch)
        x = torch.rand(batch, model.input_nc if model.color_space != "lab" else 1, size, size) * 2 - 1
        x = x.contiguous(memory_format=torch.channels_last)

        def forward(_: int) -> None:
            with torch.inference_mode():
                model.generate(x)

        def one_stream() -> None:
            for i in range(n):
                forward(i)

        def streams() -> None:
            torch.set_num_threads(1)
            try:
                with ThreadPoolExecutor(cores) as pool:
                    list(pool.map(forward, range(n)))
            finally:
                torch.set_num_threads(cores)

        a = median(timed(one_stream, repeats=repeats, device=device))
        b = median(timed(streams, repeats=repeats, device=device))
        records.append(record(SECTION, "threads", {"model": name, "tile_px": size, "batch": batch, "cores": cores,
                                                   "batches": n, "repeats": repeats},
                              {"one_stream_tiles_per_s": n * batch / a, "streams_tiles_per_s": n * batch / b,
                               "ratio": a / b},
                              {"one_stream_tiles_per_s": f"tiles/s, one stream of ops on {cores} threads",
                               "streams_tiles_per_s": f"tiles/s, {cores} streams of single-threaded ops",
                               "ratio": "streams over one stream"}))
    return records


# ------------------------------------------------------------------------------------------------ on Ray
RAY_PHOTOS = {True: 8, False: 32}  # copies of the real 1024 px photos in the archive: quick, full


def _archive(work: Path, copies: int) -> Path:
    """``copies`` real 1024 x 1024 photos (the two z17 samples, alternately), built once."""
    folder = work / f"colorize-archive-{copies}"
    if not folder.is_dir() or len(list(folder.glob("*.jpg"))) != copies:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        photos = sorted((sample_dir() / PHOTO).parent.glob("*.jpg"))
        for i in range(copies):
            shutil.copy(photos[i % len(photos)], folder / f"photo{i:03d}.jpg")
    return folder


def ray_runs(device: torch.device) -> list[tuple[str, list[str]]]:
    """(label, extra ``aircolor colorize`` arguments): one process, then --ray layouts of this machine."""
    if device.type == "cuda":
        return [("one process", ["--device", "cuda"]), ("--ray, 1 worker per GPU", ["--ray", "--gpus-per-worker", "1"]),
                ("--ray, 2 workers per GPU", ["--ray", "--gpus-per-worker", "0.5"])]
    cpus = os.cpu_count() or 1
    runs = [("one process", ["--device", "cpu"]),
            (f"--ray, 1 worker x {cpus} CPUs", ["--ray", "--workers", "1", "--cpus-per-worker", str(cpus)])]
    if cpus > 1:
        runs.append(("--ray, 1 worker x 1 CPU", ["--ray", "--workers", "1", "--cpus-per-worker", "1"]))
        runs.append((f"--ray, {cpus} workers x 1 CPU", ["--ray", "--workers", str(cpus), "--cpus-per-worker", "1"]))
    return runs


def ray(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """One process vs --ray on a local Ray, each as its own `aircolor colorize` command (see the module doc)."""
    from aircolor.training.loop import export_generator

    folder = _archive(work, RAY_PHOTOS[quick])
    model = _model("demo", torch.device("cpu"))
    generator = export_generator(model, model.cfg, work / "colorize-demo-generator.pt")
    env = dict(os.environ, RAY_ADDRESS="", RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    records, single = [], None
    for label, extra in ray_runs(device):
        times, rates = [], []
        for _ in range(repeats):
            out = work / "colorize-ray-out"
            shutil.rmtree(out, ignore_errors=True)
            started = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", "aircolor", "colorize", "--model", str(generator), str(folder),
                                  "--out", str(out), "--quiet", *extra], env=env, capture_output=True, text=True,
                                 timeout=3600)
            if res.returncode != 0:
                raise RuntimeError(f"{label}: {(res.stderr or res.stdout).strip().splitlines()[-1][:300]}")
            times.append(time.perf_counter() - started)
            summary = json.loads((out / "colorize-summary.json").read_text())
            rates.append(_rate(summary))
        wall, rate = median(times), median(rates)
        single = single or rate
        records.append(record(SECTION, "ray", {"variant": label, "photos": RAY_PHOTOS[quick], "photo_px": "1024x1024",
                                               "model": "demo", "device": device.type, "repeats": repeats},
                              {"megapixels_per_s": rate, "wall_s": wall, "scaling": rate / single},
                              {"megapixels_per_s": "megapixels/s while colorizing (from the first photo read to the "
                                                   "last written; Ray's start-up not included)",
                               "wall_s": "seconds of the whole command (imports, Ray start-up, model load included)",
                               "scaling": "megapixels/s over the one-process run's"}))
    return records


def _rate(summary: dict[str, Any]) -> float:
    """Megapixels/s of a colorize run from its summary: --ray records its own; one process sums its files."""
    if summary.get("run", {}).get("megapixels_per_s"):
        return float(summary["run"]["megapixels_per_s"])
    done = [f for f in summary["files"] if f["status"] == "done"]
    return sum(f["pixels"] for f in done) / 1e6 / sum(f["seconds"] for f in done)


CASES: dict[str, Callable[..., list[dict]]] = {"speed": speed, "threads": threads, "agreement": agreement,
                                               "accuracy": accuracy, "ray": ray}
