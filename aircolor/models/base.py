"""What every model of the zoo shares: building nets from the config, Adam per network group, learning-rate
schedules, the resumable training state, and ``colorize``.

A model is an ``nn.Module`` whose submodules are its networks (so ``.to(device)`` and ``state_dict()`` cover
them), plus optimizers, schedulers and image pools kept in plain dicts. Subclasses implement
``_step(batch) -> dict[str, Tensor]`` in their reference's update order and ``generate(a)``; in ``_step`` they
step the discriminators only when ``self.adversarial`` (``model.lambda_GAN > 0``) and the generators only on
``self.g_turn`` (every ``train.n_critic``-th batch).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch
from torch import nn

from aircolor.config import RunConfig
from aircolor.data.colorspace import decode_lab, gray_to_L
from aircolor.errors import ConfigError
from aircolor.losses import gan_loss, gradient_penalty
from aircolor.models.layers import count_parameters, init_weights
from aircolor.models.pool import ImagePool
from aircolor.models.registry import DISCRIMINATORS, GENERATORS


def lr_lambda(policy: str, n_epochs: int, n_epochs_decay: int, decay_every: int):
    """Multiplier of the base lr after ``epoch`` completed epochs.

    ``linear``: 1 for ``n_epochs``, then linearly down to 0 over ``n_epochs_decay``: the references'
    ``1 - max(0, epoch + epoch_count - n_epochs) / (n_epochs_decay + 1)`` with ``epoch_count = 1``, so the last
    epoch trains at ``1 / (n_epochs_decay + 1)`` and the rate after it is 0; ``step``: x0.1 every ``decay_every`` epochs;
    ``cosine``: half a cosine from 1 to 0 over all epochs.
    """
    import math

    total = max(1, n_epochs + n_epochs_decay)
    if policy == "linear":
        return lambda epoch: 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)
    if policy == "step":
        return lambda epoch: 0.1 ** (epoch // decay_every)
    if policy == "cosine":
        return lambda epoch: 0.5 * (1 + math.cos(math.pi * min(epoch, total) / total))
    raise KeyError(f"unknown lr_policy {policy!r}; valid: linear, step, cosine")


class GANModel(nn.Module):
    family = ""
    adversarial_keys: list[str] = []     # G's adversarial losses (the loss-curve figure's left panel)
    discriminator_keys: list[str] = []   # D's losses (right panel)
    eager_nets: tuple[str, ...] = ()     # networks that ``train.compile`` leaves alone

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.color_space = cfg.data.color_space
        self.input_nc = int(cfg.model.input_nc or (1 if self.color_space == "lab" else 3))
        self.output_nc = 2 if self.color_space == "lab" else 3
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self.pools: dict[str, ImagePool] = {}
        self._param_groups: dict[str, tuple[list[nn.Parameter], float]] = {}
        self.amp_dtype: torch.dtype | None = None
        self.channels_last = False
        self.compile_mode = "off"
        self.grad_sync: Callable[[list[torch.Tensor]], None] | None = None
        # lambda_GAN 0 is pure regression: no D forward or step at all, and no D or G-adversarial losses to log.
        self.adversarial = cfg.model.lambda_GAN > 0
        if not self.adversarial:
            self.adversarial_keys, self.discriminator_keys = [], []
        # WGAN-GP's Algorithm 1: the critic steps on every batch, G after every n_critic critic steps.
        self.n_critic = int(cfg.train.n_critic or 1) if self.adversarial else 1
        self.batches_seen = 0    # train_step calls so far: the n_critic phase, saved in the training state
        self.g_turn = True       # whether the current train_step steps the generator(s)

    # ------------------------------------------------------------------ building
    def _generator(self, input_nc: int, output_nc: int, *, prefix: str = "", **extra: Any) -> nn.Module:
        m = self.cfg.model
        lab_chroma = output_nc == 2 and input_nc == 1 and self.color_space == "lab"
        if m.ab_bins and lab_chroma:
            from aircolor.models.binned_chroma import n_bins

            output_nc = n_bins(m.ab_bins)
        try:
            net = GENERATORS.build(prefix + str(m.netG), input_nc=input_nc, output_nc=output_nc, ngf=m.ngf, norm=m.norm,
                                   dropout=bool(m.dropout), size=self.cfg.data.size, antialias=bool(m.antialias),
                                   **extra)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"model.netG {m.netG!r}: {exc.args[0]}") from None
        net = init_weights(net, str(m.init_type), m.init_gain)
        if m.ab_bins and lab_chroma:
            from aircolor.models.binned_chroma import BinnedChroma

            net = BinnedChroma(net, m.ab_bins)
            output_nc = 2
        if m.place_blend and output_nc == 2 and input_nc == 1:
            from aircolor.models.place_blend import PlaceBlend

            return PlaceBlend(net)
        if m.place_blend and self.color_space != "lab":
            raise ConfigError("model.place_blend needs a Lab generator (data.color_space lab, model.input_nc 1)")
        return net

    def _discriminator(self, input_nc: int) -> nn.Module:
        m = self.cfg.model
        try:
            net = DISCRIMINATORS.build(str(m.netD), input_nc=input_nc, ndf=m.ndf, n_layers=m.n_layers_D, norm=m.norm,
                                       antialias=bool(m.antialias))
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"model.netD {m.netD!r}: {exc.args[0]}") from None
        return init_weights(net, str(m.init_type), m.init_gain)

    def _adam(self, name: str, params: list[nn.Parameter], lr: float, fused: bool = False) -> None:
        t = self.cfg.train
        self._param_groups[name] = (params, lr)
        kwargs = {"fused": True} if fused else {}
        self.optimizers[name] = torch.optim.Adam(params, lr=lr, betas=(t.beta1, t.beta2), **kwargs)

    def prepare(self, device: torch.device | str, *, amp: bool = False, channels_last: bool = False,
                fused_adam: bool = False, compile_mode: str = "off",
                grad_sync: Callable[[list[torch.Tensor]], None] | None = None) -> "GANModel":
        """Move to ``device`` and switch the fast paths on; call before loading a training state.

        ``amp``: bf16 autocast for the forward passes. ``channels_last``: NHWC memory format for the networks and
        inputs (faster convolutions on tensor cores). ``fused_adam``: rebuild the (still empty) optimizers with
        fused kernels (CUDA, and CPU with torch >= 2.4). ``compile_mode``: ``torch.compile`` each network in place
        (state_dict keys unchanged) in this mode unless ``off``; ``reduce-overhead`` replays CUDA graphs, so each
        step and each inference call first marks a new step. ``grad_sync``: called with each optimizer's gradients
        before its step, to average them across data-parallel workers.
        """
        device = torch.device(device)
        self.to(device)
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self.amp_dtype = torch.bfloat16 if amp else None
        self.grad_sync = grad_sync
        if compile_mode != "off":
            for name, net in self.named_children():
                if name not in self.eager_nets:
                    net.compile(mode=None if compile_mode == "default" else compile_mode)
        self.compile_mode = compile_mode
        if fused_adam:
            for name, (params, lr) in list(self._param_groups.items()):
                self._adam(name, params, lr, fused=True)
            self._finish()
        return self

    def step(self, name: str) -> None:
        """Average gradients across workers (when data-parallel), then take optimizer ``name``'s step."""
        optimizer = self.optimizers[name]
        if self.grad_sync is not None:
            self.grad_sync([p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None])
        optimizer.step()

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        device = next(self.parameters()).device.type
        return torch.autocast(device_type=device, dtype=self.amp_dtype)

    def _finish(self) -> None:
        """Create one scheduler per optimizer, same rule for all (call at the end of ``__init__``)."""
        t = self.cfg.train
        rule = lr_lambda(t.lr_policy, int(t.n_epochs or 0), int(t.n_epochs_decay or 0), t.lr_decay_epochs)
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, rule) for k, o in self.optimizers.items()}

    def parameter_counts(self) -> dict[str, int]:
        return {name: count_parameters(net) for name, net in self.named_children()}

    # ------------------------------------------------------------------ training
    def gan(self, pred: Any, real: bool) -> torch.Tensor:
        return gan_loss(pred, real, str(self.cfg.model.gan_mode))

    def g_gan(self, pred: Any) -> torch.Tensor:
        """G's adversarial term ``lambda_GAN * GAN(D(fake), 1)`` (logged with its weight, like every G term)."""
        return self.cfg.model.lambda_GAN * self.gan(pred, True)

    def d_loss(self, net: nn.Module, real: torch.Tensor, fake: torch.Tensor, *,
               halve: bool = True) -> dict[str, torch.Tensor]:
        """D's loss on ``real`` and ``fake`` (detached: this loss trains D only).

        vanilla / lsgan: ``0.5 (GAN(D(real), 1) + GAN(D(fake), 0))`` as in the references (no 0.5 unless
        ``halve``). wgangp: the critic loss of Gulrajani et al. 2017, eq. 3, ``D_real + D_fake + lambda_GP GP``
        = ``E[D(fake)] - E[D(real)] + lambda_GP GP``, never halved (halving the Wasserstein term only would double
        the penalty's effective weight).
        """
        fake = fake.detach()
        out = {"D_real": self.gan(net(real), True), "D_fake": self.gan(net(fake), False)}
        if self.cfg.model.gan_mode == "wgangp":
            out["gp"] = gradient_penalty(net, real, fake)
            out["D"] = out["D_real"] + out["D_fake"] + self.cfg.model.lambda_GP * out["gp"]
        else:
            out["D"] = (0.5 if halve else 1.0) * (out["D_real"] + out["D_fake"])
        return out

    def train_step(self, batch: dict[str, Any], *, sync: bool = True) -> dict[str, Any]:
        """One optimisation step on ``batch``; the named losses as floats (or detached tensors if not ``sync``).

        The discriminators step on every batch (none with ``lambda_GAN`` 0), the generators on every
        ``n_critic``-th; a step returns only the losses it computed (no G losses on critic-only batches)."""
        self.train()
        device = next(self.parameters()).device
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        batch = {k: v.to(device, non_blocking=True, memory_format=fmt) if torch.is_tensor(v) else v
                 for k, v in batch.items()}
        self._mark_step()
        self.g_turn = (self.batches_seen + 1) % self.n_critic == 0  # n_critic - 1 critic-only batches, then G
        with self.autocast():
            losses = self._step(batch)
        self.batches_seen += 1
        if not sync:
            return {k: v.detach() for k, v in losses.items()}
        return {k: float(v.detach()) for k, v in losses.items()}

    def _step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _mark_step(self) -> None:
        """CUDA graphs (compile mode reduce-overhead) reuse their output memory from one step to the next."""
        if self.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()

    def end_epoch(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.step()

    def learning_rates(self) -> dict[str, float]:
        return {f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.optimizers.items()}

    def color_as_input(self, b: torch.Tensor) -> torch.Tensor:
        """A color image (3 channels, [-1, 1]) in the generator's input layout: itself, or its luma (1 channel)."""
        if self.input_nc == b.size(1):
            return b
        rgb = (b + 1) / 2  # ITU-R 601-2 luma, as Pillow's convert("L"); Python weights: no host-to-device copy
        return (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]) * 2 - 1

    def as_input(self, a: torch.Tensor) -> torch.Tensor:
        """The dataset's 1-channel A as the generator's input (gray repeated to 3 channels when input_nc 3)."""
        return a.expand(-1, 3, -1, -1) if self.input_nc == 3 and a.size(1) == 1 else a

    # ------------------------------------------------------------------ inference
    def generate(self, a: torch.Tensor) -> torch.Tensor:
        """G(A) in the model's color space (RGB or ab, in [-1, 1])."""
        raise NotImplementedError

    @torch.no_grad()
    def infer(self, gray: torch.Tensor, *, mode: str | None = None, batch_size: int = 32,
              z: torch.Tensor | None = None) -> torch.Tensor:
        """G's output for gray images (B, 1, H, W) in [-1, 1], in the model's space (RGB, or ab/110 for Lab models),
        run in ``mode`` (default ``metrics.generator_mode``; see :mod:`aircolor.models.inference`): BatchNorm
        generators in ``reference`` mode see one image per forward pass. ``z``: BicycleGAN's latent codes (B, nz)."""
        from aircolor.models.inference import generator_mode

        gray = gray.to(next(self.parameters()).device)
        net_in = gray_to_L((gray.float() + 1) / 2) if self.color_space == "lab" else gray
        with generator_mode(self, mode or self.cfg.metrics.generator_mode) as per_forward:
            step = per_forward or batch_size
            parts = []
            for i in range(0, net_in.size(0), step):
                self._mark_step()
                extra = {} if z is None else {"z": z[i:i + step].to(net_in.device)}
                with self.autocast():
                    out = self.generate(net_in[i:i + step], **extra).float()
                parts.append(out.clone() if self.compile_mode == "reduce-overhead" else out)  # CUDA graphs reuse memory
        return torch.cat(parts)

    def to_rgb(self, gray: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The raw RGB (B, 3, H, W) in [-1, 1] of :meth:`infer`'s ``out`` for ``gray``: itself, or for Lab models the
        input's L with the predicted ab, clipped to sRGB."""
        if self.color_space != "lab":
            return out
        return decode_lab(gray_to_L((gray.to(out.device).float() + 1) / 2), out) * 2 - 1

    @torch.no_grad()
    def colorize(self, gray: torch.Tensor, *, mode: str | None = None, batch_size: int = 32,
                 z: torch.Tensor | None = None) -> torch.Tensor:
        """Gray images (B, 1, H, W) in [-1, 1] -> the generator's raw RGB (B, 3, H, W) in [-1, 1] (:meth:`to_rgb`).
        What users get is :func:`aircolor.colorize.engine.deliver` of the model's chroma."""
        return self.to_rgb(gray, self.infer(gray, mode=mode, batch_size=batch_size, z=z))

    # ------------------------------------------------------------------ state
    def training_state(self) -> dict[str, Any]:
        """Everything needed to resume: networks, optimizers, schedulers, pools (loadable with weights_only)."""
        return {"nets": self.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                "pools": {k: p.state_dict() for k, p in self.pools.items()},
                "counters": {"batches_seen": self.batches_seen}}

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["nets"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        device = next(self.parameters()).device
        for k, p in self.pools.items():
            p.load_state_dict(state["pools"][k], device)
        self.batches_seen = int(state.get("counters", {}).get("batches_seen", 0))  # older states: phase 0
