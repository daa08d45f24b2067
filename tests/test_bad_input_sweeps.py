"""Bad-input corpus: ``aircolor sweep``. Every case fails before Ray starts and writes nothing to --storage."""

from __future__ import annotations

import pytest
from badinput import run_bad

from sweeps.space import load_space


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_ADDRESS", "")
    huge = "family: pix2pix\nfactors:\n" + "".join(
        f"  {key}: {{choice: [{', '.join(str(v) for v in values)}]}}\n" for key, values in (
            ("model.ngf", range(8, 18)), ("model.ndf", range(8, 18)), ("train.lr_G", [f"{i}.0e-4" for i in range(1, 11)]),
            ("train.lr_D", [f"{i}.0e-4" for i in range(1, 11)]), ("model.lambda_L1", range(1, 11)),
            ("train.batch_size", range(1, 11)), ("train.n_epochs", range(1, 11)), ("train.n_epochs_decay", range(1, 11)),
            ("train.beta1", [f"0.{i}" for i in range(10)]), ("model.lambda_GAN", [f"{i}.0" for i in range(1, 11)])))
    (tmp_path / "huge.yaml").write_text(huge)
    (tmp_path / "dup.yaml").write_text("family: pix2pix\nfactors:\n  model.ngf: {choice: [8, 16]}\n"
                                       "  model.ngf: {choice: [32]}\n")
    (tmp_path / "small.yaml").write_text("family: pix2pix\nfactors:\n  model.netG: {choice: [unet_32, resnet_6blocks]}\n"
                                         "seeds: 2\n")
    (tmp_path / "afile").write_text("x\n")
    return tmp_path


def test_a_huge_grid_is_counted_not_built(work):
    space = load_space(work / "huge.yaml")
    assert space.grid_size() == 10 ** 10 and space.qualified_names


def test_grid_size_matches_the_grid(work):
    space = load_space(work / "small.yaml")
    assert space.grid_size() == len(space.grid()) == 4


CASES = {
    "huge grid": (["sweep", "run", "huge.yaml"], ["10,000,000,000 trials", "--max-trials"]),
    "more than --max-trials": (["sweep", "run", "small.yaml", "--max-trials", "3"], ["grid of 4 trials", "3"]),
    "name escapes storage": (["sweep", "run", "small.yaml", "--name", "../escaped"], ["--name", "one folder"]),
    "name is dot-dot": (["sweep", "run", "small.yaml", "--name", ".."], ["--name"]),
    "duplicate key": (["sweep", "run", "dup.yaml"], ["dup.yaml", "given twice"]),
    "missing space": (["sweep", "run", "nope.yaml"], ["nope.yaml", "no such search-space file"]),
    "bad address": (["sweep", "run", "small.yaml", "--address", "bogus"], ["--address", "'bogus'"]),
    "bad metric": (["sweep", "run", "small.yaml", "--metric", "colorfulness"], ["--metric", "invalid choice"]),
    "zero samples": (["sweep", "run", "small.yaml", "--num-samples", "0"], ["--num-samples 0"]),
    "storage is a file": (["sweep", "run", "small.yaml", "--storage", "afile"], ["--storage", "is a file"]),
    "promote without a store": (["sweep", "promote", "nothing-here"], ["no tracking store", "mlruns.db"]),
    "promote silent server": (["sweep", "promote", "x", "--tracking-uri", "http://127.0.0.1:9"], ["127.0.0.1:9"]),
    "sweep needs a command": (["sweep"], ["COMMAND", "required"]),
}


@pytest.mark.parametrize("argv,words", CASES.values(), ids=CASES.keys())
def test_sweep_bad_input(capsys, work, argv, words):
    storage = ["--storage", str(work / "sweeps")] if argv[1:2] == ["run"] and "--storage" not in argv else []
    run_bad(capsys, [*argv, *storage], watch=[work], words=words)
    assert not (work / "sweeps").exists() and not (work / "mlruns.db").exists() and not (work.parent / "escaped").exists()
