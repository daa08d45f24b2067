"""The colorize benchmark's colour cases (``--sections colorize``, with :mod:`benchmarks.cases_colorize`): how far
colorize's settings move the colours, and whether the faster ones cost accuracy where there is ground truth.

* ``agreement``: Delta E 2000 between the outputs of two settings on the real historical photos of the sample,
  with the trained default model (``aircolor/default_model``): before vs now, larger tiles, a quarter-tile
  overlap, bf16; and, for a briefly trained reference-mode pix2pix with dropout, two dropout seeds of the old loop
  against old vs new (dropout is now seeded per tile). What the README's tolerances quote.
* ``accuracy``: mosaics of 4 x 4 neighbouring real colour chips (1024 px) of the regions the default model never
  saw (Zanzibar, Nairobi: the shared aerial set, ``$AIRCOLOR_AERIAL_DIR``, else ``../shared/data/aerial/color``),
  their gray copies colorized at ``--scale 0.5`` with each setting, Delta E 2000 against the real colours, beside
  the gray copy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.cases_data import prepared, record, sample_dir

SECTION = "colorize"


def _historical() -> list[np.ndarray]:
    from PIL import Image

    folder = sample_dir() / "historical"
    photos = sorted(folder.rglob("*.jp*g")) + sorted(folder.rglob("*.png"))
    out = []
    for path in photos:
        with Image.open(path) as im:
            out.append(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)
    return out


def delta_e(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel Delta E 2000 between two uint8 sRGB images."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    return deltaE_ciede2000(rgb2lab(a.astype(np.float64) / 255), rgb2lab(b.astype(np.float64) / 255))


def _agreement_record(config: dict[str, Any], pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    de = np.concatenate([delta_e(a, b).ravel() for a, b in pairs])
    level = max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in pairs)
    return record(SECTION, "agreement", config,
                  {"delta_e_mean": float(de.mean()) + 1e-9, "delta_e_p99": float(np.percentile(de, 99)) + 1e-9,
                   "max_level_diff": level + 1e-9},
                  {"delta_e_mean": "mean Delta E 2000 between the two outputs over all pixels (1e-9 added: 0 shows)",
                   "delta_e_p99": "99th percentile of the per-pixel Delta E 2000",
                   "max_level_diff": "largest difference of one 8-bit channel value"})


def agreement(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """Delta E between settings on the real historical photos (trained default model; see the module doc)."""
    from aircolor.colorize.engine import ColorizeOptions, Colorizer
    from aircolor.colorize.source import DEFAULT_MODEL, load_file
    from benchmarks.colorize_reference import colorize_before

    photos = _historical()[: 3 if quick else None]

    def run(**options: Any) -> list[np.ndarray]:
        model, cfg = load_file(DEFAULT_MODEL, device)
        colorizer = Colorizer(model, cfg, device, ColorizeOptions(**options))
        return [colorizer(p) for p in photos]

    now = run()
    base = {"model": "default (128 px, eval mode)", "photos": len(photos), "device": str(device), "repeats": repeats}
    records = [_agreement_record({**base, "variant": "before vs now"},
                                 list(zip([colorize_before(load_file(DEFAULT_MODEL, device)[0], p) for p in photos],
                                          now)))]
    for label, options in (("--tile 256 vs default", {"tile": 256}), ("--tile 512 vs default", {"tile": 512}),
                           ("--overlap 32 (a quarter) vs default", {"overlap": 32})):
        records.append(_agreement_record({**base, "variant": label}, list(zip(run(**options), now))))
    records.append(_bf16_agreement(base, photos, device))
    return records + _dropout_agreement(quick=quick, device=device, work=work, repeats=repeats)


def _bf16_agreement(base: dict[str, Any], photos: list[np.ndarray], device: torch.device) -> dict:
    """bf16 autocast vs fp32 (on a CPU without native bf16 it is emulated: slow, same numbers), small photos."""
    from aircolor.colorize.engine import ColorizeOptions, Colorizer
    from aircolor.colorize.source import DEFAULT_MODEL, load_file

    small = [p[:256, :256] for p in photos]
    outs = []
    for bf16 in (False, True):
        model, cfg = load_file(DEFAULT_MODEL, device)
        colorizer = Colorizer(model, cfg, device, ColorizeOptions(amp=bf16))
        colorizer.use_amp = bf16  # also where this CPU has no native bf16: the numbers are those of one that has
        outs.append([colorizer(p) for p in small])
    return _agreement_record({**base, "variant": "bf16 vs fp32", "photos_px": "256x256 crops"},
                             list(zip(outs[1], outs[0])))


def _dropout_agreement(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """A reference-mode pix2pix with dropout (64 px, ngf 16, trained briefly on the sample): how far two dropout
    seeds of the old loop are apart, and how far the old loop is from today's per-tile seeds."""
    from aircolor.colorize.engine import ColorizeOptions, Colorizer
    from aircolor.models.exported import load_generator
    from benchmarks.colorize_reference import colorize_before

    generator = _trained_dropout_model(work, epochs=3 if quick else 8)
    photos = _historical()[:2]
    old = [[colorize_before(load_generator(generator, device)[0], p, seed=s) for p in photos] for s in (0, 1)]
    model, cfg = load_generator(generator, device)
    now = [Colorizer(model, cfg, device, ColorizeOptions())(p) for p in photos]
    base = {"model": "pix2pix 64 px, reference mode, dropout", "photos": len(photos), "device": str(device),
            "repeats": repeats}
    return [_agreement_record({**base, "variant": "before seed 0 vs before seed 1"}, list(zip(*old))),
            _agreement_record({**base, "variant": "before seed 0 vs now (per-tile seeds)"}, list(zip(old[0], now)))]


