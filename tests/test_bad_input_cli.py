"""Bad-input corpus: the global options, ``config``, ``train`` and ``models`` (see tests/badinput.py).

Each case: exit 2, one line naming what is wrong, no traceback, nothing created or changed in the working
folder or next to the inputs. Every case runs from an empty working folder, so a stray ``mlruns.db`` or run
folder would show.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from badinput import run_bad

CONFIG = "aircolor/configs/demo_cpu.yaml"


@pytest.fixture
def work(tmp_path, monkeypatch):
    """An empty working folder holding a few bad files; the repository's configs stay reachable by absolute path."""
    import aircolor

    root = tmp_path / "work"
    root.mkdir()
    (root / "dup.yaml").write_text("model:\n  ngf: 8\n  ngf: 16\n")
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "good.yaml").write_text("model:\n  ngf: 8\n")
    (root / "broken.yaml").write_text("model:\n  ngf: [\n")
    (root / "binary.yaml").write_bytes(bytes(range(256)) * 2)
    (root / "afile").write_text("not a folder\n")
    (root / "adir").mkdir()
    (root / "empty-data").mkdir()
    monkeypatch.chdir(root)
    repo = Path(aircolor.__file__).resolve().parent.parent
    return {"root": root, "config": str(repo / CONFIG)}


CONFIG_CASES = {
    "duplicate key": (["config", "show", "dup.yaml"], ["dup.yaml", "line 3", "'ngf' is given twice"]),
    "not a mapping": (["config", "show", "list.yaml"], ["list.yaml", "mapping"]),
    "broken yaml": (["config", "show", "broken.yaml"], ["broken.yaml", "line", "not valid YAML"]),
    "binary file": (["config", "show", "binary.yaml"], ["binary.yaml", "cannot be read"]),
    "folder as config": (["config", "show", "adir"], ["adir", "cannot be read"]),
    "missing config": (["config", "show", "nope.yaml"], ["nope.yaml", "does not exist"]),
    "not an integer": (["config", "show", "model.ngf=abc"], ["model.ngf", "integer", "'abc'"]),
    "below range": (["config", "show", "model.ngf=-3"], ["model.ngf", ">= 1"]),
    "unknown section": (["config", "show", "unknown.key=1"], ["unknown section", "valid sections"]),
    "unknown key": (["config", "show", "data.split=1,2"], ["unknown key 'data.split'", "valid keys"]),
    "bad choice": (["config", "show", "model.netG=nope"], ["model.netG", "unet_256", "'nope'"]),
    "unknown family": (["config", "show", "model.family=xyz"], ["model.family", "pix2pix"]),
    "zero batch": (["config", "show", "train.batch_size=0"], ["train.batch_size", ">= 1"]),
    "negative epochs": (["config", "show", "train.n_epochs=-1"], ["train.n_epochs", ">= 0"]),
    "override without value": (["config", "show", "model.ngf"], ["model.ngf", "KEY=VALUE"]),
    "override without value after file": (["config", "show", "good.yaml", "model.ngf"], ["KEY=VALUE"]),
    "empty key": (["config", "show", "=3"], ["'=3'", "KEY=VALUE"]),
    "--out is a folder": (["config", "show", "--out", "adir"], ["--out", "adir", "folder"]),
    "--out below a file": (["config", "show", "--out", "afile/x.yaml"], ["--out", "afile", "is a file"]),
    "--out not writable": (["config", "show", "--out", "/proc/aircolor/x.yaml"], ["--out", "not writable"]),
    "keys takes no argument": (["config", "keys", "extra"], ["unrecognized arguments: extra"]),
    "config needs a command": (["config"], ["COMMAND", "required"]),
}


@pytest.mark.parametrize("argv,words", CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_config_bad_input(capsys, work, argv, words):
    run_bad(capsys, argv, watch=[work["root"]], words=words)


GLOBAL_CASES = {
    "unknown command": (["nope"], ["invalid choice: 'nope'", "colorize"]),
    "zero timeout": (["--tracking-timeout", "0", "config", "keys"], ["--tracking-timeout", "positive"]),
    "text timeout": (["--tracking-timeout", "abc", "config", "keys"], ["'abc'", "seconds"]),
    "infinite timeout": (["--tracking-timeout", "inf", "config", "keys"], ["'inf'", "positive"]),
    "no command": ([], ["COMMAND", "required"]),
    "unknown model": (["models", "summary", "nope"], ["unknown model 'nope'", "pix2pix"]),
    "models override type": (["models", "summary", "pix2pix", "model.ngf=abc"], ["model.ngf", "integer"]),
    "models override unknown": (["models", "summary", "cut", "model.nope=1"], ["unknown key 'model.nope'"]),
}


@pytest.mark.parametrize("argv,words", GLOBAL_CASES.values(), ids=GLOBAL_CASES.keys())
def test_global_and_models_bad_input(capsys, work, argv, words):
    run_bad(capsys, argv, watch=[work["root"]], words=words)


def _train(work, prepared_sample, *extra: str) -> list[str]:
    return ["train", work["config"], f"data.root={prepared_sample}", "data.size=32", "data.max_images=4",
            "train.n_epochs=1", "train.n_epochs_decay=0", "train.batch_size=2", "tracking.enabled=false", "--quiet",
            *extra]


TRAIN_CASES = {
    "empty data folder": (["data.root=empty-data"], ["empty-data", "aircolor data prepare"]),
    "data root is a file": (["data.root=afile"], ["afile", "aircolor data prepare"]),
    "output is a file": (["train.output_dir=afile"], ["train.output_dir", "afile", "is a file"]),
    "output below a file": (["train.output_dir=afile/runs"], ["train.output_dir", "is a file"]),
    "output not writable": (["train.output_dir=/proc/aircolor-runs"], ["train.output_dir", "not writable"]),
    "batch larger than the data": (["train.batch_size=8", "train.output_dir=runs"],
                                   ["4 images", "train.batch_size (8)", "lower train.batch_size"]),
    "zero workers": (["--workers", "0", "train.output_dir=runs"], ["train.workers", ">= 1"]),
    "bad ray address": (["--address", "bogus", "train.output_dir=runs"], ["--address", "'bogus'", "ray://"]),
    "port out of range": (["--address", "ray://head:99999", "train.output_dir=runs"], ["not a Ray address"]),
    "unknown device": (["train.device=tpu", "train.output_dir=runs"], ["train.device", "'tpu'", "cuda"]),
    "unknown tracking scheme": (["tracking.enabled=true", "--tracking-uri", "ftp://x", "train.output_dir=runs"],
                                ["ftp://x", "scheme"]),
    "missing weights file": (["metrics.fid=true", "metrics.inception_weights=nope.pth", "train.output_dir=runs"],
                             ["nope.pth"]),
}


@pytest.mark.parametrize("extra,words", TRAIN_CASES.values(), ids=TRAIN_CASES.keys())
def test_train_bad_input(capsys, work, prepared_sample, extra, words):
    before = sorted(p.name for p in prepared_sample.rglob("*"))
    run_bad(capsys, _train(work, prepared_sample, *extra), watch=[work["root"]], words=words)
    assert sorted(p.name for p in prepared_sample.rglob("*")) == before


def test_train_missing_config(capsys, work):
    run_bad(capsys, ["train", "nope.yaml"], watch=[work["root"]], words=["nope.yaml", "does not exist"])


def test_train_duplicate_key_in_config(capsys, work):
    run_bad(capsys, ["train", "dup.yaml"], watch=[work["root"]], words=["line 3", "given twice"])
