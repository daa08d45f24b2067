"""CycleGAN (Zhu et al. 2017): G_A: gray -> color, G_B: color -> gray, D_A judges color, D_B judges gray.

Reference names: G_A (G), G_B (F), D_A (D_Y), D_B (D_X). Update order: both generators in one Adam step with
the discriminators frozen, then both discriminators. Fakes pass through image pools of ``pool_size`` (50).

``loss_G = lambda_GAN (GAN(D_A(G_A(A)), 1) + GAN(D_B(G_B(B)), 1)) + lambda_A |G_B(G_A(A)) - A|
+ lambda_B |G_A(G_B(B)) - B| + lambda_identity (lambda_B |G_A(B) - B| + lambda_A |G_B(A) - A|)``; each D's loss is
:meth:`~aircolor.models.base.GANModel.d_loss`. With ``n_critic`` > 1 the generators step on every n_critic-th
batch only; with ``lambda_GAN 0`` the discriminators never run (cycle and identity terms only).

Identity across gray and RGB domains: with ``model.input_nc 3`` (the default, as in the references) a gray
image is three equal channels, both domains have 3 channels and the identity terms are the reference's. With
``input_nc 1`` the channel counts differ; we then feed G_A the luma of B (its gray copy) and G_B the gray image
repeated to 3 channels, so ``idt_A = |G_A(luma(B)) - B|`` and ``idt_B = |G_B(rep(A)) - A|``. Note that this
``idt_A`` is a self-supervised colorization term built from B alone; set ``lambda_identity 0`` for a strictly
unpaired run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aircolor.config import RunConfig
from aircolor.models.base import GANModel
from aircolor.models.layers import set_requires_grad
from aircolor.models.pool import ImagePool

class CycleGAN(GANModel):
    family = "cyclegan"
    adversarial_keys = ["G_A", "G_B"]
    discriminator_keys = ["D_A", "D_B"]

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self.G_A = self._generator(self.input_nc, self.output_nc)
        self.G_B = self._generator(self.output_nc, self.input_nc)
        self.D_A = self._discriminator(self.output_nc)
        self.D_B = self._discriminator(self.input_nc)
        pool = int(cfg.model.pool_size or 0)
        self.pools = {"fake_A": ImagePool(pool, seed=cfg.train.seed), "fake_B": ImagePool(pool, seed=cfg.train.seed + 1)}
        self._adam("G", [*self.G_A.parameters(), *self.G_B.parameters()], cfg.train.lr_G)
        self._adam("D", [*self.D_A.parameters(), *self.D_B.parameters()], cfg.train.lr_D)
        self._finish()

    def generate(self, a: torch.Tensor) -> torch.Tensor:
        return self.G_A(self.as_input(a))

    @torch.no_grad()
    def decolorize(self, b: torch.Tensor) -> torch.Tensor:
        """G_B: color (B, 3, H, W) in [-1, 1] -> its gray version (the B -> A direction of the study's FID)."""
        was_training = self.training
        self.eval()
        try:
            with self.autocast():
                return self.G_B(b).float()
        finally:
            self.train(was_training)

    def _to_b(self, a: torch.Tensor) -> torch.Tensor:
        return a if a.size(1) == self.output_nc else a.expand(-1, self.output_nc, -1, -1)

    def _step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        a, b = self.as_input(batch["A"]), batch["B"]
        with torch.set_grad_enabled(self.g_turn):  # critic-only batches need the fakes, not their graph
            fake_b, fake_a = self.G_A(a), self.G_B(b)
        out = self._g_step(a, b, fake_b, fake_a) if self.g_turn else {}
        if self.adversarial:
            out.update(self._d_step(a, b, fake_b, fake_a))
        return out

    def _g_step(self, a: torch.Tensor, b: torch.Tensor, fake_b: torch.Tensor,
                fake_a: torch.Tensor) -> dict[str, torch.Tensor]:
        m = self.cfg.model
        rec_a, rec_b = self.G_B(fake_b), self.G_A(fake_a)
        set_requires_grad([self.D_A, self.D_B], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        out = {"G_A": self.g_gan(self.D_A(fake_b)), "G_B": self.g_gan(self.D_B(fake_a))} if self.adversarial else {}
        out["cycle_A"] = F.l1_loss(rec_a, a) * m.lambda_A
        out["cycle_B"] = F.l1_loss(rec_b, b) * m.lambda_B
        if m.lambda_identity > 0:
            out["idt_A"] = F.l1_loss(self.G_A(self.color_as_input(b)), b) * m.lambda_B * m.lambda_identity
            out["idt_B"] = F.l1_loss(self.G_B(self._to_b(a)), a) * m.lambda_A * m.lambda_identity
        sum(out.values()).backward()
        self.step("G")
        set_requires_grad([self.D_A, self.D_B], True)
        return out

    def _d_step(self, a: torch.Tensor, b: torch.Tensor, fake_b: torch.Tensor,
                fake_a: torch.Tensor) -> dict[str, torch.Tensor]:
        self.optimizers["D"].zero_grad(set_to_none=True)
        d_a = self.d_loss(self.D_A, b, self.pools["fake_B"].query(fake_b))
        d_b = self.d_loss(self.D_B, a, self.pools["fake_A"].query(fake_a))
        (d_a["D"] + d_b["D"]).backward()
        self.step("D")
        return {**{f"{k}_A": v for k, v in d_a.items()}, **{f"{k}_B": v for k, v in d_b.items()}}
