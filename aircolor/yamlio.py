"""YAML the way aircolor reads user files: safe (no Python objects) and strict (a key given twice is an error).

PyYAML's ``safe_load`` keeps the last of two equal keys silently, so ``lr_G: 2e-4`` further down a long config
would override an earlier one without a word. :func:`load_strict` refuses it, naming the key and line.
"""

from __future__ import annotations

from typing import Any

import yaml


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping."""


def _strict_mapping(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue  # an unhashable key: construct_mapping reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
    return loader.construct_mapping(node, deep=True)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def load_strict(text: str) -> Any:
    """Parse ``text`` with :class:`StrictLoader`; raises :class:`yaml.YAMLError` (line in ``problem_mark``)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader


def describe_error(exc: yaml.YAMLError) -> str:
    """``" line N: <problem>"``: where and what, for a one-line message."""
    mark = getattr(exc, "problem_mark", None)
    line = f" line {mark.line + 1}" if mark is not None else ""
    return f"{line}: {getattr(exc, 'problem', None) or exc}"
