"""Harness of the bad-input corpus (``tests/test_bad_input_*.py``).

Every case runs one ``aircolor`` command the way a user would type it and checks the contract of the CLI:

* the exit code (2 for bad input unless the case says otherwise);
* exactly one line on stderr, ``aircolor...: error: ...``, holding the case's words, and no traceback;
* nothing was created, changed or deleted in the watched folders (the case's working directory and anything
  else it names), except the paths the command owns.

:func:`run_bad` calls :func:`aircolor.cli.main` in this process (fast: no interpreter start, torch imported
once); :func:`run_bad_subprocess` runs the installed ``python -m aircolor`` for cases that need a process of
their own (environment variables read at import, hangs guarded by a timeout, signals).
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

Snapshot = dict[str, tuple[str, int, str]]


def snapshot(*roots: Path) -> Snapshot:
    """Every entry under ``roots``: kind, permission bits and (for files) a content hash; symlinks not followed."""
    seen: Snapshot = {}
    for root in roots:
        root = Path(root)
        if not root.exists() and not root.is_symlink():
            seen[str(root)] = ("missing", 0, "")
            continue
        for path in [root, *sorted(root.rglob("*"))] if root.is_dir() and not root.is_symlink() else [root]:
            seen[str(path)] = _entry(path)
    return seen


def _entry(path: Path) -> tuple[str, int, str]:
    st = path.lstat()
    if path.is_symlink():
        return ("link", 0, os.readlink(path))
    if path.is_dir():
        return ("dir", st.st_mode & 0o7777, "")
    if not stat.S_ISREG(st.st_mode):  # a FIFO, socket or device: opening it could block, so never read it
        return ("special", st.st_mode & 0o7777, str(stat.S_IFMT(st.st_mode)))
    try:
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError:  # unreadable (e.g. chmod 000 by the case itself): compare size and mtime only
        digest = f"{st.st_size}:{st.st_mtime_ns}"
    return ("file", st.st_mode & 0o7777, digest)


def diff(before: Snapshot, after: Snapshot, owned: Iterable[Path] = ()) -> list[str]:
    """What changed between two snapshots, leaving out paths at or under ``owned``."""
    owned_prefixes = [str(Path(p)) for p in owned]

    def is_owned(name: str) -> bool:
        return any(name == p or name.startswith(p + os.sep) for p in owned_prefixes)

    changes = []
    for name in sorted(set(before) | set(after)):
        if is_owned(name) or before.get(name) == after.get(name):
            continue
        if name not in before or before[name][0] == "missing":
            changes.append(f"created {name}")
        elif name not in after or after[name][0] == "missing":
            changes.append(f"deleted {name}")
        else:
            changes.append(f"changed {name}")
    return changes


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def check(outcome: Outcome, *, code: int = 2, words: Sequence[str] = (), allow_stdout: bool = False) -> str:
    """Assert the one-line-error contract on ``outcome``; return the error line."""
    err_lines = [line for line in outcome.err.splitlines() if line.strip()]
    assert "Traceback" not in outcome.err, outcome.err
    assert outcome.code == code, f"exit {outcome.code}, wanted {code}; stderr: {outcome.err!r}"
    assert len(err_lines) == 1, f"wanted one line on stderr, got {len(err_lines)}: {outcome.err!r}"
    line = err_lines[0]
    assert line.startswith("aircolor") and "error:" in line, line
    for word in words:
        assert word.lower() in line.lower(), f"{word!r} not in {line!r}"
    if not allow_stdout:
        assert not outcome.out.strip() or "Traceback" not in outcome.out, outcome.out
    return line


def invoke(capsys, argv: Sequence[str]) -> Outcome:
    """``aircolor ARGV`` in this process, stdout/stderr captured by pytest's ``capsys``."""
    from aircolor.cli import main

    capsys.readouterr()
    saved_env = dict(os.environ)  # commands may set process-wide knobs (MLflow timeouts): keep cases apart
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    out, err = capsys.readouterr()
    return Outcome(code, out, err)


def run_bad(capsys, argv: Sequence[str], *, watch: Sequence[Path], owned: Sequence[Path] = (), code: int = 2,
            words: Sequence[str] = ()) -> str:
    """Run ``aircolor ARGV`` in-process and assert the whole contract; return the error line.

    ``watch``: folders (or files) that must be left exactly as they were, apart from ``owned`` paths.
    """
    before = snapshot(*watch)
    outcome = invoke(capsys, argv)
    line = check(outcome, code=code, words=words)
    changes = diff(before, snapshot(*watch), owned)
    assert not changes, f"{' '.join(map(str, argv))}: {changes}"
    return line


def run_bad_subprocess(argv: Sequence[str], *, watch: Sequence[Path], cwd: Path, owned: Sequence[Path] = (),
                       code: int = 2, words: Sequence[str] = (), env: dict[str, str] | None = None,
                       timeout: float = 120) -> str:
    """Like :func:`run_bad`, in a fresh ``python -m aircolor`` process (``env`` overrides the environment)."""
    before = snapshot(*watch)
    full_env = {**os.environ, **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    proc = subprocess.run([sys.executable, "-m", "aircolor", *map(str, argv)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    line = check(Outcome(proc.returncode, proc.stdout, proc.stderr), code=code, words=words)
    changes = diff(before, snapshot(*watch), owned)
    assert not changes, f"{' '.join(map(str, argv))}: {changes}"
    return line
