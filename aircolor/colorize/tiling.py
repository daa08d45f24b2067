"""Apply a square-tile generator to an image of any size, without seams.

The generators are trained on ``size`` x ``size`` tiles, and historical scans run from 1024 px to 20000 px a side,
so ``aircolor colorize`` cuts the photo into overlapping tiles, runs the generator on batches of them, and blends
the outputs back with feathered weights. A GAN's output drifts from tile to tile (a slightly different tint or
brightness), so a hard cut shows that drift as a visible grid; the raised-cosine feather spreads the change over
the whole overlap instead, and normalising by the summed weights makes the blend exact wherever tiles agree.

The tiles are grouped into **blocks** (up to ``block`` x ``block`` neighbouring tiles, :class:`BlockPlan`): each
block's tiles are run and blended into a partial sum over the block's footprint, and rows of the result are the
blocks' partial sums added in block order, divided by the blocks' summed weights. A block is the unit of work that
``aircolor colorize --ray`` hands to a worker, so one large scan is spread over the cluster; the single-process path
runs the same blocks in the same order, so both give the same bits.

Example::

    proc = TiledProcessor(generator, tile=256, overlap=64, batch_size=16, out_channels=2, device="cuda")
    ab = proc(gray)          # gray: (1, H, W) float on CPU -> ab: (2, H, W) float32 on CPU
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Weight at a tile's very edge: small, so a neighbour's (better-centred) prediction dominates there, but never 0,
# so that a pixel seen only near tile edges still has weight and the normalising division is safe.
EDGE_EPS = 1e-3


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of ``tile``-px windows that cover ``[0, length)``, neighbours overlapping by >= ``overlap``.

    The stride is ``tile - overlap``; the last window is aligned to the end (``length - tile``) rather than hanging
    over it, so no tile sees padding except when the whole length is shorter than one tile (then ``[0]``, and the
    caller pads). The last pair of windows may therefore overlap by more than ``overlap``; the weight
    normalisation in :class:`TiledProcessor` handles that.
    """
    if tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must satisfy 0 <= overlap < tile ({tile}), got {overlap}")
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    starts.append(length - tile)
    return starts


def _ramp(overlap: int, *, dtype: torch.dtype) -> torch.Tensor:
    """Rising raised-cosine ramp of ``overlap`` samples, from about ``EDGE_EPS`` to just below 1.

    Why a raised cosine, sampled at pixel centres ``t + 0.5``: ``r(t) = sin^2(pi (t + 0.5) / (2 overlap))`` gives
    ``r(t) + r(overlap - 1 - t) = 1`` exactly, so a tile's falling ramp and its neighbour's rising ramp sum to 1
    across an overlap of exactly ``overlap`` px (a partition of unity even before normalising), and the blend is
    C1-continuous (zero slope where the ramp meets the flat middle), so no kink shows where the fade starts. A
    linear ramp also sums to 1 but has slope jumps at both ends, which show as faint lines on smooth fields.
    ``eps + (1 - 2 eps) r`` keeps both the sum of 1 and a floor of ``eps`` at the edge.
    """
    t = torch.arange(overlap, dtype=torch.float64) + 0.5
    ramp = torch.sin(math.pi * t / (2 * overlap)) ** 2
    return (EDGE_EPS + (1 - 2 * EDGE_EPS) * ramp).to(dtype)


def _window_1d(tile: int, overlap: int, *, start_border: bool, end_border: bool, dtype: torch.dtype) -> torch.Tensor:
    """1-D weights of one tile along one axis: flat 1, ramped on each side that has a neighbour."""
    w = torch.ones(tile, dtype=torch.float64)
    if overlap > 0:
        ramp = _ramp(overlap, dtype=torch.float64)
        # Multiplying (not overwriting) keeps the window sensible when overlap > tile / 2 and the ramps meet.
        if not start_border:
            w[:overlap] *= ramp
        if not end_border:
            w[tile - overlap:] *= ramp.flip(0)
    return w.to(dtype)


