"""``aircolor colorize`` as it ran before the speed work (aircolor 0.1.0 up to issue 16), kept to be measured
side by side with today's :class:`aircolor.colorize.engine.Colorizer` on the same machine, model and photo.

What it did, item by item:

* tiles in row-major order, batches of 16 (``--batch-size`` default), NCHW, fp32 on CPU;
* the generator through ``model.infer`` in the model's mode: a reference-mode BatchNorm generator (pix2pix) saw
  **one tile per forward pass**, its dropout masks drawn in sequence from one RNG seeded per photo;
* blending into one float32 buffer the size of the photo, normalised by the summed windows of all tiles;
* delivery in strips of 512 rows: every pixel through 12 bisection steps of the sRGB gamut fit whenever any pixel
  of the strip was out of gamut.

The outputs agree with today's to 8-bit rounding for generators without dropout (checked by the benchmark);
reference-mode dropout draws different masks (per tile now), so those outputs differ as two seeds do.
"""

from __future__ import annotations

import numpy as np
import torch

from aircolor.colorize.delivery import seeded, to_chroma
from aircolor.colorize.tiling import tile_starts, tile_weights
from aircolor.data.colorspace import AB_SCALE, gray_to_L, lab_to_rgb, L_SCALE, L_SHIFT


def _fit_chroma(L: torch.Tensor, ab: torch.Tensor, steps: int = 12) -> torch.Tensor:
    def rgb_of(scale: torch.Tensor) -> torch.Tensor:
        return lab_to_rgb(torch.cat([L, ab * scale], dim=-3), clip=False)

    eps = 1e-4
    full = rgb_of(torch.ones_like(L))
    inside = ((full >= -eps) & (full <= 1 + eps)).all(dim=-3, keepdim=True)
    if bool(inside.all()):
        return full.clamp(0, 1)
    lo, hi = torch.zeros_like(L), torch.ones_like(L)
    for _ in range(steps):
        mid = (lo + hi) / 2
        rgb = rgb_of(mid)
        ok = ((rgb >= -eps) & (rgb <= 1 + eps)).all(dim=-3, keepdim=True)
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    return rgb_of(torch.where(inside, torch.ones_like(L), lo)).clamp(0, 1)


def _tiled(fn, image: torch.Tensor, tile: int, overlap: int, batch: int, channels: int) -> torch.Tensor:  # noqa: ANN001
    h, w = image.shape[-2:]
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    origins = [(y, x) for y in ys for x in xs]
    acc = torch.zeros(channels, h, w)
    total = torch.zeros(h, w)
    with torch.inference_mode():
        for i in range(0, len(origins), batch):
            part = origins[i:i + batch]
            out = fn(torch.stack([image[:, y:y + tile, x:x + tile] for y, x in part])).float().cpu()
            for (y, x), o in zip(part, out):
                weight = tile_weights(tile, overlap, top=y == 0, bottom=y == h - tile, left=x == 0,
                                      right=x == w - tile)
                acc[:, y:y + tile, x:x + tile].addcmul_(o, weight)
                total[y:y + tile, x:x + tile] += weight
    return acc / total


def colorize_before(model, gray: np.ndarray, *, batch_size: int = 16, seed: int = 0) -> np.ndarray:  # noqa: ANN001
    """(H, W) float [0, 1] (at least one tile a side) -> (H, W, 3) uint8, the pre-change way (Lab or RGB model,
    the input's own L*, scale 1, default half-tile overlap); ``seed`` seeded the photo's dropout masks."""
    tile = int(model.cfg.data.size)
    mode = model.cfg.metrics.generator_mode

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return to_chroma(model.color_space, model.infer(batch, mode=mode, batch_size=batch_size))

    full = torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32))[None, None]
    with seeded(next(model.parameters()).device, seed):
        chroma = _tiled(forward, full[0] * 2 - 1, tile, tile // 2, batch_size, 2)[None]
    out = np.empty((*gray.shape, 3), dtype=np.uint8)
    for y0 in range(0, gray.shape[0], 512):
        y1 = min(gray.shape[0], y0 + 512)
        L = (gray_to_L(full[..., y0:y1, :]) + L_SHIFT) * L_SCALE
        rgb = _fit_chroma(L, chroma[..., y0:y1, :] * AB_SCALE)
        out[y0:y1] = (rgb[0].permute(1, 2, 0) * 255).round().clamp(0, 255).numpy().astype(np.uint8)
    return out
