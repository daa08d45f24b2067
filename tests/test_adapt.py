"""``aircolor adapt``: a colorizer tuned to one place from today's imagery of it (real tiles: the bundled Kampala
sample, 40 OpenAerialMap chips, shown at half resolution as the default model was trained), then used by
``colorize``; the spatial split, the fallback to the place's prior, and the georeferenced path on the test
suite's local tile server (``colorize --adapt-from`` and ``compare --adapt`` too)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import morecantile
import numpy as np
import pytest
import torch
from PIL import Image
from rasterio.transform import from_bounds

sys.path.insert(0, str(Path(__file__).resolve().parent))

from badinput import run_bad  # noqa: E402
from test_compare import GSI, geotiff  # noqa: E402

import aircolor.adapt.run as adapt_run  # noqa: E402
from aircolor.adapt.place_tiles import TileCollector, split_blocks  # noqa: E402
from aircolor.cli import main  # noqa: E402
from aircolor.models.exported import load_generator  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KAMPALA = REPO / "aircolor" / "sample_data" / "color" / "oam_kampala_fair"
FAST = ["--scale", "0.5", "--minutes", "0.03"]


def adapt(*argv: str) -> int:
    return main(["adapt", *argv])


@pytest.fixture
def osaka(tmp_path: Path) -> Path:
    """A real GSI 1936-1942 tile of Osaka as a GeoTIFF on its true Web-Mercator bounds (0.6 m/px)."""
    gray = np.asarray(Image.open(GSI / "x229749_y104184.png").convert("L"))
    b = morecantile.tms.get("WebMercatorQuad").xy_bounds(229749, 104184, 18)
    return geotiff(tmp_path / "osaka_1940.tif", gray, "EPSG:3857", from_bounds(*b, gray.shape[1], gray.shape[0]))


@pytest.fixture
def captured_split(monkeypatch: pytest.MonkeyPatch) -> dict:
    """What tuning is given: the training and validation tiles of every adapt run in the test."""
    seen: dict = {}
    original = adapt_run.fine_tune

    def spy(model, train, val, options, **kwargs):
        seen.update(train=train, val=val)
        return original(model, train, val, options, **kwargs)

    monkeypatch.setattr(adapt_run, "fine_tune", spy)
    return seen


def test_adapt_a_folder_of_real_tiles_and_colorize_with_it(tmp_path: Path, captured_split: dict,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = tmp_path / "kampala-model"
    assert adapt("--modern", str(KAMPALA), "--out", str(model_dir), *FAST) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"adapt: {model_dir} delivers ")
    record = json.loads((model_dir / "adapt.json").read_text())
    rows = {arm: row["delta_e2000"] for arm, row in record["validation"].items()}
    # Never worse on its own validation blocks than the place's best prior or the gray copy.
    assert rows["delivered"] <= min(rows["gray"], rows["tint"], rows["lightness"], rows["network"]) + 1e-9
    assert record["tiles"] == {"train": len(captured_split["train"]), "val": len(captured_split["val"])}
    assert record["tiles"]["train"] + record["tiles"]["val"] == 40
    card = (model_dir / "MODEL_CARD.md").read_text()
    assert record["choice"] in card and f"{rows['delivered']:.2f}" in card and "gray copy" in card
    # The model carries its blend: colorize, metrics and compare load it like any other.
    model, cfg = load_generator(model_dir / "generator.pt")
    assert cfg.model.place_blend and float(model.G.alpha) == pytest.approx(record["alpha"])
    out = tmp_path / "colorized"
    assert main(["colorize", "--model", str(model_dir), str(GSI / "x229749_y104184.png"), "--out", str(out),
                 "--quiet"]) == 0
    rgb = np.asarray(Image.open(out / "x229749_y104184.png").convert("RGB")).astype(int)
    assert rgb.shape == (256, 256, 3)
    if record["prior"] != "gray" or record["alpha"] > 0:
        assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 0.5  # colours, not a gray copy


def test_validation_blocks_are_never_trained_on(tmp_path: Path, captured_split: dict) -> None:
    assert adapt("--modern", str(KAMPALA), "--out", str(tmp_path / "m"), *FAST, "--seed", "3", "--holdout",
                 "0.25") == 0
    train, val = captured_split["train"], captured_split["val"]
    assert len(val) >= 2 and len(train) >= 6
    recorded = json.loads((tmp_path / "m" / "split.json").read_text())
    test = {t["source"] for t in recorded["test"]}
    assert len(test) >= 10 and not test & (set(train.sources) | set(val.sources))   # --holdout: never used
    assert len(train) + len(val) + len(test) == 40
    record = json.loads((tmp_path / "m" / "adapt.json").read_text())
    assert set(record["test"]) == {"delivered", "start", "gray", "tint", "lightness"}
    assert not set(train.blocks) & set(val.blocks)
    assert not set(train.sources) & set(val.sources)
    # No validation pixels among the training tiles.
    flat_train = train.color.flatten(1)
    for tile in val.color.flatten(1):
        assert not bool((flat_train == tile).all(dim=1).any())
    # Web-map chips of zooms 19-21 may cover the same ground: no validation chip overlaps a training chip.
    def chip(source: str) -> tuple[int, int, int]:
        x, y, z = (int(v) for v in Path(source).stem.split("-")[1:4])
        return x, y, z

    def overlap(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
        (xa, ya, za), (xb, yb, zb) = sorted((a, b), key=lambda c: c[2])
        return (xb >> (zb - za), yb >> (zb - za)) == (xa, ya)

    assert not [(t, v) for t in train.sources for v in val.sources if overlap(chip(t), chip(v))]
    assert {t["source"] for t in recorded["val"]} == set(val.sources)


def test_blocks_of_one_large_image_are_squares_of_ground() -> None:
    """One 1024 px image (a real tile, enlarged) cut into 8 x 8 tiles: its blocks are 2 x 2 squares, and a
    validation draw takes whole squares."""
    rgb = np.asarray(Image.open(sorted(KAMPALA.glob("*.jpg"))[0]).convert("RGB").resize((1024, 1024)))
    collector = TileCollector(128)
    collector.add(rgb, None, "big.jpg")
    tiles = collector.tiles("test")
    assert len(tiles) == 64 and len(set(tiles.blocks)) == 16
    cells: dict[str, set] = {}
    for i, block in enumerate(tiles.blocks):
        cells.setdefault(block, set()).add((i // 8 // 2, i % 8 // 2))   # row-major cut: tile i at (i // 8, i % 8)
    assert all(len(c) == 1 for c in cells.values())   # each block is exactly one 2 x 2 square
    train, val = split_blocks(tiles, 0.2, 0, "test")
    assert len(val) % 4 == 0 and len(val) >= 13 and not set(train.blocks) & set(val.blocks)


def test_the_prior_is_delivered_when_the_tuned_network_is_worse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    original = adapt_run.fine_tune

    def sabotaged(model, train, val, options, **kwargs):
        result = original(model, train, val, options, **kwargs)
        last = [m for m in model.G.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
        with torch.no_grad():
            last.bias += 3.0   # saturated purple everywhere: far worse than any prior
        return result

    monkeypatch.setattr(adapt_run, "fine_tune", sabotaged)
    model_dir = tmp_path / "m"
    assert adapt("--modern", str(KAMPALA), "--out", str(model_dir), *FAST) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    record = json.loads((model_dir / "adapt.json").read_text())
    assert record["alpha"] == 0.0 and record["choice"].startswith("the place's ")
    assert "does not beat" in last and record["choice"] in last
    rows = {arm: row["delta_e2000"] for arm, row in record["validation"].items()}
    assert rows["network"] > rows["delivered"] == pytest.approx(min(rows["gray"], rows["tint"], rows["lightness"]))
    model, _ = load_generator(model_dir / "generator.pt")
    x = torch.linspace(-1, 1, 64).view(1, 1, 8, 8)
    assert torch.equal(model.G(x), model.G.prior(x))   # the written model delivers the prior's colours


@pytest.mark.usefixtures("no_proxy")
def test_adapt_colorize_and_compare_over_georeferenced_photos(tile_server, osaka: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Today's imagery from the local XYZ server over the photo's footprint plus a margin, at its 0.6 m."""
    fast = ["--minutes", "0.03", "--rate", "0"]
    model_dir = tmp_path / "osaka-model"
    assert adapt("--modern", tile_server.xyz_url, "--like", str(osaka), "--out", str(model_dir), *fast) == 0
    record = json.loads((model_dir / "adapt.json").read_text())
    assert record["tiles"]["train"] + record["tiles"]["val"] == 9   # 384 px of grown footprint: 3 x 3 tiles
    assert {z for z, _, _ in tile_server.counts} == {18}            # fetched at the photo's resolution
    # One step: adapt over the inputs' footprints, then colorize with the adapted model; a rerun reuses it.
    out = tmp_path / "colorized"
    argv = ["colorize", str(osaka), "--adapt-from", tile_server.xyz_url, "--out", str(out), "--adapt-minutes",
            "0.03", "--adapt-rate", "0", "--quiet"]
    assert main(argv) == 0
    assert (out / "adapted-model" / "generator.pt").is_file() and (out / "osaka_1940.tif").is_file()
    first = (out / "adapted-model" / "generator.pt").read_bytes()
    capsys.readouterr()
    assert main(argv) == 0
    assert "reusing" in capsys.readouterr().err and (out / "adapted-model" / "generator.pt").read_bytes() == first
    compared = tmp_path / "compare"
    assert main(["compare", str(osaka), "--modern", tile_server.xyz_url, "--adapt", "--adapt-minutes", "0.03",
                 "--rate", "0", "--out", str(compared)]) == 0
    summary = json.loads((compared / "compare-summary.json").read_text())
    assert (compared / "adapted-model" / "MODEL_CARD.md").is_file() and Path(summary["colorized"]).is_file()


