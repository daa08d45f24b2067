"""How ``aircolor data prepare`` splits the color tiles into train / val / test.

Tiles are grouped (``--group-by``: a regex whose match names the group; a tile it does not match is a group of
its own) so that a group's tiles land on one side; ``--holdout`` sends every group with a matching tile to the
test split whole; the other groups are dealt, in a seeded shuffle, to the split furthest below its share.
"""

from __future__ import annotations

import random
import re

from aircolor.errors import UsageError

SPLITS = ("train", "val", "test")


def group_key(rel: str, pattern: re.Pattern[str] | None) -> tuple[str, bool]:
    """The group a tile belongs to: the regex's matched groups joined by "|" (or the whole match).

    ``(rel, False)`` when the pattern does not match: the tile is then a group of its own.
    """
    if pattern is None:
        return rel, True
    match = pattern.search(rel)
    if match is None:
        return rel, False
    parts = [g for g in match.groups() if g is not None]
    return ("|".join(parts) if parts else match.group(0)), True


def assign_splits(groups: dict[str, list[str]], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Map every item to a split; whole groups go to one split, each to the one furthest below its target."""
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    total = sum(len(v) for v in groups.values())
    targets = [f * total for f in fractions]
    counts = [0, 0, 0]
    out: dict[str, str] = {}
    for key in keys:
        deficits = [(targets[i] - counts[i]) if fractions[i] > 0 else float("-inf") for i in range(3)]
        i = max(range(3), key=lambda j: (deficits[j], -j))
        counts[i] += len(groups[key])
        for item in groups[key]:
            out[item] = SPLITS[i]
    return out


def split_tiles(rels: list[str], group_by: str | None, holdout: str | None, fractions: tuple[float, float, float],
                seed: int) -> tuple[dict[str, str], dict[str, str], int]:
    """The split of every tile in ``rels``, the group of every tile, and how many tiles matched no group."""
    pattern = re.compile(group_by) if group_by else None
    groups: dict[str, list[str]] = {}
    groups_of: dict[str, str] = {}
    ungrouped = 0
    for rel in rels:
        key, matched = group_key(rel, pattern)
        ungrouped += not matched
        groups.setdefault(key, []).append(rel)
        groups_of[rel] = key
    held = re.compile(holdout) if holdout else None
    held_out = {k: v for k, v in groups.items() if held is not None and any(held.search(r) for r in v)}
    if held is not None and len(held_out) == len(groups):
        raise UsageError(f"--holdout {holdout!r} matches every tile: nothing is left to train on")
    splits = assign_splits({k: v for k, v in groups.items() if k not in held_out}, fractions, seed)
    splits.update({rel: "test" for members in held_out.values() for rel in members})
    return splits, groups_of, ungrouped
