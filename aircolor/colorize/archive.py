"""Colorize a whole archive: find the photos, skip finished ones, colorize the rest, report every file.

Inputs are files, folders (searched recursively for images) and glob patterns. A folder's photos keep their
sub-folders under ``--out``; files named directly go to the top of ``--out``. Outputs that already exist are
skipped (they were written atomically, so they are complete): a rerun after a crash or Ctrl-C picks up where
the last one stopped. Inputs are never overwritten, and the output folder is never searched for inputs.

A file that cannot be colorized (unreadable, a color image, a wrong band count, above ``--max-pixels``) is
reported and skipped; ``colorize-summary.json`` in the output folder lists what was done, skipped and failed,
and the exit code is 1 when anything failed.

When any output is georeferenced, the run ends with ``colorized-mosaic.vrt`` over all of them (done and skipped),
recorded in the summary (:mod:`aircolor.colorize.geo`); a mosaic that cannot be written fails the run (exit 1)
in one line, and the outputs stay.
"""

from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from aircolor.colorize.geo import MosaicError, for_output, write_mosaics
from aircolor.colorize.imageio import IMAGE_SUFFIXES, InputError, copy_sidecars, read_photo, write_photo
from aircolor.errors import UsageError
from aircolor.utils import atomic_write_text

SUMMARY = "colorize-summary.json"
FORMATS = {"same": None, "png": ".png", "tiff": ".tif", "jpeg": ".jpg", "cog": ".tif"}  # cog: see geo.wants_cog


@dataclass(frozen=True)
class ArchiveOptions:
    out_dir: Path
    max_pixels: int = 300_000_000
    overwrite: bool = False
    format: str = "same"
    progress: bool = True


@dataclass
class FileResult:
    input: str
    output: str
    status: str                   # done | skipped | failed
    reason: str = ""
    seconds: float = 0.0
    tiles: int = 0
    pixels: int = 0
    workers: int = 0              # processes that ran its tiles (--ray: a large photo's blocks spread over several)


@dataclass
class Summary:
    model: str
    out_dir: str
    files: list[FileResult] = field(default_factory=list)
    order: list[str] = field(default_factory=list)        # every input, in the order they were found
    run: dict[str, Any] = field(default_factory=dict)      # how it ran (--ray: workers, throughput)
    mosaics: list[dict[str, Any]] = field(default_factory=list)   # the VRT(s) over the georeferenced outputs
    mosaic_error: str = ""                                 # why the mosaic could not be written (the run fails)
    mosaic_left_out: list[str] = field(default_factory=list)  # georeferenced but rotated: no place in a VRT

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        mosaic = {key: value for key, value in (("mosaics", self.mosaics), ("mosaic_error", self.mosaic_error),
                                                 ("mosaic_left_out", self.mosaic_left_out)) if value}
        return {"model": self.model, "out_dir": self.out_dir,
                "counts": {s: self.count(s) for s in ("done", "skipped", "failed")},
                **({"run": self.run} if self.run else {}), **mosaic, "files": [asdict(f) for f in self.files]}


