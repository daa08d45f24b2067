"""Tests for ``aircolor data prepare`` on the real sample imagery (and bad files made from it)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import aircolor.data.prepare as P
from aircolor.cli import main
from aircolor.errors import UsageError

SIZE = 32  # the --size of the session fixture ``prepared_sample``
SPLITS = ("train", "val", "test")
COLUMNS = ["path", "split", "role", "layout", "width", "height", "bytes", "sha256", "source", "source_sha256",
           "group", "status", "reason", "tile", "tile_matrix", "crs", "minx", "miny", "maxx", "maxy"]
GROUP_RE = r"(\d+)_15_"  # Massachusetts tiles: <image id>_15_y<row>_x<col>.jpg


# --------------------------------------------------------------------------------------------- helpers
def read_manifest(out: Path) -> list[dict[str, Any]]:
    return pq.read_table(out / "manifest.parquet").to_pylist()


def read_summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def snapshot(root: Path) -> dict[str, tuple[bool, int, str]]:
    """Every path under ``root`` (and root itself): (is a folder, mtime in ns, sha256 of a file's bytes)."""
    out = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.stat()
        out[path.relative_to(root).as_posix()] = (path.is_dir(), st.st_mtime_ns,
                                                  "" if path.is_dir() else sha256(path))
    return out


def age(root: Path) -> None:
    """Set every mtime under ``root`` to the year 2001, so that any rewrite shows up."""
    for path in [root, *root.rglob("*")]:
        os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    """``aircolor data prepare ARGV``: (exit code, stdout, stderr). argparse's own errors exit via SystemExit."""
    try:
        rc = main(["data", "prepare", *map(str, argv)])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_usage_error(rc: int, err: str, fragment: str, prefix: str = r"aircolor: error: ") -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    assert re.match(prefix, lines[0]), lines[0]
    assert fragment in lines[0], lines[0]


def splits_by_source(out: Path) -> dict[str, str]:
    return {r["source"]: r["split"] for r in read_manifest(out) if r["role"] == "B" and r["status"] == "ok"}


def image_id(name: str) -> str | None:
    m = re.search(GROUP_RE, name)
    return m.group(1) if m else None


def copy_tiles(src: Path, dst: Path, n: int) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(p, dst / p.name)) for p in sorted(src.glob("*.jpg"))[:n]]


def expected_tile(src: Path, size: int = SIZE) -> Image.Image:
    """What prepare should make of a square real tile: RGB, Lanczos-resized to ``size``."""
    with Image.open(src) as im:
        return im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)


@pytest.fixture
def kampala(sample_data: Path) -> Path:
    return sample_data / "color" / "oam_kampala_fair"


@pytest.fixture
def small_src(tmp_path: Path, kampala: Path) -> Path:
    """A writable SRC folder with 12 real tiles."""
    copy_tiles(kampala, tmp_path / "src", 12)
    return tmp_path / "src"


# --------------------------------------------------------------------------------------------- the real sample
def test_sample_counts_and_layout(prepared_sample: Path, sample_data: Path) -> None:
    color_root = sample_data / "color"
    sources = sorted(p.relative_to(color_root) for p in color_root.rglob("*.jpg"))
    assert len(sources) == 141
    summary = read_summary(prepared_sample)
    assert sum(summary["counts"].values()) == 141
    assert summary["historical"] == 10
    assert summary["rejected"] == []
    for split, fraction in zip(SPLITS, (0.7, 0.15, 0.15)):
        assert abs(summary["counts"][split] - fraction * 141) <= 1

    assert sorted(os.listdir(prepared_sample)) == ["aligned", "historical", "manifest.parquet", "summary.json",
                                                   "unaligned"]
    assert sorted(os.listdir(prepared_sample / "aligned")) == sorted(SPLITS)
    assert sorted(os.listdir(prepared_sample / "unaligned")) == sorted(f"{s}{r}" for s in SPLITS for r in "AB")
    assert not [p for p in prepared_sample.rglob(".*")], "no staging or pool leftovers"

    names = []
    for split in SPLITS:
        ab = sorted(os.listdir(prepared_sample / "aligned" / split))
        assert ab == sorted(os.listdir(prepared_sample / "unaligned" / f"{split}A"))
        assert ab == sorted(os.listdir(prepared_sample / "unaligned" / f"{split}B"))
        assert len(ab) == summary["counts"][split]
        names += ab
    assert sorted(names) == sorted(f"{rel.parent.name}__{rel.stem}.png" for rel in sources)


