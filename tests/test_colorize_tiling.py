"""Tests for ``aircolor.colorize.tiling``: tile placement, blend windows, padding, and seam-free tiled inference.

Run: ``.venv/bin/python -m pytest tests/test_colorize_tiling.py -q``
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from aircolor.colorize.tiling import (
    EDGE_EPS,
    TiledProcessor,
    feather_weights,
    pad_to,
    tile_starts,
    tile_weights,
)


def identity(x: torch.Tensor) -> torch.Tensor:
    return x.clone()


def per_tile_offsets(offsets: list[float]):
    """An fn that adds offsets[k] to the k-th tile it sees: a model whose output drifts from tile to tile."""
    seen = 0

    def fn(x: torch.Tensor) -> torch.Tensor:
        nonlocal seen
        add = torch.tensor(offsets[seen:seen + len(x)], dtype=x.dtype).view(-1, 1, 1, 1)
        seen += len(x)
        return x + add

    return fn


def max_column_step(out: torch.Tensor) -> float:
    """Largest, over column positions, of the mean absolute step between adjacent columns."""
    return (out[..., 1:] - out[..., :-1]).abs().mean(dim=(0, 1)).max().item()


def max_row_step(out: torch.Tensor) -> float:
    return (out[..., 1:, :] - out[..., :-1, :]).abs().mean(dim=(0, 2)).max().item()


# -- tile_starts ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("length", "tile", "overlap", "expected"), [
    (10, 4, 2, [0, 2, 4, 6]),
    (1024, 256, 64, [0, 192, 384, 576, 768]),
    (200, 256, 64, [0]),
    (256, 256, 64, [0]),
    (257, 256, 0, [0, 1]),
    (8, 4, 0, [0, 4]),
    (11, 4, 2, [0, 2, 4, 6, 7]),
])
def test_tile_starts_hand_cases(length, tile, overlap, expected):
    assert tile_starts(length, tile, overlap) == expected


@pytest.mark.parametrize(("tile", "overlap"), [(4, 4), (4, 5), (4, -1), (0, 0)])
def test_tile_starts_rejects_bad_overlap(tile, overlap):
    with pytest.raises(ValueError):
        tile_starts(100, tile, overlap)


@pytest.mark.parametrize(("tile", "overlap"), [(4, 0), (4, 1), (4, 3), (7, 2), (16, 5), (32, 8)])
def test_tile_starts_cover_every_pixel_and_end_at_length(tile, overlap):
    for length in range(1, 300):
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0
        assert starts == sorted(set(starts))
        if length <= tile:
            assert starts == [0]
            continue
        assert starts[-1] + tile == length  # the last tile is aligned to the end, none hangs over
        covered = torch.zeros(length, dtype=torch.bool)
        for s in starts:
            covered[s:s + tile] = True
        assert covered.all()
        for a, b in zip(starts, starts[1:]):
            assert a + tile - b >= overlap  # neighbours overlap by at least `overlap`
            assert b - a <= tile - overlap  # ... and the stride is never longer than asked (no wasted tiles)


# -- blend windows ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("tile", "overlap"), [(32, 8), (64, 16), (256, 64), (9, 1), (16, 0)])
def test_feather_weights_shape_range_and_symmetry(tile, overlap):
    w = feather_weights(tile, overlap)
    assert w.shape == (tile, tile) and w.dtype == torch.float32
    assert (w > 0).all()  # every pixel keeps some weight
    assert w.max().item() == pytest.approx(1.0)
    assert w[tile // 2, tile // 2].item() == pytest.approx(1.0)
    assert torch.equal(w, w.T) and torch.equal(w, w.flip(0)) and torch.equal(w, w.flip(1))
    if overlap >= 4:
        # Fades to eps plus the first pixel-centre sample of the ramp, sin^2(pi / (4 overlap)): small, never 0.
        edge = EDGE_EPS + (1 - 2 * EDGE_EPS) * math.sin(math.pi / (4 * overlap)) ** 2
        assert w[tile // 2, 0].item() == pytest.approx(edge, rel=1e-5)
        assert w[tile // 2, 0].item() < 0.02
        assert w[tile // 2, overlap:tile - overlap].eq(1).all()  # flat 1 between the ramps
    assert feather_weights(tile, overlap, dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize(("tile", "overlap"), [(32, 8), (64, 16), (20, 10), (9, 1)])
def test_two_windows_overlapping_by_overlap_are_a_partition_of_unity(tile, overlap):
    span = 2 * tile - overlap
    total = torch.zeros(tile, span, dtype=torch.float64)
    a = tile_weights(tile, overlap, top=True, bottom=True, left=True, right=False, dtype=torch.float64)
    b = tile_weights(tile, overlap, top=True, bottom=True, left=False, right=True, dtype=torch.float64)
    total[:, :tile] += a
    total[:, tile - overlap:] += b
    # Raw weights already sum to 1 (not just a constant), so the normalised blend is a convex combination.
    torch.testing.assert_close(total, torch.ones_like(total), atol=1e-12, rtol=0)
    # The hand-over is spread over the whole overlap: A's share falls monotonically from ~1 to ~0 across it.
    share = a[0, tile - overlap:]
    assert (share[1:] <= share[:-1]).all() and share[0] + 1e-9 >= 0.5 >= share[-1] - 1e-9


def test_grid_of_windows_is_a_partition_of_unity_in_2d():
    tile, overlap, n = 24, 8, 3
    size = n * tile - (n - 1) * overlap
    starts = tile_starts(size, tile, overlap)
    assert starts == [0, 16, 32]
    total = torch.zeros(size, size, dtype=torch.float64)
    for y in starts:
        for x in starts:
            total[y:y + tile, x:x + tile] += tile_weights(
                tile, overlap, top=y == 0, bottom=y == starts[-1], left=x == 0, right=x == starts[-1],
                dtype=torch.float64,
            )
    torch.testing.assert_close(total, torch.ones_like(total), atol=1e-12, rtol=0)


def test_window_is_smooth_raised_cosine():
    tile, overlap = 64, 16
    row = feather_weights(tile, overlap, dtype=torch.float64)[tile // 2]
    steps = (row[1:] - row[:-1]).abs()
    # A raised cosine's steepest slope is pi / (2 * overlap) per px; a hard cut or a too-short ramp would exceed it.
    assert steps.max().item() <= math.pi / (2 * overlap) * 1.01
    # C1: the slope goes to ~0 where the ramp meets the flat middle and at the edge (a linear ramp would not).
    assert steps[overlap - 1].item() < 0.02 and steps[0].item() < 0.02


def test_border_sides_have_weight_one_at_the_image_border():
    tile, overlap = 32, 8
    w = tile_weights(tile, overlap, top=True, bottom=False, left=True, right=False)
    assert w[0, : tile - overlap].eq(1).all()  # top edge, away from the right-hand ramp
    assert w[: tile - overlap, 0].eq(1).all()  # left edge
    assert w[0, 0].item() == 1.0
    assert w[-1, tile // 2].item() < 0.02  # bottom still fades: there is a neighbour there
    assert w[tile // 2, -1].item() < 0.02
    assert tile_weights(tile, overlap, top=True, bottom=True, left=True, right=True).eq(1).all()
    assert feather_weights(tile, overlap)[0, 0].item() < 0.02 ** 2


def test_tile_weights_rejects_bad_overlap():
    with pytest.raises(ValueError):
        tile_weights(8, 8, top=False, bottom=False, left=False, right=False)


# -- pad_to -----------------------------------------------------------------------------------------------------

def test_pad_to_reflects_on_bottom_right_and_reports_padding():
    image = torch.arange(2 * 5 * 6, dtype=torch.float32).view(2, 5, 6)
    padded, pad = pad_to(image, 8, 9)
    assert padded.shape == (2, 8, 9)
    assert pad == (0, 3, 0, 3)
    assert torch.equal(padded[:, :5, :6], image)  # original stays top-left
    assert torch.equal(padded[:, 5, :6], image[:, 3])  # reflect (not replicate, not zeros)
    assert torch.equal(padded[:, 7, :6], image[:, 1])
    assert torch.equal(padded[:, :5, 6], image[:, :, 4])
    left, right, top, bottom = pad
    assert torch.equal(padded[:, top:padded.shape[1] - bottom, left:padded.shape[2] - right], image)


def test_pad_to_falls_back_to_replicate_when_too_small_for_reflect():
    image = torch.rand(1, 3, 2)
    padded, pad = pad_to(image, 10, 4)
    assert padded.shape == (1, 10, 4) and pad == (0, 2, 0, 7)
    assert torch.equal(padded[:, 3:, :2], image[:, 2:3].expand(1, 7, 2))  # H: replicate (pad 7 >= 3)
    assert torch.equal(padded[:, :3, 2:], image[:, :, 1:].expand(1, 3, 2))  # W: pad 2 >= 2 -> replicate too
    single = torch.rand(1, 1, 1)
    out, _ = pad_to(single, 5, 5)
    assert torch.equal(out, single.expand(1, 5, 5))


def test_pad_to_multiple_batched_and_noop():
    batch = torch.rand(2, 3, 30, 41)
    padded, pad = pad_to(batch, 16, 16, multiple=16)
    assert padded.shape == (2, 3, 32, 48) and pad == (0, 7, 0, 2)
    assert torch.equal(padded[..., :30, :41], batch)
    same, pad = pad_to(batch, 30, 41)
    assert same is batch and pad == (0, 0, 0, 0)
    with pytest.raises(ValueError):
        pad_to(torch.rand(5, 5), 8, 8)


# -- TiledProcessor ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("shape", "tile", "overlap"), [
    ((3, 97, 131), 32, 8),
    ((1, 300, 257), 64, 16),
    ((1, 20, 20), 32, 8),  # smaller than one tile: padded, then cropped back
    ((2, 40, 100), 32, 0),
    ((1, 64, 64), 64, 16),  # exactly one tile
])
def test_identity_fn_reproduces_input(shape, tile, overlap):
    image = torch.rand(shape)
    proc = TiledProcessor(identity, tile=tile, overlap=overlap, batch_size=5, out_channels=shape[0])
    out = proc(image)
    assert out.shape == shape and out.dtype == torch.float32
    torch.testing.assert_close(out, image, atol=1e-6, rtol=0)


def test_output_channels_may_differ_from_input():
    image = torch.rand(1, 50, 70)
    proc = TiledProcessor(lambda x: x.repeat(1, 2, 1, 1) * 2, tile=32, overlap=8, out_channels=2)
    out = proc(image)
    assert out.shape == (2, 50, 70)
    torch.testing.assert_close(out, image.repeat(2, 1, 1) * 2, atol=1e-6, rtol=0)


def test_two_drifting_tiles_blend_over_the_overlap():
    tile, overlap = 64, 16
    image = torch.zeros(1, tile, 2 * tile - overlap)  # exactly two tiles side by side
    out = TiledProcessor(per_tile_offsets([0.0, 1.0]), tile=tile, overlap=overlap, out_channels=1)(image)
    # Outside the overlap each tile's own output is kept untouched; the change happens only inside the overlap.
    assert out[..., : tile - overlap].eq(0).all()
    assert torch.allclose(out[..., tile:], torch.ones(1))
    assert max_column_step(out) <= math.pi / (2 * overlap) * 1.01
    naive = TiledProcessor(per_tile_offsets([0.0, 1.0]), tile=tile, overlap=0, out_channels=1)(
        torch.zeros(1, tile, 2 * tile)
    )
    assert max_column_step(naive) == pytest.approx(1.0)  # hard cut: the whole difference in one column step


def test_drifting_tiles_leave_no_seams():
    torch.manual_seed(0)
    tile, overlap = 64, 16
    image = torch.zeros(1, 230, 250)
    offsets = (torch.rand(200) * 2 - 1).tolist()
    proc = TiledProcessor(per_tile_offsets(offsets), tile=tile, overlap=overlap, batch_size=4, out_channels=1)
    out = proc(image)
    naive = TiledProcessor(per_tile_offsets(offsets), tile=tile, overlap=0, batch_size=4, out_channels=1)(image)
    n = proc.count_tiles(230, 250)
    assert out.min() >= min(offsets[:n]) - 1e-6 and out.max() <= max(offsets[:n]) + 1e-6  # a convex blend
    spread = max(offsets[:n]) - min(offsets[:n])
    for step in (max_column_step, max_row_step):
        assert step(naive) > 0.1  # the drift is visible as a seam without feathering
        assert step(out) < 0.25 * step(naive)
        assert step(out) <= spread * math.pi / (2 * overlap) * 1.5  # the transition is spread over the overlap


def conv_fn(x: torch.Tensor) -> torch.Tensor:
    """A deterministic fn whose output depends on the tile's content and position (like a real generator)."""
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(2, x.shape[1], 3, 3, generator=g, dtype=x.dtype)
    return torch.tanh(F.conv2d(x, weight, padding=1))


