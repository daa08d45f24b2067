"""pix2pix (Isola et al. 2017): a conditional GAN with an L1 term, G: A -> B and D judging (A, B) pairs.

``loss_D = 0.5 (GAN(D(A, G(A)), 0) + GAN(D(A, B), 1))`` (WGAN-GP: ``D_real + D_fake + lambda_GP GP``, see
:meth:`~aircolor.models.base.GANModel.d_loss`);
``loss_G = lambda_GAN GAN(D(A, G(A)), 1) + lambda_L1 |G(A) - B|_1``. Update order as in the reference: forward,
D step, then G step with D frozen (on every ``n_critic``-th batch). ``lambda_GAN 0`` is the non-adversarial arm,
an L1 regression: D never runs. In the Lab space (factor 3) A is L (1 channel), B is ab/110 (2 channels), D sees
``cat(L, ab)`` and the L1 term is on the normalised ab.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aircolor.config import RunConfig
from aircolor.models.base import GANModel
from aircolor.models.layers import set_requires_grad


class Pix2Pix(GANModel):
    family = "pix2pix"
    adversarial_keys = ["G_GAN"]
    discriminator_keys = ["D_real", "D_fake"]

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self.G = self._generator(self.input_nc, self.output_nc)
        self.D = self._discriminator(self.input_nc + self.output_nc)
        self._adam("G", list(self.G.parameters()), cfg.train.lr_G)
        self._adam("D", list(self.D.parameters()), cfg.train.lr_D)
        self._finish()

    def generate(self, a: torch.Tensor) -> torch.Tensor:
        return self.G(self.as_input(a))

    def _step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        a, b = self.as_input(batch["A"]), batch["B"]
        with torch.set_grad_enabled(self.g_turn):  # critic-only batches need G's output, not its graph
            fake = self.G(a)
        out: dict[str, torch.Tensor] = {}
        if self.adversarial:
            set_requires_grad(self.D, True)
            self.optimizers["D"].zero_grad(set_to_none=True)
            out.update(self.d_loss(self.D, torch.cat([a, b], 1), torch.cat([a, fake], 1)))
            out["D"].backward()
            self.step("D")
        if self.g_turn:
            out = {**self._g_step(a, b, fake), **out}
        return out

    def _g_step(self, a: torch.Tensor, b: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        set_requires_grad(self.D, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        out = {"G_GAN": self.g_gan(self.D(torch.cat([a, fake], 1)))} if self.adversarial else {}
        out["G_L1"] = F.l1_loss(fake, b) * self.cfg.model.lambda_L1
        sum(out.values()).backward()
        self.step("G")
        set_requires_grad(self.D, True)
        return out
