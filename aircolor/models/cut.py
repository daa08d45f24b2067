"""CUT and FastCUT (Park et al. 2020): one generator, a PatchGAN, and PatchNCE between input and output patches.

Update order as in the reference: D step, then G and F together.
``loss_D = 0.5 (GAN(D(G(x)), 0) + GAN(D(y), 1))`` (WGAN-GP: ``D_real + D_fake + lambda_GP GP``, and G and F step
on every ``n_critic``-th batch only);
``loss_G = lambda_GAN GAN(D(G(x)), 1) + NCE`` (the reference's lambda_GAN; with 0, D never runs), where NCE =
``NCE(x, G(x))`` and, with ``nce_idt`` (CUT), the average ``0.5 (NCE(x, G(x)) + NCE(y, G(y)))``. Each NCE is
``lambda_NCE`` times PatchNCE averaged over the layers.
The presets (factor 5): CUT = nce_idt on, lambda_NCE 1 (the paper's lambda_X = lambda_Y = 1), 200 + 200 epochs;
FastCUT = nce_idt off, lambda_NCE 10, flip equivariance (the input batch is flipped with p = 0.5 and the output's
features flipped back before PatchNCE), 150 + 50 epochs.

The generator is the ResNet one, anti-aliased by default as in CUT's reference (``model.antialias``); PatchNCE
reads its modules at ``nce_layers`` (0, 4, 8, 12, 16): the padded input, the two down-sampling convs and the
outputs of residual blocks 1 and 5. The projection head F is built at construction time
(see :mod:`aircolor.models.patch_sample`).
"""

from __future__ import annotations

import torch

from aircolor.config import RunConfig
from aircolor.errors import ConfigError
from aircolor.losses import patch_nce
from aircolor.models.base import GANModel
from aircolor.models.generators.resnet import ResnetGenerator
from aircolor.models.layers import init_weights, set_requires_grad
from aircolor.models.patch_sample import PatchSampleF


class CUT(GANModel):
    family = "cut"
    adversarial_keys = ["G_GAN"]
    discriminator_keys = ["D_real", "D_fake"]
    eager_nets = ("F",)  # samples patch ids at random and builds its MLPs per layer: little to gain from compiling

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        m = cfg.model
        self.G = self._generator(self.input_nc, self.output_nc)
        if not isinstance(self.G, ResnetGenerator):
            raise ConfigError(f"model.netG {m.netG!r}: CUT reads encoder features by layer index and needs a ResNet "
                              "generator (resnet_9blocks or resnet_6blocks)")
        n_modules = len(self.G.model)
        if max(m.nce_layers) >= n_modules:
            raise ConfigError(f"model.nce_layers {list(m.nce_layers)}: the generator has only {n_modules} layers")
        self.nce_layers = list(m.nce_layers)
        with torch.no_grad():
            probe = torch.zeros(1, self.input_nc, 32, 32)
            channels = [f.size(1) for f in self.G(probe, self.nce_layers, encode_only=True)]
        self.F = init_weights(PatchSampleF(channels, m.netF_nc), "xavier", m.init_gain)
        self.D = self._discriminator(self.output_nc)
        self._adam("G", list(self.G.parameters()), cfg.train.lr_G)
        self._adam("F", list(self.F.parameters()), cfg.train.lr_G)
        self._adam("D", list(self.D.parameters()), cfg.train.lr_D)
        self._finish()

    def generate(self, a: torch.Tensor) -> torch.Tensor:
        return self.G(self.as_input(a))

    def nce(self, src: torch.Tensor, tgt: torch.Tensor, flipped: bool) -> torch.Tensor:
        m = self.cfg.model
        feat_q = self.G(tgt, self.nce_layers, encode_only=True)
        if flipped:
            feat_q = [f.flip(3) for f in feat_q]
        feat_k = self.G(src, self.nce_layers, encode_only=True)
        k_pool, ids = self.F(feat_k, m.num_patches)
        q_pool, _ = self.F(feat_q, m.num_patches, ids)
        total = sum(patch_nce(q, k, batch_size=src.size(0), tau=m.nce_T).mean() for q, k in zip(q_pool, k_pool))
        return total * m.lambda_NCE / len(self.nce_layers)

    def _step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        m = self.cfg.model
        a, b = self.as_input(batch["A"]), batch["B"]
        n = a.size(0)
        real = torch.cat([a, self.color_as_input(b)]) if m.nce_idt else a
        flipped = bool(m.flip_equivariance) and bool(torch.rand(()) < 0.5)
        if flipped:
            real = real.flip(3)
        with torch.set_grad_enabled(self.g_turn):  # critic-only batches need G(x) only, without its graph
            fake = self.G(real if self.g_turn else real[:n])
        out: dict[str, torch.Tensor] = {}
        if self.adversarial:
            set_requires_grad(self.D, True)
            self.optimizers["D"].zero_grad(set_to_none=True)
            out.update(self.d_loss(self.D, b, fake[:n]))
            out["D"].backward()
            self.step("D")
        if self.g_turn:
            out = {**self._g_step(a, b, fake, flipped), **out}
        return out

    def _g_step(self, a: torch.Tensor, b: torch.Tensor, fake: torch.Tensor, flipped: bool) -> dict[str, torch.Tensor]:
        """G and F: ``lambda_GAN GAN + NCE(x, G(x))``, or with ``nce_idt`` the NCE terms' average."""
        n = a.size(0)
        set_requires_grad(self.D, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        self.optimizers["F"].zero_grad(set_to_none=True)
        out = {"G_GAN": self.g_gan(self.D(fake[:n]))} if self.adversarial else {}
        out["NCE"] = self.nce(a, fake[:n], flipped)
        loss = out.get("G_GAN", 0.0)
        if self.cfg.model.nce_idt:
            out["NCE_Y"] = self.nce(self.color_as_input(b), fake[n:], flipped)
            loss = loss + 0.5 * (out["NCE"] + out["NCE_Y"])
        else:
            loss = loss + out["NCE"]
        loss.backward()
        self.step("G")
        self.step("F")
        set_requires_grad(self.D, True)
        return out