def test_sample_aligned_pairs_are_gray_left_and_color_right(prepared_sample: Path) -> None:
    n = 0
    for split in SPLITS:
        for path in sorted((prepared_sample / "aligned" / split).iterdir()):
            a_path = prepared_sample / "unaligned" / f"{split}A" / path.name
            b_path = prepared_sample / "unaligned" / f"{split}B" / path.name
            with Image.open(path) as ab, Image.open(a_path) as a, Image.open(b_path) as b:
                assert (ab.mode, ab.size) == ("RGB", (2 * SIZE, SIZE))
                assert (a.mode, a.size) == ("L", (SIZE, SIZE))
                assert (b.mode, b.size) == ("RGB", (SIZE, SIZE))
                pair = np.asarray(ab)
                left, right = pair[:, :SIZE], pair[:, SIZE:]
                assert (left[..., 0] == left[..., 1]).all() and (left[..., 1] == left[..., 2]).all()
                np.testing.assert_array_equal(left[..., 0], np.asarray(a))
                np.testing.assert_array_equal(right, np.asarray(b))
                assert np.ptp(np.asarray(b).astype(int)[..., 0] - np.asarray(b).astype(int)[..., 2]) > 0, \
                    "B is really in color"
            n += 1
    assert n == 141


def test_sample_tiles_are_resized_and_gray_copy_is_pillow_luma(prepared_sample: Path, sample_data: Path) -> None:
    rows = [r for r in read_manifest(prepared_sample) if r["role"] in ("A", "B")]
    assert len(rows) == 2 * 141
    for row in rows:
        resized = expected_tile(sample_data / "color" / row["source"])
        if row["role"] == "B":
            np.testing.assert_array_equal(pixels(prepared_sample / row["path"]), np.asarray(resized))
        else:
            np.testing.assert_array_equal(pixels(prepared_sample / row["path"]), np.asarray(resized.convert("L")))


def test_sample_historical_at_original_size_in_mode_l(prepared_sample: Path, sample_data: Path) -> None:
    hist_root = sample_data / "historical"
    sources = sorted(p for p in hist_root.rglob("*") if p.is_file())
    assert len(sources) == 10
    outputs = sorted(os.listdir(prepared_sample / "historical"))
    assert outputs == sorted(f"{p.parent.name}__{p.stem}.png" for p in sources)
    sizes = set()
    for src in sources:
        out = prepared_sample / "historical" / f"{src.parent.name}__{src.stem}.png"
        with Image.open(src) as orig, Image.open(out) as im:
            assert im.mode == "L"
            assert im.size == orig.size
            sizes.add(im.size)
            expected = orig.getchannel("L") if orig.mode == "LA" else orig.convert("L")
            np.testing.assert_array_equal(np.asarray(im), np.asarray(expected))
    assert sizes == {(1024, 1024), (256, 256)}


def test_manifest_contents(prepared_sample: Path, sample_data: Path) -> None:
    schema = pq.read_schema(prepared_sample / "manifest.parquet")
    assert schema.names == COLUMNS
    rows = read_manifest(prepared_sample)
    assert len(rows) == 3 * 141 + 10
    assert all(r["status"] == "ok" for r in rows)

    on_disk = {p.relative_to(prepared_sample).as_posix() for d in ("aligned", "unaligned", "historical")
               for p in (prepared_sample / d).rglob("*") if p.is_file()}
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)), "one row per output image"
    assert set(paths) == on_disk

    roles: dict[str, list[str]] = defaultdict(list)
    source_hashes: dict[Path, str] = {}
    for row in rows:
        path = prepared_sample / row["path"]
        data = path.read_bytes()
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
        assert row["bytes"] == len(data) == path.stat().st_size
        with Image.open(path) as im:
            assert (row["width"], row["height"]) == im.size
        if row["role"] == "historical":
            src = sample_data / "historical" / row["source"]
            assert row["layout"] == "historical" and row["path"].startswith("historical/")
        else:
            src = sample_data / "color" / row["source"]
            roles[row["source"]].append(row["role"])
            folder = {"AB": f"aligned/{row['split']}", "A": f"unaligned/{row['split']}A",
                      "B": f"unaligned/{row['split']}B"}[row["role"]]
            assert row["path"] == f"{folder}/{Path(row['source']).parent.name}__{Path(row['source']).stem}.png"
            assert row["layout"] == ("aligned" if row["role"] == "AB" else "unaligned")
            assert row["group"] == row["source"], "without --group-by every tile is its own group"
        assert src.is_file(), row["source"]
        if src not in source_hashes:
            source_hashes[src] = hashlib.sha256(src.read_bytes()).hexdigest()
        assert row["source_sha256"] == source_hashes[src]
    assert len(roles) == 141
    assert all(sorted(v) == ["A", "AB", "B"] for v in roles.values())
    by_source = defaultdict(set)
    for row in rows:
        by_source[row["source"]].add(row["split"])
    assert all(len(v) == 1 for v in by_source.values())


