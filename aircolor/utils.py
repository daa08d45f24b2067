"""Small helpers shared across the package."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterator


def atomic_write(path: Path, write: Callable[[BinaryIO], object], *, tmp: Path | None = None) -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, flush it to disk, then rename it over ``path``.

    Readers see the old file or the complete new one, never a part; on any error (or Ctrl-C) the temporary file
    is removed. ``tmp`` names the temporary file (it must be in ``path``'s folder and not exist).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tmp is None:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; the file should get the usual permissions
    else:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path`` for writers that want a file name (GDAL, rasterio); renamed over ``path``
    when the block ends without an error, removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_output_file(path: Path, flag: str) -> Path:
    """Check, before any work, that a file can be written at ``path``; raise UsageError naming ``flag`` if not.

    ``path`` may exist as a file (it is replaced atomically) but not as a folder; its nearest existing ancestor
    must be a writable folder (missing folders below it are created when the file is written).
    """
    from aircolor.errors import UsageError

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; give a file name, e.g. {path / 'out'}")
    _check_writable_ancestor(path.parent, f"{flag} {path}")
    return path


def check_output_folder(path: Path, what: str) -> Path:
    """Check, before any work, that ``path`` is (or can be created as) a writable folder; raise UsageError naming
    ``what`` if not. Nothing is created."""
    from aircolor.errors import UsageError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file, not a folder; choose a folder")
    _check_writable_ancestor(path, f"{what} {path}")
    return path


def _check_writable_ancestor(start: Path, label: str) -> None:
    """The nearest existing folder at or above ``start`` must be a writable folder; else UsageError ``label: ...``."""
    from aircolor.errors import UsageError

    ancestor = start
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{label}: {ancestor} is a file, not a folder; choose another path")
    if not os.access(ancestor, os.W_OK | os.X_OK) or not _really_writable(ancestor):
        raise UsageError(f"{label}: folder {ancestor} is not writable; choose another path")


def _really_writable(folder: Path) -> bool:
    """``os.access`` says yes to root everywhere, also on read-only mounts (/proc, ro bind mounts): try it."""
    try:
        fd, name = tempfile.mkstemp(prefix=".aircolor-probe.", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True
