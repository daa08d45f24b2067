"""Errors that the CLI turns into one clear line and exit code 2.

Raise :class:`UsageError` for anything the *user* can fix (a bad path, a bad option, a bad config
value). Its message must say what is wrong, where, and what to do about it, on one line. Everything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: the CLI prints ``aircolor: error: <message>`` and exits with code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration key is unknown, has the wrong type or is out of range."""