def test_adapt_from_a_raster_over_a_box(tmp_path: Path) -> None:
    """A colour GeoTIFF (real tiles laid side by side, WGS84) and a --bbox inside it at 1 m."""
    import rasterio

    tiles = [np.asarray(Image.open(f).convert("RGB")) for f in sorted(KAMPALA.glob("*.jpg"))[:16]]
    mosaic = np.concatenate([np.concatenate(tiles[r * 4:(r + 1) * 4], axis=1) for r in range(4)], axis=0)
    raster = tmp_path / "today.tif"
    with rasterio.open(raster, "w", driver="GTiff", width=1024, height=1024, count=3, dtype="uint8",
                       crs="EPSG:4326", transform=from_bounds(32.59, 0.345, 32.6, 0.355, 1024, 1024)) as dst:
        dst.write(np.moveaxis(mosaic, -1, 0))
    model_dir = tmp_path / "m"
    assert adapt("--modern", str(raster), "--bbox", "32.591", "0.346", "32.599", "0.354", "--resolution", "1",
                 "--out", str(model_dir), "--minutes", "0.03") == 0
    record = json.loads((model_dir / "adapt.json").read_text())
    assert record["tiles"]["train"] + record["tiles"]["val"] == 36   # about 890 m of box at 1 m: 6 x 6 tiles
    assert "the box 32.591 0.346 32.599 0.354" in record["source"]


