"""Colorize benchmark: tiles/s and megapixels/s of :class:`aircolor.colorize.engine.Colorizer` on a large photo.

Case ``tiles``: the real 1024 x 1024 historical photo (GSI 1936-1942, z17) repeated ``tiling`` x ``tiling`` times
into one large gray image, colorized end to end (tiling with the default half-tile overlap, generator batches of 16,
raised-cosine blending, full-resolution L* recombination with gamut-fitted chroma) by a freshly initialised pix2pix
generator. Full mode: the study's generator (U-Net 256, ngf 64, 256 px tiles) on 4096 x 4096. Quick mode: ngf 16 on
64 px tiles (``unet_auto``) on 2048 x 2048, so that it stays fast on a CPU; megapixels/s of
quick and full are not comparable (tile size and width differ), tiles/s even less.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.cases_data import median, record, sample_dir, timed

SECTION = "colorize"
PHOTO = Path("historical/gsi_1936-1942_z17/OHG-Z17-X114852-Y51992.jpg")

QUICK_MODEL = ["model.ngf=16", "data.size=64", "model.netG=unet_auto"]
FULL_MODEL = ["model.ngf=64", "data.size=256", "model.netG=unet_256"]


def large_gray(tiling: int) -> np.ndarray:
    """The sample photo as float32 gray in [0, 1], repeated ``tiling`` x ``tiling`` times."""
    from PIL import Image

    with Image.open(sample_dir() / PHOTO) as im:
        gray = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(np.tile(gray, (tiling, tiling)))


def tiles(*, quick: bool, device: torch.device, work: Path, repeats: int) -> list[dict]:
    """Tiles/s and megapixels/s of the Colorizer (batch 16, default overlap) on a large gray image."""
    from aircolor.colorize.engine import ColorizeOptions, Colorizer
    from aircolor.models.zoo import build_named

    overrides, tiling = (QUICK_MODEL, 2) if quick else (FULL_MODEL, 4)
    model = build_named("pix2pix", overrides).prepare(device).eval()
    options = ColorizeOptions(batch_size=16)
    colorizer = Colorizer(model, model.cfg, device, options)
    image = large_gray(tiling)
    h, w = image.shape
    n_tiles = colorizer.count_tiles(w, h)

    def run() -> None:
        out = colorizer(image)
        if out.shape != (h, w, 3):
            raise RuntimeError(f"Colorizer returned shape {out.shape} for a {h}x{w} image")

    # Warm-up on a corner of a few tiles' size: first-call costs (allocator, cuDNN autotune, lazy imports) only.
    corner = np.ascontiguousarray(image[: 4 * colorizer.tile, : 4 * colorizer.tile])
    colorizer(corner)
    seconds = median(timed(run, repeats=repeats, device=device, warmup=False))
    generator_params = sum(p.numel() for name, p in model.named_parameters() if name.startswith("G."))
    config = {"image_px": f"{w}x{h}", "source": f"{PHOTO.name} tiled {tiling}x{tiling}",
              "model": "pix2pix", "netG": str(model.cfg.model.netG), "ngf": int(model.cfg.model.ngf),
              "tile_px": colorizer.tile, "overlap_px": colorizer.processor.overlap, "batch_size": options.batch_size,
              "amp_bf16": bool(colorizer.use_amp), "keep_luminance": options.keep_luminance,
              "generator_params": int(generator_params), "weights": "random init", "device": str(device),
              "threads": torch.get_num_threads(), "repeats": repeats, "warmup": 1}
    metrics = {"tiles_per_s": n_tiles / seconds, "megapixels_per_s": h * w / 1e6 / seconds, "tiles": n_tiles,
               "seconds": seconds}
    notes = {"tiles_per_s": "generator tiles per second, end to end (tiling, blending, L* recombination included)",
             "megapixels_per_s": "input megapixels per second, end to end",
             "tiles": "tiles per image at this tile size and overlap",
             "seconds": "median seconds for the whole image"}
    return [record(SECTION, "tiles", config, metrics, notes)]


CASES: dict[str, Callable[..., list[dict]]] = {"tiles": tiles}
