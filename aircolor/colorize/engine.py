"""Colorize one gray image of any size with a trained generator.

The generator sees tiles of its training size (``data.size``, or ``tile``: a multiple of it), overlapping by
``overlap`` pixels (default half a tile) and blended with raised-cosine weights (:mod:`aircolor.colorize.tiling`),
so no seam shows between tiles; images smaller than a tile are padded. Half a tile because a generator's output is
worst at its tile's border (padding): with half-tile overlap every border pixel is outweighed by a neighbour's
centre. On the test photo the chroma step across tile edges is within noise of the step inside tiles at both a half
and a quarter tile (hard edges: 5 standard errors above), so a quarter (``--overlap``) is a fair trade for half the
tiles. With ``scale`` < 1 the model sees a downsampled copy (a 1 m/px scan shown to a model trained on 4 m/px
tiles) and its chroma is upsampled back.

Only chroma comes from the model. The output's L* is the input's own luminance at full resolution: Lab models
predict a*b* directly; RGB models' output is converted to Lab and its a*b* kept (``keep_luminance``, the
default; off returns the model's RGB as it is, upsampled when ``scale`` < 1). Where the predicted color falls
outside sRGB, its chroma is reduced (not its lightness) until it fits (:mod:`aircolor.colorize.delivery`).

The work comes in three stages, which ``aircolor colorize --ray`` runs on different workers and this class runs in
turn, with the same inputs, so both give the same bits: :meth:`Colorizer.model_input` (the photo as the model
sees it), :meth:`Colorizer.run_block` (a block of tiles through the generator) and :meth:`Colorizer.finish`
(a band of output rows: the blended chroma on the input's L*, as 8/16-bit sRGB).
"""

from __future__ import annotations

import contextlib
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from aircolor.colorize.delivery import deliver, to_chroma
from aircolor.colorize.tiling import Block, BlockPlan, TiledProcessor
from aircolor.config import RunConfig
from aircolor.data.colorspace import AB_SCALE, gray_to_L
from aircolor.models.base import GANModel

STRIP = 512  # output rows per band: the unit of the full-resolution recombination (and of its memory)


@dataclass(frozen=True)
class ColorizeOptions:
    overlap: int | None = None      # pixels; default: half the tile
    batch_size: int | None = None   # tiles per forward pass; default: :func:`default_batch`
    scale: float = 1.0              # the model sees the photo resized by this factor
    keep_luminance: bool = True     # RGB models: keep the input's L*, take only a*b* from the model
    amp: bool = True                # bf16 autocast on CUDA and on CPUs with native bf16
    mode: str | None = None         # generator mode (reference / eval); default: the model's metrics.generator_mode
    tile: int | None = None         # tile side in pixels; default: the model's training size (data.size)
    block: int | None = None        # tiles per block side (the unit of work of --ray); default: :func:`default_block`
    channels_last: bool | None = None  # NHWC convolutions; default: on (measured faster for every generator here)
    seed: int = 0                   # seeds the per-tile dropout masks of reference-mode generators
    streams: int | None = None      # blocks and bands worked on at once (CPU: one thread each); default: all cores


