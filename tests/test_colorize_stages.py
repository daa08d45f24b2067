"""The stages of :class:`aircolor.colorize.engine.Colorizer` that ``--ray`` spreads over workers: blocks of tiles,
bands of rows, and the per-tile reference mode that makes a tile's colours independent of its batch.

These are the properties the byte-identical ``--ray`` output rests on (tests/test_colorize_ray.py checks the
whole); each is checked here on its own, in one process, so a failure names the broken part.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aircolor.colorize.engine import ColorizeOptions, Colorizer
from aircolor.colorize.tiling import BlockPlan, TiledProcessor, assemble, pad_to
from aircolor.models.zoo import build_named


def tiny(*overrides: str):
    """pix2pix at 64 px, ngf 8: its U-Net is deep enough (6 steps) for one dropout layer."""
    torch.manual_seed(0)
    return build_named("pix2pix", ["model.ngf=8", "model.ndf=8", "data.size=64", "model.netG=unet_auto",
                                   *overrides]).prepare("cpu")


@pytest.fixture(scope="module")
def gray() -> np.ndarray:
    """A real photo's crop (the 1936-1942 GSI z17 sample), odd-sized so that tiles and bands do not fit evenly."""
    from PIL import Image

    from aircolor.colorize.source import DEFAULT_MODEL

    photo = DEFAULT_MODEL.parent.parent / "sample_data/historical/gsi_1936-1942_z17/OHG-Z17-X114852-Y51992.jpg"
    return np.asarray(Image.open(photo).convert("L"), dtype=np.float32)[:601, :333] / 255


@pytest.mark.parametrize(("h", "w", "block"), [(601, 333, 3), (20, 50, 8), (1024, 1024, 8), (97, 300, 1)])
def test_blocks_cover_every_tile_once_and_their_footprints(h, w, block):
    plan = BlockPlan(h, w, tile=32, overlap=16, block=block)
    ids = [i for b in plan.blocks for i in b.ids]
    assert sorted(ids) == list(range(plan.tiles)) == sorted(set(ids))
    for b in plan.blocks:
        assert len(b.origins) <= block * block
        assert b.y0 == min(y for y, _ in b.origins) and b.y1 == max(y for y, _ in b.origins) + 32
        assert b.x0 == min(x for _, x in b.origins) and b.x1 == max(x for _, x in b.origins) + 32
    for r0, r1 in [(0, 1), (100, 200), (h - 1, h)]:
        if r1 <= h:
            covering = plan.covering(r0, r1)
            assert [b.index for b in covering] == sorted(b.index for b in covering)
            rows_covered = {y for b in covering for y0, _ in b.origins for y in range(y0, y0 + 32)}
            assert set(range(r0, r1)) <= rows_covered


def test_blocks_computed_in_any_order_assemble_to_the_same_bits():
    """Workers finish blocks in any order; the result is added in block order, so it does not depend on that."""
    torch.manual_seed(0)
    image = torch.rand(2, 150, 170)
    weight = torch.randn(2, 2, 3, 3)
    proc = TiledProcessor(lambda x: torch.tanh(torch.nn.functional.conv2d(x, weight, padding=1)), tile=32,
                          overlap=8, batch_size=5, out_channels=2, block=2)
    want = proc(image)
    padded, _ = pad_to(image, 32, 32)
    plan = proc.plan(150, 170)
    partials = {b.index: proc.run_block(padded, plan, b) for b in reversed(plan.blocks)}
    rows = [assemble(plan, r0, min(150, r0 + 40), partials) for r0 in range(0, 150, 40)]
    assert torch.equal(torch.cat(rows, dim=1), want)
    streamed = list(proc.stream(image, [(0, 60), (55, 120), (120, 150)]))
    assert torch.equal(streamed[1], want[:, 55:120]) and torch.equal(streamed[2], want[:, 120:])


