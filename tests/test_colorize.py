"""``aircolor colorize`` with tiny models trained here on the real sample tiles (32 px, ngf 8, four epochs).

The photos are the real 1936-1942 GSI historical samples (1024x1024 JPEGs and 256x256 gray+alpha PNGs); the
GeoTIFFs are those photos with their real Web-Mercator georeferencing (computed from the tile indices).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
Z17 = "historical/gsi_1936-1942_z17/OHG-Z17-X114852-Y51992.jpg"
Z18 = "historical/gsi_1936-1942_z18/x229749_y104184.png"
MERCATOR_HALF = 20037508.342789244


@pytest.fixture(scope="module")
def lab_model(lab_generator) -> Path:
    return lab_generator


@pytest.fixture(scope="module")
def rgb_model(tmp_path_factory, prepared_sample) -> Path:
    from conftest import train_tiny_colorizer

    return train_tiny_colorizer(prepared_sample, tmp_path_factory.mktemp("rgb"), "data.color_space=rgb")


def load(path: Path, mode: str | None = None) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im.convert(mode) if mode else im)


def colorize(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``aircolor colorize --quiet ARGS`` run in this process (an interpreter start-up is 3-4 s on 2 cores; the
    console script itself is tested in tests/test_cli.py): its exit code and output, as a finished process's."""
    import contextlib
    import io
    import os

    from aircolor.cli import main

    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(cwd or here)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(["colorize", "--quiet", *args])
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(["aircolor", "colorize", *args], code, out.getvalue(), err.getvalue())


def lab_of(rgb_u8: np.ndarray) -> np.ndarray:
    from aircolor.data.colorspace import rgb_to_lab

    return rgb_to_lab(torch.from_numpy(np.array(rgb_u8)).float().div(255).permute(2, 0, 1)).permute(1, 2, 0).numpy()


def test_a_real_1024_photo_keeps_its_size_and_its_luminance_without_seams(tmp_path, sample_data, lab_model):
    from aircolor.colorize.tiling import tile_starts

    src = sample_data / Z17
    # PNG output: lossless, so only 8-bit rounding stands between the output's L* and the input's (a JPEG output,
    # the default for a JPEG input, adds its own compression error on top)
    res = colorize("--model", str(lab_model), str(src), "--out", str(tmp_path / "out"), "--format", "png")
    assert res.returncode == 0, res.stdout + res.stderr
    out = load(tmp_path / "out" / (src.stem + ".png"), "RGB")
    gray = load(src, "L")
    assert out.shape == (1024, 1024, 3)
    # L* of the output is the input's own L* (the gray (g, g, g)); 8-bit rounding of RGB moves L* by < 0.5
    lab = lab_of(out)
    L_in = lab_of(np.repeat(gray[..., None], 3, axis=2))[..., 0]
    assert np.abs(lab[..., 0] - L_in).max() < 1.0 and np.abs(lab[..., 0] - L_in).mean() < 0.3
    assert np.abs(lab[..., 1:]).mean() > 0.5  # it is colored (not the gray copy)
    # seams: the chroma step between neighbouring columns (and rows) across tile edges is no larger than inside
    # tiles, up to the noise of the mean over the ~120 edge positions (a seam shows as several standard errors)
    assert seam_z(lab, tile_starts(1024, 32, 16)) < 2.5


def seam_z(lab: np.ndarray, starts: list[int], tile: int = 32) -> float:
    """(mean chroma step at tile edges - mean step elsewhere) / standard error of the edge mean; columns and rows.

    The step between pixel i and i+1 is the mean |difference| of a*b* over the other axis. Edges are the steps
    where a tile begins or ends. A generator's own texture makes single steps vary a lot, hence the z-score.
    """
    edges = np.array(sorted({s - 1 for s in starts if s > 0} | {s + tile - 1 for s in starts if s + tile < 1024}))
    inside = np.setdiff1d(np.arange(1023), edges)
    ab = lab[..., 1:]
    cols = np.abs(np.diff(ab, axis=1)).mean(axis=(0, 2))
    rows = np.abs(np.diff(ab, axis=0)).mean(axis=(1, 2))
    at_edges = np.concatenate([cols[edges], rows[edges]])
    elsewhere = np.concatenate([cols[inside], rows[inside]])
    return float((at_edges.mean() - elsewhere.mean()) / (at_edges.std(ddof=1) / np.sqrt(len(at_edges))))


