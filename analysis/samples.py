"""The report's image grid: the same validation tiles and historical photos colorized by the top configurations.

Each configuration's generator is its best trial's exported ``model/generator.pt``, downloaded from the run's
MLflow artifacts. The images come from the prepared dataset the runs trained on (the run param ``data.root``,
or ``--data`` when the report is made on another machine): the first validation tiles (gray copy in, ground
truth shown) and the first historical photos (no ground truth), at the size each generator was trained on.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


@dataclass
class SampleImage:
    name: str
    kind: str                        # "validation" or "historical"
    gray: np.ndarray                 # HxW uint8, the full-resolution grayscale input
    truth: np.ndarray | None         # HxWx3 uint8 ground truth (validation tiles only)


def load_samples(data_root: Path, *, n_val: int = 3, n_hist: int = 3) -> list[SampleImage]:
    """The first ``n_val`` validation tiles and ``n_hist`` historical photos of a prepared dataset."""
    from PIL import Image

    from aircolor.data.datasets import list_images

    out: list[SampleImage] = []
    val_dir = data_root / "aligned" / "val"
    for path in (list_images(val_dir)[:n_val] if val_dir.is_dir() else []):
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        w = rgb.shape[1] // 2  # aligned layout: gray copy (A) left, color (B) right
        out.append(SampleImage(path.stem, "validation", rgb[:, :w].mean(axis=2).round().astype(np.uint8),
                               rgb[:, w:].copy()))
    hist_dir = data_root / "historical"
    for path in (list_images(hist_dir)[:n_hist] if hist_dir.is_dir() else []):
        with Image.open(path) as im:
            out.append(SampleImage(path.stem, "historical", np.asarray(im.convert("L")), None))
    return out


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


def colorize_samples(generator: Path, samples: list[SampleImage], device: str = "cpu") -> list[np.ndarray]:
    """Each sample colorized by the generator at its training size: HxWx3 uint8."""
    from aircolor.models.exported import load_generator
    from aircolor.training.plots import to_u8

    model, cfg = load_generator(generator, device)
    size = cfg.data.size
    out = []
    with torch.no_grad():
        for s in samples:
            gray = torch.from_numpy(_resize(s.gray, size).copy()).float().div(127.5).sub(1)[None, None]
            out.append(to_u8(model.colorize(gray.to(device)).cpu())[0].permute(1, 2, 0).numpy())
    return out


def download_generator(client: Any, run_id: str, dst: Path) -> Path | None:
    """The run's ``model/generator.pt`` artifact, or None when the run has none (failed, or log_model off)."""
    try:
        names = [a.path for a in client.list_artifacts(run_id, "model")]
        if "model/generator.pt" not in names:
            return None
        return Path(client.download_artifacts(run_id, "model/generator.pt", str(dst)))
    except Exception:
        return None


def sample_rows(client: Any, picks: list[tuple[str, str]], samples: list[SampleImage], *, device: str = "cpu",
                size: int = 128) -> tuple[list[tuple[str, list[tuple[str, np.ndarray]]]], list[str]]:
    """Grid rows (one per sample: gray input, each pick's colorization, ground truth) and notes on what is missing.

    ``picks``: (label, run_id) of the configurations to show, best first.
    """
    notes: list[str] = []
    columns: list[tuple[str, list[np.ndarray]]] = []
    with tempfile.TemporaryDirectory(prefix="aircolor-report-") as tmp:
        for i, (label, run_id) in enumerate(picks):
            path = download_generator(client, run_id, Path(tmp) / str(i))
            if path is None:
                notes.append(f"{label}: run {run_id} has no model/generator.pt artifact; left out of the grid")
                continue
            columns.append((label, colorize_samples(path, samples, device)))
    rows = []
    for j, s in enumerate(samples):
        cells = [("gray input", _resize(np.repeat(s.gray[..., None], 3, axis=2), size))]
        cells += [(label, _resize(images[j], size)) for label, images in columns]
        if any(x.truth is not None for x in samples):
            truth = s.truth if s.truth is not None else np.full((size, size, 3), 255, np.uint8)
            cells.append(("ground truth" if s.truth is not None else "ground truth (none)", _resize(truth, size)))
        rows.append((f"{s.kind} {sum(x.kind == s.kind for x in samples[:j + 1])}", cells))
    return rows, notes
