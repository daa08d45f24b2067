"""Strict conversion of YAML values to the config fields' type hints (``Literal``, unions, tuples, numbers), with
messages that say what was expected: the type checking behind :func:`aircolor.config.load_config`."""

from __future__ import annotations

import math
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from aircolor.errors import ConfigError

def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if origin in (Union, types.UnionType):
        parts = [_describe(a) for a in get_args(hint) if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in get_args(hint) else "")
    if origin is tuple:
        return f"a list of {_describe(get_args(hint)[0])}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def _coerce(value: Any, hint: Any) -> Any:
    """Return ``value`` converted to ``hint``, or raise ``TypeError``/``ValueError`` if it does not fit."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        args = get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise TypeError
        errors: list[Exception] = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except (TypeError, ValueError) as exc:
                errors.append(exc)
        raise errors[-1] if errors else TypeError
    if origin is Literal:
        if isinstance(value, bool):  # YAML 1.1 reads on/off (and yes/no) as booleans
            word = "on" if value else "off"
            if word in get_args(hint):
                return word
            raise ValueError
        if value in get_args(hint):
            return value
        raise ValueError
    if origin is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(v, get_args(hint)[0]) for v in value)
        raise TypeError
    if value is None or isinstance(value, (dict, list)):
        raise TypeError
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise TypeError
        return value
    if hint is float:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, (int, float)):
            out = float(value)
        elif isinstance(value, str):  # PyYAML reads "1e-4" (no dot) as a string
            out = float(value)
        else:
            raise TypeError
        if not math.isfinite(out):
            raise ValueError
        return out
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise TypeError
    raise TypeError(f"unsupported config type {hint}")


def _check_bounds(key: str, value: Any, meta: typing.Mapping[str, Any], where: str) -> None:
    if value is None or isinstance(value, (bool, str, tuple)):
        return
    for name, op, text in (("ge", float.__ge__, ">="), ("le", float.__le__, "<="), ("gt", float.__gt__, ">")):
        bound = meta.get(name)
        if bound is not None and not op(float(value), float(bound)):
            raise ConfigError(f"{where}: {key} must be {text} {bound:g}, got {value!r}; change it and retry")
