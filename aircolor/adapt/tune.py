"""Fine-tune a Lab generator on one place's tiles within a time budget, keeping the state that scores best on the
place's validation blocks (the unadapted start included: tuning can only help on validation).

The loss is the L1 of a*b* (the default model's objective without its 1e-4 adversarial nudge: no discriminator,
so a step costs half as much); batches are random flips and quarter turns of the training tiles (aerial views have
no up). BatchNorm layers keep their running statistics when the model is scored in eval mode, as it is used.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from aircolor.colorize.delivery import deliver, to_chroma
from aircolor.data.colorspace import AB_SCALE, encode_lab, gray_to_L
from aircolor.metrics.paired import delta_e2000
from aircolor.training.progress import NullProgress

ROUNDS = 20       # validation checks in a full budget (and progress lines)
PATIENCE = 6      # checks without a better validation score before stopping early


@dataclass(frozen=True)
class TuneOptions:
    seconds: float
    seed: int = 0
    batch_size: int = 8
    lr: float = 1e-4
    max_steps: int | None = None   # a step budget on top of the time budget (benchmarks: comparable work)
    ema: float = 0.0               # check and keep an exponential moving average of the weights (0: the last;
                                   # measured neutral on Nairobi: 5.74 vs 5.69 test Delta E at lr 1e-4)


@dataclass
class TuneResult:
    start_delta_e: float                    # the unadapted start on the validation blocks
    best_delta_e: float
    best_step: int
    steps: int
    seconds: float
    stopped: str                            # why tuning ended
    curve: list[tuple[int, float, float]] = field(default_factory=list)   # (step, seconds, validation Delta E)
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)   # step budget -> best state


def generator_net(model: Any) -> torch.nn.Module:
    """The network that tuning trains: ``model.G`` (inside a :class:`PlaceBlend`, the wrapped network)."""
    from aircolor.models.place_blend import PlaceBlend

    net = model.G
    return net.net if isinstance(net, PlaceBlend) else net


def predict_ab(model: Any, gray_u8: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """a*b* (N, 2, H, W) in Lab units that ``model`` predicts for gray tiles, as ``aircolor colorize`` runs it."""
    device = next(model.parameters()).device
    out = [model.infer(g.to(device).float() / 127.5 - 1, batch_size=batch_size).cpu()
           for g in gray_u8.split(batch_size)]
    return to_chroma(model.color_space, torch.cat(out)) * AB_SCALE


def delivered_u8(gray_u8: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    return deliver(gray_u8.float() / 255.0, ab).mul(255).round().clamp(0, 255).to(torch.uint8)


def tile_delta_e(fake_u8: torch.Tensor, real_u8: torch.Tensor) -> np.ndarray:
    """Delta E 2000 of every delivered tile against its truth (uint8 (N, 3, H, W) each)."""
    return np.array([delta_e2000(f.permute(1, 2, 0).numpy(), r.permute(1, 2, 0).numpy())
                     for f, r in zip(fake_u8, real_u8)])


def score(model: Any, gray_u8: torch.Tensor, color_u8: torch.Tensor) -> float:
    return float(tile_delta_e(delivered_u8(gray_u8, predict_ab(model, gray_u8)), color_u8).mean())


def _augment(gray: torch.Tensor, color: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    k = int(torch.randint(4, (1,), generator=gen))
    if bool(torch.randint(2, (1,), generator=gen)):
        gray, color = gray.flip(-1), color.flip(-1)
    return gray.rot90(k, (-2, -1)), color.rot90(k, (-2, -1))


def _train_mode(model: Any, net: torch.nn.Module) -> None:
    net.train()
    if model.cfg.metrics.generator_mode == "eval":
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()


class _Batches:
    """Seeded random batches of augmented training tiles: (normalised L, a*b* / AB_SCALE)."""

    def __init__(self, train: Any, batch_size: int, seed: int) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.lab = encode_lab(train.color.float() / 255.0)[1]
        self.L = gray_to_L(train.gray.float() / 255.0)
        self.batch_size = min(batch_size, len(train))

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self.L), (self.batch_size,), generator=self.gen)
        return _augment(self.L[idx], self.lab[idx], self.gen)


class _Averaged:
    """An exponential moving average of a network's parameters (Polyak averaging): steadier than the last step's
    weights, so checks on a few validation tiles pick a state that is good, not lucky."""

    def __init__(self, net: torch.nn.Module, decay: float) -> None:
        self.params = [p for p in net.parameters()]
        self.decay = decay
        self.average = [p.detach().clone() for p in self.params]

    def update(self) -> None:
        if self.decay > 0:
            with torch.no_grad():
                torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1.0 - self.decay)

    def swap(self) -> None:
        """Exchange the live weights and the average (call twice to swap back)."""
        if self.decay > 0:
            with torch.no_grad():
                for p, a in zip(self.params, self.average):
                    live = p.detach().clone()
                    p.copy_(a)
                    a.copy_(live)


def _round_end(options: TuneOptions, started: float, round_: int) -> tuple[float, int | None]:
    """When round ``round_`` ends: (a monotonic time, a step count or None). A step budget spaces the checks
    by steps, so runs compare by work done whatever else shares the machine."""
    if options.max_steps is not None:
        return started + options.seconds, math.ceil(options.max_steps * (round_ + 1) / ROUNDS)
    return started + options.seconds * (round_ + 1) / ROUNDS, None


def _step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, averaged: _Averaged, batches: _Batches,
          device: torch.device) -> float:
    """One optimisation step on a fresh batch; its loss."""
    x, y = batches.next()
    loss = F.l1_loss(net(x.to(device)), y.to(device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    averaged.update()
    return float(loss.detach())


def _stop_reason(value: float, since_best: int, step: int, options: TuneOptions, started: float) -> str | None:
    """Why tuning ends after this check, or None to go on."""
    if not math.isfinite(value) or since_best >= PATIENCE:
        return f"no better validation score in {PATIENCE} checks"
    if options.max_steps is not None and step >= options.max_steps:
        return f"the step budget ({options.max_steps})"
    if time.monotonic() >= started + options.seconds:
        return "the time budget"
    return None


def fine_tune(model: Any, train: Any, val: Any, options: TuneOptions, *, progress: Any = None,
              on_check: Callable[[int, float, float], None] | None = None,
              references: dict[str, float] | None = None, snapshots: tuple[int, ...] = ()) -> TuneResult:
    """Tune ``model``'s generator on ``train`` tiles within ``options``' budget; the best state (by validation
    Delta E, the start included) is loaded back into the model at the end. ``on_check(step, seconds, delta_e)`` is
    called at every validation check (tracking); ``references`` (gray, tint, lightness: their validation Delta E)
    are shown beside each check; ``snapshots``: step counts at which the best state so far is kept
    (``result.snapshots``: what a smaller budget would have delivered)."""
    progress = progress or NullProgress()
    device = next(model.parameters()).device
    net = generator_net(model)
    torch.manual_seed(options.seed)
    batches = _Batches(train, options.batch_size, options.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=options.lr, betas=(0.5, 0.999))
    averaged = _Averaged(net, options.ema)
    started = time.monotonic()
    result = TuneResult(*(2 * (score(model, val.gray, val.color),)), 0, 0, 0.0, "the time budget")
    result.curve.append((0, 0.0, result.start_delta_e))
    if on_check:
        on_check(0, 0.0, result.start_delta_e)
    best_state = copy.deepcopy(net.state_dict())
    labels = {"gray": "baseline", "tint": "prior_tint", "lightness": "prior_lightness"}
    baseline = {f"{labels[k]}.val.delta_e2000": v for k, v in (references or {}).items() if k in labels}
    step, since_best, per_round = 0, 0, 0
    for round_ in range(ROUNDS):
        progress.start_epoch(round_, ROUNDS, per_round)
        until, until_step = _round_end(options, started, round_)
        _train_mode(model, net)
        losses = []
        while not losses or (time.monotonic() < until and (until_step is None or step < until_step)):
            losses.append(_step(net, optimizer, averaged, batches, device))
            step += 1
            progress.step()
        per_round = max(per_round, len(losses))
        if losses:
            progress.losses({"L1_ab": float(np.mean(losses))})
        progress.end_epoch(round_ + 1, ROUNDS)
        net.eval()
        averaged.swap()   # the average is what is checked (and kept); training goes on from the live weights
        value = score(model, val.gray, val.color)
        if value < result.best_delta_e - 1e-4:
            result.best_delta_e, result.best_step, since_best = value, step, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            since_best += 1
        averaged.swap()
        result.curve.append((step, time.monotonic() - started, value))
        progress.evaluated(round_ + 1, {"val.delta_e2000": value}, baseline)
        if on_check:
            on_check(step, result.curve[-1][1], value)
        for s in snapshots:
            if step >= s and s not in result.snapshots:
                result.snapshots[s] = copy.deepcopy(best_state)
        stop = _stop_reason(value, since_best, step, options, started)
        if stop:
            result.stopped = stop
            break
    progress.close()
    for s in snapshots:
        result.snapshots.setdefault(s, copy.deepcopy(best_state))
    net.load_state_dict(best_state)
    net.eval()
    result.steps, result.seconds = step, time.monotonic() - started
    return result
