"""GAN losses, the WGAN-GP gradient penalty and PatchNCE against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from aircolor.losses import critic_scores, gan_loss, gradient_penalty, patch_nce

PRED = torch.tensor([[[[2.0, -1.0], [0.0, 0.5]]]])


def test_vanilla_is_bce_on_logits():
    sig = [1 / (1 + math.exp(-v)) for v in (2.0, -1.0, 0.0, 0.5)]
    real = -sum(math.log(s) for s in sig) / 4
    fake = -sum(math.log(1 - s) for s in sig) / 4
    assert gan_loss(PRED, True, "vanilla").item() == pytest.approx(real, rel=1e-6)
    assert gan_loss(PRED, False, "vanilla").item() == pytest.approx(fake, rel=1e-6)


def test_lsgan_is_mse_against_constant():
    assert gan_loss(PRED, True, "lsgan").item() == pytest.approx(((1 + 4 + 1 + 0.25) / 4), rel=1e-6)
    assert gan_loss(PRED, False, "lsgan").item() == pytest.approx(((4 + 1 + 0 + 0.25) / 4), rel=1e-6)


def test_wgan_is_signed_mean():
    assert gan_loss(PRED, True, "wgangp").item() == pytest.approx(-0.375)
    assert gan_loss(PRED, False, "wgangp").item() == pytest.approx(0.375)


def test_multiscale_losses_are_summed():
    preds = [PRED, PRED * 2]
    expected = gan_loss(PRED, True, "lsgan") + gan_loss(PRED * 2, True, "lsgan")
    assert gan_loss(preds, True, "lsgan").item() == pytest.approx(expected.item())


def test_unknown_mode_lists_valid_ones():
    with pytest.raises(KeyError, match="vanilla, lsgan, wgangp"):
        gan_loss(PRED, True, "hinge")


class Linear(nn.Module):
    """critic(x) = sum(w * x) per sample: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1)


def test_penalty_is_zero_for_unit_gradient_and_positive_otherwise():
    torch.manual_seed(0)
    real, fake = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
    w = torch.randn(1, 4, 4)
    unit = Linear(w / w.norm())
    assert gradient_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-6)
    steep = Linear(3 * w / w.norm())
    assert gradient_penalty(steep, real, fake).item() == pytest.approx(4.0, rel=1e-4)  # (3 - 1)^2


def conv1x1(weight: float) -> nn.Conv2d:
    """A 1x1 conv critic ``f(x) = weight * x`` on 1-channel images: its patch map has one logit per pixel."""
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(weight)
        conv.bias.zero_()
    return conv


def test_penalty_is_on_the_per_image_mean_score():
    """The score of an HxW image is the mean of the 1x1 critic's HxW map, whose input gradient is w / (H W) at every
    pixel: norm |w| / sqrt(H W). w = 8 on 4x4 images: norm 2, GP = (2 - 1)^2 = 1 (the sum over the map would
    give norm 32, GP 961)."""
    torch.manual_seed(0)
    real, fake = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    assert gradient_penalty(conv1x1(8.0), real, fake).item() == pytest.approx(1.0, rel=1e-5)
    assert gradient_penalty(conv1x1(4.0), real, fake).item() == pytest.approx(0.0, abs=1e-9)  # norm 1


def test_penalty_of_a_multiscale_critic_sums_the_scales_scores():
    """Two scales (the second on a 2x2 average pool, whose mean is the image's mean): the score is the sum of the
    two means, with input gradient (w1 + w2) / (H W) per pixel; w1 4 and w2 8 on 4x4: norm 3, GP 4."""
    c1, c2, pool = conv1x1(4.0), conv1x1(8.0), nn.AvgPool2d(2)

    def critic(x: torch.Tensor) -> list[torch.Tensor]:
        return [c1(x), c2(pool(x))]

    torch.manual_seed(0)
    real, fake = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(4.0, rel=1e-5)
    preds = critic(real)
    assert critic_scores(preds).shape == (3,)
    assert gan_loss(preds, False, "wgangp").item() == pytest.approx(critic_scores(preds).mean().item(), rel=1e-6)


def test_penalty_step_pulls_gradient_norm_towards_one():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 3, padding=1))
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(6.0)  # start far from 1-Lipschitz
    real, fake = torch.randn(8, 1, 8, 8), torch.randn(8, 1, 8, 8)

    def grad_norm() -> float:
        x = (0.5 * real + 0.5 * fake).requires_grad_(True)
        g = torch.autograd.grad(critic_scores(critic(x)).sum(), x)[0]  # the per-image mean scores
        return g.flatten(1).norm(dim=1).mean().item()

    before = grad_norm()
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    for _ in range(20):
        opt.zero_grad()
        (10 * gradient_penalty(critic, real, fake)).backward()  # create_graph: the penalty has gradients
        opt.step()
    after = grad_norm()
    assert abs(after - 1) < abs(before - 1) / 2, (before, after)


def test_patch_nce_two_patch_case_matches_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[0.8, 0.6], [0.6, 0.8]])
    tau = 0.07
    loss = patch_nce(q, k, batch_size=1, tau=tau)
    # patch 0: positive <q0,k0> = 0.8, negatives: <q0,k0> masked to -10, <q0,k1> = 0.6
    def ce(pos: float, negs: list[float]) -> float:
        logits = [pos / tau] + [n / tau for n in negs]
        return -logits[0] + math.log(sum(math.exp(v) for v in logits))
    expected = [ce(0.8, [-10.0, 0.6]), ce(0.8, [0.6, -10.0])]
    assert loss.tolist() == pytest.approx(expected, rel=1e-5)


def test_patch_nce_prefers_aligned_features():
    torch.manual_seed(0)
    k = nn.functional.normalize(torch.randn(2 * 16, 32), dim=1)
    q = nn.functional.normalize(k + 0.1 * torch.randn_like(k), dim=1)
    aligned = patch_nce(q, k, batch_size=2).mean()
    shuffled = patch_nce(q[torch.randperm(32)], k, batch_size=2).mean()
    assert aligned < shuffled


def test_patch_nce_does_not_backpropagate_into_keys():
    k = torch.randn(4, 8, requires_grad=True)
    q = torch.randn(4, 8, requires_grad=True)
    patch_nce(q, k, batch_size=1).mean().backward()
    assert k.grad is None and q.grad is not None
