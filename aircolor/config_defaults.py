"""The defaults that depend on the model family (and CUT preset) or on the GAN loss: what a ``None`` in a run
config resolves to (:func:`aircolor.config.resolve`). Values follow each reference implementation's
``modify_commandline_options`` (see README, "Model defaults"); WGAN-GP follows its paper (Gulrajani et al. 2017)."""

from __future__ import annotations

from typing import Any

# Values after each reference implementation's `modify_commandline_options` (see README, "Model defaults").
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "pix2pix": {"model.netG": "unet_256", "model.netD": "basic", "model.norm": "batch", "model.dropout": True,
                "model.init_type": "normal", "model.gan_mode": "vanilla", "model.lambda_L1": 100.0,
                "model.pool_size": 0, "data.layout": "aligned", "train.batch_size": 1},
    "cyclegan": {"model.netG": "resnet_9blocks", "model.netD": "basic", "model.norm": "instance",
                 "model.dropout": False, "model.init_type": "normal", "model.gan_mode": "lsgan",
                 "model.lambda_L1": 0.0, "model.pool_size": 50, "data.layout": "unaligned", "train.batch_size": 1},
    "cut": {"model.netG": "resnet_9blocks", "model.netD": "basic", "model.norm": "instance", "model.dropout": False,
            "model.antialias": True,
            "model.init_type": "xavier", "model.gan_mode": "lsgan", "model.lambda_L1": 0.0, "model.pool_size": 0,
            "data.layout": "unaligned", "train.batch_size": 1},
    "bicyclegan": {"model.netG": "unet_256", "model.netD": "multiscale", "model.norm": "instance",
                   "model.dropout": False, "model.init_type": "xavier", "model.gan_mode": "lsgan",
                   "model.lambda_L1": 10.0, "model.pool_size": 0, "data.layout": "aligned", "train.batch_size": 2},
}
CUT_PRESETS: dict[str, dict[str, Any]] = {
    "cut": {"model.nce_idt": True, "model.lambda_NCE": 1.0, "model.flip_equivariance": False,
            "train.n_epochs": 200, "train.n_epochs_decay": 200},
    "fastcut": {"model.nce_idt": False, "model.lambda_NCE": 10.0, "model.flip_equivariance": True,
                "train.n_epochs": 150, "train.n_epochs_decay": 50},
}
COMMON_DEFAULTS: dict[str, Any] = {"model.antialias": False, "train.n_epochs": 100, "train.n_epochs_decay": 100,
                                   "model.nce_idt": False, "model.lambda_NCE": 0.0, "model.flip_equivariance": False}
# Keys whose default depends on the GAN loss rather than the family: WGAN-GP's recipe (Gulrajani et al. 2017,
# Algorithm 1: n_critic 5, Adam alpha 1e-4, beta1 0, beta2 0.9; we keep the study's lr 2e-4) vs the papers' Adam.
GAN_MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "wgangp": {"train.n_critic": 5, "train.beta1": 0.0, "train.beta2": 0.9},
}
OTHER_GAN_DEFAULTS: dict[str, Any] = {"train.n_critic": 1, "train.beta1": 0.5, "train.beta2": 0.999}


def family_defaults(family: str, cut_mode: str = "cut") -> dict[str, Any]:
    """The dotted-key defaults that a ``None`` resolves to for ``family`` (and CUT preset)."""
    out = dict(COMMON_DEFAULTS)
    out.update(FAMILY_DEFAULTS[family])
    if family == "cut":
        out.update(CUT_PRESETS[cut_mode])
    return out


def gan_mode_defaults(gan_mode: str, lambda_gan: float = 1.0) -> dict[str, Any]:
    """The dotted-key defaults that depend on the (resolved) GAN loss: n_critic and Adam's betas. Without an
    adversarial term (``model.lambda_GAN`` 0) there is no critic, so the GAN loss changes nothing."""
    return GAN_MODE_DEFAULTS.get(gan_mode, OTHER_GAN_DEFAULTS) if lambda_gan > 0 else OTHER_GAN_DEFAULTS
