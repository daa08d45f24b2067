"""Discriminators: registered by name in :data:`aircolor.models.registry.DISCRIMINATORS` when imported."""

from aircolor.models.discriminators import patchgan  # noqa: F401  (registration side effect)