def tile_weights(
    tile: int, overlap: int, *, top: bool, bottom: bool, left: bool, right: bool, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(tile, tile) separable blend window; a side flagged True lies on the image border and gets no ramp.

    A border side has no neighbour to hand over to, so fading there would only leave the outermost pixels with
    a tiny weight (and, with a single tile, make the output depend on ``EDGE_EPS``). Separable windows keep the
    partition of unity in 2-D: on a grid of tiles the products of the 1-D windows sum to the product of 1-D sums.
    """
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must satisfy 0 <= overlap < tile ({tile}), got {overlap}")
    wy = _window_1d(tile, overlap, start_border=top, end_border=bottom, dtype=torch.float64)
    wx = _window_1d(tile, overlap, start_border=left, end_border=right, dtype=torch.float64)
    return torch.outer(wy, wx).to(dtype)


def feather_weights(tile: int, overlap: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(tile, tile) window for an interior tile: 1 in the middle, raised-cosine ramps of ``overlap`` px on all sides.

    The ramps fall to about ``EDGE_EPS`` (never 0) at the edges; see :func:`_ramp` for why a raised cosine.
    """
    return tile_weights(tile, overlap, top=False, bottom=False, left=False, right=False, dtype=dtype)


def pad_to(
    image: torch.Tensor, min_h: int, min_w: int, multiple: int = 1
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad a (C, H, W) or (B, C, H, W) tensor on the bottom/right to H >= min_h, W >= min_w, multiples of ``multiple``.

    Reflect padding, because zeros (or a flat edge) look like a black or smeared border that a GAN will happily
    colour as shadow or water, and that bleeds into the real pixels through the receptive field. Reflection needs
    the pad to be smaller than the side, so an axis too small for it falls back to replicate. Returns the padded
    tensor and ``(left, right, top, bottom)`` so the caller can crop back; an image already big enough is returned
    unchanged (not copied).
    """
    if image.ndim not in (3, 4):
        raise ValueError(f"expected a (C, H, W) or (B, C, H, W) tensor, got shape {tuple(image.shape)}")
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    h, w = image.shape[-2:]
    target_h = math.ceil(max(h, min_h) / multiple) * multiple
    target_w = math.ceil(max(w, min_w) / multiple) * multiple
    pad_h, pad_w = target_h - h, target_w - w
    # One axis at a time, so each gets reflect where it can, independently of the other axis.
    if pad_h:
        image = F.pad(image, (0, 0, 0, pad_h), mode="reflect" if pad_h < h else "replicate")
    if pad_w:
        image = F.pad(image, (0, pad_w, 0, 0), mode="reflect" if pad_w < w else "replicate")
    return image, (0, pad_w, 0, pad_h)


# ------------------------------------------------------------------------------------------------ blocks
@dataclass(frozen=True)
class Block:
    """Up to ``block`` x ``block`` neighbouring tiles: their origins and global ids (row-major over the whole
    image: the seeds of per-tile randomness), and their footprint ``[y0, y1) x [x0, x1)`` in the padded image."""

    index: int
    origins: tuple[tuple[int, int], ...]
    ids: tuple[int, ...]
    y0: int
    y1: int
    x0: int
    x1: int


class BlockPlan:
    """The tiles of an H x W image (padded on the bottom/right to at least one tile) and their blocks.

    A pure function of the geometry: any process that builds the plan for the same size and options gets the same
    blocks, which is what lets a worker compute block 17 of a scan and the driver put it back in its place.
    """

    def __init__(self, h: int, w: int, *, tile: int, overlap: int, block: int = 8) -> None:
        if block < 1:
            raise ValueError(f"block must be >= 1 tiles per side, got {block}")
        self.h, self.w, self.tile, self.overlap = h, w, tile, overlap
        self.ph, self.pw = max(h, tile), max(w, tile)
        ys, xs = tile_starts(self.ph, tile, overlap), tile_starts(self.pw, tile, overlap)
        self.tiles = len(ys) * len(xs)
        blocks = []
        for by in range(0, len(ys), block):
            for bx in range(0, len(xs), block):
                rows, cols = range(by, min(by + block, len(ys))), range(bx, min(bx + block, len(xs)))
                blocks.append(Block(len(blocks), tuple((ys[r], xs[c]) for r in rows for c in cols),
                                    tuple(r * len(xs) + c for r in rows for c in cols),
                                    ys[rows[0]], ys[rows[-1]] + tile, xs[cols[0]], xs[cols[-1]] + tile))
        self.blocks: tuple[Block, ...] = tuple(blocks)
        self._windows: dict[tuple[bool, bool, bool, bool], torch.Tensor] = {}

    def window(self, y: int, x: int) -> torch.Tensor:
        """Blend window of the tile at (y, x): no ramp on sides at the image border (at most 9 distinct: cached)."""
        key = (y == 0, y == self.ph - self.tile, x == 0, x == self.pw - self.tile)
        if key not in self._windows:
            top, bottom, left, right = key
            self._windows[key] = tile_weights(self.tile, self.overlap, top=top, bottom=bottom, left=left, right=right)
        return self._windows[key]

    def covering(self, r0: int, r1: int) -> list[Block]:
        """The blocks whose footprint meets rows ``[r0, r1)``, in block order."""
        return [b for b in self.blocks if b.y0 < r1 and b.y1 > r0]

    def block_weight(self, block: Block) -> torch.Tensor:
        """(y1 - y0, x1 - x0) sum of the block's tile windows, added in the block's tile order."""
        total = torch.zeros(block.y1 - block.y0, block.x1 - block.x0, dtype=torch.float32)
        t = self.tile
        for y, x in block.origins:
            total[y - block.y0:y - block.y0 + t, x - block.x0:x - block.x0 + t] += self.window(y, x)
        return total


def blend_block(plan: BlockPlan, block: Block, outputs: Iterable[torch.Tensor]) -> torch.Tensor:
    """(C, y1 - y0, x1 - x0) float32: the block's tile outputs (batches of (n, C, tile, tile), in the block's tile
    order) blended with their windows into one partial sum over the block's footprint, not yet normalised."""
    t, acc = plan.tile, None
    tiles = iter(block.origins)
    for out in outputs:
        if acc is None:
            acc = torch.zeros(out.shape[1], block.y1 - block.y0, block.x1 - block.x0, dtype=torch.float32)
        for tile_out in out:
            y, x = next(tiles)
            acc[:, y - block.y0:y - block.y0 + t, x - block.x0:x - block.x0 + t].addcmul_(tile_out,
                                                                                          plan.window(y, x))
    return acc


def assemble(plan: BlockPlan, r0: int, r1: int, partials: Mapping[int, torch.Tensor]) -> torch.Tensor:
    """Rows ``[r0, r1)`` (of the unpadded image) of the blended result, (C, r1 - r0, W) contiguous: the partial sums
    of the covering blocks added in block order, divided by their summed windows. Every path (one process, or
    blocks from many workers) adds the same numbers in the same order, so the result is the same to the bit."""
    blocks = plan.covering(r0, r1)
    channels = partials[blocks[0].index].shape[0]
    acc = torch.zeros(channels, r1 - r0, plan.pw, dtype=torch.float32)
    weight = torch.zeros(r1 - r0, plan.pw, dtype=torch.float32)
    for b in blocks:
        a0, a1 = max(r0, b.y0), min(r1, b.y1)
        acc[:, a0 - r0:a1 - r0, b.x0:b.x1] += partials[b.index][:, a0 - b.y0:a1 - b.y0]
        weight[a0 - r0:a1 - r0, b.x0:b.x1] += plan.block_weight(b)[a0 - b.y0:a1 - b.y0]
    acc /= weight
    return acc[:, :, :plan.w].contiguous()


# ------------------------------------------------------------------------------------------------ one process
class TiledProcessor:
    """Run ``fn`` over overlapping tiles of an image of any size and blend the outputs without seams.

    ``fn`` maps (B, C, tile, tile) on ``device`` to (B, out_channels, tile, tile) (called as ``fn(batch, ids)``
    with the tiles' global ids when ``with_ids``); it runs under ``torch.inference_mode`` (put a model in
    ``eval()`` first). Tiles are cut and sent in batches of at most ``batch_size`` within a block of up to
    ``block`` x ``block`` tiles, so only one batch of tiles exists at a time. ``tiles_done`` counts tiles over the
    processor's lifetime, for a tiles/s progress bar; ``progress``, if given, is called with the number of tiles
    after each batch (so ``tqdm(total=proc.count_tiles(h, w)).update`` fits).
    """

    def __init__(self, fn: Callable[..., torch.Tensor], *, tile: int, overlap: int, batch_size: int = 8,
                 out_channels: int, device: torch.device | str = "cpu", block: int = 8, with_ids: bool = False,
                 progress: Callable[[int], None] | None = None) -> None:
        if not 0 <= overlap < tile:
            raise ValueError(f"overlap must satisfy 0 <= overlap < tile ({tile}), got {overlap}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if out_channels < 1:
            raise ValueError(f"out_channels must be >= 1, got {out_channels}")
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        self.fn, self.tile, self.overlap, self.batch_size = fn, tile, overlap, batch_size
        self.out_channels, self.device, self.block, self.with_ids = out_channels, torch.device(device), block, with_ids
        self.progress = progress
        self.tiles_done = 0
        self._count = threading.Lock()  # batches finish on several threads

    def plan(self, h: int, w: int) -> BlockPlan:
        return BlockPlan(h, w, tile=self.tile, overlap=self.overlap, block=self.block)

    def count_tiles(self, h: int, w: int) -> int:
        """Number of tiles ``__call__`` runs for an H x W image (the total for a progress bar)."""
        return len(tile_starts(max(h, self.tile), self.tile, self.overlap)) * \
            len(tile_starts(max(w, self.tile), self.tile, self.overlap))

    def weight_sum(self, h: int, w: int) -> torch.Tensor:
        """(H, W) sum of blend weights that the result is divided by for an H x W image: >= 1 everywhere when
        overlap <= tile / 2 (neighbours' ramps sum to 1, a larger end overlap only adds), exactly 1 where tiles
        overlap by exactly ``overlap``. Useful to check or visualise coverage."""
        plan = self.plan(h, w)
        ones = {b.index: plan.block_weight(b)[None] for b in plan.blocks}
        weight = torch.zeros(1, plan.ph, plan.pw)
        for b in plan.blocks:
            weight[:, b.y0:b.y1, b.x0:b.x1] += ones[b.index]
        return weight[0, :h, :w].contiguous()

    def batches(self, block: Block) -> list[tuple[tuple[tuple[int, int], ...], tuple[int, ...]]]:
        """The block's tiles in batches of at most ``batch_size``: (origins, ids) each."""
        step = self.batch_size
        return [(block.origins[i:i + step], block.ids[i:i + step]) for i in range(0, len(block.origins), step)]

    def run_batch(self, padded: torch.Tensor, origins: tuple[tuple[int, int], ...],
                  ids: tuple[int, ...]) -> torch.Tensor:
        """(n, out_channels, tile, tile) float32 CPU: the tiles at ``origins`` of a padded image through ``fn``."""
        t = self.tile
        with torch.inference_mode():
            batch = torch.stack([padded[:, y:y + t, x:x + t] for y, x in origins]).to(self.device)
            out = self.fn(batch, ids) if self.with_ids else self.fn(batch)
            expected = (len(origins), self.out_channels, t, t)
            if tuple(out.shape) != expected:
                raise ValueError(f"fn returned shape {tuple(out.shape)}, expected {expected}")
            out = out.to("cpu", torch.float32)
        with self._count:
            self.tiles_done += len(origins)
            if self.progress is not None:
                self.progress(len(origins))
        return out

    def run_block(self, padded: torch.Tensor, plan: BlockPlan, block: Block) -> torch.Tensor:
        """One block's partial sum (:func:`blend_block`) of a padded (C, ph, pw) image, its batches in turn."""
        with torch.inference_mode():
            return blend_block(plan, block, (self.run_batch(padded, *b) for b in self.batches(block)))

    def stream(self, image: torch.Tensor, ranges: Iterable[tuple[int, int]],
               pool: Executor | None = None) -> Iterator[torch.Tensor]:
        """For each row range ``[r0, r1)`` of ``image`` (C, H, W) in turn (non-decreasing starts), its blended rows
        (out_channels, r1 - r0, W). Blocks run in block order, on ``pool`` if given (the blocks of this range and
        the next run side by side), and each block's partial sum is dropped once no later range needs it, so a
        large scan never holds more than a few rows of blocks."""
        if image.ndim != 3:
            raise ValueError(f"expected a (C, H, W) image, got shape {tuple(image.shape)}")
        padded, _ = pad_to(image, self.tile, self.tile)
        plan = self.plan(*image.shape[-2:])
        ranges = list(ranges)
        last = [plan.covering(r0, r1)[-1].index for r0, r1 in ranges]
        started: dict[int, list[Future[torch.Tensor]]] = {}   # block -> its batches' outputs
        partials: dict[int, torch.Tensor] = {}
        for k, (r0, r1) in enumerate(ranges):
            for index in range(len(started), last[min(k + 1, len(ranges) - 1)] + 1):
                started[index] = [pool.submit(self.run_batch, padded, *b) if pool is not None
                                  else _done(self.run_batch(padded, *b)) for b in self.batches(plan.blocks[index])]
            for b in plan.covering(r0, r1):
                if b.index not in partials:
                    with torch.inference_mode():
                        partials[b.index] = blend_block(plan, b, (f.result() for f in started[b.index]))
                    started[b.index] = []
            yield assemble(plan, r0, r1, partials)
            for index in [i for i in partials if plan.blocks[i].y1 <= r0]:
                del partials[index]  # no later range needs it

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Colorize-style map of a (C, H, W) CPU image to (out_channels, H, W) float32 on CPU."""
        return next(self.stream(image, [(0, image.shape[-2])]))


def _done(value: object) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future
