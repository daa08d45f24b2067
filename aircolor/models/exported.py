"""Load an exported generator (``model/generator.pt``, written by :func:`aircolor.training.loop.export_generator`).

The file holds the generator's weights with the run's full resolved config, so it rebuilds without the run
folder: ``model, cfg = load_generator("runs/x/model/generator.pt"); rgb = model.colorize(gray)``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from aircolor.config import RunConfig, config_from_dict
from aircolor.errors import UsageError
from aircolor.models.base import GANModel


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[GANModel, RunConfig]:
    """The model (generator weights loaded, eval mode, on ``device``) and its run config."""
    from aircolor.models.zoo import build_model
    from aircolor.training.checkpoint import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such generator file; pass a run's model/generator.pt")
    try:
        state = load_checkpoint(path)
    except Exception as exc:
        raise UsageError(f"{path}: not a readable aircolor generator ({str(exc).splitlines()[0][:160]})") from exc
    if state.get("kind") != "generator" or "config" not in state or "nets" not in state:
        raise UsageError(f"{path}: not an exported aircolor generator (kind={state.get('kind')!r}); "
                         f"pass a run's model/generator.pt, not a training checkpoint")
    cfg = config_from_dict(state["config"], source=str(path))
    model = build_model(cfg)
    for name, weights in state["nets"].items():
        getattr(model, name).load_state_dict(weights)
    return model.prepare(torch.device(device)).eval(), cfg
