"""``aircolor data prepare``: turn folders of color tiles (and historical photos) into the study's datasets.

Output layout (``OUT_DIR``)::

    aligned/{train,val,test}/NAME.png      512x256 A|B pairs (A = gray copy, left; B = color, right)
    unaligned/{train,val,test}{A,B}/NAME.png  gray copies (A, mode L) and color tiles (B, RGB)
    historical/NAME.png                    real historical photos, 8-bit gray, at their own size
    manifest.parquet                       one row per output image and per rejected input (with the tile's
                                           bounds and CRS when fetch-tiles' tiles-index.csv lists its source)
    summary.json                           counts, rejects, options and the inputs' fingerprint

Guarantees: every input is decoded fully and converted or rejected with its reason; the split is reproducible
(same seed, same files: same split) and ``--group-by`` keeps a group's tiles on one side; OUT_DIR is built in a
staging folder next to it and renamed into place, so it is never half-written; a rerun with the same inputs and
options changes nothing; a dataset prepared from other inputs is only replaced with ``force=True``, and
nothing else ever is (a file, or a folder with anything in it that this module did not write, is refused).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sys
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from PIL import Image

from aircolor.data.images import IMAGE_SUFFIXES, sha256_file, vet_color, vet_historical
from aircolor.data.prepare_out import (check_out_dir, clean_stale_staging, is_up_to_date, make_parents, remove_empty,
                                       swap_into_place)
from aircolor.data.prepare_manifest import MANIFEST_COLUMNS, Record, write_manifest  # noqa: F401 (re-exported)
from aircolor.data.tiles.summary import geo_by_file
from aircolor.data.prepare_split import SPLITS, assign_splits, group_key, split_tiles  # noqa: F401 (re-exported)
from aircolor.errors import UsageError

FORMAT_VERSION = 1

@dataclass(frozen=True)
class PrepareOptions:
    size: int = 256
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    group_by: str | None = None
    holdout: str | None = None      # tiles whose path matches go to the test split whole (held-out regions)
    historical_min_size: int = 32

    def validate(self) -> None:
        if not 16 <= self.size <= 4096:
            raise UsageError(f"--size {self.size}: must be between 16 and 4096 pixels")
        if len(self.split) != 3 or not all(f >= 0 for f in self.split) or not abs(sum(self.split) - 1) <= 1e-6:
            raise UsageError(f"--split {','.join(f'{f:g}' for f in self.split)}: need three fractions "
                             "train,val,test that are >= 0 and sum to 1, e.g. 0.7,0.15,0.15")
        if self.split[0] <= 0:
            raise UsageError("--split: the train fraction must be > 0")
        for flag, pattern in (("--group-by", self.group_by), ("--holdout", self.holdout)):
            if pattern is None:
                continue
            try:
                re.compile(pattern)
            except re.error as exc:
                raise UsageError(f"{flag} {pattern!r}: not a valid regular expression ({exc})") from None


@dataclass
class PrepareResult:
    out_dir: Path
    up_to_date: bool
    counts: dict[str, int] = field(default_factory=dict)
    historical: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0
    ungrouped: int = 0

    def format(self) -> str:
        if self.up_to_date:
            return f"{self.out_dir} is up to date (same inputs and options); nothing to do"
        lines = [f"prepared {sum(self.counts.values())} color tiles (" +
                 ", ".join(f"{s} {self.counts.get(s, 0)}" for s in SPLITS) +
                 f") and {self.historical} historical photos in {self.out_dir}"]
        if self.ignored:
            lines.append(f"ignored {self.ignored} files without an image extension")
        if self.ungrouped:
            lines.append(f"warning: {self.ungrouped} tiles did not match --group-by; each is its own group")
        if self.rejected:
            lines.append(f"rejected {len(self.rejected)} files:")
            lines += [f"  {src}: {reason}" for src, reason in self.rejected]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------- inputs
def scan(root: Path, what: str) -> tuple[list[Path], int]:
    """Image files under ``root`` (recursive, sorted, hidden files skipped) and the count of other files."""
    if not root.exists():
        raise UsageError(f"{what} folder {root} does not exist; check the path")
    if not root.is_dir():
        raise UsageError(f"{what} {root} is not a folder; pass the folder that holds the images")
    images, ignored = [], 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            special = path.exists() and not path.is_file()  # a FIFO or device: reading it could block forever
            if path.suffix.lower() in IMAGE_SUFFIXES and not special:
                images.append(path)
            else:
                ignored += 1
    return sorted(images), ignored


def output_name(rel: Path) -> str:
    """A flat output stem for a source path relative to its root (``a/b/x.jpg`` -> ``a__b__x``)."""
    return "__".join(rel.with_suffix("").parts)


def output_names(rels: Iterable[str]) -> dict[str, str]:
    """:func:`output_name` of every path, made unique: stems that collide (``x.jpg``, ``x.png``) keep their
    extension (``x__jpg``, ``x__png``), and a number is appended if that still collides."""
    rels = list(rels)
    stems = Counter(output_name(Path(r)) for r in rels)
    names: dict[str, str] = {}
    used: set[str] = set()
    for r in rels:
        base = output_name(Path(r))
        if stems[base] > 1:
            base = f"{base}__{Path(r).suffix.lstrip('.')}"
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}__{n}"
        used.add(name)
        names[r] = name
    return names


def _source_sha256(path: Path) -> str:
    """sha256 of an input file, or "" if it cannot be read (vetting then rejects it, saying why)."""
    try:
        return sha256_file(path)
    except OSError:
        return ""


def fingerprint(options: PrepareOptions, sources: dict[str, list[tuple[str, str]]]) -> str:
    opts = {k: v for k, v in asdict(options).items() if not (k == "holdout" and v is None)}  # older dirs stay valid
    payload = json.dumps({"format": FORMAT_VERSION, "options": opts, "sources": sources,
                          "pillow": Image.__version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


# --------------------------------------------------------------------------------------------- pass 1: vet + encode
def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data), hashlib.sha256(data).hexdigest()


def _process_color(task: tuple[str, str, str, str, int]) -> dict[str, Any]:
    """Vet one color tile and write its three encodings into the staging pool (worker process)."""
    src, rel, name, pool, size = task
    vetted = vet_color(Path(src), size)
    if vetted.image is None:
        return {"rel": rel, "reason": vetted.reason}
    b = vetted.image
    a = b.convert("L")  # ITU-R 601-2 luma: the study's gray copy
    ab = Image.new("RGB", (2 * size, size))
    ab.paste(a.convert("RGB"), (0, 0))
    ab.paste(b, (size, 0))
    out = {"rel": rel, "name": name, "note": vetted.note, "files": {}}
    for role, im in (("A", a), ("B", b), ("AB", ab)):
        nbytes, digest = _write(Path(pool) / f"{name}.{role}.png", _png_bytes(im))
        out["files"][role] = (im.size[0], im.size[1], nbytes, digest)
    return out


def _process_historical(task: tuple[str, str, str, str, int]) -> dict[str, Any]:
    src, rel, name, out_dir, min_size = task
    vetted = vet_historical(Path(src), min_size)
    if vetted.image is None:
        return {"rel": rel, "reason": vetted.reason}
    nbytes, digest = _write(Path(out_dir) / "historical" / f"{name}.png", _png_bytes(vetted.image))
    return {"rel": rel, "name": name, "note": vetted.note,
            "files": {"historical": (*vetted.image.size, nbytes, digest)}}


def _run_tasks(fn: Any, tasks: list[tuple], workers: int, desc: str) -> list[dict[str, Any]]:
    from tqdm import tqdm

    bar = dict(total=len(tasks), desc=desc, unit="img", disable=not sys.stderr.isatty() or not tasks, leave=False)
    if workers <= 1 or len(tasks) < 8:
        return [fn(t) for t in tqdm(tasks, **bar)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(fn, tasks, chunksize=8), **bar))


# --------------------------------------------------------------------------------------------- outputs
def _color_records(results: list[dict[str, Any]], splits: dict[str, str], pool: Path, stage: Path,
                   hashes: dict[str, str], groups_of: dict[str, str]) -> list[Record]:
    """Move pooled encodings into their split folders and return their manifest rows."""
    records = []
    layout_dirs = {"AB": ("aligned", "{split}"), "A": ("unaligned", "{split}A"), "B": ("unaligned", "{split}B")}
    for res in results:
        rel, split = res["rel"], splits[res["rel"]]
        for role, (layout, folder) in layout_dirs.items():
            target = Path(layout) / folder.format(split=split) / f"{res['name']}.png"
            (stage / target).parent.mkdir(parents=True, exist_ok=True)
            os.rename(pool / f"{res['name']}.{role}.png", stage / target)
            w, h, nbytes, digest = res["files"][role]
            records.append(Record(target.as_posix(), split, role, layout, w, h, nbytes, digest, rel,
                                  hashes[rel], groups_of[rel], "ok", res["note"]))
    return records


def prepare(color_dir: Path, out_dir: Path, *, historical_dir: Path | None = None,
            options: PrepareOptions = PrepareOptions(), force: bool = False, workers: int = 1) -> PrepareResult:
    """Build the datasets in ``out_dir`` (see the module docstring). Returns what was done."""
    options.validate()
    color_dir = Path(color_dir).resolve()
    out_dir = Path(os.path.abspath(out_dir))
    out_dir = out_dir.parent.resolve() / out_dir.name  # not the link itself, if OUT_DIR is one (refused below)
    if historical_dir is not None:
        historical_dir = Path(historical_dir).resolve()
    color_files, ignored = scan(color_dir, "color")
    hist_files, hist_ignored = scan(historical_dir, "--historical") if historical_dir else ([], 0)
    if not color_files:
        raise UsageError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {color_dir}")
    for src_dir in (color_dir, historical_dir):
        if src_dir is not None and (out_dir == src_dir or src_dir in out_dir.parents or out_dir in src_dir.parents):
            raise UsageError(f"OUT_DIR {out_dir} overlaps the source folder {src_dir}; choose a separate folder")
    check_out_dir(out_dir)

    def rel(p: Path, root: Path) -> str:
        return p.relative_to(root).as_posix()

    hashes = {rel(p, color_dir): _source_sha256(p) for p in color_files}
    hist_hashes = {rel(p, historical_dir): _source_sha256(p) for p in hist_files} if historical_dir else {}
    try:
        geo, indexes = geo_by_file(color_dir)
    except (OSError, ValueError) as exc:
        raise UsageError(f"color folder: {exc}; re-run fetch-tiles into that folder, or remove the index") from None
    sources = {"color": sorted(hashes.items()), "historical": sorted(hist_hashes.items())}
    fp = fingerprint(options, {**sources, "tile_index": indexes} if indexes else sources)
    clean_stale_staging(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if is_up_to_date(out_dir, fp):
            return PrepareResult(out_dir, up_to_date=True)
        if not force:
            raise UsageError(f"{out_dir} is a dataset that aircolor prepared from other inputs or options; "
                             "pass --force to replace it, or choose another OUT_DIR")
    made = make_parents(out_dir)
    stage = out_dir.parent / f".{out_dir.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        stage.mkdir()
        result = _build(stage, color_dir, color_files, historical_dir, hist_files, hashes, hist_hashes,
                        options, workers, fp, geo)
        result.ignored = ignored + hist_ignored
        swap_into_place(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        remove_empty(made)
        raise
    result.out_dir = out_dir
    return result


def _build(stage: Path, color_dir: Path, color_files: list[Path], historical_dir: Path | None,
           hist_files: list[Path], hashes: dict[str, str], hist_hashes: dict[str, str],
           options: PrepareOptions, workers: int, fp: str, geo: dict[str, dict[str, Any]]) -> PrepareResult:
    pool = stage / ".pool"
    rels = [p.relative_to(color_dir).as_posix() for p in color_files]
    names = output_names(rels)
    tasks = [(str(p), r, names[r], str(pool), options.size) for p, r in zip(color_files, rels)]
    ok, rejected, records = _vet_color_results(_run_tasks(_process_color, tasks, workers, "color tiles"), hashes,
                                               pool)
    if not ok:
        lines = "; ".join(f"{r}: {why}" for r, why in rejected[:5])
        raise UsageError(f"no usable color tiles under {color_dir} ({len(rejected)} rejected: {lines}); "
                         "fix or replace the files and retry")
    splits, groups_of, ungrouped = split_tiles([res["rel"] for res in ok], options.group_by, options.holdout,
                                               options.split, options.seed)
    records += _color_records(ok, splits, pool, stage, hashes, groups_of)
    for record in records:  # where each tile lies, from the fetch's tiles-index.csv
        for column, value in geo.get(record.source, {}).items():
            setattr(record, column, value)
    pool.rmdir()
    historical = 0
    if historical_dir is not None:
        hist_records = _historical_records(stage, historical_dir, hist_files, hist_hashes, options, workers)
        historical = sum(r.status == "ok" for r in hist_records)
        rejected += [(f"historical: {r.source}", r.reason) for r in hist_records if r.status != "ok"]
        records += hist_records
    for split in SPLITS:  # every layout folder exists, even when a split is empty
        for folder in (f"aligned/{split}", f"unaligned/{split}A", f"unaligned/{split}B"):
            (stage / folder).mkdir(parents=True, exist_ok=True)
    counts = Counter(splits[r["rel"]] for r in ok)
    result = PrepareResult(stage, False, {s: counts.get(s, 0) for s in SPLITS}, historical, rejected,
                           0, ungrouped)
    write_manifest(stage / "manifest.parquet", records)
    summary = {
        "format": FORMAT_VERSION, "fingerprint": fp, "options": asdict(options),
        "color_dir": str(color_dir), "historical_dir": str(historical_dir) if historical_dir else None,
        "counts": result.counts, "groups": {s: len({groups_of[r] for r, sp in splits.items() if sp == s})
                                            for s in SPLITS},
        "historical": historical, "ungrouped": ungrouped,
        "rejected": [{"source": s, "reason": r} for s, r in rejected],
    }
    (stage / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return result


def _vet_color_results(results: list[dict[str, Any]], hashes: dict[str, str], pool: Path
                       ) -> tuple[list[dict[str, Any]], list[tuple[str, str]], list[Record]]:
    """The usable color tiles, the rejected ones (a byte-identical copy of an earlier tile too) and their
    manifest records."""
    rejected: list[tuple[str, str]] = []
    records: list[Record] = []
    seen: dict[str, str] = {}
    ok = []
    for res in results:
        first = seen.setdefault(hashes[res["rel"]], res["rel"])
        if "reason" not in res and first != res["rel"]:
            for role in ("A", "B", "AB"):
                (pool / f"{res['name']}.{role}.png").unlink()
            res = {"rel": res["rel"], "reason": f"duplicate of {first} (same bytes)"}
        if "reason" in res:
            rejected.append((res["rel"], res["reason"]))
            records.append(Record("", "", "B", "", 0, 0, 0, "", res["rel"], hashes[res["rel"]], "",
                                  "rejected", res["reason"]))
        else:
            ok.append(res)
    return ok, rejected, records


def _historical_records(stage: Path, historical_dir: Path, hist_files: list[Path], hist_hashes: dict[str, str],
                        options: PrepareOptions, workers: int) -> list[Record]:
    """Convert the historical scans into ``stage/historical``; one manifest record each, ok or rejected."""
    hrels = [p.relative_to(historical_dir).as_posix() for p in hist_files]
    hnames = output_names(hrels)
    htasks = [(str(p), r, hnames[r], str(stage), options.historical_min_size) for p, r in zip(hist_files, hrels)]
    records = []
    for res in _run_tasks(_process_historical, htasks, workers, "historical"):
        if "reason" in res:
            records.append(Record("", "", "historical", "", 0, 0, 0, "", res["rel"], hist_hashes[res["rel"]],
                                  "", "rejected", res["reason"]))
            continue
        w, h, nbytes, digest = res["files"]["historical"]
        records.append(Record(f"historical/{res['name']}.png", "test", "historical", "historical", w, h,
                              nbytes, digest, res["rel"], hist_hashes[res["rel"]], "", "ok", res["note"]))
    return records