def test_per_tile_reference_mode_is_independent_of_the_batch():
    """BatchNorm on each tile's own statistics and dropout seeded per tile: a tile's output is the same alone or in
    any batch, and equals the reference mode's one-tile forward pass when there is no dropout."""
    from aircolor.models.inference import PerTileReference, generator_mode

    tiles = torch.rand(5, 3, 64, 64) * 2 - 1
    nodrop = tiny("model.dropout=false")
    with generator_mode(nodrop, "reference"), torch.no_grad():
        one_by_one = torch.cat([nodrop.generate(t[None]) for t in tiles])
    per_tile = PerTileReference(nodrop)
    with per_tile.seeds([0, 1, 2, 3, 4]), torch.no_grad():
        batched = nodrop.generate(tiles)
    torch.testing.assert_close(batched, one_by_one, atol=2e-5, rtol=0)

    model = tiny("model.dropout=true")
    per_tile = PerTileReference(model)
    with torch.no_grad():
        with per_tile.seeds([7, 8, 9]):
            first = model.generate(tiles[:3])
        with per_tile.seeds([9, 7]):
            reordered = model.generate(tiles[[2, 0]])
        with per_tile.seeds([10]):
            other_seed = model.generate(tiles[:1])
        with pytest.raises(RuntimeError, match="seeds"):
            model.generate(tiles[:1])
    torch.testing.assert_close(reordered, first[[2, 0]], atol=2e-5, rtol=0)
    assert (other_seed - first[:1]).abs().mean() > 1e-3  # the seed does choose the dropout mask
    per_tile.remove()
    assert model.training  # as it was before
    with torch.no_grad():
        assert not torch.equal(model.generate(tiles[:1]), model.generate(tiles[:1]))  # plain train-mode dropout


def test_gamut_fit_on_the_outside_pixels_alone_matches_the_full_bisection():
    from aircolor.colorize.delivery import fit_chroma
    from benchmarks.colorize_reference import _fit_chroma

    g = torch.Generator().manual_seed(0)
    L = torch.rand(2, 1, 40, 50, generator=g) * 100
    ab = (torch.rand(2, 2, 40, 50, generator=g) * 2 - 1) * 90   # many colours outside sRGB
    got, want = fit_chroma(L, ab), _fit_chroma(L, ab)
    assert got.shape == want.shape and got.is_contiguous()
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    inside = ab * 0.05
    assert torch.equal(fit_chroma(L, inside), _fit_chroma(L, inside))


@pytest.mark.parametrize("scale", [1.0, 0.6])
def test_stages_run_out_of_order_give_the_same_bytes(gray, scale):
    """What ``--ray`` does, in one process: the model input, blocks in reverse order, bands from the partials."""
    model = tiny("model.dropout=true", "data.color_space=lab")
    colorizer = Colorizer(model, model.cfg, torch.device("cpu"), ColorizeOptions(scale=scale, block=3))
    want = colorizer(gray)
    h, w = gray.shape
    image = colorizer.model_input(gray)
    plan = colorizer.plan(w, h)
    partials = {b.index: colorizer.run_block(image, plan, b) for b in reversed(plan.blocks)}
    got = np.concatenate([colorizer.finish(gray[y0:y1], assemble(plan, *colorizer.model_rows(y0, y1, w, h), partials),
                                           y0=y0, r0=colorizer.model_rows(y0, y1, w, h)[0], width=w, height=h,
                                           bits=8) for y0, y1 in colorizer.bands(h)])
    assert len(plan.blocks) > 4 and len(colorizer.bands(h)) == 2
    assert np.array_equal(got, want)


def test_colorize_does_not_depend_on_the_number_of_threads(gray):
    """--ray workers run with one thread each; the single process with all cores: the bytes must not care."""
    model = tiny("model.dropout=true", "data.color_space=lab")
    outs = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            outs.append(Colorizer(model, model.cfg, torch.device("cpu"), ColorizeOptions(scale=0.8, batch_size=17,
                                                                                    streams=n))(gray))
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(outs[0], outs[1])


def test_larger_tiles_must_be_a_multiple_of_the_model_tile():
    model = tiny("data.color_space=lab")
    with pytest.raises(ValueError, match="multiple"):
        Colorizer(model, model.cfg, torch.device("cpu"), ColorizeOptions(tile=96))
    colorizer = Colorizer(model, model.cfg, torch.device("cpu"), ColorizeOptions(tile=192))
    assert colorizer.tile == 192 and colorizer.processor.overlap == 96
    assert colorizer.count_tiles(333, 601) < Colorizer(model, model.cfg, torch.device("cpu"),
                                                       ColorizeOptions()).count_tiles(333, 601) / 5
