"""The model zoo: generators, discriminators and GAN losses, each behind a name registry."""

from aircolor.models import discriminators, generators  # noqa: F401  (fill the registries)
from aircolor.models.registry import DISCRIMINATORS, GENERATORS

__all__ = ["DISCRIMINATORS", "GENERATORS"]