def _trained_dropout_model(work: Path, *, epochs: int) -> Path:
    from aircolor.config import load_config
    from aircolor.training import run

    out = work / f"colorize-dropout-{epochs}"
    found = sorted(out.rglob("model/generator.pt"))
    if found:
        return found[0]
    cfg = load_config(None, ["model.family=pix2pix", "model.netG=unet_auto", "model.ngf=16", "model.ndf=16",
                             f"data.root={prepared(work, 64)}", "data.size=64", "data.color_space=lab",
                             f"train.n_epochs={epochs}", "train.n_epochs_decay=0", "train.batch_size=8",
                             f"train.output_dir={out}", "tracking.enabled=false", "metrics.fid=false",
                             "metrics.isc=false", "metrics.kid=false", "train.device=cpu", "model.dropout=true",
                             "metrics.generator_mode=reference", "model.lambda_L1=1000"])
    result = run(cfg)
    if not result.ok:
        raise RuntimeError(f"training the dropout model failed: {result.reason}")
    return Path(result.generator)


# ------------------------------------------------------------------------------------------------ accuracy
ACCURACY_REGIONS = ("oam_zanzibar", "oam_nairobi")
ACCURACY_SIDE = 4  # chips per mosaic side
ACCURACY_SETTINGS = (("default", {}), ("--tile 256", {"tile": 256}), ("--tile 512", {"tile": 512}),
                     ("--overlap 32", {"overlap": 32}))


def aerial_dir() -> Path:
    from benchmarks.quality import DEFAULT_DATA

    return Path(os.environ.get("AIRCOLOR_AERIAL_DIR", DEFAULT_DATA))


def mosaics(folder: Path, side: int, limit: int | None = None) -> list[np.ndarray]:
    """Disjoint ``side`` x ``side`` mosaics (uint8 RGB) of neighbouring same-zoom chips named ``..._z<z>_<x>_<y>...``
    (or ``OAM-<x>-<y>-<z>``), greedily in name order."""
    import re

    from PIL import Image

    chips: dict[tuple[int, int, int], Path] = {}
    for path in sorted(folder.glob("*.jpg")):
        m = re.search(r"_z(\d+)_(\d+)_(\d+)", path.name) or re.search(r"OAM-(\d+)-(\d+)-(\d+)", path.name)
        if m:
            z, x, y = (int(m[1]), int(m[2]), int(m[3])) if "_z" in m[0] else (int(m[3]), int(m[1]), int(m[2]))
            chips[(z, x, y)] = path
    used: set[tuple[int, int, int]] = set()
    out = []
    for z, x, y in sorted(chips):
        block = [(z, x + i, y + j) for j in range(side) for i in range(side)]
        if all(k in chips and k not in used for k in block):
            used.update(block)
            rows = [np.concatenate([np.asarray(Image.open(chips[(z, x + i, y + j)]).convert("RGB"))
                                    for i in range(side)], axis=1) for j in range(side)]
            out.append(np.concatenate(rows, axis=0))
            if limit and len(out) == limit:
                break
    return out


def accuracy(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """Delta E 2000 against the real colours of held-out mosaics, per colorize setting (see the module doc)."""
    from PIL import Image

    from aircolor.colorize.engine import ColorizeOptions, Colorizer
    from aircolor.colorize.source import DEFAULT_MODEL, load_file

    records = []
    for region in ACCURACY_REGIONS:
        folder = aerial_dir() / region
        truth = mosaics(folder, ACCURACY_SIDE, limit=3 if quick else None) if folder.is_dir() else []
        if not truth:
            print(f"[colorize] accuracy: no {ACCURACY_SIDE}x{ACCURACY_SIDE} mosaics in {folder}; skipped",
                  file=sys.stderr)
            continue
        grays = [np.asarray(Image.fromarray(t).convert("L"), dtype=np.float32) / 255 for t in truth]
        gray_rgb = [np.repeat((g * 255).round().astype(np.uint8)[..., None], 3, axis=2) for g in grays]
        base = {"region": region, "mosaics": len(truth), "mosaic_px": truth[0].shape[0], "scale": 0.5,
                "model": "default (never saw this region)", "device": str(device), "repeats": repeats}
        gray_de = float(np.mean([delta_e(g, t).mean() for g, t in zip(gray_rgb, truth)]))
        for label, options in ACCURACY_SETTINGS:
            model, cfg = load_file(DEFAULT_MODEL, device)
            colorizer = Colorizer(model, cfg, device, ColorizeOptions(scale=0.5, **options))
            de = [delta_e(colorizer(g), t).mean() for g, t in zip(grays, truth)]
            records.append(record(SECTION, "accuracy", {**base, "variant": label},
                                  {"delta_e_vs_truth": float(np.mean(de)), "gray_copy_delta_e": gray_de},
                                  {"delta_e_vs_truth": "mean Delta E 2000 of the delivered image against the real "
                                                       "colours (lower is better)",
                                   "gray_copy_delta_e": "the same for the gray copy itself (the baseline to beat)"}))
    return records
