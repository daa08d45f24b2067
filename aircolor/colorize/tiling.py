"""Apply a square-tile generator to an image of any size, without seams.

The generators are trained on ``size`` x ``size`` tiles, and historical scans run from 1024 px to 20000 px a side,
so ``aircolor colorize`` cuts the photo into overlapping tiles, runs the generator on batches of them, and blends
the outputs back with feathered weights. A GAN's output drifts from tile to tile (a slightly different tint or
brightness), so a hard cut shows that drift as a visible grid; the raised-cosine feather spreads the change over
the whole overlap instead, and normalising by the summed weights makes the blend exact wherever tiles agree.

Example::

    proc = TiledProcessor(generator, tile=256, overlap=64, batch_size=16, out_channels=2, device="cuda")
    ab = proc(gray)          # gray: (1, H, W) float on CPU -> ab: (2, H, W) float32 on CPU
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

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


class TiledProcessor:
    """Run ``fn`` over overlapping tiles of an image of any size and blend the outputs without seams.

    ``fn`` maps (B, C, tile, tile) on ``device`` to (B, out_channels, tile, tile); it is called under
    ``torch.inference_mode`` (put a model in ``eval()`` first). Tiles are cut and sent in batches of at most
    ``batch_size``, so only one batch of tiles exists at a time; the output and weight sums live in float32 CPU
    buffers the size of the (padded) image. ``tiles_done`` counts tiles processed over the processor's lifetime,
    for a tiles/s progress bar; ``progress``, if given, is called with the number of tiles after each batch (so
    ``tqdm(total=proc.count_tiles(h, w)).update`` fits) because ``__call__`` does not return until the image is done.
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        *,
        tile: int,
        overlap: int,
        batch_size: int = 8,
        out_channels: int,
        device: torch.device | str = "cpu",
        progress: Callable[[int], None] | None = None,
    ) -> None:
        if not 0 <= overlap < tile:
            raise ValueError(f"overlap must satisfy 0 <= overlap < tile ({tile}), got {overlap}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if out_channels < 1:
            raise ValueError(f"out_channels must be >= 1, got {out_channels}")
        self.fn = fn
        self.tile = tile
        self.overlap = overlap
        self.batch_size = batch_size
        self.out_channels = out_channels
        self.device = torch.device(device)
        self.progress = progress
        self.tiles_done = 0
        self._weights: dict[tuple[bool, bool, bool, bool], torch.Tensor] = {}

    def count_tiles(self, h: int, w: int) -> int:
        """Number of tiles ``__call__`` runs for an H x W image (the total for a progress bar)."""
        return len(tile_starts(h, self.tile, self.overlap)) * len(tile_starts(w, self.tile, self.overlap))

    def _weight(self, y: int, x: int, *, h: int, w: int) -> torch.Tensor:
        """Blend window of the tile at (y, x) of a padded H x W image: no ramp on sides at the image border.

        At most 9 distinct windows per image (corners, edges, interior), so they are cached.
        """
        key = (y == 0, y == h - self.tile, x == 0, x == w - self.tile)
        if key not in self._weights:
            top, bottom, left, right = key
            self._weights[key] = tile_weights(self.tile, self.overlap, top=top, bottom=bottom, left=left, right=right)
        return self._weights[key]

    def _origins(self, h: int, w: int) -> list[tuple[int, int]]:
        """(y, x) tile origins over a padded H x W image, row-major."""
        ys, xs = tile_starts(h, self.tile, self.overlap), tile_starts(w, self.tile, self.overlap)
        return [(y, x) for y in ys for x in xs]

    def _padded_weight_sum(self, h: int, w: int) -> torch.Tensor:
        """Sum of all tiles' blend windows over a padded H x W image (H, W >= tile): the normalising denominator."""
        t = self.tile
        total = torch.zeros(h, w, dtype=torch.float32)
        for y, x in self._origins(h, w):
            total[y:y + t, x:x + t] += self._weight(y, x, h=h, w=w)
        return total

    def weight_sum(self, h: int, w: int) -> torch.Tensor:
        """(H, W) sum of blend weights that ``__call__`` divides by for an H x W image.

        It is >= 1 everywhere when overlap <= tile / 2 (the ramps of neighbours sum to 1, and a larger overlap at
        the end only adds weight), so the division is well conditioned; where tiles overlap by exactly ``overlap``
        it is exactly 1. Useful to check or visualise coverage.
        """
        ph, pw = max(h, self.tile), max(w, self.tile)
        return self._padded_weight_sum(ph, pw)[:h, :w].contiguous()

    def _batches(self, h: int, w: int) -> Iterator[list[tuple[int, int]]]:
        """(y, x) tile origins over a padded H x W image, row-major, in lists of up to ``batch_size``."""
        origins = self._origins(h, w)
        for i in range(0, len(origins), self.batch_size):
            yield origins[i:i + self.batch_size]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Colorize-style map of a (C, H, W) CPU image to (out_channels, H, W) float32 on CPU."""
        if image.ndim != 3:
            raise ValueError(f"expected a (C, H, W) image, got shape {tuple(image.shape)}")
        padded, (left, right, top, bottom) = pad_to(image, self.tile, self.tile)
        ph, pw = padded.shape[-2:]
        acc = torch.zeros(self.out_channels, ph, pw, dtype=torch.float32)
        t = self.tile
        with torch.inference_mode():
            for origins in self._batches(ph, pw):
                batch = torch.stack([padded[:, y:y + t, x:x + t] for y, x in origins]).to(self.device)
                out = self.fn(batch)
                expected = (len(origins), self.out_channels, t, t)
                if tuple(out.shape) != expected:
                    raise ValueError(f"fn returned shape {tuple(out.shape)}, expected {expected}")
                out = out.to("cpu", torch.float32)
                for (y, x), tile_out in zip(origins, out):
                    acc[:, y:y + t, x:x + t].addcmul_(tile_out, self._weight(y, x, h=ph, w=pw))
                self.tiles_done += len(origins)
                if self.progress is not None:
                    self.progress(len(origins))
        acc /= self._padded_weight_sum(ph, pw)
        if right or bottom or left or top:
            acc = acc[:, top:ph - bottom, left:pw - right].contiguous()
        return acc