@pytest.fixture
def bad(tmp_path: Path, osaka: Path) -> dict:
    """Folders and files of the bad-input cases: empty, gray-only, three tiles, a plain (not georeferenced) PNG and
    a colour GeoTIFF far from the photo."""
    import rasterio

    root = tmp_path / "work"
    (root / "empty").mkdir(parents=True)
    (root / "gray").mkdir()
    for f in sorted(GSI.glob("*.png"))[:12]:
        shutil.copy(f, root / "gray" / f.name)
    (root / "three").mkdir()
    for f in sorted(KAMPALA.glob("*.jpg"))[:3]:
        shutil.copy(f, root / "three" / f.name)
    (root / "taken").mkdir()
    (root / "taken" / "keep.txt").write_text("mine\n")
    Image.open(GSI / "x229749_y104184.png").save(root / "plain.png")
    rgb = np.asarray(Image.open(sorted(KAMPALA.glob("*.jpg"))[0]).convert("RGB"))
    with rasterio.open(root / "elsewhere.tif", "w", driver="GTiff", width=256, height=256, count=3, dtype="uint8",
                       crs="EPSG:4326", transform=from_bounds(10.0, 50.0, 10.01, 50.01, 256, 256)) as dst:
        dst.write(np.moveaxis(rgb, -1, 0))
    shutil.copy(osaka, root / "osaka.tif")
    return {"root": root}


