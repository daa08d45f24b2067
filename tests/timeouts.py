"""Per-test time limits that end as ordinary, readable failures (a pytest plugin of the suite).

pytest-timeout's signal method raises the timeout inside whatever Python frame runs when SIGALRM lands. On
Python 3.11+ that can be an instruction with no line number (a loop's backward jump, an exception handler's
cleanup), whose traceback entry has ``tb_lineno is None``; pytest then crashed formatting the failure
(``INTERNALERROR ... TypeError: unsupported operand type(s) for -: 'NoneType' and 'int'``) and the session ended
there. :func:`repair_traceback` gives such entries the line of the nearest instruction before them that has one.

A test stuck in C code, where no Python signal handler can run, is ended by a watchdog ``hard_timeout_grace``
seconds after its limit: all threads' stacks on the terminal, then exit 1, instead of waiting for CI's job limit.
"""

from __future__ import annotations

import faulthandler
import os
import types

import pytest

GRACE_INI = "hard_timeout_grace"
_stderr: dict[str, object] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(GRACE_INI, "seconds after a test's timeout before the watchdog dumps every thread's stack and "
                             "exits (for a test stuck where SIGALRM cannot interrupt it)", default="60")


def pytest_configure(config: pytest.Config) -> None:
    # the terminal's stderr, not pytest's capture file (a watchdog dump must reach the CI log)
    _stderr["file"] = os.fdopen(os.dup(2), "w")


def pytest_unconfigure(config: pytest.Config) -> None:
    faulthandler.cancel_dump_traceback_later()
    stream = _stderr.pop("file", None)
    if stream is not None:
        stream.close()


@pytest.hookimpl
def pytest_timeout_set_timer(item: pytest.Item, settings) -> None:
    """Arm the watchdog beside pytest-timeout's own timer (which still runs: this returns None)."""
    grace = float(item.config.getini(GRACE_INI))
    stream = _stderr.get("file")
    if stream is not None and settings.timeout and grace > 0:
        faulthandler.dump_traceback_later(settings.timeout + grace, exit=True, file=stream)


@pytest.hookimpl
def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    faulthandler.cancel_dump_traceback_later()


def _line_before(frame: types.FrameType, lasti: int) -> int:
    """The line of the last instruction at or before byte offset ``lasti`` that has one (else the def line)."""
    positions = list(frame.f_code.co_positions())
    for unit in range(min(lasti // 2, len(positions) - 1), -1, -1):
        if positions[unit][0] is not None:
            return positions[unit][0]
    return frame.f_code.co_firstlineno


def repair_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """``tb`` itself when every entry has a line number; else a copy whose line-less entries got one."""
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    if all(entry.tb_lineno is not None for entry in entries):
        return entries[0] if entries else None
    rebuilt = None
    for entry in reversed(entries):
        line = entry.tb_lineno
        if line is None:
            line = _line_before(entry.tb_frame, entry.tb_lasti)
        rebuilt = types.TracebackType(rebuilt, entry.tb_frame, entry.tb_lasti, line)
    return rebuilt


def repair_exception(exc: BaseException, seen: set[int] | None = None) -> None:
    """:func:`repair_traceback` on ``exc``, its causes, contexts and (for exception groups) members, in place."""
    seen = set() if seen is None else seen
    if id(exc) in seen:
        return
    seen.add(id(exc))
    exc.__traceback__ = repair_traceback(exc.__traceback__)
    linked = [exc.__cause__, exc.__context__, *getattr(exc, "exceptions", ())]
    for other in linked:
        if isinstance(other, BaseException):
            repair_exception(other, seen)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> None:
    """Before pytest builds the report: no traceback entry without a line number (see the module docstring)."""
    if call.excinfo is None:
        return
    exc = call.excinfo.value
    repair_exception(exc)
    tb = repair_traceback(call.excinfo.tb)
    if tb is not call.excinfo.tb:
        call.excinfo = pytest.ExceptionInfo.from_exc_info((type(exc), exc, tb))
