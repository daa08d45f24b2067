"""Equal-budget comparisons: the last epoch every run reached, and each run's value there."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def last_common_budget(history: pd.DataFrame, run_ids: Iterable[str], key: str) -> int | float | None:
    """The largest epoch at which every run in ``run_ids`` has a (non-NaN) value of ``key``, or None.

    Early-stopped trials end at different epochs; comparing them at this epoch compares equal training budgets.
    Returns an int when the epoch is integral (always so for ``val.*`` keys), else the float epoch.
    """
    ids = list(dict.fromkeys(run_ids))
    if not ids:
        return None
    rows = history[(history["key"] == key) & history["run_id"].isin(ids) & history["value"].notna()]
    common: set[float] | None = None
    for run_id in ids:
        epochs = set(rows.loc[rows["run_id"] == run_id, "epoch"].astype(float))
        common = epochs if common is None else common & epochs
        if not common:
            return None
    best = max(common)
    return int(best) if best.is_integer() else best


def values_at_epoch(history: pd.DataFrame, key: str, epoch: float, *,
                    run_ids: Iterable[str] | None = None) -> pd.Series:
    """Each run's value of ``key`` at ``epoch`` (the last-logged one if repeated), indexed by ``run_id``.

    Runs with no value there are absent; restrict to ``run_ids`` when given.
    """
    rows = history[(history["key"] == key) & (history["epoch"].astype(float) == float(epoch))]
    if run_ids is not None:
        rows = rows[rows["run_id"].isin(list(run_ids))]
    values = rows.sort_values("step", kind="stable").groupby("run_id", sort=True)["value"].last()
    return values.astype(float).rename(key)
