"""Training diagnostics from the loss history: per-epoch loss means and the "D overpowering G" flag."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

GAN_MODES = ("vanilla", "lsgan", "wgangp")   # mirrors aircolor.losses.gan.GAN_MODES (not imported: it pulls torch)


def _loss_key(key: str) -> str:
    return key if key.startswith("loss.") else f"loss.{key}"


def loss_epoch_means(history: pd.DataFrame, run_id: str, keys: Iterable[str]) -> pd.DataFrame:
    """Per-epoch means of a run's ``loss.<k>`` values (``k`` given with or without the ``loss.`` prefix).

    Index: 0-based epoch bin (epoch values in (e - 1, e] go to bin e - 1); one column per key, named as given.
    Epochs missing any of the keys are dropped, so the frame is empty when a key was never logged.
    """
    names = list(dict.fromkeys(keys))
    full = {_loss_key(k): k for k in names}
    rows = history[(history["run_id"] == run_id) & history["key"].isin(list(full))]
    # An iteration of epoch e (1-based) sits at an epoch value in (e - 1, e] (analysis.runs.epochs_of_iterations: the
    # loss logged at the last iteration of epoch e is at exactly e), so bin e - 1 holds (e - 1, e].
    bins = (np.ceil(rows["epoch"].astype(float)) - 1).clip(lower=0).astype(int).rename("epoch_bin")
    table = rows.groupby([bins, rows["key"]])["value"].mean().unstack("key")
    return table.reindex(columns=list(full)).rename(columns=full).dropna()


def d_overpowering_g(history: pd.DataFrame, run_id: str, *, d_keys: Sequence[str], g_keys: Sequence[str],
                     gan_mode: str = "vanilla", collapse: float = 0.25, climb: float = 1.5,
                     min_epochs: int = 3) -> dict:
    """Flag a run whose discriminator overpowered its generator for good (vanishing-gradient failure).

    Rule: per epoch (0-based bins of width 1 over ``epoch``) average each ``loss.<k>``; D = sum of the ``d_keys``
    means, G = sum of the ``g_keys`` (adversarial) means; the first epoch is the reference. Flagged when, from some
    epoch to the last one, every epoch has ``D <= collapse * D_ref`` and ``G >= climb * G_ref``, the stretch is at
    least 2 epochs long and the run has >= ``min_epochs`` epochs. A dip the run recovers from is not flagged.

    Returns ``{"flag": bool, "began_epoch": 1-based epoch where the stretch starts or None, "reason": str}``.
    WGAN-GP critic losses are unbounded and signed, so ratios to the first epoch mean nothing there.
    """
    if gan_mode not in GAN_MODES:
        raise ValueError(f"unknown gan_mode {gan_mode!r}; valid: {', '.join(GAN_MODES)}")
    if gan_mode == "wgangp":
        return {"flag": False, "began_epoch": None, "reason": "not applicable to WGAN-GP (critic losses are unbounded)"}
    if not d_keys or not g_keys:
        return {"flag": False, "began_epoch": None, "reason": "missing loss keys: no D or no G loss keys given"}
    keys = list(dict.fromkeys([*d_keys, *g_keys]))
    logged = set(history.loc[history["run_id"] == run_id, "key"])
    missing = [k for k in keys if _loss_key(k) not in logged]
    if missing:
        return {"flag": False, "began_epoch": None,
                "reason": f"missing loss keys for run {run_id}: {', '.join(_loss_key(k) for k in missing)}"}
    table = loss_epoch_means(history, run_id, keys)
    if len(table) < max(min_epochs, 2):
        return {"flag": False, "began_epoch": None,
                "reason": f"too few epochs ({len(table)}); the check needs >= {max(min_epochs, 2)}"}
    d = table[list(d_keys)].sum(axis=1).to_numpy()
    g = table[list(g_keys)].sum(axis=1).to_numpy()
    if d[0] <= 0 or g[0] <= 0:
        return {"flag": False, "began_epoch": None, "reason": "first-epoch D or G loss is not positive"}
    bad = (d <= collapse * d[0]) & (g >= climb * g[0])
    tail = len(bad) - np.flatnonzero(~bad)[-1] - 1 if (~bad).any() else len(bad)
    if tail < 2:
        return {"flag": False, "began_epoch": None,
                "reason": f"no sustained stretch (>= 2 epochs, to the end) with D <= {collapse:g} x D_ref "
                          f"and G >= {climb:g} x G_ref"}
    start = len(bad) - tail
    began = int(table.index[start]) + 1
    return {"flag": True, "began_epoch": began,
            "reason": f"from epoch {began} to the end, D loss fell to {d[-1]:.3g} (<= {collapse:g} x {d[0]:.3g}) "
                      f"and G loss rose to {g[-1]:.3g} (>= {climb:g} x {g[0]:.3g})"}
