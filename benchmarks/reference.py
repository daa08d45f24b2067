"""A training loop written the way the reference implementations train (pytorch-CycleGAN-and-pix2pix), for a
side-by-side speed comparison at identical architectures.

What "the reference way" means here, item by item (see ../shared/REFERENCE_MODELS.md):

* data: every iteration opens the file with PIL, ``convert("RGB")``, splits A|B (aligned) or draws a random B
  (unaligned), resizes to 286 with BICUBIC, takes a random 256 crop and a random flip (the same for A and B),
  ``ToTensor`` and ``Normalize(0.5, 0.5)``; ``num_workers`` 0 (the reference's ``--num_threads`` default is 4
  worker processes; with 2 cores here workers would only compete with the step);
* the step: fp32, NCHW, plain ``torch.optim.Adam(lr, betas=(0.5, 0.999))``, ``optimize_parameters`` in the
  reference order (pix2pix: D then G; CycleGAN: G then D with image pools), ``zero_grad()`` then ``backward()``;
* a ``.item()`` on every loss every iteration (the reference's ``get_current_losses`` at print time plus the
  visdom/HTML bookkeeping; here at every iteration, the way most copies of the loop log).

The networks are the model's own (built from the same config and seed as ours, so the weights are identical);
only the loop around them differs. Conversions between gray and RGB inputs reuse the model's helpers, so the
computation is the same; :func:`first_losses` checks that.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from aircolor.losses.gan import gan_loss
from aircolor.models.layers import set_requires_grad


class ReferenceData:
    """Aligned (A|B files) or unaligned (A and B folders) items, decoded and augmented on every access."""

    def __init__(self, root: Path, *, aligned: bool, size: int = 256, load_size: int = 286, seed: int = 0) -> None:
        self.aligned, self.size, self.load_size = aligned, size, load_size
        if aligned:
            self.paths = sorted((root / "aligned" / "train").glob("*.png"))
        else:
            self.paths = sorted((root / "unaligned" / "trainA").glob("*.png"))
            self.paths_b = sorted((root / "unaligned" / "trainB").glob("*.png"))
        self.rng = random.Random(seed)

    def _transform(self, images: list[Image.Image]) -> list[torch.Tensor]:
        images = [im.resize((self.load_size, self.load_size), Image.Resampling.BICUBIC) for im in images]
        x, y = self.rng.randint(0, self.load_size - self.size), self.rng.randint(0, self.load_size - self.size)
        flip = self.rng.random() > 0.5
        out = []
        for im in images:
            im = im.crop((x, y, x + self.size, y + self.size))
            if flip:
                im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            t = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)  # ToTensor
            out.append((t - 0.5) / 0.5)                                                         # Normalize
        return out

    def item(self, index: int) -> dict[str, torch.Tensor]:
        path = self.paths[index % len(self.paths)]
        if self.aligned:
            ab = Image.open(path).convert("RGB")
            w, h = ab.size
            a, b = ab.crop((0, 0, w // 2, h)), ab.crop((w // 2, 0, w, h))
        else:
            a = Image.open(path).convert("RGB")
            b = Image.open(self.paths_b[self.rng.randint(0, len(self.paths_b) - 1)]).convert("RGB")
        ta, tb = self._transform([a, b])
        return {"A": ta[None], "B": tb[None]}


class ReferenceLoop:
    """The reference's ``optimize_parameters`` around the networks of ``model`` (fp32, NCHW, plain Adam)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.family = model.cfg.model.family
        lr_g, lr_d = model.cfg.train.lr_G, model.cfg.train.lr_D
        betas = (model.cfg.train.beta1, 0.999)
        if self.family == "pix2pix":
            self.opt_G = torch.optim.Adam(model.G.parameters(), lr=lr_g, betas=betas)
            self.opt_D = torch.optim.Adam(model.D.parameters(), lr=lr_d, betas=betas)
        elif self.family == "cyclegan":
            self.opt_G = torch.optim.Adam(list(model.G_A.parameters()) + list(model.G_B.parameters()), lr=lr_g,
                                          betas=betas)
            self.opt_D = torch.optim.Adam(list(model.D_A.parameters()) + list(model.D_B.parameters()), lr=lr_d,
                                          betas=betas)
            from aircolor.models.pool import ImagePool

            self.pool_A, self.pool_B = ImagePool(model.cfg.model.pool_size), ImagePool(model.cfg.model.pool_size)
        else:
            raise ValueError(f"no reference loop for {self.family}")
        self.optimizers = [self.opt_G, self.opt_D]
        self.gan_mode = str(model.cfg.model.gan_mode)

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        self.model.train()
        losses = self._pix2pix(batch) if self.family == "pix2pix" else self._cyclegan(batch)
        return {k: v.item() for k, v in losses.items()}  # a host sync per loss, every iteration

    def _gan(self, pred: torch.Tensor, real: bool) -> torch.Tensor:
        return gan_loss(pred, real, self.gan_mode)

    def _pix2pix(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        m = self.model
        real_A, real_B = batch["A"][:, :m.input_nc], batch["B"]   # the reference feeds gray as 3 equal channels
        fake_B = m.G(real_A)
        set_requires_grad(m.D, True)
        self.opt_D.zero_grad()
        loss_D_fake = self._gan(m.D(torch.cat((real_A, fake_B), 1).detach()), False)
        loss_D_real = self._gan(m.D(torch.cat((real_A, real_B), 1)), True)
        loss_D = (loss_D_fake + loss_D_real) * 0.5
        loss_D.backward()
        self.opt_D.step()
        set_requires_grad(m.D, False)
        self.opt_G.zero_grad()
        loss_G_GAN = self._gan(m.D(torch.cat((real_A, fake_B), 1)), True)
        loss_G_L1 = F.l1_loss(fake_B, real_B) * m.cfg.model.lambda_L1
        (loss_G_GAN + loss_G_L1).backward()
        self.opt_G.step()
        return {"G_GAN": loss_G_GAN, "G_L1": loss_G_L1, "D_real": loss_D_real, "D_fake": loss_D_fake}

    def _cyclegan(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        m, c = self.model, self.model.cfg.model
        real_A, real_B = batch["A"][:, :m.input_nc], batch["B"]
        fake_B = m.G_A(real_A)
        rec_A = m.G_B(fake_B)
        fake_A = m.G_B(real_B)
        rec_B = m.G_A(fake_A)
        set_requires_grad([m.D_A, m.D_B], False)
        self.opt_G.zero_grad()
        out = {"G_A": self._gan(m.D_A(fake_B), True), "G_B": self._gan(m.D_B(fake_A), True),
               "cycle_A": F.l1_loss(rec_A, real_A) * c.lambda_A, "cycle_B": F.l1_loss(rec_B, real_B) * c.lambda_B}
        if c.lambda_identity > 0:
            out["idt_A"] = F.l1_loss(m.G_A(m.color_as_input(real_B)), real_B) * c.lambda_B * c.lambda_identity
            out["idt_B"] = F.l1_loss(m.G_B(m._to_b(real_A)), real_A) * c.lambda_A * c.lambda_identity
        sum(out.values()).backward()
        self.opt_G.step()
        set_requires_grad([m.D_A, m.D_B], True)
        self.opt_D.zero_grad()
        fb = self.pool_B.query(fake_B)
        d_a = 0.5 * (self._gan(m.D_A(real_B), True) + self._gan(m.D_A(fb.detach()), False))
        d_a.backward()
        fa = self.pool_A.query(fake_A)
        d_b = 0.5 * (self._gan(m.D_B(real_A), True) + self._gan(m.D_B(fa.detach()), False))
        d_b.backward()
        self.opt_D.step()
        out.update(D_A=d_a, D_B=d_b)
        return out