def test_hard_tile_edges_would_be_measured_as_seams(tmp_path, sample_data, lab_model):
    """The seam measurement above can fail: tiles that abut without blending (--overlap 0) show clearly larger
    steps at their edges than inside them."""
    from aircolor.colorize.tiling import tile_starts

    src = sample_data / Z17
    res = colorize("--model", str(lab_model), str(src), "--out", str(tmp_path / "hard"), "--overlap", "0",
                   "--format", "png")
    assert res.returncode == 0, res.stdout + res.stderr
    lab = lab_of(load(tmp_path / "hard" / (src.stem + ".png"), "RGB"))
    assert seam_z(lab, tile_starts(1024, 32, 0)) > 3.0


def test_rgb_models_keep_the_input_luminance_unless_asked(tmp_path, sample_data, rgb_model):
    src = tmp_path / "small.png"
    Image.fromarray(load(sample_data / Z17, "L")[:150, :200]).save(src)
    for flag, folder in (([], "keep"), (["--model-luminance"], "model")):
        res = colorize("--model", str(rgb_model), str(src), "--out", str(tmp_path / folder), *flag)
        assert res.returncode == 0, res.stdout + res.stderr
    gray = load(src)
    L_in = lab_of(np.repeat(gray[..., None], 3, axis=2))[..., 0]
    keep = lab_of(load(tmp_path / "keep" / "small.png"))
    own = lab_of(load(tmp_path / "model" / "small.png"))
    assert keep.shape[:2] == (150, 200)
    assert np.abs(keep[..., 0] - L_in).max() < 1.0
    assert np.abs(own[..., 0] - L_in).mean() > 2.0  # a one-epoch model's own lightness is far from the input's


def _write_geotiff(path: Path, gray: np.ndarray, *, x: int, y: int, z: int, nodata: int | None = None) -> tuple:
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_bounds

    n = 2 ** z
    size = 2 * MERCATOR_HALF / n
    west, north = -MERCATOR_HALF + x * size, MERCATOR_HALF - y * size
    transform = from_bounds(west, north - size, west + size, north, gray.shape[1], gray.shape[0])
    with rasterio.open(path, "w", driver="GTiff", width=gray.shape[1], height=gray.shape[0], count=1,
                       dtype=gray.dtype.name, crs=CRS.from_epsg(3857), transform=transform, nodata=nodata) as dst:
        dst.write(gray, 1)
    return transform, CRS.from_epsg(3857)


