"""How a generator runs at test time: as the references' ``test.py`` does (the default), or in eval mode.

The references' ``test.py`` never calls ``model.eval()`` unless ``--eval`` is passed: pix2pix keeps dropout on and
its BatchNorm layers normalise with the statistics of the batch in hand, which at test time is one image (batch
size 1). Scoring a BatchNorm generator on batches of 32 instead makes each output depend on the other 31 images.

* ``reference``: train-mode layers (dropout on, BatchNorm on the current image's own statistics), BatchNorm
  generators fed **one image per forward pass**; the running statistics are left untouched (momentum 0 while
  inside), so scoring never changes the model. Instance-norm generators without dropout (CycleGAN, CUT) give the
  same output in both modes and keep their batches.
* ``eval``: ``model.eval()``: BatchNorm's running statistics, no dropout; batches of any size.

Usage::

    with generator_mode(model, "reference") as per_forward:      # per_forward: 1 for BatchNorm nets, else None
        out = run_batched(model.generate, a, per_forward or 32)
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn

MODES = ("reference", "eval")


def has_batch_norm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


@contextlib.contextmanager
def generator_mode(model: nn.Module, mode: str) -> Iterator[int | None]:
    """Switch ``model`` to ``mode`` for the block and restore it after; yields the largest batch per forward pass
    the mode allows (1 for BatchNorm nets in ``reference`` mode, else None: any)."""
    if mode not in MODES:
        raise ValueError(f"unknown generator mode {mode!r}; valid: {', '.join(MODES)}")
    was_training = model.training
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    tracked = [None if m.num_batches_tracked is None else m.num_batches_tracked.clone() for m in norms]
    model.train(mode == "reference")
    if mode == "reference":
        for m in norms:
            m.momentum = 0.0  # batch statistics are used, running ones are not moved
    try:
        yield 1 if (mode == "reference" and norms) else None
    finally:
        for m, momentum, count in zip(norms, momenta, tracked):
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)
        model.train(was_training)


def run_batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``fn`` over ``x`` in chunks of ``batch_size`` along the first axis, concatenated."""
    if x.size(0) <= batch_size:
        return fn(x)
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, x.size(0), batch_size)])