def test_batch_size_does_not_change_output_and_tiles_are_counted():
    image = torch.rand(1, 150, 170)
    outs = []
    for batch_size in (1, 7):
        proc = TiledProcessor(conv_fn, tile=32, overlap=8, batch_size=batch_size, out_channels=2)
        outs.append(proc(image))
        assert proc.tiles_done == proc.count_tiles(150, 170) == 6 * 7
        proc(image)
        assert proc.tiles_done == 2 * 42  # cumulative, for a tiles/s progress bar
    torch.testing.assert_close(outs[0], outs[1], atol=1e-6, rtol=0)


def test_count_tiles():
    proc = TiledProcessor(identity, tile=256, overlap=64, out_channels=1)
    assert proc.count_tiles(1024, 1024) == 25
    assert proc.count_tiles(100, 1024) == 5
    assert proc.count_tiles(20000, 20000) == len(tile_starts(20000, 256, 64)) ** 2


DEVICES = ["meta"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_fn_gets_batches_on_the_device_of_tile_shape(device):
    """`meta` stands in for an accelerator on CPU-only machines: it proves the batch was moved, not left on CPU."""
    calls = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls.append((x.device.type, tuple(x.shape)))
        return torch.zeros(len(x), 3, *x.shape[-2:], device="cpu" if device == "meta" else x.device)

    image = torch.rand(1, 100, 90)
    proc = TiledProcessor(fn, tile=32, overlap=8, batch_size=3, out_channels=3, device=device)
    out = proc(image)
    assert out.shape == (3, 100, 90) and out.device.type == "cpu"
    assert {d for d, _ in calls} == {torch.device(device).type}
    sizes = [s[0] for _, s in calls]
    assert all(s[1:] == (1, 32, 32) for _, s in calls)
    assert sum(sizes) == proc.count_tiles(100, 90)
    assert max(sizes) <= 3 and all(b == 3 for b in sizes[:-1])  # streamed in full batches, never all at once


def test_wrong_fn_output_shape_raises():
    proc = TiledProcessor(identity, tile=32, overlap=8, out_channels=2)
    with pytest.raises(ValueError, match="expected"):
        proc(torch.rand(1, 40, 40))


def test_processor_rejects_bad_arguments():
    with pytest.raises(ValueError):
        TiledProcessor(identity, tile=32, overlap=32, out_channels=1)
    with pytest.raises(ValueError):
        TiledProcessor(identity, tile=32, overlap=8, batch_size=0, out_channels=1)
    with pytest.raises(ValueError):
        TiledProcessor(identity, tile=32, overlap=8, out_channels=1)(torch.rand(1, 1, 40, 40))


@pytest.mark.parametrize(("h", "w", "tile", "overlap"), [(100, 90, 32, 8), (300, 257, 64, 16), (20, 50, 32, 8)])
def test_weight_sum_is_at_least_one_and_border_tiles_do_not_fade(h, w, tile, overlap):
    proc = TiledProcessor(identity, tile=tile, overlap=overlap, out_channels=1)
    total = proc.weight_sum(h, w)
    assert total.shape == (h, w)
    # Neighbouring ramps sum to 1 and a longer end overlap only adds, so the denominator is never small; if border
    # tiles faded toward the image border, the border rows/columns would sum to about eps instead.
    assert total.min().item() >= 1 - 1e-5
    for edge in (total[0], total[-1], total[:, 0], total[:, -1]):
        assert edge.min().item() >= 1 - 1e-5


def test_weight_sum_is_exactly_one_on_an_exact_grid():
    tile, overlap = 32, 8
    size = 4 * tile - 3 * overlap
    total = TiledProcessor(identity, tile=tile, overlap=overlap, out_channels=1).weight_sum(size, size)
    torch.testing.assert_close(total, torch.ones(size, size), atol=1e-6, rtol=0)


def test_progress_callback_reports_every_tile():
    reported = []
    proc = TiledProcessor(identity, tile=32, overlap=8, batch_size=4, out_channels=1, progress=reported.append)
    proc(torch.rand(1, 100, 90))
    assert sum(reported) == proc.count_tiles(100, 90) == proc.tiles_done
    assert reported[:-1] == [4] * (len(reported) - 1)
