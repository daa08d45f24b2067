"""``python -m benchmarks.quality`` end to end on the bundled sample (tiny: 32 px, ngf 8, two seeds), and shipping
its generator as a default model that ``aircolor colorize`` loads with no ``--model``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    from benchmarks.quality import main

    out = tmp_path_factory.mktemp("quality")
    rc = main(["--data", str(sample_data / "color"), "--holdout", "^oam_kampala_fair/", "--seeds", "0,1",
               "--quick", "--work", str(out / "work"), "--out", str(out / "results"), "--ship", str(out / "ship"),
               "--set", "data.size=32", "--set", "model.ngf=8", "--set", "model.ndf=8",
               "--set", "train.batch_size=4"])
    assert rc == 0
    return out


def test_every_region_has_every_arm_with_cis(quality_run: Path) -> None:
    rows = [json.loads(line) for line in (quality_run / "results" / "quality.jsonl").read_text().splitlines()]
    assert {(r["region"], r["arm"]) for r in rows} == {(region, arm) for region in ("Massachusetts", "Kampala")
                                                       for arm in ("gray", "tint", "lightness", "recipe")}
    for r in rows:
        lo, hi = r["delta_e2000_ci"]
        assert lo <= r["delta_e2000"] <= hi and r["n_tiles"] > 0
        if r["arm"] == "recipe":
            assert r["strongest_prior"] in ("tint", "lightness") and "target_met" in r
            assert r["delta_e2000_seed_std"] >= 0 and r["meta"]["seeds"] == 2
        if r["arm"] == "gray":
            assert r["colorfulness"] == pytest.approx(0, abs=1e-6)
    kampala = [r for r in rows if r["region"] == "Kampala"]
    assert kampala[0]["meta"]["held_out_regions"] == ["Kampala"]
    assert "Kampala" not in kampala[0]["meta"]["train_regions"]
    md = (quality_run / "results" / "quality.md").read_text()
    assert "Kampala (held out)" in md and "chroma by lightness" in md and "Target on every region" in md
    assert (quality_run / "results" / "quality_samples.png").stat().st_size > 0


def test_the_shipped_generator_is_half_precision_and_colours_like_the_original(quality_run: Path) -> None:
    from aircolor.models.exported import load_generator

    shipped = quality_run / "ship" / "generator.pt"
    state = torch.load(shipped, weights_only=True)
    floats = [v for net in state["nets"].values() for v in net.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert str(quality_run) not in json.dumps(state["config"])  # no local paths travel with it
    original, _ = load_generator(next((quality_run / "work" / "runs-seed0").glob("*/model/generator.pt")))
    half, _ = load_generator(shipped)
    gray = torch.rand(2, 1, 32, 32) * 2 - 1
    diff = (original.infer(gray, mode="eval") - half.infer(gray, mode="eval")).abs().max()
    assert diff < 2e-2
    card = (quality_run / "ship" / "MODEL_CARD.md").read_text()
    assert "CC BY 4.0" in card and "Mnih" in card and "NAIP" in card and "MB (float16 weights)" in card


def test_colorize_without_model_uses_the_default(quality_run: Path, sample_data: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """No --model: the package's default generator (here pointed at the one just shipped), offline."""
    from PIL import Image

    import aircolor.colorize.source as source
    from aircolor.cli import main

    photo = sample_data / "historical" / "gsi_1936-1942_z18" / "x229749_y104184.png"
    monkeypatch.setattr(source, "DEFAULT_MODEL", quality_run / "ship" / "generator.pt")
    assert main(["colorize", str(photo), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    out = Image.open(next((tmp_path / "out").glob("*.png")))
    assert out.mode == "RGBA" and out.size == Image.open(photo).size  # gray+alpha in: alpha kept
    monkeypatch.setattr(source, "DEFAULT_MODEL", tmp_path / "missing.pt")
    assert main(["colorize", str(photo), "--out", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert "no default model" in err and "--model" in err and "Traceback" not in err
    assert np.asarray(out).std() > 0


def test_the_package_ships_a_default_model_that_colorizes_offline(sample_data: Path, tmp_path: Path) -> None:
    """`aircolor colorize photo --out DIR` as a user runs it on a fresh install: no --model, no network."""
    import os
    import subprocess
    import sys

    from PIL import Image

    from aircolor.colorize.source import DEFAULT_MODEL

    assert DEFAULT_MODEL.is_file() and DEFAULT_MODEL.stat().st_size < 8e6  # a few MB in the wheel
    assert (DEFAULT_MODEL.parent / "MODEL_CARD.md").is_file()
    photo = sample_data / "historical" / "gsi_1936-1942_z17" / "OHG-Z17-X114852-Y51992.jpg"
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}  # nothing to reach: it must not try
    proc = subprocess.run([sys.executable, "-m", "aircolor", "colorize", str(photo), "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = np.asarray(Image.open(tmp_path / (photo.stem + ".jpg")).convert("RGB")).astype(float)
    gray = np.asarray(Image.open(photo).convert("L")).astype(float)
    assert out.shape[:2] == gray.shape
    chroma = np.abs(out - out.mean(axis=-1, keepdims=True)).mean()
    assert chroma > 1.0  # it colours: not a gray copy