def default_batch(tile: int, device: torch.device) -> int:
    """Tiles per forward pass (measured, benchmarks/results): on a CPU about 64k pixels of tiles (16 tiles of
    64 px, 4 of 256 px), more gains nothing there; on a GPU about 1 Mpx (16 of 256 px, up to 256 small ones)."""
    if device.type == "cpu":
        return max(4, min(16, 262144 // (tile * tile)))
    return max(16, min(256, 16 * (256 // tile) ** 2))


def default_block(batch: int) -> int:
    """Tiles per block side: about four batches per block, at least 4 x 4 tiles. A block is one call of a --ray
    worker, so it should be worth a call (a 64-tile block of the demo's model is about 0.3 s of one CPU core);
    one process runs a block's batches side by side, so the size costs it nothing."""
    return max(4, math.ceil(math.sqrt(4 * batch)))


@contextlib.contextmanager
def single_threaded_ops() -> Iterator[None]:
    """Every torch op on one CPU thread for the block (the work runs in parallel streams instead).

    Why: some CPU kernels (oneDNN's transposed convolutions, for one) split their sums differently with the
    number of threads, so the same tile gives other low bits on a machine, or a Ray worker, with another thread
    count. One thread per op makes the bytes independent of it, and measured no slower: two streams of
    one-thread ops colorize as fast as one stream of two-thread ops, or faster (benchmarks/results).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Colorizer:
    """``Colorizer(model, cfg, device, options)(gray) -> rgb``: (H, W) float [0, 1] numpy in, (H, W, 3) 8/16-bit out."""

    def __init__(self, model: GANModel, cfg: RunConfig, device: torch.device, options: ColorizeOptions) -> None:
        self.model, self.cfg, self.device, self.options = model, cfg, device, options
        self.tile = int(options.tile or cfg.data.size)
        if self.tile % int(cfg.data.size):
            raise ValueError(f"tile {self.tile} must be a multiple of the model's tile size {cfg.data.size}")
        overlap = options.overlap if options.overlap is not None else self.tile // 2
        if not 0 <= overlap < self.tile:
            raise ValueError(f"overlap must be in [0, {self.tile}) for tiles of {self.tile} px, got {overlap}")
        self.lab_model = model.color_space == "lab"
        self.chroma_only = self.lab_model or options.keep_luminance
        self.mode = options.mode or cfg.metrics.generator_mode
        self.batch_size = options.batch_size or default_batch(self.tile, device)
        block = options.block or default_block(self.batch_size)
        self.streams = options.streams or torch.get_num_threads()
        self.processor = TiledProcessor(self._forward, tile=self.tile, overlap=overlap, batch_size=self.batch_size,
                                        out_channels=2 if self.chroma_only else 3, device=device, block=block,
                                        with_ids=True)
        from aircolor.training.loop import cpu_has_bf16

        self.use_amp = options.amp and (device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()))
        self.channels_last = options.channels_last is not False
        model.eval()
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.per_tile = None
        if self.mode == "reference":
            from aircolor.models.inference import PerTileReference

            self.per_tile = PerTileReference.attach(model)  # the Colorizer owns the model from here on

    # ------------------------------------------------------------------------------------------- geometry
    @property
    def tiles_done(self) -> int:
        return self.processor.tiles_done

    def model_size(self, width: int, height: int) -> tuple[int, int]:
        s = self.options.scale
        return max(1, round(width * s)), max(1, round(height * s))

    def count_tiles(self, width: int, height: int) -> int:
        w, h = self.model_size(width, height)
        return self.processor.count_tiles(h, w)

    def plan(self, width: int, height: int) -> BlockPlan:
        """The blocks of tiles of a ``width`` x ``height`` photo, in the model's resolution."""
        w, h = self.model_size(width, height)
        return self.processor.plan(h, w)

    def bands(self, height: int) -> list[tuple[int, int]]:
        """Output row bands ``[y0, y1)``: :meth:`finish` makes one at a time."""
        return [(y0, min(height, y0 + STRIP)) for y0 in range(0, height, STRIP)]

    def model_rows(self, y0: int, y1: int, width: int, height: int) -> tuple[int, int]:
        """Rows of the model's image that output rows ``[y0, y1)`` are made from (bicubic taps included)."""
        mw, mh = self.model_size(width, height)
        if mh == height:
            return y0, y1
        top, bottom = _source_row(y0, mh, height), _source_row(y1 - 1, mh, height)
        return max(0, math.floor(top) - 2), min(mh, math.floor(bottom) + 4)

    # ------------------------------------------------------------------------------------------- stages
    def model_input(self, gray: np.ndarray) -> torch.Tensor:
        """(1, h, w) in [-1, 1]: the photo (H, W) [0, 1] as the model sees it (resized by ``scale``)."""
        h, w = gray.shape
        full = torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32))[None, None]
        mw, mh = self.model_size(w, h)
        with single_threaded_ops():
            small = full if (mw, mh) == (w, h) else F.interpolate(full, size=(mh, mw), mode="area")
            return small[0] * 2 - 1

    def run_block(self, image: torch.Tensor, plan: BlockPlan, block: Block) -> torch.Tensor:
        """One block's blended, unnormalised model output over its footprint (see :func:`tiling.blend_block`)."""
        from aircolor.colorize.tiling import pad_to

        padded, _ = pad_to(image, self.tile, self.tile)
        with single_threaded_ops():
            return self.processor.run_block(padded, plan, block)

    def finish(self, gray_rows: np.ndarray, chroma: torch.Tensor, *, y0: int, r0: int, width: int,
               height: int, bits: int) -> np.ndarray:
        """Output rows ``[y0, y0 + len(gray_rows))`` as (n, W, 3) uint8/uint16 sRGB: ``chroma`` (C, r1 - r0, w) is
        the blended model output of model rows ``[r0, r1)`` (:func:`tiling.assemble`), ``gray_rows`` the photo's own
        rows, whose L* the output keeps."""
        if not bool(torch.isfinite(chroma).all()):
            from aircolor.colorize.imageio import InputError

            raise InputError("gave NaN or Inf model outputs (the model's weights or this photo's values); the file "
                             "is not written")
        with single_threaded_ops():
            return self._finish(gray_rows, chroma, y0=y0, r0=r0, width=width, height=height, bits=bits)

    def _finish(self, gray_rows: np.ndarray, chroma: torch.Tensor, *, y0: int, r0: int, width: int,
                height: int, bits: int) -> np.ndarray:
        y1 = y0 + gray_rows.shape[0]
        part = chroma[None]
        if self.model_size(width, height) != (width, height):
            part = _resample_band(part, r0, y0, y1, width, height, self.model_size(width, height)[1])
        if self.chroma_only:
            rows = torch.from_numpy(np.ascontiguousarray(gray_rows, dtype=np.float32))[None, None]
            rgb = deliver(rows, part * AB_SCALE)      # the input's own L*, full resolution
        else:
            rgb = (part.clamp(-1, 1) + 1) / 2
        top = 255 if bits == 8 else 65535
        return (rgb[0].permute(1, 2, 0) * top).round().clamp(0, top).numpy().astype(np.uint8 if bits == 8
                                                                                     else np.uint16)

    def __call__(self, gray: np.ndarray, *, bits: int = 8) -> np.ndarray:
        """(H, W) float [0, 1] -> (H, W, 3) uint8 (``bits`` 8) or uint16 (16) sRGB.

        Blocks run in order on ``streams`` threads, and each band of rows is finished as soon as its blocks are
        in, so a large scan never holds the model's output for more than a few rows of blocks at once.
        """
        h, w = gray.shape
        image = self.model_input(gray)
        bands = self.bands(h)
        ranges = [self.model_rows(y0, y1, w, h) for y0, y1 in bands]
        out = np.empty((h, w, 3), dtype=np.uint8 if bits == 8 else np.uint16)
        pending: list[tuple[int, Future[np.ndarray]]] = []
        with single_threaded_ops(), ThreadPoolExecutor(self.streams) as pool:
            try:
                for (y0, y1), (r0, _), chroma in zip(bands, ranges, self.processor.stream(image, ranges, pool)):
                    pending.append((y0, pool.submit(self.finish, gray[y0:y1], chroma, y0=y0, r0=r0, width=w,
                                                    height=h, bits=bits)))
                    while pending and pending[0][1].done():
                        y, rows = pending.pop(0)
                        out[y:y + len(rows.result())] = rows.result()
                for y, rows in pending:
                    out[y:y + len(rows.result())] = rows.result()
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
        return out

    # ------------------------------------------------------------------------------------------- the model
    def _forward(self, gray: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
        """(B, 1, t, t) gray in [-1, 1] -> (B, 2, t, t) a*b* / AB_SCALE, or (B, 3, t, t) RGB in [-1, 1].

        Every tile's output depends on that tile (and, for reference-mode dropout, its id) alone, whatever else is
        in its batch: reference-mode BatchNorm normalises each tile on its own statistics
        (:class:`aircolor.models.inference.PerTileReference`).
        """
        model = self.model
        net_in = gray_to_L((gray.float() + 1) / 2) if self.lab_model else gray.float()
        if self.channels_last:
            net_in = net_in.contiguous(memory_format=torch.channels_last)
        per_tile = (self.per_tile.seeds([self.options.seed * 1_000_003 + i for i in ids]) if self.per_tile
                    else contextlib.nullcontext())
        with torch.inference_mode(), per_tile, torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                              enabled=self.use_amp):
            out = model.generate(net_in).float()
        return to_chroma(model.color_space, out) if self.chroma_only else out


def _source_row(y: float, small: int, full: int) -> float:
    """Row of the model's image (``small`` rows) that output row ``y`` of ``full`` rows samples
    (``align_corners=False``)."""
    return (y + 0.5) * small / full - 0.5


def _resample_band(image: torch.Tensor, r0: int, y0: int, y1: int, width: int, height: int,
                   small_h: int) -> torch.Tensor:
    """Rows ``y0:y1`` of the model's output resized bicubically to (height, width), from ``image`` (1, C, n, w): rows
    ``[r0, r0 + n)`` of the model's image of ``small_h`` rows, enough of them for every bicubic tap."""
    _, _, n, w = image.shape
    ys = torch.tensor([_source_row(y, small_h, height) for y in range(y0, y1)], dtype=torch.float32) - r0
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) * w / width - 0.5
    gy = (ys + 0.5) / n * 2 - 1                              # grid_sample's normalised coordinates
    gx = (xs + 0.5) / w * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]
    return F.grid_sample(image, grid, mode="bicubic", padding_mode="border", align_corners=False)
