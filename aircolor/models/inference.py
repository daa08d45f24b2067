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
import functools
import threading
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


# ------------------------------------------------------------------------------------------------ per tile
class PerTileReference:
    """``reference`` mode for whole batches, image by image, safe to use from several threads at once.

    Each BatchNorm layer normalises every image of the batch on that image's own statistics (mean and biased
    variance over H, W, with the layer's weight, bias and eps: what train-mode BatchNorm does with a batch of one)
    and each Dropout layer draws image ``i``'s mask from a generator seeded with ``seeds[i]``. An image's output is
    then a function of the image and its seed alone (up to float rounding, the reference mode's one-image passes),
    whatever else is in its batch, so tiles can be batched freely and a scan split over many workers colours
    exactly as in one process. The layers' ``forward`` is replaced on the instances (no other layer changes, the
    memory format is kept, the running statistics are never touched); the seeds of a call are thread-local::

        per_tile = PerTileReference.attach(model)
        with per_tile.seeds([17, 18]):
            out = model.generate(two_tiles)
        per_tile.remove()
    """

    @classmethod
    def attach(cls, model: nn.Module) -> "PerTileReference":
        """The model's one PerTileReference (made on first use)."""
        existing = model.__dict__.get("_per_tile_reference")
        if existing is None:
            existing = model.__dict__["_per_tile_reference"] = cls(model)
        return existing

    def __init__(self, model: nn.Module) -> None:
        self._local = threading.local()
        self._layers: list[nn.Module] = []
        for layer in model.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.forward = functools.partial(_sample_norm, layer)
                self._layers.append(layer)
            elif isinstance(layer, nn.Dropout):
                layer.forward = functools.partial(self._dropout, layer)
                self._layers.append(layer)
        self.model = model

    @contextlib.contextmanager
    def seeds(self, seeds: list[int]) -> Iterator[None]:
        self._local.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        try:
            yield
        finally:
            del self._local.generators

    def remove(self) -> None:
        for layer in self._layers:
            del layer.forward  # the class's own forward again
        self.model.__dict__.pop("_per_tile_reference", None)

    def _dropout(self, layer: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
        generators = getattr(self._local, "generators", None)
        if generators is None or len(generators) != x.shape[0]:
            raise RuntimeError("PerTileReference: run the model inside `with per_tile.seeds(one seed per image)`")
        keep = torch.stack([torch.rand(x.shape[1:], generator=g) >= layer.p for g in generators])
        return x * keep.to(x.device, x.dtype, non_blocking=True) * (1.0 / (1.0 - layer.p))


def _sample_norm(layer: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """``layer`` in train mode on each image of ``x`` alone, in ``x``'s memory format (channels_last stays)."""
    var, mean = torch.var_mean(x, dim=(2, 3), unbiased=False, keepdim=True)
    scale = torch.rsqrt(var + layer.eps)
    if layer.weight is not None:
        scale = scale * layer.weight.view(1, -1, 1, 1)
    shift = -mean * scale
    if layer.bias is not None:
        shift = shift + layer.bias.view(1, -1, 1, 1)
    return torch.addcmul(shift, x, scale)
