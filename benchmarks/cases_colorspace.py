"""sRGB <-> L*a*b* benchmarks (``--sections colorspace``): aircolor's own conversion (:mod:`aircolor.data.colorspace`)
side by side with ``kornia.color`` (when kornia is installed), on speed and on agreement with ``skimage.color``
(D65, float64: the reference the pix2pix L->ab mode uses).

* ``speed``: milliseconds per call of ``rgb_to_lab`` and ``lab_to_rgb`` on float32 tensors on the device, for a
  training batch (16 x 3 x 256 x 256) and a large photo (1 x 3 x 1024 x 1024), with torch's threads as they are.
  Each round calls every implementation once, in turn, so both share the load of a busy machine; medians over the
  rounds, and the paired ratio to aircolor's time of the same round.
* ``exactness``: the largest and mean difference from skimage over real aerial tiles (the package's sample; without
  ``--quick`` also the shared aerial set, ``$AIRCOLOR_AERIAL_DIR`` else ``../shared/data/aerial/color``): rgb->lab
  in Lab units (float32 and float64), lab->rgb of skimage's Lab of those tiles in 8-bit levels, lab->rgb over a grid
  of the whole a*b* plane (far outside the sRGB gamut too, clipped) in 8-bit levels, and rgb->lab of the colours at
  the gamut's corners and edges. Also how many tensors a call builds from Python data (after a warm-up call): on a
  GPU each is a blocking copy from host memory, which makes the host wait for the GPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.cases_data import record, sample_dir
from benchmarks.timing import median, sync

SECTION = "colorspace"
SHAPES = ((16, 3, 256, 256), (1, 3, 1024, 1024))
Conversions = dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]]


def implementations() -> Conversions:
    """name -> (rgb_to_lab, lab_to_rgb): aircolor's, and kornia's when it is installed."""
    from aircolor.data import colorspace

    out: Conversions = {"aircolor": (colorspace.rgb_to_lab, colorspace.lab_to_rgb)}
    try:
        import kornia.color
    except ImportError:
        return out
    out["kornia"] = (kornia.color.rgb_to_lab, kornia.color.lab_to_rgb)
    return out


def _once(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    fn(x)
    sync(device)
    return time.perf_counter() - t


def speed(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """ms per conversion of each implementation, per shape (see the module doc)."""
    impls = implementations()
    rounds = 5 * repeats
    gen = torch.Generator().manual_seed(0)
    records = []
    for shape in SHAPES:
        rgb = torch.rand(shape, generator=gen).to(device)
        lab = impls["aircolor"][0](rgb)
        times: dict[tuple[str, str], list[float]] = {(n, d): [] for n in impls for d in ("rgb_to_lab", "lab_to_rgb")}
        for fwd, inv in impls.values():  # warm-up
            fwd(rgb)
            inv(lab)
        for _ in range(rounds):
            for name, (fwd, inv) in impls.items():
                times[name, "rgb_to_lab"].append(_once(fwd, rgb, device))
                times[name, "lab_to_rgb"].append(_once(inv, lab, device))
        pixels = shape[0] * shape[2] * shape[3]
        for name in impls:
            metrics, notes = {}, {}
            for d in ("rgb_to_lab", "lab_to_rgb"):
                own, ours = times[name, d], times["aircolor", d]
                metrics[f"{d}_ms"] = median(own) * 1000
                metrics[f"{d}_megapixels_per_s"] = pixels / 1e6 / median(own)
                metrics[f"{d}_vs_aircolor"] = median([a / b for a, b in zip(ours, own)])
                notes[f"{d}_ms"] = f"median ms per {d} call over the rounds"
                notes[f"{d}_megapixels_per_s"] = f"pixels / median {d} time, in millions per second"
                notes[f"{d}_vs_aircolor"] = f"median over rounds of aircolor's {d} time / this one's (>1: faster)"
            config = {"implementation": name, "shape": "x".join(map(str, shape)), "dtype": "float32",
                      "device": device.type, "threads": torch.get_num_threads(), "rounds": rounds,
                      "repeats": repeats}
            records.append(record(SECTION, "speed", config, metrics, notes))
    return records


def tile_paths(quick: bool) -> list[Path]:
    """The real colour tiles compared: the package's sample, and without ``quick`` the shared aerial set."""
    paths = sorted((sample_dir() / "color").rglob("*.jpg"))
    if not quick:
        from benchmarks.colorize_agreement import aerial_dir

        paths += sorted(aerial_dir().rglob("*.jpg")) if aerial_dir().is_dir() else []
    return paths


def tile_batches(paths: list[Path], size: int = 32) -> Iterator[np.ndarray]:
    """uint8 N x H x W x 3 batches of the tiles at ``paths``, grouped by size."""
    from PIL import Image

    by_size: dict[tuple[int, int], list[np.ndarray]] = {}
    for path in paths:
        with Image.open(path) as im:
            by_size.setdefault(im.size, []).append(np.asarray(im.convert("RGB")))
    for arrays in by_size.values():
        for i in range(0, len(arrays), size):
            yield np.stack(arrays[i:i + size])


def lab_grid(step: float = 2.5) -> np.ndarray:
    """(N, 3) L*a*b* over L 0..100 and a*, b* -128..127: the sRGB gamut and far around it."""
    L, a, b = np.meshgrid(np.arange(0, 100 + 1e-9, step), np.arange(-128, 127 + 1e-9, step),
                          np.arange(-128, 127 + 1e-9, step), indexing="ij")
    return np.stack([L, a, b], axis=-1).reshape(-1, 3)


