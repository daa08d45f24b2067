"""Colorize one gray image of any size with a trained generator.

The generator sees tiles of its training size (``data.size``), overlapping by ``overlap`` pixels (default half a
tile) and blended with raised-cosine weights (:mod:`aircolor.colorize.tiling`), so no seam shows between tiles;
images smaller than a tile are padded. Half a tile because a generator's output is worst at its tile's border
(padding): with half-tile overlap every border pixel is outweighed by a neighbour's centre. On the test photo
the chroma step across tile edges is within noise of the step inside tiles at both a half and a quarter tile
(hard edges: 5 standard errors above), so a quarter (``--overlap``) is a fair trade for half the tiles.
With ``scale`` < 1 the model sees a downsampled copy (a 1 m/px scan shown to a model trained on 4 m/px tiles)
and its chroma is upsampled back.

Only chroma comes from the model. The output's L* is the input's own luminance at full resolution: Lab models
predict a*b* directly; RGB models' output is converted to Lab and its a*b* kept (``keep_luminance``, the
default; off returns the model's RGB as it is, upsampled when ``scale`` < 1). Where the predicted color falls
outside sRGB, its chroma is reduced (not its lightness) until it fits, so L* is exact up to 8/16-bit rounding.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from aircolor.config import RunConfig
from aircolor.data.colorspace import AB_SCALE, encode_lab, gray_to_L, lab_to_rgb, L_SCALE, L_SHIFT
from aircolor.models.base import GANModel


@dataclass(frozen=True)
class ColorizeOptions:
    overlap: int | None = None      # pixels; default: half the tile
    batch_size: int = 16            # tiles per forward pass
    scale: float = 1.0              # the model sees the photo resized by this factor
    keep_luminance: bool = True     # RGB models: keep the input's L*, take only a*b* from the model
    amp: bool = True                # bf16 autocast on CUDA
    mode: str | None = None         # generator mode (reference / eval); default: the model's metrics.generator_mode


def fit_chroma(L: torch.Tensor, ab: torch.Tensor, steps: int = 12) -> torch.Tensor:
    """sRGB [0, 1] of (L*, s * a*b*) with the largest s in [0, 1] that stays in gamut, per pixel (bisection).

    ``L`` (..., 1, H, W) in [0, 100], ``ab`` (..., 2, H, W) in Lab units. Clipping RGB instead would change the
    lightness of saturated colors; shrinking chroma keeps L* exactly (neutral grays are always in gamut).
    """
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
    scale = torch.where(inside, torch.ones_like(L), lo)
    return rgb_of(scale).clamp(0, 1)


@contextlib.contextmanager
def seeded(device: torch.device, seed: int = 0) -> Iterator[None]:
    """A block with its own seeded RNG (CPU, and ``device`` if CUDA); the caller's RNG state is untouched."""
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def deliver(gray: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """What a user gets: the input's own L* with chroma ``ab`` (Lab units), gamut-fitted: sRGB [0, 1].

    ``gray`` (..., 1, H, W) in [0, 1] (the gray photo), ``ab`` (..., 2, H, W). Used by ``aircolor colorize``, by the
    evaluation of every trial (``val.*``, ``test.*``) and by the colour priors, so all of them score the same image.
    """
    return fit_chroma((gray_to_L(gray) + L_SHIFT) * L_SCALE, ab)


def to_chroma(color_space: str, out: torch.Tensor) -> torch.Tensor:
    """a*b* / AB_SCALE of a generator's output: Lab models predict it; RGB models' output is converted to Lab and its
    a*b* kept (its L* is replaced by the input's on delivery)."""
    return out if color_space == "lab" else encode_lab(((out + 1) / 2).clamp(0, 1))[1]


def model_chroma(model: GANModel, gray: torch.Tensor, *, mode: str | None = None, batch_size: int = 32,
                 z: torch.Tensor | None = None) -> torch.Tensor:
    """The model's chroma (B, 2, H, W) / AB_SCALE for gray images (B, 1, H, W) in [-1, 1]."""
    return to_chroma(model.color_space, model.infer(gray, mode=mode, batch_size=batch_size, z=z))


class Colorizer:
    """``Colorizer(model, cfg, device)(gray) -> rgb``: (H, W) float [0, 1] numpy in, (H, W, 3) float [0, 1] out."""

    def __init__(self, model: GANModel, cfg: RunConfig, device: torch.device, options: ColorizeOptions) -> None:
        from aircolor.colorize.tiling import TiledProcessor

        self.model, self.cfg, self.device, self.options = model, cfg, device, options
        self.tile = int(cfg.data.size)
        overlap = options.overlap if options.overlap is not None else self.tile // 2
        if not 0 <= overlap < self.tile:
            raise ValueError(f"overlap must be in [0, {self.tile}) for tiles of {self.tile} px, got {overlap}")
        self.lab_model = model.color_space == "lab"
        self.chroma_only = self.lab_model or options.keep_luminance
        self.processor = TiledProcessor(self._forward, tile=self.tile, overlap=overlap,
                                        batch_size=options.batch_size, out_channels=2 if self.chroma_only else 3,
                                        device=device)
        self.use_amp = options.amp and device.type == "cuda"

    @property
    def tiles_done(self) -> int:
        return self.processor.tiles_done

    def count_tiles(self, width: int, height: int) -> int:
        w, h = self._model_size(width, height)
        return self.processor.count_tiles(h, w)

    def _model_size(self, width: int, height: int) -> tuple[int, int]:
        s = self.options.scale
        return max(1, round(width * s)), max(1, round(height * s))

    @torch.no_grad()
    def _forward(self, gray: torch.Tensor) -> torch.Tensor:
        """(B, 1, t, t) gray in [-1, 1] -> (B, 2, t, t) a*b* / AB_SCALE, or (B, 3, t, t) RGB in [-1, 1]."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            if self.chroma_only:
                return model_chroma(self.model, gray, mode=self.options.mode, batch_size=self.options.batch_size)
            return self.model.colorize(gray, mode=self.options.mode, batch_size=self.options.batch_size).float()

    @torch.no_grad()
    def __call__(self, gray: np.ndarray, *, bits: int = 8, strip: int = 512) -> np.ndarray:
        """(H, W) float [0, 1] -> (H, W, 3) uint8 (``bits`` 8) or uint16 (16) sRGB.

        The model runs on the whole (scaled) image through the tiler; the full-resolution recombination runs in
        strips of ``strip`` rows, so a large scan never holds more than a few float copies of one strip.
        """
        h, w = gray.shape
        full = torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32))[None, None]
        mw, mh = self._model_size(w, h)
        small = full if (mw, mh) == (w, h) else F.interpolate(full, size=(mh, mw), mode="area")
        with seeded(self.device):  # reference mode keeps dropout on: the same photo gives the same colours
            chroma = self.processor(small[0] * 2 - 1)[None]          # (1, C, mh, mw)
        del small
        if not bool(torch.isfinite(chroma).all()):
            from aircolor.colorize.imageio import InputError

            raise InputError("gave NaN or Inf model outputs (the model's weights or this photo's values); the file "
                             "is not written")
        top = 255 if bits == 8 else 65535
        out = np.empty((h, w, 3), dtype=np.uint8 if bits == 8 else np.uint16)
        for y0 in range(0, h, strip):
            y1 = min(h, y0 + strip)
            part = chroma[..., y0:y1, :] if (mw, mh) == (w, h) else _resample_rows(chroma, y0, y1, w, h)
            if self.chroma_only:
                rgb = deliver(full[..., y0:y1, :], part * AB_SCALE)   # the input's own L*, full resolution
            else:
                rgb = (part.clamp(-1, 1) + 1) / 2
            out[y0:y1] = (rgb[0].permute(1, 2, 0) * top).round().clamp(0, top).numpy().astype(out.dtype)
        return out


def _resample_rows(image: torch.Tensor, y0: int, y1: int, width: int, height: int) -> torch.Tensor:
    """Rows ``y0:y1`` of ``image`` (1, C, h, w) resized bicubically to (height, width), without the whole result.

    Source coordinates follow ``F.interpolate(..., align_corners=False)``: ``(x + 0.5) * w / width - 0.5``.
    """
    _, _, h, w = image.shape
    ys = (torch.arange(y0, y1, dtype=torch.float32) + 0.5) * h / height - 0.5
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) * w / width - 0.5
    gy = (ys + 0.5) / h * 2 - 1                              # grid_sample's normalised coordinates
    gx = (xs + 0.5) / w * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]
    return F.grid_sample(image, grid, mode="bicubic", padding_mode="border", align_corners=False)
