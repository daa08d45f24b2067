"""The command line: help texts, one-line errors with exit code 2, --debug, and the installed script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aircolor.cli import build_parser, main



def _all_commands(parser=None, path=()):
    """Every command path of the CLI, groups and leaves: ("data",), ("data", "prepare"), ..."""
    import argparse

    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from _all_commands(child, (*path, name))


COMMANDS = {" ".join(path): child for path, child in _all_commands()}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse exits for --help and usage errors
        code = exc.code if isinstance(exc.code, int) else 0
    out, err = capsys.readouterr()
    return code, out, err


def test_top_level_help_lists_subcommands(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for name in ("data", "config"):
        assert name in out
    assert "example:" in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_a_description_and_an_example(capsys, command):
    """Groups and leaves alike: what it does, and a runnable example of it, in its --help."""
    parser = COMMANDS[command]
    assert parser.description and len(parser.description) > 30, f"aircolor {command}: no description"
    code, out, _ = run_cli(capsys, *command.split(), "--help")
    assert code == 0
    assert "example:" in out and f"aircolor {command}" in out.split("example:", 1)[1], f"aircolor {command}"


def test_the_walk_sees_every_command():
    assert {"data", "data prepare", "data fetch-tiles", "config show", "sweep run", "sweep promote", "report",
            "colorize", "tracking replay", "metrics"} <= set(COMMANDS)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["data", "prepare"], ["required", "SRC_COLOR_DIR"]),
        (["data", "prepare", "a", "b", "--split", "0.5,0.5"], ["--split", "train,val,test"]),
        (["data", "prepare", "a", "b", "--size", "big"], ["--size", "invalid int"]),
        (["nonsense"], ["invalid choice", "nonsense"]),
        (["data"], ["required"]),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, words):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("aircolor") and "error:" in lines[0]
    for word in words:
        assert word in lines[0]


def test_config_show_resolves_and_dumps(capsys, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model:\n  family: cyclegan\n  ngf: 16\n")
    code, out, err = run_cli(capsys, "config", "show", str(cfg), "model.ngf=8", "data.size=32")
    assert code == 0, err
    data = yaml.safe_load(out)
    assert data["model"]["ngf"] == 8 and data["model"]["norm"] == "instance" and data["data"]["size"] == 32
    dumped = tmp_path / "resolved.yaml"
    code, _, _ = run_cli(capsys, "config", "show", str(cfg), "model.ngf=8", "--out", str(dumped))
    assert code == 0 and yaml.safe_load(dumped.read_text())["model"]["ngf"] == 8
    # overrides alone, without a file
    code, out, _ = run_cli(capsys, "config", "show", "model.ndf=4")
    assert code == 0 and yaml.safe_load(out)["model"]["ndf"] == 4


@pytest.mark.parametrize(
    "argv, words",
    [
        (["config", "show", "model.ngf=abc"], ["model.ngf", "integer"]),
        (["config", "show", "missing.yaml"], ["missing.yaml", "does not exist"]),
        (["config", "show", "model.ngff=1"], ["did you mean 'model.ngf'"]),
        (["data", "prepare", "/nonexistent/tiles", "out"], ["/nonexistent/tiles", "does not exist"]),
    ],
)
def test_bad_input_gives_one_line_exit_2(capsys, argv, words):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("aircolor: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err


def test_debug_shows_the_traceback(capsys):
    from aircolor.errors import ConfigError

    with pytest.raises(ConfigError):
        main(["--debug", "config", "show", "model.ngf=abc"])


def test_config_keys_lists_everything(capsys):
    code, out, _ = run_cli(capsys, "config", "keys")
    assert code == 0
    assert "model.ngf" in out and "train.lr_D" in out and "metrics.inception_weights" in out


def test_installed_console_script_and_module_entry(tmp_path):
    script = shutil.which("aircolor", path=str(Path(sys.executable).parent))
    assert script, "the 'aircolor' console script is not installed next to the interpreter"
    for cmd in ([script], [sys.executable, "-m", "aircolor"]):
        ok = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=120)
        assert ok.returncode == 0 and ok.stdout.startswith("aircolor ")
        bad = subprocess.run([*cmd, "config", "show", "train.lr_G=-3"], capture_output=True, text=True,
                             timeout=120)
        assert bad.returncode == 2
        assert bad.stderr.strip() == ("aircolor: error: override 'train.lr_G=-3': train.lr_G must be > 0, "
                                      "got -3.0; change it and retry")


def test_parser_builds_without_heavy_imports():
    code = ("import sys, aircolor.cli as c; c.build_parser(); "
            "bad = [m for m in ('torch', 'ray', 'mlflow') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert build_parser().prog == "aircolor"
