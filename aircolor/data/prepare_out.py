"""The output folder of ``aircolor data prepare``: whether it is already up to date, and replacing it safely.

OUT_DIR is built in a staging folder next to it (``.OUT.staging-<pid>-<id>``) and renamed into place; an
earlier OUT_DIR is moved aside (``.OUT.old-<id>``) for the instant between the two renames, so a kill at any
point leaves either the old or the new OUT_DIR whole.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path


def is_up_to_date(out_dir: Path, fp: str) -> bool:
    """True if OUT_DIR was built from the same fingerprint and every file it lists is still there, intact."""
    try:
        summary = json.loads((out_dir / "summary.json").read_text())
        if summary.get("fingerprint") != fp:
            return False
        import pyarrow.parquet as pq

        table = pq.read_table(out_dir / "manifest.parquet", columns=["path", "bytes", "status"]).to_pylist()
    except (OSError, ValueError, KeyError):
        return False
    for row in table:
        if row["status"] == "ok":
            path = out_dir / row["path"]
            if not path.is_file() or path.stat().st_size != row["bytes"]:
                return False
    return True


def clean_stale_staging(out_dir: Path) -> None:
    """Tidy up after an earlier run that was killed.

    Staging folders whose process is gone are removed. A ``.OUT.old-*`` folder is the previous OUT_DIR, moved
    aside just before the new one was renamed in: if the kill came between the two renames OUT_DIR is
    missing, and the old one is put back; otherwise it is deleted.
    """
    for stale in out_dir.parent.glob(f".{out_dir.name}.staging-*"):
        try:
            pid = int(stale.name.rsplit("-", 2)[-2])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue
    for old in sorted(out_dir.parent.glob(f".{out_dir.name}.old-*")):
        if not out_dir.exists():
            os.rename(old, out_dir)
        else:
            shutil.rmtree(old, ignore_errors=True)


def swap_into_place(staging: Path, out_dir: Path) -> None:
    if out_dir.exists():
        trash = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out_dir, trash)
        os.rename(staging, out_dir)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(staging, out_dir)


def make_parents(out_dir: Path) -> list[Path]:
    """Create OUT_DIR's missing parent folders; return those created, deepest first (for :func:`remove_empty`)."""
    missing = [p for p in out_dir.parents if not p.exists()]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Undo :func:`make_parents` after a failed run: remove the folders it created, if still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


# What ``aircolor data prepare`` writes at the top of OUT_DIR (and, in the folders, the files its manifest lists):
# nothing else is ever replaced by ``--force``.
OWN_FOLDERS = frozenset({"aligned", "unaligned", "historical"})
OWN_FILES = frozenset({"manifest.parquet", "summary.json"})


def _listed_paths(out_dir: Path) -> set[str] | None:
    """The files a dataset that aircolor prepared lists in its manifest; None if OUT_DIR is not such a dataset
    (no summary.json with the inputs' fingerprint, or no readable manifest.parquet)."""
    try:
        summary = json.loads((out_dir / "summary.json").read_text())
        if not isinstance(summary, dict) or "fingerprint" not in summary:
            return None
        import pyarrow.parquet as pq

        return {row["path"] for row in pq.read_table(out_dir / "manifest.parquet", columns=["path"]).to_pylist()}
    except (OSError, ValueError, KeyError):  # missing, not parquet (ArrowInvalid), no such column: not ours
        return None


def foreign_entries(out_dir: Path, listed: set[str]) -> list[str]:
    """What a prepared dataset in ``out_dir`` holds that aircolor did not write: entries at the top other than
    its own, files its manifest does not list, links anywhere (relative paths, sorted)."""
    foreign = []
    for top in sorted(out_dir.iterdir()):
        if top.is_symlink():
            foreign.append(top.name)
        elif top.name in OWN_FOLDERS and top.is_dir():
            for path in sorted(top.rglob("*")):
                rel = path.relative_to(out_dir).as_posix()
                if path.is_symlink() or (not path.is_dir() and rel not in listed):
                    foreign.append(rel)
        elif not (top.name in OWN_FILES and top.is_file()):
            foreign.append(top.name)
    return foreign


def is_prepared_dataset(out_dir: Path) -> bool:
    """True for a folder that ``aircolor data prepare`` wrote: its summary.json (with the inputs' fingerprint)
    and manifest.parquet are there, and nothing else that it would not have written."""
    listed = _listed_paths(out_dir)
    return listed is not None and not foreign_entries(out_dir, listed)


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def check_out_dir(out_dir: Path) -> None:
    """Refuse, before any work, an OUT_DIR that ``--force`` must not replace or that cannot be written.

    Allowed: a new folder, an empty one, or a dataset that aircolor prepared. Anything else (a file, a folder
    with other content) is the user's and is never replaced; nor is a folder whose parent cannot be written.
    """
    from aircolor.errors import UsageError
    from aircolor.utils import check_output_folder

    never = "aircolor will not replace it (not even with --force)"
    if out_dir.is_symlink():
        raise UsageError(f"OUT_DIR {out_dir} is a symbolic link; {never}: choose a new or empty folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"OUT_DIR {out_dir} is a file, not a folder; {never}: choose a new or empty folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        listed = _listed_paths(out_dir)
        if listed is None:
            entries = sorted(p.name for p in out_dir.iterdir())
            raise UsageError(f"OUT_DIR {out_dir} holds {_entries(len(entries))} that aircolor did not write (e.g. "
                             f"{entries[0]!r}): it is not a prepared dataset, so {never}; choose a new or empty "
                             "folder")
        foreign = foreign_entries(out_dir, listed)
        if foreign:
            raise UsageError(f"OUT_DIR {out_dir} is a dataset that aircolor prepared, but it also holds "
                             f"{_entries(len(foreign))} that aircolor did not write (e.g. {foreign[0]!r}); {never}: "
                             "move them out, or choose a new or empty folder")
    check_output_folder(out_dir.parent, "OUT_DIR's parent folder")  # the staging folder is built there
