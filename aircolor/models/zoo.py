"""Build a model of the zoo from its typed config: ``build_model(cfg)``.

Names: ``pix2pix``, ``cyclegan``, ``cut``, ``fastcut`` (CUT with the FastCUT preset), ``bicyclegan``. Weights are
initialised from ``cfg.train.seed`` inside a forked RNG, so building a model is deterministic and leaves the
global RNG untouched.
"""

from __future__ import annotations

import torch

from aircolor.config import RunConfig, load_config
from aircolor.models.base import GANModel
from aircolor.models.bicyclegan import BicycleGAN
from aircolor.models.cut import CUT
from aircolor.models.cyclegan import CycleGAN
from aircolor.models.pix2pix import Pix2Pix
from aircolor.models.registry import Registry

MODELS: Registry[type[GANModel]] = Registry("model")
MODELS.register("pix2pix")(Pix2Pix)
MODELS.register("cyclegan")(CycleGAN)
MODELS.register("cut")(CUT)
MODELS.register("bicyclegan")(BicycleGAN)
MODEL_NAMES = ("pix2pix", "cyclegan", "cut", "fastcut", "bicyclegan")


def name_overrides(name: str) -> list[str]:
    """Config overrides that select the model ``name`` (``fastcut`` is CUT with its preset)."""
    if name == "fastcut":
        return ["model.family=cut", "model.cut_mode=fastcut"]
    if name == "cut":
        return ["model.family=cut", "model.cut_mode=cut"]
    MODELS.get(name)  # raises with the valid names
    return [f"model.family={name}"]


def build_model(cfg: RunConfig) -> GANModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        return MODELS.get(cfg.model.family)(cfg)


def build_named(name: str, overrides: list[str] | tuple[str, ...] = ()) -> GANModel:
    """``build_named("fastcut", ["model.ngf=8"])``: the model at its family defaults plus overrides."""
    return build_model(load_config(None, [*name_overrides(name), *overrides]))
