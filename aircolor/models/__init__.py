"""The model zoo: pix2pix, CycleGAN, CUT / FastCUT and BicycleGAN behind one interface.

``build_model(cfg)`` returns a :class:`~aircolor.models.base.GANModel` with ``train_step(batch)``,
``colorize(gray)``, ``training_state()`` / ``load_training_state()`` and ``parameter_counts()``.
Generators, discriminators and models are registered by name.
"""

from aircolor.models import discriminators, generators  # noqa: F401  (fill the registries)
from aircolor.models.generators import unet_z  # noqa: F401
from aircolor.models.registry import DISCRIMINATORS, GENERATORS
from aircolor.models.zoo import MODEL_NAMES, MODELS, build_model, build_named

__all__ = ["DISCRIMINATORS", "GENERATORS", "MODELS", "MODEL_NAMES", "build_model", "build_named"]
