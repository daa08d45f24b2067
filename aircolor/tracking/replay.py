"""``aircolor tracking replay``: send spooled tracking records that a run could not deliver, exactly once.

Each spool file is locked while it is replayed (a tracker that is still running holds its own lock, so its spool is
skipped), its records are sent in order and acknowledged one by one in the file, and the file is deleted when all
are sent. A second replay, or one after a crash halfway, sends nothing twice: acknowledged records are skipped and
the first unacknowledged one is checked against the server before it is sent.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aircolor.errors import UsageError
from aircolor.tracking.sender import RunSender, error_line, is_run_missing, is_transient, short_http
from aircolor.tracking.spool import SpoolError, SpoolState, dump_line, find_spools, parse_spool
from aircolor.tracking.reach import open_for_reading
from aircolor.tracking.uri import redact_uri, validate_tracking_uri


@dataclass
class ReplayResult:
    """What a replay did. ``kept``: spool files left for a later replay, with the reason."""

    spools: int = 0
    completed: list[Path] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    records: Counter[str] = field(default_factory=Counter)  # records sent, by kind
    items: Counter[str] = field(default_factory=Counter)  # params, tags, metric points, artifacts sent, by kind
    in_use: list[Path] = field(default_factory=list)
    kept: dict[Path, str] = field(default_factory=dict)
    unreadable: list[Path] = field(default_factory=list)  # kept because they are not spools aircolor can read

    @property
    def ok(self) -> bool:
        """True when every spool found was sent completely."""
        return not self.kept and not self.in_use

    @property
    def sent(self) -> int:
        return sum(self.records.values())

    def format(self) -> str:
        if not self.spools:
            return "nothing to replay: no *.spool.jsonl files found"
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.items.items())) or "nothing new"
        head = (f"{self.spools} spool file(s): {len(self.completed)} sent completely and deleted; "
                f"{self.sent} record(s) sent ({kinds}) to {len(self.runs)} run(s)")
        lines = [head]
        lines += [f"  in use by a running tracker, skipped: {p}" for p in self.in_use]
        lines += [f"  kept for a later replay: {p}: {why}" for p, why in self.kept.items()]
        return "\n".join(lines)


def replay(spool_dir: str | os.PathLike[str], tracking_uri: str | None = None, *, http_timeout_s: int = 60,
           http_retries: int = 2) -> ReplayResult:
    """Send every spool under ``spool_dir`` (a folder, searched recursively, or one spool file).

    ``tracking_uri``: send there instead of the URI each spool recorded (e.g. the server moved).
    """
    root = Path(spool_dir)
    if not root.exists():
        raise UsageError(f"spool folder {root} does not exist; pass the spool_dir the run was given "
                         "(the warning at the end of the run names it)")
    uri = validate_tracking_uri(tracking_uri, "--tracking-uri") if tracking_uri else None
    result = ReplayResult()
    with short_http.apply(http_timeout_s, http_retries):
        for path in find_spools(root):
            result.spools += 1
            _replay_file(path, uri, result)
    if result.spools and len(result.unreadable) == result.spools:  # nothing there is a spool: the user's mistake
        more = f" (and {result.spools - 1} more file(s) like it)" if result.spools > 1 else ""
        raise UsageError(f"{result.kept[result.unreadable[0]]}{more}; pass a spool folder or *.spool.jsonl file "
                         "that aircolor wrote")
    return result


def _replay_file(path: Path, uri: str | None, result: ReplayResult) -> None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
    except FileNotFoundError:  # its tracker sent everything meanwhile
        result.spools -= 1
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            result.in_use.append(path)
            return
        if os.fstat(fd).st_nlink == 0:  # deleted by its tracker between open and lock: all sent
            result.spools -= 1
            return
        data = _read_whole(fd)
        try:
            state = parse_spool(path, data)
        except SpoolError as exc:
            result.kept[path] = str(exc)
            result.unreadable.append(path)
            return
        _cut_torn_line(fd, data)
        _send_pending(fd, state, uri, result)
    finally:
        os.close(fd)


def _read_whole(fd: int) -> bytes:
    chunks = []
    while chunk := os.pread(fd, 1 << 20, sum(len(c) for c in chunks)):
        chunks.append(chunk)
    return b"".join(chunks)


def _cut_torn_line(fd: int, data: bytes) -> None:
    """Cut off a torn last line (a crash mid-append) so that our appends start a line; only ever done to a spool
    that parsed, never to a file that is not one."""
    end = data.rfind(b"\n") + 1
    if end < len(data):
        os.ftruncate(fd, end)


def _send_pending(fd: int, state: SpoolState, uri: str | None, result: ReplayResult) -> None:
    from mlflow import MlflowClient

    target = uri or state.header["tracking_uri"]
    if urllib.parse.urlparse(target).scheme.lower() in ("http", "https"):
        try:
            open_for_reading(target, what="tracking server")  # a silent server: kept in seconds, not minutes
        except UsageError as exc:
            result.kept[state.path] = str(exc)
            return
    sender = RunSender(MlflowClient(target), state.header, state.run_id, state.path.parent)
    for index, rec in enumerate(state.pending):
        try:
            count = sender.send(rec, check_existing=index == 0)
        except Exception as exc:
            # Nothing is acknowledged that the server did not take: the spool stays, from this record on.
            if is_run_missing(exc):
                result.kept[state.path] = (f"run {sender.run_id} does not exist at {redact_uri(target)}; replay "
                                           "with --tracking-uri set to the server it was logged to")
            elif is_transient(exc) or isinstance(exc, UsageError):
                result.kept[state.path] = f"{redact_uri(target)}: {error_line(exc)}"
            else:
                result.kept[state.path] = (f"record {rec['seq']} ({rec['kind']}) not taken by {redact_uri(target)}: "
                                           f"{error_line(exc)}")
            break
        result.records[rec["kind"]] += 1
        result.items[_item_name(rec["kind"])] += count
        if rec["kind"] == "start":
            os.write(fd, dump_line({"kind": "run_id", "run_id": sender.run_id}))
        os.write(fd, dump_line({"kind": "ack", "upto": rec["seq"]}))
        os.fsync(fd)
        if rec["kind"] == "artifact":
            shutil.rmtree(state.files_dir / str(rec["seq"]), ignore_errors=True)
        if sender.run_id and sender.run_id not in result.runs:
            result.runs.append(sender.run_id)
    else:
        _drop_duplicates(sender)  # the tracker's own tries may have made its run twice too
        state.path.unlink(missing_ok=True)
        shutil.rmtree(state.files_dir, ignore_errors=True)
        result.completed.append(state.path)


def _drop_duplicates(sender: RunSender) -> None:
    try:
        sender.drop_duplicates()  # runs a lost answer made twice: empty, and only now surely committed
    except Exception:  # cosmetic: every record is in the run that counts
        pass


def _item_name(kind: str) -> str:
    return {"metrics": "metric points", "artifact": "artifacts", "start": "runs created", "reopen": "runs reopened",
            "end": "runs ended"}.get(kind, kind)
