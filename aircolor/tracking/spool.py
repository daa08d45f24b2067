"""The on-disk spool: tracking records that could not be sent yet, kept so that a crash loses none of them.

One tracker writes ``SPOOL_DIR/<key>.spool.jsonl`` and copies artifacts into ``SPOOL_DIR/<key>.files/<seq>/``.
The file is append-only JSON Lines, every line flushed and fsynced before the call that wrote it returns, so
after a crash it holds every complete record; a torn last line (a crash mid-write) is cut off when read. Lines::

    {"kind": "header", "version": 1, "key": ..., "tracking_uri": ..., "experiment": ..., "artifact_location": ...,
     "run_name": ..., "parent_run_id": ..., "run_id": ... | null, "host": ..., "created": <ms>}
    {"kind": "start", "seq": 1, "start_time": <ms>, "tags": {...}}        create the run (it did not exist yet)
    {"kind": "reopen", "seq": 1, "run_id": ...}                           set a resumed run RUNNING again
    {"kind": "params", "seq": n, "params": {"model.ngf": "64", ...}}
    {"kind": "tags", "seq": n, "tags": {...}}
    {"kind": "metrics", "seq": n, "metrics": [{"key": ..., "value": ..., "timestamp": <ms>, "step": ...}, ...]}
    {"kind": "artifact", "seq": n, "file": "<key>.files/<seq>/<name>", "artifact_path": ... | null}
    {"kind": "end", "seq": n, "status": "FINISHED", "end_time": <ms>}
    {"kind": "run_id", "run_id": ...}       the run was created after the header was written
    {"kind": "ack", "upto": n}              every record with seq <= n has been sent

Records are sent in ``seq`` order and acknowledged after they are sent, so only the first unacknowledged record
can have reached the server already; senders check that one against the server instead of sending it twice.
When everything is sent, the file and its ``.files`` folder are deleted.

The writer holds an exclusive ``flock`` on its file while it lives, so ``aircolor tracking replay`` skips the spool
of a tracker that is still running instead of racing it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPOOL_SUFFIX = ".spool.jsonl"
FILES_SUFFIX = ".files"
VERSION = 1
Record = dict[str, Any]


def spool_paths(spool_dir: Path, key: str) -> tuple[Path, Path]:
    """``(<key>.spool.jsonl, <key>.files)`` inside ``spool_dir``."""
    return spool_dir / f"{key}{SPOOL_SUFFIX}", spool_dir / f"{key}{FILES_SUFFIX}"


def _fsync_dir(path: Path) -> None:
    """Make a new directory entry durable (the file's own fsync does not cover its name)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def dump_line(record: Record) -> bytes:
    # NaN/inf metric values stay readable by Python's json (this file is only read by us).
    return (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


class SpoolWriter:
    """Appends records to one spool file under an exclusive lock; every append is durable when it returns."""

    def __init__(self, spool_dir: Path, key: str, header: Record) -> None:
        self.dir = Path(spool_dir)
        self.path, self.files_dir = spool_paths(self.dir, key)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            raise
        if os.fstat(self._fd).st_size == 0:
            self.append({"kind": "header", "version": VERSION, **header})
            _fsync_dir(self.dir)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def append(self, record: Record) -> None:
        os.write(self._fd, dump_line(record))
        os.fsync(self._fd)

    def copy_in(self, seq: int, source: Path) -> str:
        """Copy a file or folder into ``<key>.files/<seq>/`` (fsynced) and return its path relative to the spool dir.

        The copy is complete before the record that names it is written, so a record never points at half a file.
        """
        target_dir = self.files_dir / str(seq)
        if target_dir.exists():
            shutil.rmtree(target_dir)
        target_dir.mkdir(parents=True)
        target = target_dir / source.name
        if source.is_dir():
            shutil.copytree(source, target)
            files = [p for p in target.rglob("*") if p.is_file()]
        else:
            shutil.copy2(source, target)
            files = [target]
        for path in files:
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(target_dir)
        return target.relative_to(self.dir).as_posix()

    def drop_files(self, records: list[Record]) -> None:
        """Delete the spooled copies of artifacts that have been sent."""
        for rec in records:
            if rec.get("kind") == "artifact":
                shutil.rmtree(self.files_dir / str(rec["seq"]), ignore_errors=True)

    def remove(self) -> None:
        """Everything was sent: delete the file and its copies, then release the lock."""
        if self.closed:
            return
        self.path.unlink(missing_ok=True)
        shutil.rmtree(self.files_dir, ignore_errors=True)
        self.close()

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)  # releases the flock
            self._fd = -1


@dataclass
class SpoolState:
    """What a spool file says: its header, the run id, and the records not acknowledged yet (in order)."""

    path: Path
    header: Record
    run_id: str | None
    acked: int
    pending: list[Record] = field(default_factory=list)

    @property
    def files_dir(self) -> Path:
        return self.path.with_name(self.path.name[: -len(SPOOL_SUFFIX)] + FILES_SUFFIX)


class SpoolError(Exception):
    """A spool file that cannot be understood (not written by this module, or a newer version)."""


def parse_spool(path: Path, data: bytes) -> SpoolState:
    """Read a spool file's bytes. A torn last line (no newline) is ignored: its write never completed."""
    lines = data.split(b"\n")
    complete = lines[:-1]  # the part after the last newline is empty or a torn write
    header: Record | None = None
    run_id: str | None = None
    acked = 0
    records: list[Record] = []
    for number, raw in enumerate(complete, 1):
        if not raw.strip():
            continue
        rec = _record(path, number, raw)
        kind = rec.get("kind")
        if kind == "header":
            if rec.get("version") != VERSION:
                raise SpoolError(f"{path}: spool version {rec.get('version')!r}, this aircolor reads {VERSION}")
            header = rec
            run_id = rec.get("run_id") or run_id
        elif kind == "run_id":
            run_id = _field(path, number, rec, "run_id", str)
        elif kind == "ack":
            acked = max(acked, _field(path, number, rec, "upto", int))
        elif "seq" in rec:
            _field(path, number, rec, "seq", int)
            records.append(rec)
        else:
            raise SpoolError(f"{path} line {number}: unknown record kind {kind!r}")
    if header is None:
        raise SpoolError(f"{path}: no header line; not an aircolor tracking spool")
    if not isinstance(header.get("tracking_uri"), str):
        raise SpoolError(f"{path}: its header names no tracking URI; not an aircolor tracking spool")
    pending = sorted((r for r in records if r["seq"] > acked), key=lambda r: r["seq"])
    return SpoolState(path=path, header=header, run_id=run_id, acked=acked, pending=pending)


def _record(path: Path, number: int, raw: bytes) -> Record:
    """One line of a spool as a JSON object, or a SpoolError naming the line."""
    try:
        rec = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SpoolError(f"{path} line {number}: not JSON ({exc.msg})") from None
    except ValueError:  # bytes that are not UTF-8 text
        raise SpoolError(f"{path} line {number}: not text (a binary file?)") from None
    if not isinstance(rec, dict):
        raise SpoolError(f"{path} line {number}: a JSON {type(rec).__name__}, not a record")
    return rec


def _field(path: Path, number: int, rec: Record, name: str, kind: type) -> Any:
    value = rec.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SpoolError(f"{path} line {number}: {rec.get('kind')!r} record has no {kind.__name__} {name!r}")
    return value


def find_spools(spool_dir: Path) -> list[Path]:
    """Every spool file under ``spool_dir`` (recursively, so a sweep's output folder works), oldest first."""
    if spool_dir.is_file():
        return [spool_dir]
    found = [p for p in spool_dir.rglob(f"*{SPOOL_SUFFIX}") if p.is_file()]
    return sorted(found, key=lambda p: (p.stat().st_mtime, str(p)))