# ------------------------------------------------------------------------------------------------ discovery
def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def discover(inputs: list[str], out_dir: Path) -> list[tuple[Path, Path]]:
    """(input file, output path relative to ``out_dir`` without its final suffix decided) for every photo."""
    found: list[tuple[Path, Path]] = []
    for spec in inputs:
        path = Path(spec).expanduser()
        if path.is_file():
            found.append((path, Path(path.name)))
        elif path.is_dir():
            if path.resolve() == out_dir.resolve():
                raise UsageError(f"--out {out_dir} is the input folder {spec}: outputs would overwrite the inputs; "
                                 f"choose another output folder")
            # an output folder inside the input folder holds earlier outputs, not photos to colorize
            skip = out_dir if _inside(out_dir, path) else None
            files = sorted(p for p in path.rglob("*")
                           if p.is_file() and _is_image(p) and not (skip and _inside(p, skip)))
            found.extend((p, p.relative_to(path)) for p in files)
        elif glob.has_magic(spec):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(spec), recursive=True))
            files = [m for m in matches if m.is_file() and _is_image(m) and not _inside(m, out_dir)]
            if not files:
                raise UsageError(f"INPUT {spec!r} matches no image files")
            found.extend((m, Path(m.name)) for m in files)
        else:
            raise UsageError(f"INPUT {spec}: no such file or folder (a glob pattern needs * ? or [ ])")
    if not found:
        raise UsageError(f"no images found in {' '.join(inputs)} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def plan_outputs(found: list[tuple[Path, Path]], options: ArchiveOptions) -> list[tuple[Path, Path]]:
    """(input, output path): the input's format unless ``--format``; never an input, never two inputs to one."""
    want = FORMATS[options.format]
    planned: dict[Path, Path] = {}
    inputs = {p.resolve() for p, _ in found}
    out = []
    for src, rel in found:
        suffix = want or (".png" if src.suffix.lower() in (".gif", ".jp2") else src.suffix)
        target = (options.out_dir / rel).with_suffix(suffix)
        key = target.resolve()
        if key in inputs:
            raise UsageError(f"--out {options.out_dir} would overwrite the input {src}; choose another output folder")
        if key in planned and planned[key] != src.resolve():
            raise UsageError(f"{planned[key]} and {src} would both be written to {target}; colorize them into "
                             f"different --out folders")
        planned[key] = src.resolve()
        out.append((src, target))
    return out


def clean_stale_temps(out_dir: Path) -> None:
    """Temporary files of a run that was killed mid-write (``.<name>.<random>.tmp``): never complete outputs."""
    if out_dir.is_dir():
        for tmp in out_dir.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ the run
class _TileBar:
    """A second bar, under the images' bar, counting the tiles of the photo being colorized: a large scan moves
    it from the first batch on, where the images' bar would sit at 0 for minutes. Shown only for photos of more
    than one batch of tiles."""

    def __init__(self, colorizer: Any, *, enabled: bool) -> None:
        self.colorizer, self.enabled, self.bar = colorizer, enabled, None
        if enabled and hasattr(colorizer, "processor"):
            colorizer.processor.progress = self._advance

    def start(self, total: int) -> None:
        from tqdm import tqdm

        if self.enabled and total > getattr(self.colorizer.processor, "batch_size", 1):
            self.bar = tqdm(total=total, unit="tile", desc="  tiles", position=1, leave=False, dynamic_ncols=True)

    def _advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def check_output_format(photo: Any, target: Path) -> None:
    """Refuse, for this file, what the output format cannot keep (JPEG: no transparency, no 16 bits)."""
    if target.suffix.lower() in (".jpg", ".jpeg"):
        if photo.alpha is not None or photo.valid is not None:
            raise InputError("has transparent or nodata areas, which JPEG cannot keep; use --format png or tiff")
        if photo.bits == 16:
            raise InputError("is 16-bit, which JPEG cannot keep; use --format png or tiff")


def failure_reason(exc: BaseException) -> str:
    """One line for the summary: an :class:`InputError`'s own words, else the error's class and message."""
    if isinstance(exc, InputError):
        return str(exc)
    return f"{exc.__class__.__name__}: {str(exc)[:300]}"


# Errors that fail one file and let the archive go on (e.g. a disk error or out of memory on one huge scan).
FILE_ERRORS = (InputError, OSError, RuntimeError, ValueError)


def colorize_file(colorizer: Any, src: Path, target: Path, options: ArchiveOptions,
                  tiles_bar: Callable[[int], None] | None = None) -> FileResult:
    """Colorize one photo into ``target``; ``tiles_bar(n)`` is called with its tile count once it is read."""
    started, tiles_before = time.perf_counter(), colorizer.tiles_done
    try:
        photo = read_photo(src, max_pixels=options.max_pixels)
        if tiles_bar is not None:
            tiles_bar(colorizer.count_tiles(photo.gray.shape[1], photo.gray.shape[0]))
        check_output_format(photo, target)
        photo = for_output(photo, src, target, options.format)
        samples = colorizer(photo.gray, bits=photo.bits)
        write_photo(samples, photo, target)
        copy_sidecars(src, target)
    except FILE_ERRORS as exc:
        return FileResult(str(src), str(target), "failed", failure_reason(exc), time.perf_counter() - started)
    return FileResult(str(src), str(target), "done", "", time.perf_counter() - started,
                      colorizer.tiles_done - tiles_before, int(photo.gray.size), 1)


def plan_archive(inputs: list[str], options: ArchiveOptions, *, model: str) -> tuple[list[tuple[Path, Path]], Summary]:
    """The photos still to colorize, as (input, output), and a summary that already lists the finished ones
    (skipped). Removes the temporary files of an earlier run that was killed mid-write."""
    if options.format not in FORMATS:
        raise UsageError(f"--format {options.format!r}: use one of {', '.join(FORMATS)}")
    jobs = plan_outputs(discover(inputs, options.out_dir), options)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(options.out_dir)
    summary = Summary(model=model, out_dir=str(options.out_dir))
    todo = []
    for src, target in jobs:
        if target.exists() and not options.overwrite:
            summary.files.append(FileResult(str(src), str(target), "skipped", "already colorized"))
        else:
            todo.append((src, target))
    summary.order = [str(src) for src, _ in jobs]
    return todo, summary


def _in_input_order(summary: Summary) -> None:
    position = {src: i for i, src in enumerate(summary.order)}
    summary.files.sort(key=lambda f: position.get(f.input, len(position)))


def write_summary(summary: Summary, options: ArchiveOptions) -> Path:
    """``colorize-summary.json`` in the output folder, files in input order; written atomically."""
    _in_input_order(summary)
    path = options.out_dir / SUMMARY
    atomic_write_text(path, json.dumps(summary.to_dict(), indent=2) + "\n")
    return path


def finish_archive(summary: Summary, options: ArchiveOptions) -> Path:
    """The mosaic VRT(s) over every georeferenced output the summary lists (done now or skipped as done before),
    then ``colorize-summary.json``, which records them, or why they could not be written."""
    _in_input_order(summary)  # the mosaic draws later outputs on top: the order the inputs were found
    outputs = [Path(f.output) for f in summary.files if f.status in ("done", "skipped")]
    try:
        mosaics, summary.mosaic_left_out = write_mosaics(options.out_dir, outputs)
        summary.mosaics = [m.to_dict() for m in mosaics]
    except MosaicError as exc:
        summary.mosaic_error = str(exc)
    return write_summary(summary, options)


def colorize_archive(colorizer: Any, inputs: list[str], options: ArchiveOptions, *, model: str) -> Summary:
    """Colorize every photo of ``inputs`` into ``options.out_dir`` in this process; see the module docstring."""
    from tqdm import tqdm

    todo, summary = plan_archive(inputs, options, model=model)
    started, tiles0 = time.perf_counter(), colorizer.tiles_done
    bar = tqdm(todo, unit="img", disable=not options.progress, dynamic_ncols=True)
    tiles = _TileBar(colorizer, enabled=options.progress)
    for src, target in bar:
        bar.set_description(src.name[:40])
        summary.files.append(colorize_file(colorizer, src, target, options, tiles.start))
        tiles.close()
        elapsed = max(time.perf_counter() - started, 1e-9)
        bar.set_postfix({"img/s": f"{summary.count('done') / elapsed:.2f}",
                         "tiles/s": f"{(colorizer.tiles_done - tiles0) / elapsed:.1f}",
                         "failed": summary.count("failed")})
    bar.close()
    finish_archive(summary, options)
    return summary