BAD_CASES = {
    "empty folder": (["--modern", "empty"], ["empty", "no images"]),
    "gray-only folder": (["--modern", "gray"], ["gray", "image(s) are gray"]),
    "three tiles": (["--modern", "three", "--scale", "0.5"], ["three", "3 tile(s)", "fewer than the 8 needed"]),
    "outside the coverage": (["--modern", "elsewhere.tif", "--like", "osaka.tif"],
                             ["elsewhere.tif", "no imagery over the footprint"]),
    "not georeferenced": (["--modern", "elsewhere.tif", "--like", "plain.png"], ["--like plain.png",
                                                                                 "not georeferenced"]),
    "zero budget": (["--modern", str(KAMPALA), "--minutes", "0"], ["--minutes", "above 0 minutes"]),
    "no place for a raster": (["--modern", "elsewhere.tif"], ["elsewhere.tif", "--like PHOTO", "--bbox"]),
    "missing source": (["--modern", "nowhere"], ["nowhere", "no such folder or file"]),
    "a box inside out": (["--modern", "elsewhere.tif", "--bbox", "10.01", "50", "10", "50.01"],
                         ["--bbox", "not a WGS84 box"]),
    "a folder with --like": (["--modern", "three", "--like", "osaka.tif"], ["three", "used whole"]),
    "out taken": (["--modern", str(KAMPALA), "--out", "taken"], ["--out taken", "not empty"]),
}


def test_colorize_adapt_from_a_tile_source_needs_georeferenced_inputs(bad: dict, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(bad["root"])
    run_bad(capsys, ["colorize", "plain.png", "--adapt-from", "elsewhere.tif", "--out", "colorized"],
            watch=[bad["root"]], words=["INPUT plain.png", "not georeferenced"])


@pytest.mark.parametrize("case", BAD_CASES)
def test_adapt_bad_input(case: str, bad: dict, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(bad["root"])
    argv, words = BAD_CASES[case]
    out = [] if "--out" in argv else ["--out", "model"]
    run_bad(capsys, ["adapt", *argv, *out], watch=[bad["root"]], words=words)


def test_an_adaptation_is_tracked_like_a_training_run(tmp_path: Path, mlflow_uri: str) -> None:
    """Params, the validation curve, the choice, the card and the model in MLflow; the logged model colours."""
    from mlflow import MlflowClient

    model_dir = tmp_path / "kampala"
    assert adapt("--modern", str(KAMPALA), "--out", str(model_dir), *FAST, "--tracking-uri", mlflow_uri,
                 "--experiment", "adapt-tracked") == 0
    client = MlflowClient(mlflow_uri)
    [run] = client.search_runs([client.get_experiment_by_name("adapt-tracked").experiment_id])
    record = json.loads((model_dir / "adapt.json").read_text())
    assert run.info.status == "FINISHED" and run.data.params["seed"] == "0"
    assert run.data.tags["adapt.choice"] == record["choice"]
    curve = client.get_metric_history(run.info.run_id, "val.delta_e2000")
    assert [m.step for m in curve] == [step for step, _, _ in record["tune"]["curve"]]
    assert run.data.metrics["val.delivered.delta_e2000"] == pytest.approx(record["validation"]["delivered"]
                                                                          ["delta_e2000"])
    names = {a.path for a in client.list_artifacts(run.info.run_id)} | {
        a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"MODEL_CARD.md", "adapt.json", "model/generator.pt", "model/config.yaml"} <= names
    out = tmp_path / "colorized"
    assert main(["colorize", "--model", f"runs:/{run.info.run_id}/model", "--tracking-uri", mlflow_uri,
                 str(GSI / "x229749_y104184.png"), "--out", str(out), "--quiet"]) == 0
    assert (out / "x229749_y104184.png").is_file()
