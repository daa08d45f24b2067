"""``python -m benchmarks.quality --protocol loro`` on the bundled sample (two regions, tiny runs): spatial blocks
for single-group regions, the nested choice of the cautious blend, and shipping the blended default model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def loro_run(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    from benchmarks.quality import main

    out = tmp_path_factory.mktemp("loro")
    rc = main(["--protocol", "loro", "--data", str(sample_data / "color"), "--seeds", "0", "--quick",
               "--work", str(out / "work"), "--out", str(out / "results"), "--ship", str(out / "ship"),
               "--set", "data.size=32", "--set", "model.ngf=8", "--set", "model.ndf=8",
               "--set", "train.batch_size=4", "--set", "train.n_epochs=1", "--set", "train.n_epochs_decay=1"])
    assert rc == 0
    return out


def test_web_map_chips_of_one_ground_share_a_block_and_north_dakota_years_stay_together() -> None:
    from benchmarks.quality_loro import block_prefixes

    names = [f"oamNAI_z19_{x}_{y}_y0_x0.jpg" for x in range(315870, 315878) for y in range(264040, 264048)]
    names += [f"oamNAI_z20_{2 * 315871 + i}_{2 * 264041 + j}_y0_x0.jpg" for i in (0, 1) for j in (0, 1)]
    blocks = block_prefixes("oam_nairobi", names)
    assert len(set(blocks.values())) >= 8                      # many spatial blocks, not one region-wide group
    z20 = {blocks[n] for n in names[-4:]}
    assert z20 == {blocks["oamNAI_z19_315871_264041_y0_x0.jpg"]}  # the finer chips go with the ground they show
    nd = block_prefixes("naip_northdakota", ["naipND_2009_y0_x0.jpg", "naipND_2015_y1_x0.jpg",
                                             "naipND_2015_y0_x1.jpg"])
    assert nd["naipND_2009_y0_x0.jpg"] == nd["naipND_2015_y1_x0.jpg"] != nd["naipND_2015_y0_x1.jpg"]
    assert set(block_prefixes("massachusetts_1m", ["10078735_15_y0256_x1216.jpg"]).values()) == {""}


def test_the_blend_scored_on_a_region_is_chosen_on_the_others() -> None:
    from benchmarks.quality_shrink import SHRINK_ALPHAS, choose, nested_rows

    def region(gray: float, network: float) -> dict[str, np.ndarray]:
        d = {f"{p}:0": np.full(20, gray if p == "gray" else gray + 2.0) for p in ("gray", "tint", "lightness")}
        d["network:0"] = np.full(20, network)
        for p in ("gray", "tint", "lightness"):
            for a in SHRINK_ALPHAS[1:-1]:
                d[f"{p}:{a:g}:0"] = np.full(20, a * network + (1 - a) * d[f"{p}:0"][0])
        return d

    regions = {"hazy": region(7.0, 11.0), "vivid": region(16.0, 10.0), "other": region(8.0, 8.5)}
    assert choose(regions, [0], exclude="vivid") == ("gray", 0.0, 0.0)     # the two dull regions want no colour
    assert choose({"vivid": regions["vivid"]}, [0]) == ("network", 1.0, 0.0)
    rows = {r["region"]: r for r in nested_rows(regions, [0])}
    assert rows["vivid"]["choice"] == ["gray", 0.0, 0.0] and not rows["vivid"]["beats_gray"]
    assert rows["vivid"]["delta_e2000"] == pytest.approx(16.0)         # its own better choice was not allowed
    assert rows["hazy"]["choice"] == ["network", 1.0, 0.0] and not rows["hazy"]["not_above_gray"]  # the others' pick


def test_every_fold_scores_its_held_out_region_with_a_nested_cautious_blend(loro_run: Path) -> None:
    rows = [json.loads(line) for line in (loro_run / "results" / "quality_loro.jsonl").read_text().splitlines()]
    regions = {"Massachusetts", "Kampala"}
    assert {(r["region"], r["arm"]) for r in rows} == {(g, a) for g in regions
                                                       for a in ("gray", "tint", "lightness", "recipe", "cautious")}
    for fold in ("massachusetts_1m", "oam_kampala_fair"):
        blends = np.load(loro_run / "work" / f"loro-{fold}" / "blends.npz")
        assert {"gray:0", "tint:0", "network:0", "lightness:0.5:0", "gray:0.25:0"} <= set(blends.files)
    cautious = {r["region"]: r for r in rows if r["arm"] == "cautious"}
    recipe = {r["region"]: r for r in rows if r["arm"] == "recipe"}
    for name, row in cautious.items():
        assert row["network"] == pytest.approx(recipe[name]["delta_e2000"], rel=0.02)  # the same network, rescored
        lo, hi = row["delta_e2000_ci"]
        assert lo <= row["delta_e2000"] <= hi
    md = (loro_run / "results" / "quality_loro.md").read_text()
    assert "chosen on the other" in md and "never above the gray copy" in md and "Kampala (held out)" in md


def test_the_shipped_default_delivers_the_blend_chosen_on_all_regions(loro_run: Path) -> None:
    from aircolor.models.exported import load_generator
    from aircolor.models.place_blend import PlaceBlend

    meta = json.loads((loro_run / "results" / "quality_loro.jsonl").read_text().splitlines()[0])["meta"]
    prior, alpha, power = meta["shipped_blend"]
    model, cfg = load_generator(loro_run / "ship" / "generator.pt")
    assert isinstance(model.G, PlaceBlend) and cfg.model.place_blend
    assert float(model.G.alpha) == pytest.approx(alpha) and power == 0 == float(model.G.entropy_power)
    if prior == "gray":
        assert float(model.G.table.abs().max()) == 0.0
    gray = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        expected = alpha * model.G.net(gray) + (1 - alpha) * model.G.prior(gray)
        assert torch.allclose(model.G(gray), expected, atol=1e-5)
    card = (loro_run / "ship" / "MODEL_CARD.md").read_text()
    assert "leave one region out" in card.lower() and "Cautious" in card and "CC BY 4.0" in card
