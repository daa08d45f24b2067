"""``aircolor colorize --ray`` on the session's real local Ray cluster (2 CPUs), against the single-process path.

The models are reference-mode pix2pix generators (BatchNorm on each tile's own statistics, dropout seeded per
tile): their colours depend on how tiles are normalised and seeded, so a photo whose blocks of tiles were computed
by two workers and put back together by a third only matches the one-process output if the split is exact. The
session's trained 32 px model (no dropout at that depth) checks the seams too; an untrained 64 px one (ngf 8: deep
enough for a dropout layer) checks dropout, --scale and the fault handling. The photos are the real 1936-1942
GSI samples: two 1024 x 1024 JPEGs (3969 tiles of 32 px, 961 of 64 px: blocks spread over both workers),
256 x 256 gray+alpha PNGs, and a 16-bit GeoTIFF with nodata.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from filecompare import assert_same_files, digests
from test_colorize import Z17, Z18, _write_geotiff, lab_of, seam_z

pytestmark = pytest.mark.slow
SEAM = Path(__file__).with_name("colorize_fault_seam.py")


@pytest.fixture(scope="module")
def archive(tmp_path_factory, sample_data) -> Path:
    """A small real archive: photos in sub-folders, one GeoTIFF, one large photo."""
    root = tmp_path_factory.mktemp("archive") / "scans"
    (root / "z17").mkdir(parents=True)
    (root / "z18").mkdir()
    for photo in sorted((sample_data / Z17).parent.glob("*.jpg")):
        shutil.copy(photo, root / "z17" / photo.name)
    for photo in sorted((sample_data / Z18).parent.glob("*.png"))[:3]:
        shutil.copy(photo, root / "z18" / photo.name)
    gray = np.asarray(Image.open(sample_data / Z18).convert("L")).astype(np.uint16) * 257 + 3
    gray[:20, :30] = 0
    _write_geotiff(root / "z18" / "tile16.tif", gray, x=229749, y=104184, z=18, nodata=0)
    return root


@pytest.fixture(scope="module")
def dropout_generator(tmp_path_factory) -> Path:
    """An exported reference-mode Lab pix2pix with BatchNorm and a dropout layer (untrained: 64 px, ngf 8)."""
    import torch

    from aircolor.models.zoo import build_named
    from aircolor.training.loop import export_generator

    torch.manual_seed(3)
    model = build_named("pix2pix", ["model.ngf=8", "model.ndf=8", "data.size=64", "model.netG=unet_auto",
                                    "model.dropout=true", "data.color_space=lab", "metrics.generator_mode=reference"])
    return export_generator(model, model.cfg, tmp_path_factory.mktemp("dropout") / "generator.pt")


@pytest.fixture(scope="module")
def single(tmp_path_factory, archive, dropout_generator) -> Path:
    """The archive colorized in one process by the dropout model: what --ray must reproduce byte for byte."""
    out = tmp_path_factory.mktemp("single") / "out"
    assert colorize_here("--model", str(dropout_generator), str(archive), "--out", str(out)) == 0
    return out


def ray_colorize_here(*args: str) -> int:
    """``aircolor colorize --ray --workers 2`` in this process, on the session cluster it is connected to."""
    from aircolor.cli import main

    return main(["colorize", "--ray", "--workers", "2", *args])


def colorize_here(*args: str) -> int:
    """``aircolor colorize`` in one process, this one (no interpreter start-up: the reference outputs)."""
    from aircolor.cli import main

    return main(["colorize", "--quiet", *args])


def ray_colorize(ray_cluster, *args: str, seam: list[str] | None = None) -> subprocess.CompletedProcess:
    env = dict(ray_cluster["env"], RAY_ADDRESS=ray_cluster["address"], PYTHONUNBUFFERED="1")
    head = [str(SEAM), *seam] if seam else ["-m", "aircolor"]
    return subprocess.run([sys.executable, *head, "colorize", "--ray", "--workers", "2", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "colorize-summary.json").read_text())


def test_ray_gives_the_same_files_as_one_process_and_no_seams(tmp_path, archive, lab_generator, ray_cluster,
                                                              capfd):
    """In this process (connected to the session cluster), as a notebook or a script calling the CLI would."""
    from aircolor.colorize.tiling import tile_starts

    one, ray = tmp_path / "one", tmp_path / "ray"
    args = ["--model", str(lab_generator), str(archive), "--format", "png"]
    assert colorize_here(*args, "--out", str(one)) == 0
    capfd.readouterr()
    assert ray_colorize_here(*args, "--out", str(ray)) == 0
    res = capfd.readouterr()
    assert_same_files(ray, one, count=6)
    summary = summary_of(ray)
    assert summary["counts"] == {"done": 6, "skipped": 0, "failed": 0} and summary["run"]["workers"] == 2
    big = [f for f in summary["files"] if f["input"].endswith(".jpg")]
    assert len(big) == 2 and all(f["workers"] == 2 and f["tiles"] == 3969 for f in big)  # split over both
    # the seams of a photo assembled from two workers' blocks are as invisible as in one process
    for photo in sorted((ray / "z17").glob("*.png")):
        assert seam_z(lab_of(np.asarray(Image.open(photo).convert("RGB"))), tile_starts(1024, 32, 16)) < 2.5
    assert "2 workers on 1 node(s)" in res.err and "6 photos to colorize" in res.err and "MP/s" in res.err


def test_ray_with_dropout_and_a_scale_matches_too(tmp_path, archive, dropout_generator, ray_cluster):
    """Dropout masks seeded per tile, and --scale, which resamples the model's output band by band (each band
    from its own rows of the model's image), on the large photos in small blocks. The block side is part of the
    algorithm (it fixes the order of the partial sums), so both sides get the same --block-tiles: on an AVX-512
    CPU another block side moves about 1% of the samples by a level."""
    one, ray = tmp_path / "one", tmp_path / "ray"
    args = ["--model", str(dropout_generator), str(archive / "z17"), "--scale", "0.6", "--overlap", "8",
            "--block-tiles", "3"]
    assert colorize_here(*args, "--out", str(one)) == 0
    assert ray_colorize_here(*args, "--out", str(ray)) == 0
    assert_same_files(ray, one, count=2)
    assert all(f["workers"] == 2 for f in summary_of(ray)["files"])


def test_a_worker_killed_mid_write_leaves_no_partial_output_and_the_rerun_completes(
        tmp_path, archive, single, dropout_generator, ray_cluster):
    out, markers = tmp_path / "out", tmp_path / "markers"
    markers.mkdir()
    first, second = sorted((archive / "z17").glob("*.jpg"))
    faults = f"{first.name}:once,{second.name}:always"
    args = ["--model", str(dropout_generator), str(archive), "--out", str(out)]
    res = ray_colorize(ray_cluster, *args, seam=[str(markers), faults])
    assert res.returncode == 1, res.stdout + res.stderr          # one photo failed: the exit code says so
    assert (markers / f"{first.name}.died").exists() and (markers / f"{second.name}.died").exists()
    summary = summary_of(out)
    assert summary["counts"] == {"done": 5, "skipped": 0, "failed": 1}, summary
    failed = [f for f in summary["files"] if f["status"] == "failed"]
    assert Path(failed[0]["input"]).name == second.name and "worker died 3 times" in failed[0]["reason"]
    assert f"failed: {failed[0]['input']}" in res.stdout
    assert not (out / "z17" / second.name).exists()                # nothing half-written under its name ...
    assert not list(out.rglob("*.tmp"))                              # ... nor left as a temporary file
    assert digests(out / "z17")[first.name] == digests(single / "z17")[first.name]  # retried: whole
    rerun = ray_colorize(ray_cluster, *args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert summary_of(out)["counts"] == {"done": 1, "skipped": 5, "failed": 0}
    assert_same_files(out, single)


def test_ray_job_submit_runs_a_colorize_job_to_the_end(tmp_path, archive, single, dropout_generator, ray_cluster):
    ray_bin = str(Path(sys.executable).parent / "ray")
    photos = archive / "z18"
    out = tmp_path / "out"
    cmd = [ray_bin, "job", "submit", "--address", ray_cluster["dashboard"], "--", sys.executable, "-m",
           "aircolor.colorize", "--ray", "--address", "auto", "--model", str(dropout_generator), str(photos), "--out",
           str(out), "--quiet"]
    env = dict(ray_cluster["env"], RAY_ADDRESS=ray_cluster["dashboard"])
    for _ in range(4):
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        # the job server may answer before the head's dashboard agent registered: Ray started nothing then
        if "No available agent to submit job" not in res.stderr:
            break
        time.sleep(10)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "colorized 4, skipped 0 (already done), failed 0" in res.stdout
    assert "tile16.tif" in (out / "colorized-mosaic.vrt").read_text()  # the folder's GeoTIFF gets a mosaic
    assert_same_files(out, single / "z18", skip=("colorize-summary.json", "colorized-mosaic.vrt"), count=4)


def test_ray_requests_the_cluster_cannot_meet_fail_in_one_line_before_anything_is_written(tmp_path, archive, capsys,
                                                                                        ray_cluster, monkeypatch):
    """Bad --ray input: a silent address (Ray itself would retry for minutes) and more workers than the session
    cluster's 2 CPUs (no autoscaler): one line, exit 2, nothing written."""
    from badinput import run_bad

    monkeypatch.chdir(tmp_path)
    photos = str(archive / "z18")
    run_bad(capsys, ["colorize", photos, "--out", "out", "--ray", "--address", "127.0.0.1:9"],
            watch=[tmp_path, archive], words=["127.0.0.1:9", "no Ray cluster"])
    run_bad(capsys, ["colorize", photos, "--out", "out", "--ray", "--address", ray_cluster["address"], "--workers",
                     "3"], watch=[tmp_path, archive], words=["--workers 3 needs 3 CPUs", "has 2 CPUs", "--workers 2"])
