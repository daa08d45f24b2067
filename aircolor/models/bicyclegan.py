"""BicycleGAN (Zhu et al. 2017): cVAE-GAN and cLR-GAN on the two halves of each batch.

First half (cVAE-GAN): z from the encoder, ``z = mu + eps * exp(logvar / 2)`` with ``(mu, logvar) = E(B)``,
``fake_enc = G(A, z)``; second half's B is the real sample for D2 (cLR-GAN): ``fake_rand = G(A, z_rand)`` with
``z_rand ~ N(0, I)`` (the reference feeds G the first half's A for both). Update order: G and E, then D and D2.

``loss_G = lambda_GAN (GAN(D(fake_enc), 1) + GAN(D2(fake_rand), 1)) + lambda_L1 |fake_enc - B| + KL`` (one
``lambda_GAN`` for the reference's lambda_GAN and lambda_GAN2, both 1; with 0, D and D2 never run, as in the
reference) with
``KL = -0.5 lambda_kl sum(1 + logvar - mu^2 - exp(logvar))`` (a sum over batch and dims, as in the reference);
the latent regression ``lambda_z |E(fake_rand).mu - z_rand|`` trains G only: we compute it with E frozen, so
no gradient reaches E. ``loss_D = GAN(D(real), 1) + GAN(D(fake), 0)`` (no 0.5; WGAN-GP adds ``lambda_GP GP``),
per discriminator. With ``n_critic`` > 1, G and E step on every n_critic-th batch only.
z injection (factor 6): see :mod:`aircolor.models.generators.unet_z`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aircolor.config import RunConfig
from aircolor.errors import ConfigError
from aircolor.models.base import GANModel
from aircolor.models.encoders import Encoder
from aircolor.models.layers import init_weights, set_requires_grad


class BicycleGAN(GANModel):
    family = "bicyclegan"
    adversarial_keys = ["G_GAN", "G_GAN2"]
    discriminator_keys = ["D_real", "D_fake", "D_real2", "D_fake2"]

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        m = cfg.model
        if not str(m.netG).startswith("unet"):
            raise ConfigError(f"model.netG {m.netG!r}: BicycleGAN's generator is a U-Net with z "
                              "(unet_256, unet_128, unet_64, unet_32 or unet_auto)")
        self.nz = m.nz
        self.G = self._generator(self.input_nc, self.output_nc, nz=m.nz, z_injection=m.z_injection,
                                 prefix="z_")
        self.D = self._discriminator(self.output_nc)
        self.D2 = self._discriminator(self.output_nc)
        self.E = init_weights(Encoder(kind=m.netE, input_nc=self.output_nc, nz=m.nz, nef=m.nef, norm=m.norm,
                                      size=cfg.data.size), str(m.init_type), m.init_gain)
        self._adam("G", list(self.G.parameters()), cfg.train.lr_G)
        self._adam("E", list(self.E.parameters()), cfg.train.lr_G)
        self._adam("D", list(self.D.parameters()), cfg.train.lr_D)
        self._adam("D2", list(self.D2.parameters()), cfg.train.lr_D)
        self._finish()

    def generate(self, a: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """G(A, z); z defaults to 0, the mean of the prior (one deterministic, typical colorization)."""
        if z is None:
            z = torch.zeros(a.size(0), self.nz, device=a.device, dtype=a.dtype)
        return self.G(self.as_input(a), z)

    def _step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        a, b = self.as_input(batch["A"]), batch["B"]
        half = a.size(0) // 2
        if half == 0:
            raise ValueError("BicycleGAN needs an even batch of at least 2 (half encoded, half random z)")
        a_enc, b_enc, b_rand = a[:half], b[:half], b[half:2 * half]
        with torch.set_grad_enabled(self.g_turn):  # critic-only batches need the fakes, not their graph
            mu, logvar = self.E(b_enc)
            z_enc = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            z_rand = torch.randn(half, self.nz, device=a.device, dtype=a.dtype)
            fake_enc, fake_rand = self.G(a_enc, z_enc), self.G(a_enc, z_rand)
        out = self._g_step(b_enc, mu, logvar, z_rand, fake_enc, fake_rand) if self.g_turn else {}
        if self.adversarial:
            out.update(self._d_step(b_enc, b_rand, fake_enc, fake_rand))
        return out

    def _g_step(self, b_enc: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, z_rand: torch.Tensor,
                fake_enc: torch.Tensor, fake_rand: torch.Tensor) -> dict[str, torch.Tensor]:
        m = self.cfg.model
        set_requires_grad([self.D, self.D2], False)
        for k in ("G", "E"):
            self.optimizers[k].zero_grad(set_to_none=True)
        out = {"G_GAN": self.g_gan(self.D(fake_enc)), "G_GAN2": self.g_gan(self.D2(fake_rand))} \
            if self.adversarial else {}
        out["G_L1"] = F.l1_loss(fake_enc, b_enc) * m.lambda_L1
        out["kl"] = torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) * (-0.5 * m.lambda_kl)
        set_requires_grad(self.E, False)
        mu2, _ = self.E(fake_rand)
        out["z_L1"] = (mu2 - z_rand).abs().mean() * m.lambda_z
        set_requires_grad(self.E, True)
        sum(out.values()).backward()
        self.step("G")
        self.step("E")
        set_requires_grad([self.D, self.D2], True)
        return out

    def _d_step(self, b_enc: torch.Tensor, b_rand: torch.Tensor, fake_enc: torch.Tensor,
                fake_rand: torch.Tensor) -> dict[str, torch.Tensor]:
        self.optimizers["D"].zero_grad(set_to_none=True)
        self.optimizers["D2"].zero_grad(set_to_none=True)
        d1 = self.d_loss(self.D, b_enc, fake_enc, halve=False)  # the reference does not halve D's loss here
        d2 = self.d_loss(self.D2, b_rand, fake_rand, halve=False)
        (d1["D"] + d2["D"]).backward()
        self.step("D")
        self.step("D2")
        return {**d1, **{f"{k}2": v for k, v in d2.items()}}
