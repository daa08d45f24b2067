"""pix2pix (Isola et al. 2017): a conditional GAN with an L1 term, G: A -> B and D judging (A, B) pairs.

``loss_D = 0.5 (GAN(D(A, G(A)), 0) + GAN(D(A, B), 1))`` (WGAN-GP: ``D_real + D_fake + lambda_GP GP``, see
:meth:`~aircolor.models.base.GANModel.d_loss`);
``loss_G = lambda_GAN GAN(D(A, G(A)), 1) + lambda_L1 |G(A) - B|_1``. Update order as in the reference: forward,
D step, then G step with D frozen (on every ``n_critic``-th batch). ``lambda_GAN 0`` is the non-adversarial arm,
an L1 regression: D never runs. In the Lab space (factor 3) A is L (1 channel), B is ab/110 (2 channels), D sees
``cat(L, ab)`` and the L1 term is on the normalised ab. ``model.recon_loss l2`` squares the error instead;
``model.target_tint`` jitters the ground truth's global tint; ``model.ab_bins`` classifies a*b* over bins
(:mod:`aircolor.models.binned_chroma`), the term then a cross-entropy (the cautious default-model arms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aircolor.config import RunConfig
from aircolor.data.colorspace import AB_SCALE
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
        if self.cfg.model.target_tint and self.G.training:
            b = tinted(b, self.cfg.model.target_tint)
        logits = None
        with torch.set_grad_enabled(self.g_turn):  # critic-only batches need G's output, not its graph
            if self.cfg.model.ab_bins:
                fake, logits = self.G(a, with_logits=True)
            else:
                fake = self.G(a)
        out: dict[str, torch.Tensor] = {}
        if self.adversarial:
            set_requires_grad(self.D, True)
            self.optimizers["D"].zero_grad(set_to_none=True)
            out.update(self.d_loss(self.D, torch.cat([a, b], 1), torch.cat([a, fake], 1)))
            out["D"].backward()
            self.step("D")
        if self.g_turn:
            out = {**self._g_step(a, b, fake, logits), **out}
        return out

    def _g_step(self, a: torch.Tensor, b: torch.Tensor, fake: torch.Tensor,
                logits: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        set_requires_grad(self.D, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        out = {"G_GAN": self.g_gan(self.D(torch.cat([a, fake], 1)))} if self.adversarial else {}
        if logits is not None:   # model.ab_bins: the classes of the ground truth's a*b*
            target = getattr(self.G, "module", self.G).targets(b)
            out["G_CE"] = F.cross_entropy(logits.float(), target) * self.cfg.model.lambda_L1
        else:
            recon = F.mse_loss if self.cfg.model.recon_loss == "l2" else F.l1_loss
            out["G_L1"] = recon(fake, b) * self.cfg.model.lambda_L1
        sum(out.values()).backward()
        self.step("G")
        set_requires_grad(self.D, True)
        return out


def tinted(b: torch.Tensor, shift: float) -> torch.Tensor:
    """``b`` (a*b* / AB_SCALE, B x 2 x H x W) with a random global tint per image: a chroma scale uniform in
    1 +- shift/20 and an a*b* shift uniform in +-shift units, clamped to the valid range."""
    n = b.size(0)
    scale = 1.0 + (torch.rand(n, 1, 1, 1, device=b.device) * 2 - 1) * shift / 20.0
    offset = (torch.rand(n, 2, 1, 1, device=b.device) * 2 - 1) * shift / AB_SCALE
    return (b * scale + offset).clamp(-1.0, 1.0).to(b.dtype)
