"""Bad-input corpus: ``aircolor data prepare`` and ``aircolor data fetch-tiles``.

``--force`` replaces only a dataset that ``data prepare`` wrote itself (its summary.json and manifest.parquet,
nothing else at the top): a user's folder or file is refused, with or without it, and left exactly as it was.
No case reaches the network: fetch-tiles cases fail on their arguments, before any request.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from badinput import run_bad

URL = "http://127.0.0.1:9/{z}/{x}/{y}.png"


@pytest.fixture
def work(tmp_path, monkeypatch, sample_data):
    root = tmp_path / "work"
    (root / "src").mkdir(parents=True)
    for tile in sorted((sample_data / "color" / "massachusetts_1m").glob("*.jpg"))[:6]:
        shutil.copy(tile, root / "src")
    (root / "docs").mkdir()
    (root / "docs" / "thesis.txt").write_text("years of work\n")
    (root / "afile").write_text("a user's file\n")
    (root / "empty").mkdir()
    (root / "text-only").mkdir()
    (root / "text-only" / "a.txt").write_text("no images\n")
    (root / "corrupt").mkdir()
    (root / "corrupt" / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg" * 20)
    monkeypatch.chdir(root)
    return root


def _prepare(*args: str) -> list[str]:
    return ["data", "prepare", "src", *args, "--size", "16", "--workers", "1"]


def test_force_never_replaces_a_users_folder(capsys, work):
    line = run_bad(capsys, _prepare("docs", "--force"), watch=[work],
                   words=["docs", "did not write", "'thesis.txt'", "not even with --force"])
    assert "is a dataset" not in line
    assert (work / "docs" / "thesis.txt").read_text() == "years of work\n"


def test_without_force_a_users_folder_is_not_called_a_dataset(capsys, work):
    line = run_bad(capsys, _prepare("docs"), watch=[work], words=["not a prepared dataset", "new or empty folder"])
    assert "pass --force" not in line


def test_force_never_replaces_a_file(capsys, work):
    run_bad(capsys, _prepare("afile", "--force"), watch=[work], words=["afile", "is a file", "not even with --force"])
    assert not list(work.glob(".afile*")), "a hidden copy was left behind"


def test_force_never_replaces_a_dataset_holding_a_users_file(capsys, work):
    from aircolor.cli import main

    assert main(_prepare("out")) == 0
    capsys.readouterr()
    (work / "out" / "my-notes.md").write_text("keep me\n")
    run_bad(capsys, _prepare("out", "--force", "--seed", "3"), watch=[work], words=["'my-notes.md'", "did not write"])


def test_force_never_replaces_a_users_file_deep_in_a_dataset(capsys, work):
    from aircolor.cli import main

    assert main(_prepare("out")) == 0
    capsys.readouterr()
    (work / "out" / "aligned" / "train" / "my-photo.png").write_bytes(b"not aircolor's")
    line = run_bad(capsys, _prepare("out", "--force", "--seed", "3"), watch=[work],
                   words=["'aligned/train/my-photo.png'", "1 entry that aircolor did not write", "move them out"])
    assert "entries" not in line


def test_force_never_follows_a_link_in_a_dataset(capsys, work):
    from aircolor.cli import main

    assert main(_prepare("out")) == 0
    capsys.readouterr()
    (work / "out" / "historical").mkdir(exist_ok=True)
    (work / "out" / "historical" / "docs").symlink_to(work / "docs")
    run_bad(capsys, _prepare("out", "--force", "--seed", "3"), watch=[work], words=["'historical/docs'"])


def test_force_never_replaces_a_link(capsys, work):
    (work / "link").symlink_to(work / "docs")
    run_bad(capsys, _prepare("link", "--force"), watch=[work], words=["link", "symbolic link", "not even with --force"])


def test_a_folder_with_a_fake_summary_is_not_a_dataset(capsys, work):
    (work / "docs" / "summary.json").write_text('{"fingerprint": "x"}')
    (work / "docs" / "manifest.parquet").write_text("not parquet")
    run_bad(capsys, _prepare("docs", "--force"), watch=[work], words=["not a prepared dataset", "3 entries"])


def test_a_fifo_named_like_an_image_is_skipped_not_read(capsys, work):
    os.mkfifo(work / "empty" / "tile.jpg")  # opening it for reading would block forever
    run_bad(capsys, ["data", "prepare", "empty", "out"], watch=[work], words=["no image files"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod 555 folder")
def test_read_only_parent(capsys, work):
    (work / "ro").mkdir()
    (work / "ro").chmod(0o555)
    try:
        run_bad(capsys, _prepare("ro/out"), watch=[work], words=["ro", "not writable"])
    finally:
        (work / "ro").chmod(0o755)


def test_force_replaces_a_dataset_aircolor_prepared(capsys, work):
    from aircolor.cli import main

    assert main(_prepare("out")) == 0
    first = (work / "out" / "summary.json").read_text()
    assert main(_prepare("out", "--seed", "3")) == 2  # other options: refused without --force ...
    assert "is a dataset that aircolor prepared from other inputs" in capsys.readouterr().err
    assert main(_prepare("out", "--seed", "3", "--force")) == 0  # ... and replaced with it
    assert (work / "out" / "summary.json").read_text() != first
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []


def test_an_empty_folder_is_used(capsys, work):
    from aircolor.cli import main

    assert main(_prepare("empty")) == 0
    assert (work / "empty" / "summary.json").is_file()


CASES = {
    "into /proc": (_prepare("/proc/aircolor-out"), ["/proc", "not writable"]),
    "into /sys": (_prepare("/sys/aircolor-out"), ["/sys", "not writable"]),
    "parent is a file": (_prepare("afile/out"), ["afile", "is a file"]),
    "OUT_DIR inside SRC": (_prepare("src/out"), ["overlaps the source folder"]),
    "split not numbers": (_prepare("out", "--split", "a,b,c"), ["--split", "'a,b,c'"]),
    "split two parts": (_prepare("out", "--split", "0.5,0.5"), ["--split", "train,val,test"]),
    "split above one": (_prepare("out", "--split", "0.9,0.2,0.1"), ["--split", "sum to 1"]),
    "size zero": (["data", "prepare", "src", "out", "--size", "0"], ["--size 0", "between 16 and 4096"]),
    "size negative": (["data", "prepare", "src", "out", "--size", "-5"], ["--size -5"]),
    "size text": (["data", "prepare", "src", "out", "--size", "big"], ["--size", "invalid int"]),
    "group-by regex": (_prepare("out", "--group-by", "("), ["--group-by", "regular expression"]),
    "holdout regex": (_prepare("out", "--holdout", "["), ["--holdout", "regular expression"]),
    "workers zero": (["data", "prepare", "src", "out", "--workers", "0"], ["--workers", "'0'", ">= 1"]),
    "SRC missing": (["data", "prepare", "nope", "out"], ["nope", "does not exist"]),
    "SRC a file": (["data", "prepare", "afile", "out"], ["afile", "not a folder"]),
    "SRC empty": (["data", "prepare", "empty", "out"], ["no image files", "empty"]),
    "SRC without images": (["data", "prepare", "text-only", "out"], ["no image files"]),
    "SRC only corrupt": (["data", "prepare", "corrupt", "out", "--size", "16"], ["no usable color tiles", "a.jpg"]),
    "only corrupt, OUT_DIR's parents new": (["data", "prepare", "corrupt", "new/deep/out", "--size", "16"],
                                            ["no usable color tiles"]),
    "historical missing": (_prepare("out", "--historical", "nope"), ["--historical", "nope", "does not exist"]),
    "prepare without OUT_DIR": (["data", "prepare", "src"], ["OUT_DIR", "required"]),
    "bbox three numbers": (["data", "fetch-tiles", "--url", URL, "--bbox", "1,2,3", "--zoom", "15", "--out", "t"],
                           ["--bbox", "4 comma-separated"]),
    "bbox west of east": (["data", "fetch-tiles", "--url", URL, "--bbox", "3,2,1,0", "--zoom", "15", "--out", "t"],
                          ["--bbox", "west"]),
    "bbox latitude": (["data", "fetch-tiles", "--url", URL, "--bbox", "0,100,1,101", "--zoom", "15", "--out", "t"],
                      ["--bbox", "outside -90..90"]),
    "zoom too deep": (["data", "fetch-tiles", "--url", URL, "--bbox", "1,2,1.01,2.01", "--zoom", "40", "--out",
                       "t"], ["--zoom", "40"]),
    "template without placeholders": (["data", "fetch-tiles", "--url", "http://127.0.0.1:9/t.png", "--bbox",
                                       "1,2,1.01,2.01", "--zoom", "15", "--out", "t"], ["--url", "placeholders"]),
    "not http": (["data", "fetch-tiles", "--url", "ftp://127.0.0.1:9/{z}/{x}/{y}.png", "--bbox", "1,2,1.01,2.01",
                  "--zoom", "15", "--out", "t"], ["--url", "http(s)"]),
    "fetch --out a file": (["data", "fetch-tiles", "--url", URL, "--bbox", "1,2,1.01,2.01", "--zoom", "15",
                            "--out", "afile"], ["--out", "afile"]),
    "split negative": (_prepare("out", "--split=-0.1,0.6,0.5"), ["--split", ">= 0"]),
    "split no train": (_prepare("out", "--split", "0,0.5,0.5"), ["--split", "train fraction"]),
    "split nan": (_prepare("out", "--split", "nan,0.5,0.5"), ["--split", "nan"]),
    "size too large": (["data", "prepare", "src", "out", "--size", "99999"], ["--size 99999", "4096"]),
    "seed text": (_prepare("out", "--seed", "x"), ["--seed", "'x'"]),
    "holdout takes all": (_prepare("out", "--holdout", "."), ["--holdout", "every tile"]),
    "historical a file": (_prepare("out", "--historical", "afile"), ["--historical", "afile", "not a folder"]),
    "zoom text": (["data", "fetch-tiles", "--url", URL, "--bbox", "1,2,1.01,2.01", "--zoom", "a", "--out", "t"],
                  ["--zoom", "'a'"]),
    "zoom backwards": (["data", "fetch-tiles", "--url", URL, "--bbox", "1,2,1.01,2.01", "--zoom", "16-15", "--out",
                        "t"], ["--zoom", "backwards"]),
    "bbox not a number": (["data", "fetch-tiles", "--url", URL, "--bbox", "1,2,nan,3", "--zoom", "15", "--out", "t"],
                          ["--bbox", "nan"]),
    "negative bbox is a value": (["data", "fetch-tiles", "--url", URL, "--bbox", "-74.1,40.6,-74.2,40.7", "--zoom",
                                  "15", "--out", "t"], ["--bbox", "west"]),
    "port out of range": (["data", "fetch-tiles", "--url", "http://127.0.0.1:99999/{z}/{x}/{y}.png", "--bbox",
                           "1,2,1.01,2.01", "--zoom", "15", "--out", "t"], ["--url", "port", "99999"]),
    "port not a number": (["data", "fetch-tiles", "--url", "http://127.0.0.1:x/{z}/{x}/{y}.png", "--bbox",
                           "1,2,1.01,2.01", "--zoom", "15", "--out", "t"], ["--url", "port"]),
    "broken IPv6 host": (["data", "fetch-tiles", "--url", "http://[::1/{z}/{x}/{y}.png", "--bbox", "1,2,1.01,2.01",
                          "--zoom", "15", "--out", "t"], ["--url", "host"]),
    "user agent two lines": (["data", "fetch-tiles", "--url", URL, "--bbox", "1,2,1.01,2.01", "--zoom", "15",
                              "--out", "t", "--user-agent", "a\nb"], ["--user-agent", "one line"]),
    "unknown placeholder": (["data", "fetch-tiles", "--url", "http://127.0.0.1:9/{z}/{x}/{q}.png", "--bbox",
                             "1,2,1.01,2.01", "--zoom", "15", "--out", "t"], ["--url", "{q}"]),
    "concurrency zero": (["data", "fetch-tiles", "--url", URL, "--bbox", "1,2,1.01,2.01", "--zoom", "15", "--out",
                          "t", "--concurrency", "0"], ["--concurrency", "0"]),
    "too many tiles": (["data", "fetch-tiles", "--url", URL, "--bbox", "-10,-10,10,10", "--zoom", "18", "--out",
                        "t"], ["--max-tiles", "shrink the bbox"]),
    "fetch --out under /proc": (["data", "fetch-tiles", "--url", URL, "--bbox", "1,2,1.01,2.01", "--zoom", "15",
                                 "--out", "/proc/aircolor-tiles"], ["--out", "/proc/aircolor-tiles"]),
    "data needs a command": (["data"], ["COMMAND", "required"]),
    "--url and --wmts": (["data", "fetch-tiles", "--url", URL, "--wmts", "http://127.0.0.1:9/wmts", "--bbox",
                          "1,2,1.01,2.01", "--zoom", "15", "--out", "t"], ["--wmts", "not allowed with"]),
    "--wmts not http": (["data", "fetch-tiles", "--wmts", "file:///etc/passwd", "--layer", "a", "--bbox",
                         "1,2,1.01,2.01", "--zoom", "15", "--out", "t"], ["--wmts", "http(s)"]),
    "--wmts without --layer": (["data", "fetch-tiles", "--wmts", "http://127.0.0.1:9/wmts", "--bbox",
                                "1,2,1.01,2.01", "--zoom", "15", "--out", "t"], ["--wmts needs --layer"]),
    "--layer with --url": (["data", "fetch-tiles", "--url", URL, "--layer", "ortho", "--bbox", "1,2,1.01,2.01",
                            "--zoom", "15", "--out", "t"], ["--layer goes with --wmts"]),
    "--wmts unreachable": (["data", "fetch-tiles", "--wmts", "http://127.0.0.1:9/wmts", "--layer", "a", "--bbox",
                            "1,2,1.01,2.01", "--zoom", "15", "--out", "t", "--retries", "0"],
                           ["--wmts", "could not read the capabilities", "connection"]),
    "--format bmp": (["data", "fetch-tiles", "--url", URL, "--bbox", "1,2,1.01,2.01", "--zoom", "15", "--out", "t",
                      "--format", "bmp"], ["--format", "invalid choice"]),
}


@pytest.mark.parametrize("argv,words", CASES.values(), ids=CASES.keys())
def test_data_bad_input(capsys, work, argv, words):
    run_bad(capsys, argv, watch=[work], words=words)
    assert not (Path(work) / "out").exists() and not (Path(work) / "t").exists()
