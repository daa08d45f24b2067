"""Generators: registered by name in :data:`aircolor.models.registry.GENERATORS` when imported."""

from aircolor.models.generators import resnet, unet  # noqa: F401  (registration side effect)
