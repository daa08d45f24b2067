"""Bad-input corpus: files given as models or weights (``colorize --model``, ``metrics --weights``,
``metrics.inception_weights``, ``$AIRCOLOR_INCEPTION_WEIGHTS``, a run's checkpoint), and ``colorize``/``metrics``.

The malicious-pickle cases hand every path that loads a user's file a pickle whose ``__reduce__`` would write a
marker file: the marker must never appear, and the command refuses the file in one line.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from badinput import run_bad
from PIL import Image

import aircolor

REPO = Path(aircolor.__file__).resolve().parent.parent
CONFIG = str(REPO / "aircolor" / "configs" / "demo_cpu.yaml")


class _Evil:
    """Unpickling this runs ``exec`` of code that writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _tiny_generator(path: Path, *overrides: str) -> Path:
    from aircolor.config import load_config
    from aircolor.models.zoo import build_model
    from aircolor.training.loop import export_generator

    cfg = load_config(None, ["data.size=32", "model.ngf=8", "model.ndf=8", "model.netG=unet_32", *overrides])
    torch.manual_seed(0)
    return export_generator(build_model(cfg), cfg, path)


@pytest.fixture
def work(tmp_path, monkeypatch, sample_data):
    """An empty working folder with photos, a real tiny generator and the bad files the cases hand over."""
    from aircolor.training.checkpoint import load_checkpoint, save_checkpoint

    root = tmp_path / "work"
    (root / "photos").mkdir(parents=True)
    (root / "real").mkdir()
    tiles = sorted((sample_data / "color" / "massachusetts_1m").glob("*.jpg"))
    for tile in tiles[:2]:  # the historical photos' case: gray scans
        Image.open(tile).convert("L").save(root / "photos" / tile.name)
    for tile in tiles[2:5]:
        shutil.copy(tile, root / "real")
    marker = tmp_path / "PWNED"
    torch.save({"format": 1, "kind": "generator", "payload": _Evil(marker)}, root / "evil.pt")
    good = _tiny_generator(root / "good.pt")
    state = load_checkpoint(good)
    state["nets"]["G"][next(iter(state["nets"]["G"]))].fill_(float("nan"))
    save_checkpoint(root / "nan.pt", {k: v for k, v in state.items() if k != "format"})
    wide = load_checkpoint(_tiny_generator(tmp_path / "wide.pt", "model.ngf=16"))
    save_checkpoint(root / "misfit.pt", {**{k: v for k, v in load_checkpoint(good).items() if k != "format"},
                                         "nets": wide["nets"]})
    torch.save({"a": torch.randn(3), "b": torch.randn(2, 2)}, root / "tensors.pt")
    (root / "notes.txt").write_text("these are not weights\n")
    (root / "afile").write_text("a file\n")
    (root / "empty").mkdir()
    (root / "run" / "model").mkdir(parents=True)
    shutil.copy(root / "evil.pt", root / "run" / "model" / "generator.pt")
    monkeypatch.chdir(root)
    return {"root": root, "marker": marker}


def _no_marker(work) -> None:
    assert not work["marker"].exists(), "the pickle's code ran"


MALICIOUS = {
    "colorize --model FILE": (["colorize", "--model", "evil.pt", "photos", "--out", "out"], {}),
    "colorize --model RUN_FOLDER": (["colorize", "--model", "run", "photos", "--out", "out"], {}),
    "metrics --weights": (["metrics", "photos", "real", "--weights", "evil.pt"], {}),
    "$AIRCOLOR_INCEPTION_WEIGHTS": (["metrics", "photos", "real"], {"AIRCOLOR_INCEPTION_WEIGHTS": "evil.pt"}),
    "metrics.inception_weights": (["train", CONFIG, "data.root=PREPARED", "metrics.inception_weights=evil.pt",
                                   "metrics.fid=true", "tracking.enabled=false"], {}),
}


@pytest.mark.parametrize("argv,env", MALICIOUS.values(), ids=MALICIOUS.keys())
def test_a_crafted_pickle_never_runs(capsys, monkeypatch, work, prepared_sample, argv, env):
    argv = [a.replace("PREPARED", str(prepared_sample)) for a in argv]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    run_bad(capsys, argv, watch=[work["root"]], words=["never unpickles", "could run code"])
    _no_marker(work)


def test_a_crafted_checkpoint_is_not_resumed(capsys, work, prepared_sample):
    """The run folder's own checkpoints/last.pt is a user file too (it can be copied from anywhere)."""
    argv = ["train", CONFIG, f"data.root={prepared_sample}", "data.size=32", "data.max_images=4",
            "train.batch_size=2", "train.output_dir=runs", "tracking.run_name=copied", "tracking.enabled=false",
            "metrics.fid=false", "metrics.kid=false", "metrics.isc=false", "--quiet"]
    last = work["root"] / "runs" / "copied" / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    shutil.copy(work["root"] / "evil.pt", last)
    run_bad(capsys, argv, watch=[last.parent], words=["cannot resume", "never unpickles", "train.resume=false"])
    _no_marker(work)