def test_process_pool_gives_identical_output_and_split(prepared_sample: Path, sample_data: Path,
                                                        tmp_path: Path) -> None:
    """Same inputs and seed, with two worker processes: byte-identical files, identical split."""
    out = tmp_path / "out"
    P.prepare(sample_data / "color", out, historical_dir=sample_data / "historical",
              options=P.PrepareOptions(size=SIZE), workers=2)
    def key(r: dict[str, Any]) -> tuple[str, str]:
        return r["path"], r["source"]

    assert sorted(read_manifest(out), key=key) == sorted(read_manifest(prepared_sample), key=key)
    assert read_summary(out)["fingerprint"] == read_summary(prepared_sample)["fingerprint"]


def test_different_seed_gives_different_split(prepared_sample: Path, sample_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "seed1"
    P.prepare(sample_data / "color", out, options=P.PrepareOptions(size=SIZE, seed=1))
    seed0, seed1 = splits_by_source(prepared_sample), splits_by_source(out)
    assert seed0.keys() == seed1.keys()
    assert seed0 != seed1
    assert read_summary(out)["counts"] == read_summary(prepared_sample)["counts"]


# --------------------------------------------------------------------------------------------- --holdout
def test_holdout_sends_a_whole_region_to_test(sample_data: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Leave-one-region-out: every Kampala tile is test-only; the other region is still split by --split."""
    out = tmp_path / "held"
    rc, _, _ = run_cli(capsys, sample_data / "color", out, "--size", SIZE, "--workers", 1, "--group-by", GROUP_RE,
                       "--holdout", "^oam_kampala_fair/")
    assert rc == 0
    rows = [r for r in read_manifest(out) if r["status"] == "ok"]
    kampala = {r["split"] for r in rows if r["source"].startswith("oam_kampala_fair/")}
    mass = {r["split"] for r in rows if r["source"].startswith("massachusetts_1m/")}
    assert kampala == {"test"} and mass == {"train", "val", "test"}
    rc, _, err = run_cli(capsys, sample_data / "color", tmp_path / "all", "--size", SIZE, "--holdout", ".")
    assert rc != 0 and "--holdout" in err and "nothing is left to train on" in err and "Traceback" not in err


# --------------------------------------------------------------------------------------------- --group-by
def test_group_by_keeps_each_group_in_one_split(prepared_sample: Path, sample_data: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "grouped"
    rc, stdout, _ = run_cli(capsys, sample_data / "color", out, "--size", SIZE, "--workers", 1,
                            "--group-by", GROUP_RE)
    assert rc == 0
    rows = [r for r in read_manifest(out) if r["status"] == "ok"]
    mass = [r for r in rows if r["source"].startswith("massachusetts_1m/")]
    assert len(mass) == 3 * 101
    grouped: dict[str, set[str]] = defaultdict(set)
    for r in mass:
        assert r["group"] == image_id(r["source"])
        grouped[r["group"]].add(r["split"])
    assert len(grouped) == 10
    assert all(len(splits) == 1 for splits in grouped.values()), grouped
    assert len(set().union(*grouped.values())) >= 2, "the groups are still spread over the splits"

    # the same seen from the files: an image id's tiles never appear in two splits' folders
    for folders in (["aligned/{}"], ["unaligned/{}A", "unaligned/{}B"]):
        ids_per_split = {}
        for split in SPLITS:
            ids_per_split[split] = {image_id(p.name) for f in folders for p in (out / f.format(split)).iterdir()
                                    if p.name.startswith("massachusetts_1m__")}
        assert set().union(*ids_per_split.values()) == set(grouped)
        for s1, s2 in (("train", "val"), ("train", "test"), ("val", "test")):
            assert not ids_per_split[s1] & ids_per_split[s2]

    # the 40 Kampala tiles do not match: each is its own group, and the run says so
    summary = read_summary(out)
    assert summary["ungrouped"] == 40
    assert "warning: 40 tiles did not match --group-by" in stdout
    assert sum(summary["groups"].values()) == 10 + 40

    # without --group-by (same data, same seed) the image ids DO straddle splits: the option matters
    plain: dict[str, set[str]] = defaultdict(set)
    for r in read_manifest(prepared_sample):
        if r["source"].startswith("massachusetts_1m/"):
            plain[image_id(r["source"])].add(r["split"])
    assert any(len(splits) > 1 for splits in plain.values())


# --------------------------------------------------------------------------------------------- bad files
@dataclass
class Corpus:
    root: Path
    out: Path
    rc: int
    stdout: str
    stderr: str
    good: list[str]


TRUNCATED_PHOTO = "truncated_photo.jpg"


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Corpus:
    """Real tiles and photos, plus bad and convertible files made from them; prepared once via the CLI."""
    root = tmp_path_factory.mktemp("bad_corpus")
    color, hist = root / "color", root / "historical"
    tiles = sorted((sample_data / "color" / "massachusetts_1m").glob("*.jpg"))
    good = [p.name for p in copy_tiles(sample_data / "color" / "massachusetts_1m", color, 8)]
    base_path = tiles[20]
    base = Image.open(base_path).convert("RGB")
    data = base_path.read_bytes()

    (color / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (color / "empty.jpg").write_bytes(b"")
    (color / "notes.jpg").write_text("field notes, not a picture\n")
    base.convert("L").save(color / "gray_l.png")
    Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257).save(color / "gray_16bit.png")
    base.convert("LA").save(color / "gray_la.png")
    gray = base.convert("L")
    Image.merge("RGB", (gray, gray, gray)).save(color / "gray_rgb.png")
    base.convert("P").save(color / "palette.png")
    rgba = np.asarray(base.convert("RGBA")).copy()
    rgba[:40, :, 3] = 0  # 40 of 256 rows of no-data
    Image.fromarray(rgba).save(color / "rgba_nodata.png")
    base.crop((0, 0, 24, 24)).save(color / "tiny.png")
    shutil.copy(color / good[0], color / "copy_of_tile.jpg")
    # converted, with a note
    base.convert("CMYK").save(color / "cmyk.jpg", quality=95)
    base.convert("RGBA").save(color / "rgba_opaque.png")
    few = np.asarray(base.convert("RGBA")).copy()
    few[:1, :, 3] = 0  # 1 of 256 rows: 0.39%, under the 1% limit
    Image.fromarray(few).save(color / "rgba_few_nodata.png")
    # a folder whose name looks like an image: searched like any folder
    (color / "x.jpg").mkdir()
    shutil.copy(tiles[30], color / "x.jpg" / tiles[30].name)
    (color / "README.txt").write_text("tiles from the sample\n")

    hist.mkdir()
    for p in sorted((sample_data / "historical").rglob("*")):
        if p.is_file():
            shutil.copy(p, hist / p.name)
    photo_path = min((sample_data / "historical").rglob("*.jpg"))
    photo = Image.open(photo_path)
    assert photo.mode == "L"
    shutil.copy(tiles[40], hist / "color_tile.jpg")
    Image.fromarray(np.asarray(photo).astype(np.uint16) * 257).save(hist / "photo_16bit.png")
    Image.merge("RGB", (photo, photo, photo)).save(hist / "photo_rgb.png")
    la_path = min((sample_data / "historical").rglob("*.png"))
    la = np.asarray(Image.open(la_path)).copy()
    assert la.ndim == 3 and la.shape[2] == 2
    la[:10, :, 1] = 0  # 10 of 256 rows transparent
    Image.fromarray(la, mode="LA").save(hist / "photo_la_holes.png")
    photo_bytes = photo_path.read_bytes()
    (hist / TRUNCATED_PHOTO).write_bytes(photo_bytes[: len(photo_bytes) // 2])

    out = root / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(["data", "prepare", str(color), str(out), "--historical", str(hist), "--size", str(SIZE),
                   "--workers", "1"])
    return Corpus(root, out, rc, stdout.getvalue(), stderr.getvalue(), good)


COLOR_REJECTS = [
    ("truncated.jpg", "truncated image data"),
    ("empty.jpg", "empty file (0 bytes)"),
    ("notes.jpg", "not an image"),
    ("gray_l.png", "already grayscale (mode L)"),
    ("gray_16bit.png", "already grayscale (mode I"),
    ("gray_la.png", "already grayscale (mode LA)"),
    ("gray_rgb.png", "already grayscale (R=G=B)"),
    ("palette.png", "palette image"),
    ("rgba_nodata.png", "15.6% transparent (no-data) pixels; at most 1% allowed"),
    ("tiny.png", "too small (24x24 < 32 px)"),
    ("copy_of_tile.jpg", "duplicate of 10078735_15_y0256_x1216.jpg"),
]
HIST_REJECTS = [
    ("color_tile.jpg", "color image (mode RGB)"),
    (TRUNCATED_PHOTO, "truncated image data"),
]


def test_bad_corpus_run_succeeds(bad_corpus: Corpus) -> None:
    assert bad_corpus.rc == 0, bad_corpus.stderr
    assert "Traceback" not in bad_corpus.stderr
    assert "ignored 1 files without an image extension" in bad_corpus.stdout
    assert f"rejected {len(COLOR_REJECTS) + len(HIST_REJECTS)} files:" in bad_corpus.stdout
    summary = read_summary(bad_corpus.out)
    expected = {s for s, _ in COLOR_REJECTS} | {f"historical: {s}" for s, _ in HIST_REJECTS}
    assert {r["source"] for r in summary["rejected"]} == expected
    rejected_rows = [r for r in read_manifest(bad_corpus.out) if r["status"] == "rejected"]
    assert len(rejected_rows) == len(expected)


def test_bad_corpus_valid_files_still_processed(bad_corpus: Corpus) -> None:
    rows = read_manifest(bad_corpus.out)
    ok = defaultdict(list)
    for r in rows:
        if r["status"] == "ok":
            ok[r["source"]].append(r["role"])
            assert (bad_corpus.out / r["path"]).is_file()
    tile_in_folder = next(s for s in ok if s.startswith("x.jpg/"))
    color_ok = [*bad_corpus.good, "cmyk.jpg", "rgba_opaque.png", "rgba_few_nodata.png", tile_in_folder]
    for source in color_ok:
        assert sorted(ok[source]) == ["A", "AB", "B"], source
    hist_ok = [s for s in ok if ok[s] == ["historical"]]
    assert len(hist_ok) == 10 + 3
    assert len(ok) == len(color_ok) + len(hist_ok)
    summary = read_summary(bad_corpus.out)
    assert sum(summary["counts"].values()) == len(color_ok)
    assert summary["historical"] == 13
    assert bad_corpus.stdout.startswith(f"prepared {len(color_ok)} color tiles (")
    assert "and 13 historical photos" in bad_corpus.stdout.splitlines()[0]


@pytest.mark.parametrize("source,reason", COLOR_REJECTS + [(f"historical: {s}", r) for s, r in HIST_REJECTS])
def test_bad_file_rejected_with_reason(bad_corpus: Corpus, source: str, reason: str) -> None:
    summary = {r["source"]: r["reason"] for r in read_summary(bad_corpus.out)["rejected"]}
    assert reason in summary[source]
    folder, name = ("historical", source.removeprefix("historical: ")) if source.startswith("historical: ") \
        else ("color", source)
    rows = [r for r in read_manifest(bad_corpus.out) if r["source"] == name]
    assert len(rows) == 1, "a rejected file has one row and no output"
    (row,) = rows
    assert row["status"] == "rejected" and row["path"] == "" and reason in row["reason"]
    assert row["source_sha256"] == sha256(bad_corpus.root / folder / name)
    printed = [line for line in bad_corpus.stdout.splitlines() if line.startswith(f"  {source}: ")]
    assert len(printed) == 1 and reason in printed[0]


def _ok_row(corpus: Corpus, source: str, role: str) -> dict[str, Any]:
    (row,) = [r for r in read_manifest(corpus.out) if r["source"] == source and r["role"] == role]
    assert row["status"] == "ok"
    return row


@pytest.mark.parametrize("source,note", [
    ("cmyk.jpg", "converted from CMYK"),
    ("rgba_opaque.png", "converted from RGBA"),
    ("rgba_few_nodata.png", "converted from RGBA (0.39% transparent)"),
])
def test_color_safe_conversions_accepted_with_note(bad_corpus: Corpus, sample_data: Path, source: str,
                                                   note: str) -> None:
    row = _ok_row(bad_corpus, source, "B")
    assert note in row["reason"]
    got = pixels(bad_corpus.out / row["path"]).astype(int)
    want = np.asarray(expected_tile(sorted((sample_data / "color" / "massachusetts_1m").glob("*.jpg"))[20])).astype(int)
    assert got.shape == want.shape == (SIZE, SIZE, 3)
    if source == "cmyk.jpg":  # lossy JPEG, but the colors are the tile's (not inverted or shifted)
        assert np.abs(got - want).mean() < 2 and np.abs(got - want).max() <= 8
    else:  # the alpha channel is dropped, the color values are kept
        np.testing.assert_array_equal(got, want)


def test_historical_safe_conversions_accepted_with_note(bad_corpus: Corpus, sample_data: Path) -> None:
    photo_path = min((sample_data / "historical").rglob("*.jpg"))
    la_path = min((sample_data / "historical").rglob("*.png"))
    cases = [("photo_16bit.png", "scaled from 16-bit (I;16", pixels(photo_path)),
             ("photo_rgb.png", "converted from RGB with equal channels", pixels(photo_path)),
             ("photo_la_holes.png", "alpha dropped (3.9% transparent)", pixels(la_path)[..., 0]),
             (la_path.name, "alpha dropped (0.0% transparent)", pixels(la_path)[..., 0])]
    for source, note, want in cases:
        row = _ok_row(bad_corpus, source, "historical")
        assert note in row["reason"], (source, row["reason"])
        with Image.open(bad_corpus.out / row["path"]) as im:
            assert im.mode == "L"
            np.testing.assert_array_equal(np.asarray(im), want)
    plain = _ok_row(bad_corpus, photo_path.name, "historical")
    assert plain["reason"] == ""


def test_folder_named_like_an_image_is_searched_not_rejected(bad_corpus: Corpus) -> None:
    rejected = {r["source"] for r in read_summary(bad_corpus.out)["rejected"]}
    assert "x.jpg" not in rejected
    rows = [r for r in read_manifest(bad_corpus.out) if r["source"].startswith("x.jpg/")]
    assert sorted(r["role"] for r in rows) == ["A", "AB", "B"]
    assert all(Path(r["path"]).name.startswith("x.jpg__") for r in rows)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_unreadable_file_rejected(tmp_path: Path, kampala: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiles = copy_tiles(kampala, tmp_path / "src", 10)
    locked = tiles[3]
    locked.chmod(0)
    try:
        rc, stdout, err = run_cli(capsys, tmp_path / "src", tmp_path / "out", "--size", SIZE, "--workers", 1)
    finally:
        locked.chmod(0o644)
    assert rc == 0, err
    reasons = {r["source"]: r["reason"] for r in read_summary(tmp_path / "out")["rejected"]}
    assert reasons == {locked.name: "unreadable (permission denied)"}
    assert f"  {locked.name}: unreadable (permission denied)" in stdout
    assert sum(read_summary(tmp_path / "out")["counts"].values()) == 9


def test_same_stem_in_two_formats_gets_two_names(tmp_path: Path, kampala: Path) -> None:
    tiles = copy_tiles(kampala, tmp_path / "src", 10)
    with Image.open(tiles[0]) as im:  # x.jpg and x.png: different pictures, same stem
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tiles[1].with_suffix(".png"))
    P.prepare(tmp_path / "src", tmp_path / "out", options=P.PrepareOptions(size=SIZE))
    rows = [r for r in read_manifest(tmp_path / "out") if r["role"] == "B"]
    assert len(rows) == 11
    names = {r["source"]: Path(r["path"]).name for r in rows}
    assert len(set(names.values())) == 11
    assert names[tiles[1].name] == f"{tiles[1].stem}__jpg.png"
    assert names[tiles[1].with_suffix(".png").name] == f"{tiles[1].stem}__png.png"
    for r in rows:
        with Image.open(tiles[0].parent / r["source"]) as src:
            want = np.asarray(src.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS))
        np.testing.assert_array_equal(pixels(tmp_path / "out" / r["path"]), want)


# --------------------------------------------------------------------------------------------- never half-written
def test_failure_midway_leaves_no_out_dir(tmp_path: Path, kampala: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = P._write
    calls = []

    def failing_write(path: Path, data: bytes) -> tuple[int, str]:
        calls.append(path)
        if len(calls) > 10:
            raise OSError(28, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(P, "_write", failing_write)
    (tmp_path / "work").mkdir()
    out = tmp_path / "work" / "out"
    with pytest.raises(OSError, match="No space left"):
        P.prepare(kampala, out, options=P.PrepareOptions(size=SIZE))
    assert len(calls) == 11, "files had been written before the failure"
    assert not out.exists()
    assert os.listdir(tmp_path / "work") == [], "no staging folder left behind"


def test_interrupt_after_all_images_leaves_no_out_dir(tmp_path: Path, kampala: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    seen = []

    def interrupted(path: Path, records: Any) -> None:
        seen.append(sorted(p.name for p in path.parent.iterdir()))
        raise KeyboardInterrupt

    monkeypatch.setattr(P, "write_manifest", interrupted)
    out = tmp_path / "out"
    rc, _, err = run_cli(capsys, kampala, out, "--size", SIZE, "--workers", 1)
    assert rc == 130 and err.strip() == "aircolor: interrupted"
    assert seen and "aligned" in seen[0], "the staging folder was full when the interrupt came"
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_failed_force_rebuild_keeps_previous_out_dir(tmp_path: Path, small_src: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run_cli(capsys, small_src, out, "--size", SIZE, "--workers", 1)[0] == 0
    age(out)
    before = snapshot(out)
    real_write = P._write
    calls = []

    def interrupting_write(path: Path, data: bytes) -> tuple[int, str]:
        calls.append(path)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return real_write(path, data)

    monkeypatch.setattr(P, "_write", interrupting_write)
    rc, _, _ = run_cli(capsys, small_src, out, "--size", 16, "--workers", 1, "--force")
    assert rc == 130
    assert len(calls) == 6
    assert snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]


def test_stale_staging_of_dead_process_is_cleaned(tmp_path: Path, small_src: Path) -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True)
    dead_pid = int(child.stdout)
    try:
        os.kill(dead_pid, 0)
        pytest.skip(f"pid {dead_pid} was reused already")
    except ProcessLookupError:
        pass
    stale = tmp_path / f".out.staging-{dead_pid}-0badc0de"
    (stale / "aligned" / "train").mkdir(parents=True)
    (stale / "aligned" / "train" / "half.png").write_bytes(b"\x89PNG half")
    running = tmp_path / f".out.staging-{os.getpid()}-0123abcd"  # a live process's staging: left alone
    running.mkdir()
    P.prepare(small_src, tmp_path / "out", options=P.PrepareOptions(size=SIZE))
    assert not stale.exists()
    assert running.is_dir()
    assert sorted(os.listdir(tmp_path)) == sorted([running.name, "out", "src"])


# --------------------------------------------------------------------------------------------- reruns
def test_rerun_is_a_noop(tmp_path: Path, small_src: Path, sample_data: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = [small_src, out, "--historical", sample_data / "historical", "--size", SIZE, "--workers", 1]
    rc, stdout, _ = run_cli(capsys, *argv)
    assert rc == 0 and stdout.startswith("prepared 12 color tiles")
    age(out)
    before = snapshot(out)
    rc, stdout, err = run_cli(capsys, *argv)
    assert rc == 0 and err == ""
    assert stdout.strip() == f"{out} is up to date (same inputs and options); nothing to do"
    assert snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_damaged_out_dir_is_not_up_to_date(tmp_path: Path, small_src: Path, capsys: pytest.CaptureFixture[str],
                                           damage: str) -> None:
    out = tmp_path / "out"
    argv = [small_src, out, "--size", SIZE, "--workers", 1]
    assert run_cli(capsys, *argv)[0] == 0
    row = next(r for r in read_manifest(out) if r["role"] == "AB")
    victim = out / row["path"]
    if damage == "deleted":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:100])
    before = snapshot(out)
    rc, _, err = run_cli(capsys, *argv)
    assert_usage_error(rc, err, "pass --force")
    assert snapshot(out) == before
    rc, stdout, _ = run_cli(capsys, *argv, "--force")
    assert rc == 0 and stdout.startswith("prepared 12 color tiles")
    assert sha256(victim) == row["sha256"]


def _add_tile(src: Path, kampala: Path) -> None:
    new = sorted(kampala.glob("*.jpg"))[20]
    shutil.copy(new, src / new.name)


def _edit_tile(src: Path, kampala: Path) -> None:
    path = min(src.glob("*.jpg"))
    with Image.open(path) as im:
        im.load()
        im.save(path, quality=80)


def _remove_tile(src: Path, kampala: Path) -> None:
    max(src.glob("*.jpg")).unlink()


CHANGES: list[tuple[str, Callable[[Path, Path], None] | None, list[str], Callable[[dict[str, Any]], bool]]] = [
    ("added tile", _add_tile, [], lambda s: sum(s["counts"].values()) == 13),
    ("edited tile", _edit_tile, [], lambda s: sum(s["counts"].values()) == 12),
    ("removed tile", _remove_tile, [], lambda s: sum(s["counts"].values()) == 11),
    ("seed", None, ["--seed", "1"], lambda s: s["options"]["seed"] == 1),
    ("size", None, ["--size", "16"], lambda s: s["options"]["size"] == 16),
    ("split", None, ["--split", "0.5,0.25,0.25"], lambda s: s["options"]["split"] == [0.5, 0.25, 0.25]),
    ("group-by", None, ["--group-by", r"OAM-(\d+)-"], lambda s: s["options"]["group_by"] == r"OAM-(\d+)-"),
]


@pytest.mark.parametrize("what,mutate,extra,check", CHANGES, ids=[c[0] for c in CHANGES])
def test_changed_inputs_or_options_need_force(tmp_path: Path, small_src: Path, kampala: Path,
                                              capsys: pytest.CaptureFixture[str], what: str,
                                              mutate: Callable[[Path, Path], None] | None, extra: list[str],
                                              check: Callable[[dict[str, Any]], bool]) -> None:
    out = tmp_path / "out"
    base = [small_src, out, "--size", SIZE, "--workers", 1]
    assert run_cli(capsys, *base)[0] == 0
    old = read_summary(out)
    age(out)
    before = snapshot(out)
    if mutate:
        mutate(small_src, kampala)
    argv = base + extra  # a later --size overrides the earlier one
    rc, stdout, err = run_cli(capsys, *argv)
    assert_usage_error(rc, err, "is a dataset that aircolor prepared from other inputs or options")
    assert "--force" in err and str(out) in err and stdout == ""
    assert snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]

    rc, stdout, err = run_cli(capsys, *argv, "--force")
    assert rc == 0 and stdout.startswith("prepared "), err
    new = read_summary(out)
    assert new["fingerprint"] != old["fingerprint"]
    assert check(new)
    assert sorted(os.listdir(tmp_path)) == ["out", "src"], "no staging or old copy left"
    rows = read_manifest(out)
    hashes = {p.name: sha256(p) for p in small_src.glob("*.jpg")}
    assert {r["source"]: r["source_sha256"] for r in rows} == hashes
    for r in rows:
        assert sha256(out / r["path"]) == r["sha256"]
    size = new["options"]["size"]
    with Image.open(out / rows[0]["path"]) as im:
        assert im.height == size
    assert run_cli(capsys, *argv)[1].strip().endswith("is up to date (same inputs and options); nothing to do")


# --------------------------------------------------------------------------------------------- CLI errors
def _missing_src(tmp: Path, src: Path, hist: Path) -> list[Any]:
    return [tmp / "no_such_folder", tmp / "out"]


def _empty_src(tmp: Path, src: Path, hist: Path) -> list[Any]:
    (tmp / "empty").mkdir()
    (tmp / "empty" / "notes.txt").write_text("no images here\n")
    return [tmp / "empty", tmp / "out"]


CLI_ERRORS: list[tuple[str, Callable[[Path, Path, Path], list[Any]], str, str]] = [
    ("missing SRC", _missing_src, "does not exist", r"aircolor: error: "),
    ("SRC is a file", lambda t, s, h: [min(s.iterdir()), t / "out"], "is not a folder", r"aircolor: error: "),
    ("SRC without images", _empty_src, "no image files", r"aircolor: error: "),
    ("missing --historical", lambda t, s, h: [s, t / "out", "--historical", t / "nope"], "does not exist",
     r"aircolor: error: "),
    ("split sums to 0.9", lambda t, s, h: [s, t / "out", "--split", "0.5,0.3,0.1"], "sum to 1",
     r"aircolor: error: "),
    ("split with NaN", lambda t, s, h: [s, t / "out", "--split", "nan,0.5,0.5"], "sum to 1", r"aircolor: error: "),
    ("split negative", lambda t, s, h: [s, t / "out", "--split", "1.2,-0.1,-0.1"], ">= 0", r"aircolor: error: "),
    ("split no train", lambda t, s, h: [s, t / "out", "--split", "0,0.5,0.5"], "train fraction",
     r"aircolor: error: "),
    # argparse type errors are reported under the subcommand's prog name (see the report)
    ("split with 2 parts", lambda t, s, h: [s, t / "out", "--split", "0.5,0.5"], "has 2 parts",
     r"aircolor( data prepare)?: error: "),
    ("split with 4 parts", lambda t, s, h: [s, t / "out", "--split", "0.4,0.2,0.2,0.2"], "has 4 parts",
     r"aircolor( data prepare)?: error: "),
    ("split not numbers", lambda t, s, h: [s, t / "out", "--split", "most,some,rest"], "comma-separated numbers",
     r"aircolor( data prepare)?: error: "),
    ("bad regex", lambda t, s, h: [s, t / "out", "--group-by", r"(\d+_15_"], "not a valid regular expression",
     r"aircolor: error: "),
    ("size too small", lambda t, s, h: [s, t / "out", "--size", "8"], "--size 8", r"aircolor: error: "),
    ("OUT_DIR inside SRC", lambda t, s, h: [s, s / "prepared"], "overlaps the source folder", r"aircolor: error: "),
    ("OUT_DIR is SRC's parent", lambda t, s, h: [s, t], "overlaps the source folder", r"aircolor: error: "),
    ("OUT_DIR is --historical", lambda t, s, h: [s, h, "--historical", h], "overlaps the source folder",
     r"aircolor: error: "),
    ("OUT_DIR inside --historical", lambda t, s, h: [s, h / "out", "--historical", h], "overlaps the source folder",
     r"aircolor: error: "),
]


@pytest.mark.parametrize("what,args,fragment,prefix", CLI_ERRORS, ids=[c[0] for c in CLI_ERRORS])
def test_cli_usage_errors(tmp_path: Path, small_src: Path, sample_data: Path, capsys: pytest.CaptureFixture[str],
                          what: str, args: Callable[[Path, Path, Path], list[Any]], fragment: str,
                          prefix: str) -> None:
    hist = tmp_path / "scans"
    shutil.copytree(sample_data / "historical", hist)
    argv = args(tmp_path, small_src, hist)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    rc, stdout, err = run_cli(capsys, "--size", SIZE, "--workers", 1, *argv)  # a case's own --size comes later
    assert_usage_error(rc, err, fragment, prefix)
    assert stdout == ""
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, "nothing written"


def test_api_rejects_bad_split_length(small_src: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="need three fractions"):
        P.prepare(small_src, tmp_path / "out", options=P.PrepareOptions(split=(0.5, 0.5)))  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_a_kill_between_the_two_renames_is_repaired(tmp_path, sample_data):
    from aircolor.data.prepare import PrepareOptions, prepare

    src = sample_data / "color" / "oam_kampala_fair"
    out = tmp_path / "out"
    prepare(src, out, options=PrepareOptions(size=32))
    # Simulate a kill after OUT_DIR was moved aside and before the new one was renamed in.
    moved = tmp_path / ".out.old-deadbeef"
    out.rename(moved)
    result = prepare(src, out, options=PrepareOptions(size=32))
    assert result.up_to_date and out.is_dir() and not moved.exists()
