"""Load an exported generator (``model/generator.pt``, written by :func:`aircolor.training.loop.export_generator`).

The file holds the generator's weights with the run's full resolved config, so it rebuilds without the run
folder: ``model, cfg = load_generator("runs/x/model/generator.pt"); rgb = model.colorize(gray)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    except (ValueError, OSError) as exc:
        raise UsageError(f"{path}: not an aircolor generator (the file {exc}); pass a run's "
                         f"model/generator.pt") from None
    if state.get("kind") != "generator" or "config" not in state or "nets" not in state:
        raise UsageError(f"{path}: not an exported aircolor generator (kind={state.get('kind')!r}); "
                         f"pass a run's model/generator.pt, not a training checkpoint")
    cfg = config_from_dict(state["config"], source=str(path))
    model = build_model(cfg)
    load_nets(model, state["nets"], path)
    return model.prepare(torch.device(device)).eval(), cfg


def load_nets(model: GANModel, nets: dict[str, Any], path: Path) -> None:
    """Load an exported generator's per-network weights (``{"netG": state_dict}``) into ``model``."""
    for name, weights in nets.items():
        net = getattr(model, name, None)
        if not isinstance(net, torch.nn.Module) or not isinstance(weights, dict):
            raise UsageError(f"{path}: has weights for a network {name!r} that its config's model does not have")
        load_weights(net, weights, path, name)


def load_weights(module: torch.nn.Module, weights: dict[str, Any], path: Path, what: str) -> None:
    """``module.load_state_dict(weights)``, refusing non-finite weights and names or shapes that do not fit the
    model the file's own config builds, with one line naming the file."""
    bad = [k for k, v in weights.items() if torch.is_tensor(v) and v.is_floating_point()
           and not bool(torch.isfinite(v).all())]
    if bad:
        raise UsageError(f"{path}: {what}'s weights hold NaN or Inf values ({len(bad)} tensor(s), e.g. {bad[0]}), "
                         f"so every output would be garbage; use an earlier checkpoint of the run")
    try:
        module.load_state_dict(weights)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:240]
        raise UsageError(f"{path}: {what}'s weights do not fit the model its config builds ({detail})") from None



def generator_payload(model: GANModel, cfg: RunConfig) -> dict[str, Any]:
    """The loaded generator as plain data (config + CPU weights), for processes that rebuild it with
    :func:`generator_from_payload` (``aircolor colorize --ray`` ships it to its workers through the object store)."""
    from aircolor.config import config_to_dict

    nets = {name: {k: v.detach().cpu() for k, v in net.state_dict().items()}
            for name, net in model.named_children() if name in ("G", "G_A")}
    return {"config": config_to_dict(cfg), "nets": nets}


def generator_from_payload(payload: dict[str, Any], device: str | torch.device = "cpu") -> tuple[GANModel, RunConfig]:
    """The model of :func:`generator_payload`, rebuilt with the same weights, in eval mode on ``device``."""
    from aircolor.models.zoo import build_model

    cfg = config_from_dict(payload["config"], source="the driver's model")
    model = build_model(cfg)
    for name, weights in payload["nets"].items():
        getattr(model, name).load_state_dict(weights)
    return model.prepare(torch.device(device)).eval(), cfg
