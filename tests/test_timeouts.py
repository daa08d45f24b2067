"""The suite's time limits (tests/timeouts.py): a test past its limit is an ordinary failure with a readable
report, whatever Python was running when the limit struck, and a test stuck in C code ends the run with the
stacks instead of hanging until CI's job limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = str(Path(__file__).parent)

INI = """
[pytest]
timeout = {timeout}
hard_timeout_grace = {grace}
"""

LINELESS = '''
import sys, types

def _loop(grab=False):
    if grab:
        return sys._getframe()
    for _ in iter(int, 1):
        with grab:
            pass

def _backward_jump_without_a_line():
    """Byte offset of the loop's backward jump, an instruction that carries no line number."""
    import dis
    positions = list(_loop.__code__.co_positions())
    return [i.offset for i in dis.get_instructions(_loop)
            if i.opname.startswith("JUMP_BACKWARD") and positions[i.offset // 2][0] is None][-1]

def test_interrupted_on_an_instruction_without_a_line():
    """What SIGALRM landing on that jump leaves behind: a traceback entry whose tb_lineno is None."""
    try:
        raise TimeoutError("Timeout (>1.0s) from pytest-timeout.")
    except TimeoutError as exc:
        tb = types.TracebackType(None, _loop(grab=True), _backward_jump_without_a_line(), -1)
        assert tb.tb_lineno is None
        raise exc.with_traceback(types.TracebackType(tb, sys._getframe(), exc.__traceback__.tb_lasti,
                                                     exc.__traceback__.tb_lineno))
'''


def _run(pytester: pytest.Pytester, *args: str, timeout: float = 1, grace: float = 60, subprocess: bool = False):
    """An inner pytest run with this suite's plugin (in this process, or in a new one where it may exit)."""
    pytester.makeini(INI.format(timeout=timeout, grace=grace))
    if subprocess:  # the plugin is found on PYTHONPATH (the test sets it)
        return pytester.runpytest_subprocess("-p", "timeouts", *args, timeout=120)
    return pytester.runpytest("-p", "timeouts", *args)


def test_a_hanging_test_fails_with_a_readable_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_hang="""
        import time

        def test_hangs_in_python():
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                sum(range(1000))

        def test_after_it():
            pass
    """)
    result = _run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*Timeout (>1.0s) from pytest-timeout*", "*FAILED test_hang.py::test_hangs_in_python*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_traceback_entry_without_a_line_number_is_reported_not_an_internal_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lineless=LINELESS)
    result = _run(pytester, "-p", "no:timeouts")  # without the repair: the crash this plugin exists for
    assert "INTERNALERROR" in result.stdout.str() + result.stderr.str() and "'NoneType' and 'int'" in \
        result.stdout.str() + result.stderr.str()
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*TimeoutError: Timeout (>1.0s) from pytest-timeout.", "test_lineless.py:7: TimeoutError"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_test_stuck_where_no_signal_reaches_it_ends_the_run_with_its_stack(pytester: pytest.Pytester,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGALRM blocked, as in C code that never returns to Python: the watchdog dumps the stacks and exits."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    pytester.makepyfile(test_stuck="""
        import signal, time

        def test_stuck_in_c():
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(60)
    """)
    result = _run(pytester, "-s", timeout=1, grace=2, subprocess=True)
    assert result.ret == 1, result.stdout.str() + result.stderr.str()
    err = result.stderr.str()
    assert "Timeout (0:00:03)!" in err and "test_stuck_in_c" in err, err
    assert result.duration < 30