def test_weights_are_handed_to_torch_fidelity_as_vetted_tensors(work, inception_weights):
    """torch-fidelity unpickles its weights with weights_only=False: it must only ever see our re-serialised copy."""
    from aircolor.metrics import features

    seen = []
    from torch_fidelity import feature_extractor_inceptionv3 as fx

    original = fx.FeatureExtractorInceptionV3.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("feature_extractor_weights_path"))
        original(self, *args, **kwargs)

    fx.FeatureExtractorInceptionV3.__init__ = spy
    try:
        features._EXTRACTORS.clear()
        features.get_extractor(Path(inception_weights))
    finally:
        fx.FeatureExtractorInceptionV3.__init__ = original
        features._EXTRACTORS.clear()
    assert seen and not isinstance(seen[0], (str, Path)), f"torch-fidelity was given the file itself: {seen}"


CASES = {
    "text file as model": (["colorize", "--model", "notes.txt", "photos", "--out", "out"],
                           ["notes.txt", "not a PyTorch file"]),
    "random tensors as model": (["colorize", "--model", "tensors.pt", "photos", "--out", "out"],
                                ["tensors.pt", "without aircolor's 'format' entry"]),
    "NaN weights": (["colorize", "--model", "nan.pt", "photos", "--out", "out"], ["nan.pt", "NaN or Inf"]),
    "shapes do not fit": (["colorize", "--model", "misfit.pt", "photos", "--out", "out"],
                          ["misfit.pt", "do not fit the model"]),
    "unknown device": (["colorize", "photos", "--out", "out", "--device", "tpu"], ["--device", "'tpu'", "cuda"]),
    "--out is a file": (["colorize", "photos", "--out", "afile"], ["--out", "afile", "is a file"]),
    "--out below a file": (["colorize", "photos", "--out", "afile/sub"], ["--out", "is a file"]),
    "--out not writable": (["colorize", "photos", "--out", "/proc/aircolor-out"], ["--out", "not writable"]),
    "--out is the input": (["colorize", "photos", "--out", "photos"], ["overwrite the inputs"]),
    "missing input": (["colorize", "nope", "--out", "out"], ["nope", "no such file"]),
    "empty input folder": (["colorize", "empty", "--out", "out"], ["no images found"]),
    "glob matches nothing": (["colorize", "photos/*.tif", "--out", "out"], ["matches no image files"]),
    "zero batch": (["colorize", "photos", "--out", "out", "--batch-size", "0"], ["--batch-size"]),
    "zero scale": (["colorize", "photos", "--out", "out", "--scale", "0"], ["--scale"]),
    "overlap too large": (["colorize", "photos", "--out", "out", "--overlap", "999"], ["--overlap 999"]),
    "unknown format": (["colorize", "photos", "--out", "out", "--format", "bmp"], ["--format", "'bmp'"]),
    "unknown format lists cog": (["colorize", "photos", "--out", "out", "--format", "COG"], ["--format", "'COG'",
                                                                                           "'cog'"]),
    "--format cog, --out not writable": (["colorize", "photos", "--out", "/proc/aircolor-out", "--format", "cog"],
                                         ["--out", "not writable"]),
    "--format cog, --out is a file": (["colorize", "photos", "--out", "afile", "--format", "cog"],
                                      ["--out", "afile", "is a file"]),
    "--format cog, --out is the input": (["colorize", "photos", "--out", "photos", "--format", "cog"],
                                         ["overwrite the inputs"]),
    "--format cog --ray, silent address": (["colorize", "photos", "--out", "out", "--format", "cog", "--ray",
                                            "--address", "127.0.0.1:9"], ["127.0.0.1:9", "no Ray cluster"]),
    "tile not a multiple": (["colorize", "--model", "good.pt", "photos", "--out", "out", "--tile", "48"],
                            ["--tile 48", "multiple of the model's tile size 32"]),
    "zero tile": (["colorize", "photos", "--out", "out", "--tile", "0"], ["--tile", "'0'"]),
    "zero block": (["colorize", "photos", "--out", "out", "--block-tiles", "0"], ["--block-tiles"]),
    "--workers without --ray": (["colorize", "photos", "--out", "out", "--workers", "2"], ["--workers", "--ray"]),
    "--address without --ray": (["colorize", "photos", "--out", "out", "--address", "auto"], ["--address", "--ray"]),
    "--ray with --device": (["colorize", "photos", "--out", "out", "--ray", "--device", "cpu"],
                            ["--device", "--gpus-per-worker"]),
    "zero cpus per worker": (["colorize", "photos", "--out", "out", "--ray", "--cpus-per-worker", "0"],
                             ["--cpus-per-worker", "positive"]),
    "negative gpus per worker": (["colorize", "photos", "--out", "out", "--ray", "--gpus-per-worker", "-1"],
                                 ["--gpus-per-worker", "non-negative"]),
    "bad ray address": (["colorize", "photos", "--out", "out", "--ray", "--address", "head"], ["'head'", "Ray address"]),
    "--ray bad input first": (["colorize", "nope", "--out", "out", "--ray"], ["nope", "no such file"]),
    "missing model": (["colorize", "--model", "nope.pt", "photos", "--out", "out"], ["nope.pt", "no such file"]),
    "folder without a model": (["colorize", "--model", "empty", "photos", "--out", "out"],
                               ["empty", "has no model/generator.pt"]),
    "registry without a store": (["colorize", "--model", "models:/colorizer/1", "photos", "--out", "out"],
                                 ["no model registry", "mlruns.db"]),
    "run id without a store": (["colorize", "--model", "0123456789abcdef0123456789abcdef", "photos", "--out",
                                "out"], ["mlruns.db"]),
    "silent tracking server": (["colorize", "--model", "models:/colorizer/1", "photos", "--out", "out",
                                "--tracking-uri", "http://127.0.0.1:9"], ["127.0.0.1:9"]),
    "weights not a weights file": (["metrics", "photos", "real", "--weights", str(REPO / "README.md")],
                                   ["README.md", "not an Inception weights file", "not a PyTorch file"]),
    "weights of random tensors": (["metrics", "photos", "real", "--weights", "tensors.pt"],
                                  ["tensors.pt", "not an Inception weights file", "lacks"]),
    "weights missing": (["metrics", "photos", "real", "--weights", "nope.pth"], ["nope.pth", "does not exist"]),
    "weights a generator": (["metrics", "photos", "real", "--weights", "good.pt"],
                            ["good.pt", "not an Inception weights file"]),
    "metrics fake folder missing": (["metrics", "nope", "real"], ["FAKE_DIR", "nope"]),
    "metrics one image": (["metrics", "photos", "empty"], ["REAL_DIR"]),
    "metrics zero batch": (["metrics", "photos", "real", "--batch-size", "0"], ["--batch-size"]),
    "metrics kid subset 1": (["metrics", "photos", "real", "--kid-subset-size", "1"], ["--kid-subset-size"]),
}