def gamut_edges() -> np.ndarray:
    """(N, 3) sRGB: the cube's corners, a gray ramp, and values at the transfer curve's knee."""
    corners = np.array([[r, g, b] for r in (0, 1) for g in (0, 1) for b in (0, 1)], dtype=np.float64)
    ramp = np.repeat(np.linspace(0, 1, 256)[:, None], 3, axis=1)
    knee = np.array([[0.04045, 0.04045, 0.04045], [0.04, 0.0, 0.0], [0.0031308, 0.5, 1.0]])
    return np.concatenate([corners, ramp, knee])


def _tensor(a: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(..., H, W, 3) or (N, 3) numpy -> a tensor with the channels at -3 (N x 3 x 1 x 1 for a list of colours)."""
    t = torch.from_numpy(a[:, None, None, :] if a.ndim == 2 else a)
    return t.movedim(-1, -3).to(device=device, dtype=dtype)


def _array(t: torch.Tensor) -> np.ndarray:
    out = t.movedim(-3, -1).double().cpu().numpy()
    return out[:, 0, 0, :] if out.ndim == 4 and out.shape[1:3] == (1, 1) else out


def host_tensors(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> int:
    """Tensors ``fn(x)`` builds from Python data (``torch.tensor(...)``), after a warm-up call."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            if func is torch.ops.aten.lift_fresh.default:
                self.n += 1
            return func(*args, **(kwargs or {}))

    fn(x)
    with Count() as count:
        fn(x)
    return count.n


def _skimage(name: str, x: np.ndarray) -> np.ndarray:
    """``skimage.color.<name>(x)``, quietly (lab2rgb warns about the far-out colours whose f(Z) it clamps)."""
    import warnings

    from skimage import color

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(color, name)(x)


def exactness(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """Differences from skimage of each implementation, on real tiles and on the gamut's edges (module doc)."""
    impls = implementations()
    f32, f64 = torch.float32, torch.float64
    worst = {name: dict.fromkeys(("lab_max", "lab_sum", "lab64_max", "rgb_max"), 0.0) for name in impls}
    values, tiles = 0, 0
    for u8 in tile_batches(tile_paths(quick)):
        rgb = u8 / 255.0
        lab_ref = _skimage("rgb2lab", rgb)
        rgb_ref = _skimage("lab2rgb", lab_ref)
        values, tiles = values + lab_ref.size, tiles + len(u8)
        for name, (fwd, inv) in impls.items():
            w = worst[name]
            err = np.abs(_array(fwd(_tensor(rgb, f32, device))) - lab_ref)
            w["lab_max"], w["lab_sum"] = max(w["lab_max"], err.max()), w["lab_sum"] + err.sum()
            w["lab64_max"] = max(w["lab64_max"], np.abs(_array(fwd(_tensor(rgb, f64, device))) - lab_ref).max())
            w["rgb_max"] = max(w["rgb_max"], np.abs(_array(inv(_tensor(lab_ref, f32, device))) - rgb_ref).max())
    grid, edges = lab_grid(), gamut_edges()
    grid_ref, edges_ref = _skimage("lab2rgb", grid), _skimage("rgb2lab", edges)
    records = []
    for name, (fwd, inv) in impls.items():
        w = worst[name]
        probe = torch.rand(1, 3, 8, 8).to(device)
        metrics = {
            "rgb_to_lab_max": w["lab_max"], "rgb_to_lab_mean": w["lab_sum"] / max(values, 1),
            "rgb_to_lab_float64_max": w["lab64_max"], "lab_to_rgb_max_levels": w["rgb_max"] * 255,
            "gamut_grid_max_levels": np.abs(_array(inv(_tensor(grid, f32, device))) - grid_ref).max() * 255,
            "gamut_edges_max": np.abs(_array(fwd(_tensor(edges, f32, device))) - edges_ref).max(),
            "host_tensors_per_round_trip": host_tensors(fwd, probe) + host_tensors(inv, fwd(probe)),
        }
        notes = {"rgb_to_lab_max": "largest |Lab - skimage| over the real tiles, float32 (L*, a*, b* units)",
                 "rgb_to_lab_mean": "mean |Lab - skimage| over the real tiles, float32",
                 "rgb_to_lab_float64_max": "largest |Lab - skimage| over the real tiles, float64",
                 "lab_to_rgb_max_levels": "largest |sRGB - skimage| from skimage's Lab of the tiles, float32, in "
                                          "8-bit levels (1/255)",
                 "gamut_grid_max_levels": "largest |sRGB - skimage| over the L*a*b* grid (inside and far outside "
                                          "the gamut, clipped), float32, 8-bit levels",
                 "gamut_edges_max": "largest |Lab - skimage| of the sRGB cube's corners, a gray ramp and the "
                                    "transfer curve's knee, float32",
                 "host_tensors_per_round_trip": "tensors built from Python data by one rgb_to_lab and one "
                                                "lab_to_rgb call after warm-up (on a GPU: one blocking host copy "
                                                "each)"}
        config = {"implementation": name, "tiles": tiles, "grid_colors": len(grid), "device": device.type,
                  "repeats": repeats}
        records.append(record(SECTION, "exactness", config, metrics, notes))
    return records


CASES: dict[str, Callable[..., list[dict]]] = {"speed": speed, "exactness": exactness}
