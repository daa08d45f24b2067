"""GAN losses shared by every model, and the WGAN-GP gradient penalty.

``gan_loss(pred, target_is_real, mode)``, where ``pred`` is a discriminator's logit map (or a list of maps from
a multi-scale D, whose losses are summed as in BicycleGAN):

* ``vanilla`` (Goodfellow et al. 2014): binary cross-entropy on logits against 1 (real) or 0 (fake);
* ``lsgan`` (Mao et al. 2017): mean squared error against 1 or 0;
* ``wgangp`` (Gulrajani et al. 2017): the critic's Wasserstein estimate, ``-mean(pred)`` for real and
  ``+mean(pred)`` for fake; the models add ``lambda_GP`` times :func:`gradient_penalty` to the critic's loss,
  ``L = E[D(fake)] - E[D(real)] + lambda_GP GP`` (eq. 3), with no 0.5 on the Wasserstein term.

The references accept ``wgangp`` but never call their penalty function, so they train plain WGAN losses with
no Lipschitz constraint. Ours applies it.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

GAN_MODES = ("vanilla", "lsgan", "wgangp")


def _single(pred: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    if mode == "vanilla":
        target = torch.full_like(pred, 1.0 if target_is_real else 0.0)
        return F.binary_cross_entropy_with_logits(pred, target)
    if mode == "lsgan":
        target = torch.full_like(pred, 1.0 if target_is_real else 0.0)
        return F.mse_loss(pred, target)
    if mode == "wgangp":
        return -pred.mean() if target_is_real else pred.mean()
    raise KeyError(f"unknown GAN loss {mode!r}; valid: {', '.join(GAN_MODES)}")


def gan_loss(pred: torch.Tensor | Sequence[torch.Tensor], target_is_real: bool, mode: str) -> torch.Tensor:
    """The GAN loss of logits ``pred`` (a tensor, or a list from a multi-scale D: summed)."""
    if isinstance(pred, (list, tuple)):
        return torch.stack([_single(p, target_is_real, mode) for p in pred]).sum()
    return _single(pred, target_is_real, mode)


def critic_scores(pred: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """The critic's score of each image (B,): the mean of its patch map, summed over the scales of a multi-scale
    D. This is the reduction :func:`gan_loss` applies, so ``gan_loss(pred, False, "wgangp")`` is
    ``critic_scores(pred).mean()``."""
    preds = list(pred) if isinstance(pred, (list, tuple)) else [pred]
    return torch.stack([p.reshape(p.size(0), -1).mean(1) for p in preds]).sum(0)


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor | Sequence[torch.Tensor]],
                     real: torch.Tensor, fake: torch.Tensor, *, constant: float = 1.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``mean((||grad_x f(x)||_2 - constant)^2)`` at random interpolates ``x = a*real + (1-a)*fake``.

    Gulrajani et al. 2017, eq. 3 (without the lambda, which the caller applies). ``a ~ U[0, 1)`` per sample.
    ``f(x)`` is the critic's score of image ``x`` as the Wasserstein loss sees it, :func:`critic_scores` (the
    mean of the patch map): the gradient of the sum over the patch map would be ~900x larger at 30x30 patches,
    and would push the critic the loss uses to a gradient norm of ~1/900. The scores of different images do not
    depend on each other's inputs, so one gradient of their sum gives every image's own gradient. The gradient is
    taken with ``create_graph=True`` so that the penalty itself trains the critic.
    """
    alpha = torch.rand(real.size(0), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype,
                       generator=generator)
    interp = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic_scores(critic(interp))
    grads = torch.autograd.grad(outputs=scores.sum(), inputs=interp, create_graph=True)[0]
    norms = (grads.flatten(1) + 1e-16).norm(2, dim=1)
    return ((norms - constant) ** 2).mean()
