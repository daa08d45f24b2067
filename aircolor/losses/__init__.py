"""Pure loss functions of tensors: GAN losses, the WGAN-GP gradient penalty, PatchNCE."""

from aircolor.losses.gan import GAN_MODES, critic_scores, gan_loss, gradient_penalty
from aircolor.losses.nce import patch_nce

__all__ = ["GAN_MODES", "critic_scores", "gan_loss", "gradient_penalty", "patch_nce"]