@pytest.mark.parametrize("bits", [8, 16])
def test_geotiff_keeps_crs_transform_nodata_and_depth(tmp_path, sample_data, lab_model, bits):
    import rasterio

    gray = load(sample_data / Z18, "L").astype(np.uint16 if bits == 16 else np.uint8)
    if bits == 16:
        gray = gray * 257 + 3  # use the 16-bit range
    gray[:20, :30] = 0      # a nodata corner
    gray[gray == 0] = 0
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    transform, crs = _write_geotiff(src_dir / "tile.tif", gray, x=229749, y=104184, z=18, nodata=0)
    res = colorize("--model", str(lab_model), str(src_dir), "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stdout + res.stderr
    with rasterio.open(tmp_path / "out" / "tile.tif") as ds:
        assert ds.crs == crs and ds.transform.almost_equals(transform)
        assert ds.count == 3 and ds.nodata == 0 and ds.dtypes[0] == ("uint16" if bits == 16 else "uint8")
        data = ds.read()
        assert (data[:, :20, :30] == 0).all()            # nodata stays nodata
        assert (data[:, 20:, :].reshape(3, -1).max(axis=0) > 0).all()
    assert gray.dtype == (np.uint16 if bits == 16 else np.uint8)


def test_world_files_are_carried_and_gray_alpha_stays_transparent(tmp_path, sample_data, lab_model):
    src_dir = tmp_path / "scans"
    (src_dir / "roll1").mkdir(parents=True)
    shutil.copy(sample_data / Z17, src_dir / "roll1" / "frame.jpg")
    world = "1.0\n0.0\n0.0\n-1.0\n135.51\n34.69\n"
    (src_dir / "roll1" / "frame.jgw").write_text(world)
    shutil.copy(sample_data / Z18, src_dir / "alpha.png")        # real gray+alpha PNG
    la = load(src_dir / "alpha.png")                              # (H, W, 2): gray + alpha (zoom 18 tile)
    alpha = la[..., 1].copy()
    alpha[:10] = 0                                                # make part of it transparent
    Image.fromarray(np.dstack([la[..., 0], alpha]), "LA").save(src_dir / "alpha.png")
    (src_dir / "alpha.pgw").write_text(world)
    res = colorize("--model", str(lab_model), str(src_dir), "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "out" / "roll1" / "frame.jgw").read_text() == world
    assert (tmp_path / "out" / "alpha.pgw").read_text() == world
    out = load(tmp_path / "out" / "alpha.png")
    assert out.shape == (256, 256, 4) and (out[..., 3] == alpha).all()


def test_rerun_skips_finished_outputs_and_never_touches_inputs(tmp_path, sample_data, lab_model):
    src_dir = tmp_path / "in"
    shutil.copytree(sample_data / "historical" / "gsi_1936-1942_z18", src_dir)
    before = {p.name: p.read_bytes() for p in src_dir.iterdir()}
    out = tmp_path / "out"
    first = colorize("--model", str(lab_model), str(src_dir), "--out", str(out))
    assert first.returncode == 0 and "colorized 8, skipped 0" in first.stdout, first.stdout + first.stderr
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    (out / "x229749_y104184.png").unlink()          # as if the first run had been killed before this one
    (out / ".x229749_y104185.png.abc.tmp").write_bytes(b"partial")  # and left a temp file behind
    second = colorize("--model", str(lab_model), str(src_dir), "--out", str(out))
    assert second.returncode == 0 and "colorized 1, skipped 7" in second.stdout, second.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png") if p.name != "x229749_y104184.png"} == {
        k: v for k, v in stamps.items() if k != "x229749_y104184.png"}
    assert not list(out.glob(".*.tmp"))
    assert {p.name: p.read_bytes() for p in src_dir.iterdir()} == before
    summary = json.loads((out / "colorize-summary.json").read_text())
    assert summary["counts"] == {"done": 1, "skipped": 7, "failed": 0}
    # an output folder that would overwrite the inputs is refused before anything is written
    res = colorize("--model", str(lab_model), str(src_dir), "--out", str(src_dir))
    assert res.returncode == 2 and "would overwrite the inputs" in res.stderr and "Traceback" not in res.stderr
    res = colorize("--model", str(lab_model), str(src_dir / "x229749_y104184.png"), "--out", str(src_dir))
    assert res.returncode == 2 and "would overwrite the input" in res.stderr
    # an output folder inside the input folder: its files are outputs, not inputs, on every rerun
    inner = src_dir / "colorized"
    for _ in range(2):
        res = colorize("--model", str(lab_model), str(src_dir), "--out", str(inner))
        assert res.returncode == 0 and sorted(p.name for p in inner.glob("*.png")) == sorted(before), res.stdout
    assert not list((inner / "colorized").glob("*"))
    assert {p.name: p.read_bytes() for p in src_dir.iterdir() if p.is_file()} == before


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # the test's own plain TIFF / PNG
def test_bad_inputs_are_reported_per_file_and_set_the_exit_code(tmp_path, sample_data, lab_model):
    import rasterio

    bad = tmp_path / "mixed"
    bad.mkdir()
    shutil.copy(sample_data / Z18, bad / "good.png")
    (bad / "truncated.jpg").write_bytes((sample_data / Z17).read_bytes()[:2000])
    (bad / "notes.png").write_text("not an image")
    color = next((sample_data / "color").rglob("*.jpg"))
    shutil.copy(color, bad / "color.jpg")                                    # a real color tile
    with rasterio.open(bad / "five.tif", "w", driver="GTiff", width=8, height=8, count=5, dtype="uint8") as ds:
        ds.write(np.zeros((5, 8, 8), np.uint8))
    shutil.copy(sample_data / Z17, bad / "huge.jpg")                         # 1024 x 1024 > --max-pixels
    # inputs that look odd but are fine: a gray photo saved as RGB, one smaller than a tile, a 16-bit scan
    gray = load(sample_data / Z17, "L")
    Image.fromarray(np.repeat(gray[:300, :300, None], 3, axis=2)).save(bad / "gray_as_rgb.jpg", quality=90)
    Image.fromarray(gray[:17, :20]).save(bad / "tiny.png")
    sixteen = gray[:64, :96].astype(np.uint16) * 257 + np.arange(96, dtype=np.uint16)[None, :]  # low bits used
    Image.fromarray(sixteen).save(bad / "sixteen.png")
    res = colorize("--model", str(lab_model), str(bad), "--out", str(tmp_path / "out"), "--max-pixels", "500000")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "colorized 4, skipped 0 (already done), failed 5" in res.stdout
    assert load(tmp_path / "out" / "tiny.png").shape == (17, 20, 3)
    assert load(tmp_path / "out" / "gray_as_rgb.jpg").shape == (300, 300, 3)
    with rasterio.open(tmp_path / "out" / "sixteen.png") as ds:                # 16-bit in, 16-bit RGB PNG out
        assert ds.count == 3 and ds.dtypes[0] == "uint16"
        out16 = np.moveaxis(ds.read(), 0, -1).astype(np.float64) / 65535
    from aircolor.data.colorspace import rgb_to_lab

    L_out = rgb_to_lab(torch.from_numpy(out16).permute(2, 0, 1))[0]
    L_in = rgb_to_lab(torch.from_numpy(np.repeat(sixteen[None] / 65535.0, 3, axis=0)))[0]
    assert (L_out - L_in).abs().max() < 0.02  # the luminance keeps its 16-bit precision
    summary = json.loads((tmp_path / "out" / "colorize-summary.json").read_text())
    reasons = {Path(f["input"]).name: f["reason"] for f in summary["files"] if f["status"] == "failed"}
    assert set(reasons) == {"truncated.jpg", "notes.png", "color.jpg", "five.tif", "huge.jpg"}
    assert "color image" in reasons["color.jpg"] and "5 bands" in reasons["five.tif"]
    assert "above the limit" in reasons["huge.jpg"] and "unreadable" in reasons["notes.png"]
    assert (tmp_path / "out" / "good.png").is_file() and not (tmp_path / "out" / "color.jpg").exists()
    for line in ("failed: " + str(bad / name) for name in reasons):
        assert line in res.stdout
    # usage errors: one line, exit 2
    res = colorize("--model", str(lab_model), str(tmp_path / "nowhere"), "--out", str(tmp_path / "o2"))
    assert res.returncode == 2 and "no such file or folder" in res.stderr and len(res.stderr.splitlines()) == 1
    res = colorize("--model", str(tmp_path / "missing.pt"), str(bad), "--out", str(tmp_path / "o2"))
    assert res.returncode == 2 and "--model" in res.stderr and "Traceback" not in res.stderr


def test_promote_then_colorize_from_the_model_registry(tmp_path, prepared_sample, sample_data, mlflow_uri):
    """A finished run in a real MLflow server's experiment -> `aircolor sweep promote` -> models:/ URI."""
    from aircolor.config import load_config
    from aircolor.training import run

    experiment = "promote-me"
    for seed, lr in ((0, "2e-4"), (1, "1e-9")):   # the second barely trains: the first must win on Delta E
        cfg = load_config(None, ["model.family=pix2pix", "model.netG=unet_auto", "model.ngf=8", "model.ndf=8",
                                 f"data.root={prepared_sample}", "data.size=32", "train.n_epochs=1",
                                 "train.n_epochs_decay=0", f"train.output_dir={tmp_path / str(seed)}",
                                 f"train.seed={seed}", f"train.lr_G={lr}", "metrics.fid=false", "metrics.isc=false",
                                 "metrics.kid=false", f"tracking.experiment={experiment}",
                                 f"tracking.tracking_uri={mlflow_uri}", "train.device=cpu"])
        assert run(cfg).ok
    env_cmd = [sys.executable, "-m", "aircolor", "sweep", "promote", experiment, "--tracking-uri", mlflow_uri,
               "--metric", "delta_e2000", "--storage", str(tmp_path / "no-sweeps")]
    first = subprocess.run(env_cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"registered models:/aircolor-{experiment}/1" in first.stdout
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri, registry_uri=mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    best = min(runs, key=lambda r: r.data.metrics["val.delta_e2000"])
    version = client.get_model_version(f"aircolor-{experiment}", "1")
    assert version.run_id == best.info.run_id
    again = subprocess.run(env_cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"already registered as models:/aircolor-{experiment}/1" in again.stdout
    for spec in (f"models:/aircolor-{experiment}/1", f"models:/aircolor-{experiment}@best"):
        out = tmp_path / spec.rsplit("/", 1)[-1].replace("@", "_")
        res = colorize("--model", spec, "--tracking-uri", mlflow_uri, str(sample_data / Z18), "--out", str(out))
        assert res.returncode == 0, res.stdout + res.stderr
        assert load(out / "x229749_y104184.png").shape == (256, 256, 4)  # the tile's alpha is kept
    res = colorize("--model", f"models:/aircolor-{experiment}/7", "--tracking-uri", mlflow_uri,
                   str(sample_data / Z18), "--out", str(tmp_path / "v7"))
    assert res.returncode == 2 and "not in the model registry" in res.stderr