@pytest.mark.parametrize("argv,words", CASES.values(), ids=CASES.keys())
def test_colorize_and_metrics_bad_input(capsys, work, argv, words):
    run_bad(capsys, argv, watch=[work["root"]], words=words)
    assert not (work["root"] / "mlruns.db").exists()


def test_nan_weights_in_a_checkpoint_are_refused(capsys, work):
    from aircolor.training.checkpoint import load_checkpoint, save_checkpoint
    from aircolor.config import load_config
    from aircolor.models.zoo import build_model
    from aircolor.training.loop import config_to_dict

    cfg = load_config(None, ["data.size=32", "model.ngf=8", "model.ndf=8", "model.netG=unet_32"])
    state = build_model(cfg).training_state()
    state["nets"][next(iter(state["nets"]))].fill_(float("inf"))
    save_checkpoint(work["root"] / "last.pt", {"model": state, "config": config_to_dict(cfg), "epoch": 1})
    assert load_checkpoint(work["root"] / "last.pt")["epoch"] == 1
    run_bad(capsys, ["colorize", "--model", "last.pt", "photos", "--out", "out"], watch=[work["root"]],
            words=["last.pt", "NaN or Inf"])


def test_non_finite_outputs_fail_that_file_and_the_run_goes_on(capsys, work, monkeypatch):
    """A photo whose colours come out NaN is reported and not written; the other photos are colorized."""
    import json

    from aircolor.cli import main
    from aircolor.colorize.engine import Colorizer

    first = sorted((work["root"] / "photos").iterdir())[0].name
    original = Colorizer.__call__

    def poisoned(self, gray, **kwargs):
        if poisoned.calls == 0:
            forward = self.processor.fn
            self.processor.fn = lambda batch, ids: forward(batch, ids) * float("nan")
            try:
                return original(self, gray, **kwargs)
            finally:
                poisoned.calls += 1
                self.processor.fn = forward
        return original(self, gray, **kwargs)

    poisoned.calls = 0
    monkeypatch.setattr(Colorizer, "__call__", poisoned)
    code = main(["colorize", "photos", "--out", "out", "--quiet", "--model", "good.pt"])
    out = capsys.readouterr().out
    assert code == 1, out
    summary = json.loads((work["root"] / "out" / "colorize-summary.json").read_text())
    assert summary["counts"] == {"done": 1, "skipped": 0, "failed": 1}, summary
    failed = [f for f in summary["files"] if f["status"] == "failed"][0]
    assert Path(failed["input"]).name == first and "NaN or Inf" in failed["reason"]
    assert not any(p.name.startswith(Path(first).stem) for p in (work["root"] / "out").iterdir())
