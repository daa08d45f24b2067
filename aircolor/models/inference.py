"""How a generator runs at test time: as the references' ``test.py`` does (the default), or in eval mode.

The references' ``test.py`` never calls ``model.eval()`` unless ``--eval`` is passed: pix2pix keeps dropout on and
its BatchNorm layers normalise with the statistics of the batch in hand, which at test time is one image (batch
size 1). Scoring a BatchNorm generator on batches of 32 instead makes each output depend on the other 31 images.

* ``reference``: train-mode layers (dropout on, BatchNorm on the current image's own statistics), BatchNorm
  generators fed **one image per forward pass**; the running statistics are left untouched (momentum 0 while
  inside), so scoring never changes the model. Instance-norm generators without dropout (CycleGAN, CUT) give the
  same output in both modes and keep their batches.
* ``eval``: ``model.eval()``: BatchNorm's running statistics, no dropout; batches of any size.

For colorizing, :class:`PerTileReference` gives the ``reference`` mode's output with tiles in batches: each
image normalised on its own statistics and its dropout mask drawn from its own seed.

Usage::

    with generator_mode(model, "reference") as per_forward:      # per_forward: 1 for BatchNorm nets, else None
        out = run_batched(model.generate, a, per_forward or 32)
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
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


# ------------------------------------------------------------------------------------------------ per tile
class PerTileReference:
    """``reference`` mode for whole batches, image by image, safe to use from several threads at once.

    Forward hooks on the model's layers: each BatchNorm layer normalises every image of the batch on that image's
    own statistics (``F.instance_norm`` with the layer's weight, bias and eps: what train-mode BatchNorm does with
    a batch of one), and each Dropout layer draws image ``i``'s mask from a generator seeded with ``seeds[i]``.
    An image's output is then a function of the image and its seed alone (up to float rounding, the reference
    mode's one-image passes), whatever else is in its batch, so tiles can be batched freely and a scan split
    over many workers colours exactly as in one process. The model is put in eval mode (running statistics are
    never touched); the seeds of a call are thread-local::

        per_tile = PerTileReference(model)
        with per_tile.seeds([17, 18]):
            out = model.generate(two_tiles)
        per_tile.remove()
    """

    @classmethod
    def attach(cls, model: nn.Module) -> "PerTileReference":
        """The model's one PerTileReference (made on first use): hooks attached twice would run twice."""
        existing = model.__dict__.get("_per_tile_reference")
        if existing is None:
            existing = model.__dict__["_per_tile_reference"] = cls(model)
        return existing

    def __init__(self, model: nn.Module) -> None:
        self._local = threading.local()
        self._hooks = []
        for layer in model.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                self._hooks.append(layer.register_forward_hook(self._norm))
            elif isinstance(layer, nn.Dropout):
                self._hooks.append(layer.register_forward_hook(self._dropout))
        self.model, self.was_training = model, model.training
        model.eval()

    @contextlib.contextmanager
    def seeds(self, seeds: list[int]) -> Iterator[None]:
        self._local.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        try:
            yield
        finally:
            del self._local.generators

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self.model.__dict__.pop("_per_tile_reference", None)
        self.model.train(self.was_training)

    @staticmethod
    def _norm(layer: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(inputs[0], weight=layer.weight, bias=layer.bias, eps=layer.eps)

    def _dropout(self, layer: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> torch.Tensor:
        x = inputs[0]
        generators = getattr(self._local, "generators", None)
        if generators is None or len(generators) != x.shape[0]:
            raise RuntimeError("PerTileReference: run the model inside `with per_tile.seeds(one seed per image)`")
        keep = torch.stack([torch.rand(x.shape[1:], generator=g) >= layer.p for g in generators])
        return x * keep.to(x.device, x.dtype, non_blocking=True) * (1.0 / (1.0 - layer.p))
