"""Typed, frozen run configuration, loaded from YAML and overridden with dotted ``key=value`` arguments.

A run's configuration has five sections (``data``, ``model``, ``train``, ``metrics``, ``tracking``), each a
frozen dataclass. Loading is strict: an unknown key, a value of the wrong type or a value out of range is
a :class:`~aircolor.errors.ConfigError` whose message names the key and where it came from.

Some defaults depend on the model family (pix2pix uses batch norm and the vanilla GAN loss, CycleGAN and
CUT use instance norm and LSGAN, CUT trains 200 + 200 epochs and FastCUT 150 + 50, ...) and a few on the GAN
loss (WGAN-GP: 5 critic steps per generator step and Adam betas (0, 0.9), as in its paper). Those fields
default to ``None``, meaning "the family's default", and :func:`load_config` replaces every ``None`` by the
concrete value, so the resolved config that is dumped and recorded with a run has no ``None`` left where a
family default exists. Family defaults follow the papers' public reference implementations
(:mod:`aircolor.config_defaults`); the strict value checking is :mod:`aircolor.config_types`.

Example::

    cfg = load_config("run.yaml", ["model.ngf=32", "data.size=64"])
    print(dump_yaml(cfg))
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from aircolor.config_defaults import family_defaults, gan_mode_defaults
from aircolor.config_types import _check_bounds, _coerce, _describe
from aircolor.errors import ConfigError
from aircolor.yamlio import describe_error, load_strict

Family = Literal["pix2pix", "cyclegan", "cut", "bicyclegan"]
GENERATORS = ("unet_256", "unet_128", "unet_64", "unet_32", "unet_auto", "resnet_9blocks", "resnet_6blocks")
DISCRIMINATORS = ("basic", "n_layers", "pixel", "multiscale")


def _range(ge: float | None = None, le: float | None = None, gt: float | None = None) -> dict[str, Any]:
    return {"ge": ge, "le": le, "gt": gt}


def _f(default: Any, help: str = "", **bounds: float) -> Any:  # noqa: A002 - "help" reads best here
    """A dataclass field with a help text and optional numeric bounds (ge/le/gt)."""
    meta = {"help": help, **_range(**bounds)}
    return field(default=default, metadata=meta)  # defaults are immutable (tuples, not lists)


@dataclass(frozen=True)
class DataConfig:
    root: str = _f("data/prepared", "output folder of `aircolor data prepare`")
    layout: Literal["auto", "aligned", "unaligned"] = _f(
        "auto", "aligned A|B pairs (pix2pix, BicycleGAN) or unaligned A/B folders (CycleGAN, CUT); auto = by family"
    )
    color_space: Literal["rgb", "lab"] = _f("rgb", "rgb: gray -> RGB; lab: L -> a*b* (pix2pix factor 3)")
    size: int = _f(256, "crop size fed to the networks", ge=16, le=4096)
    load_size: int | None = _f(None, "resize before the random crop; default size * 286/256", ge=16, le=8192)
    preprocess: Literal["resize_and_crop", "crop", "resize", "none"] = _f("resize_and_crop", "augmentation")
    flip: bool = _f(True, "random horizontal flip (same for A and B)")
    cache: bool = _f(True, "keep decoded uint8 images in memory so later epochs skip decoding")
    num_workers: int = _f(2, "DataLoader worker processes", ge=0, le=64)
    on_device: Literal["auto", "on", "off"] = _f(
        "auto", "keep the decoded training split on the training device and crop/flip/convert batches there "
        "(auto: on with data.cache when it fits in a quarter of the free device/host memory)")
    max_images: int | None = _f(None, "use at most this many images per split (smoke tests)", ge=1)


@dataclass(frozen=True)
class ModelConfig:
    family: Family = _f("pix2pix", "model family")
    netG: str | None = _f(None, f"generator: {', '.join(GENERATORS)}")
    input_nc: int | None = _f(None, "generator input channels: 3 = gray repeated (the references), 1; lab: 1",
                              ge=1, le=3)
    netD: str | None = _f(None, f"discriminator: {', '.join(DISCRIMINATORS)}")
    antialias: bool | None = _f(None, "anti-aliased down/up-sampling in G and D (CUT's default)")
    n_layers_D: int = _f(3, "PatchGAN depth (3 = 70x70 receptive field)", ge=0, le=8)
    ngf: int = _f(64, "generator width (filters in the first layer)", ge=1, le=1024)
    ndf: int = _f(64, "discriminator width (filters in the first layer)", ge=1, le=1024)
    norm: Literal["batch", "instance", "none"] | None = _f(None, "normalisation layer")
    dropout: bool | None = _f(None, "dropout in the generator")
    init_type: Literal["normal", "xavier", "kaiming", "orthogonal"] | None = _f(None, "weight init")
    init_gain: float = _f(0.02, "scale of the weight init", gt=0, le=10)
    gan_mode: Literal["vanilla", "lsgan", "wgangp"] | None = _f(None, "GAN loss (factor 4 for CUT)")
    lambda_GP: float = _f(10.0, "gradient-penalty weight for wgangp", ge=0)
    lambda_GAN: float = _f(1.0, "weight of G's adversarial term(s); 0 = pure regression (the discriminators take no "
                                "steps)", ge=0)
    lambda_L1: float | None = _f(None, "L1 weight (pix2pix 100, BicycleGAN 10)", ge=0)
    recon_loss: Literal["l1", "l2"] = _f("l1", "pix2pix: the reconstruction term lambda_L1 weighs (l2: the squared "
                                               "error, whose optimum is the conditional mean: duller where unsure)")
    ab_bins: float = _f(0.0, "Lab pix2pix: classify a*b* over a grid of bins this many a*b* units wide (cross-entropy "
                             "weighted by lambda_L1), delivered as the expectation; 0 = regress a*b*", ge=0, le=48)
    target_tint: float = _f(0.0, "Lab pix2pix: a random global a*b* shift of the ground truth per image, uniform "
                                 "in +-this many a*b* units, with a chroma scale uniform in 1 +- this/20 (teaches "
                                 "that a region's tint is uncertain; 0 = off)", ge=0, le=50)
    lambda_A: float = _f(10.0, "CycleGAN cycle loss A->B->A", ge=0)
    lambda_B: float = _f(10.0, "CycleGAN cycle loss B->A->B", ge=0)
    lambda_identity: float = _f(0.5, "CycleGAN identity loss, relative to lambda_A/B", ge=0)
    pool_size: int | None = _f(None, "image pool of fakes for D (CycleGAN 50)", ge=0)
    cut_mode: Literal["cut", "fastcut"] = _f("cut", "CUT preset (factor 5)")
    lambda_NCE: float | None = _f(None, "PatchNCE weight (CUT 1, FastCUT 10)", ge=0)
    nce_idt: bool | None = _f(None, "NCE identity loss on Y (CUT on, FastCUT off)")
    nce_layers: tuple[int, ...] = _f((0, 4, 8, 12, 16), "generator layers used by PatchNCE")
    num_patches: int = _f(256, "patches per layer for PatchNCE", ge=1)
    nce_T: float = _f(0.07, "PatchNCE temperature", gt=0)
    netF_nc: int = _f(256, "PatchNCE projection head width", ge=1)
    flip_equivariance: bool | None = _f(None, "FastCUT flip-equivariance augmentation")
    nz: int = _f(8, "BicycleGAN latent size", ge=1, le=512)
    z_injection: Literal["input", "all", "middle"] = _f("all", "where BicycleGAN injects z (factor 6)")
    netE: Literal["resnet", "n_layers"] = _f("resnet", "BicycleGAN encoder")
    nef: int = _f(64, "BicycleGAN encoder width", ge=1, le=1024)
    lambda_kl: float = _f(0.01, "BicycleGAN KL weight", ge=0)
    lambda_z: float = _f(0.5, "BicycleGAN latent regression weight", ge=0)
    place_blend: bool = _f(False, "Lab generators: blend the chroma toward a place's colour table (written by "
                                  "`aircolor adapt`; the table and the weight are in the generator's weights)")


@dataclass(frozen=True)
class TrainConfig:
    n_epochs: int | None = _f(None, "epochs at the initial learning rate (100; CUT 200, FastCUT 150)", ge=0)
    n_epochs_decay: int | None = _f(None, "epochs of linear decay to 0 (100; CUT 200, FastCUT 50)", ge=0)
    batch_size: int | None = _f(None, "images per step (1; BicycleGAN 2)", ge=1, le=4096)
    lr_G: float = _f(2e-4, "generator learning rate", gt=0, le=1)
    lr_D: float = _f(2e-4, "discriminator learning rate", gt=0, le=1)
    beta1: float | None = _f(None, "Adam beta1 (0.5; wgangp 0.0, as in WGAN-GP)", ge=0, le=0.999999)
    beta2: float | None = _f(None, "Adam beta2 (0.999; wgangp 0.9, as in WGAN-GP)", ge=0, le=0.999999)
    n_critic: int | None = _f(None, "discriminator steps per generator step: D steps on every batch, G on every "
                                    "n_critic-th (1; wgangp 5, as in WGAN-GP)", ge=1, le=100)
    lr_policy: Literal["linear", "step", "cosine"] = _f("linear", "learning-rate schedule")
    lr_decay_epochs: int = _f(50, "step policy: multiply lr by 0.1 every this many epochs", ge=1)
    seed: int = _f(0, "random seed", ge=0)
    device: Literal["auto", "cpu", "cuda"] = _f("auto", "where to train")
    amp: Literal["auto", "off", "bf16"] = _f("auto", "bf16 autocast (auto: on for CUDA and for CPUs with native bf16)")
    channels_last: Literal["auto", "on", "off"] = _f("auto", "channels_last memory format (auto: on for CUDA only)")
    fused_adam: Literal["auto", "on", "off"] = _f("auto", "fused Adam kernels (auto: on, CUDA and CPU)")
    cudnn_benchmark: Literal["auto", "on", "off"] = _f("auto", "cuDNN autotuning for the fixed input size (auto: on)")
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = _f(
        "off", "torch.compile the networks in this mode (reduce-overhead: with CUDA graphs); needs a C++ compiler "
        "on CPU")
    checkpoint_every: int = _f(5, "epochs between checkpoints (and one at the end)", ge=1)
    resume: bool = _f(True, "continue from the run folder's last checkpoint if there is one")
    backend: Literal["local", "ray"] = _f("local", "run in-process or as a Ray Train job")
    workers: int = _f(1, "Ray Train workers (DDP when > 1)", ge=1, le=1024)
    use_gpu: bool | None = _f(None, "Ray Train workers use a GPU (default: if the cluster has GPUs)")
    cpus_per_worker: float = _f(1.0, "CPUs per Ray Train worker", gt=0)
    output_dir: str = _f("runs", "where checkpoints and run files go")


@dataclass(frozen=True)
class MetricsConfig:
    fid: bool = _f(True, "Frechet Inception Distance")
    isc: bool = _f(True, "Inception Score (10 splits)")
    kid: bool = _f(True, "Kernel Inception Distance")
    paired: bool = _f(True, "Delta E 2000 / PSNR / SSIM against the ground truth")
    inception_weights: str | None = _f(
        None, "local Inception weights file (else $AIRCOLOR_INCEPTION_WEIGHTS, else torch-fidelity's download)"
    )
    eval_every: int = _f(5, "epochs between evaluations", ge=1)
    max_images: int | None = _f(None, "evaluate on at most this many images", ge=2)
    kid_subset_size: int = _f(1000, "KID subset size (capped by the number of images)", ge=2)
    batch_size: int = _f(32, "batch size for feature extraction", ge=1)
    fid_points: int = _f(5, "also FID at this many sample sizes from n/5 to n (`fid_n<N>`), for the report's "
                            "FID-infinity; 0 or 1: off", ge=0)
    generator_mode: Literal["reference", "eval"] = _f(
        "reference", "how the generator runs when scored and when colorizing: reference = as the references' "
        "test.py (train-mode layers: dropout on, BatchNorm on each image's own statistics, one image per forward "
        "pass for BatchNorm nets); eval = model.eval() (running statistics, no dropout)")
    samples: int = _f(3, "BicycleGAN: z ~ N(0, I) samples per input; paired metrics are their mean, plus a "
                         "diversity score", ge=1, le=64)
    test_at_end: bool = _f(True, "score the test split once when training ends (`test.*`; never used to select)")


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool = _f(True, "record the run in MLflow")
    tracking_uri: str | None = _f(None, "MLflow tracking URI (else $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db in the working folder)")
    experiment: str = _f("aircolor", "MLflow experiment name")
    run_name: str | None = _f(None, "MLflow run name")
    log_every: int = _f(100, "iterations between loss logs", ge=1)
    sample_images: int = _f(8, "sample images logged per evaluation", ge=0)
    log_model: bool = _f(True, "log the final generator as an MLflow model")
    end_wait_s: float = _f(60.0, "seconds a run that ends while the tracking server is down waits for it before it "
                                 "leaves its records in the spool (a sweep replays them when it ends)", ge=0)


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "metrics": MetricsConfig,
            "tracking": TrackingConfig}


def _build_section(name: str, cls: type, raw: Any, origins: dict[str, str]) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        where = origins.get(name, "config")
        raise ConfigError(f"{where}: section '{name}' must be a mapping of keys to values, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{name}.{key}"
        where = origins.get(dotted, origins.get(name, "config"))
        if key not in fields:
            hint = difflib.get_close_matches(str(key), list(fields), n=1)
            suggestion = f" (did you mean '{name}.{hint[0]}'?)" if hint else ""
            raise ConfigError(f"{where}: unknown key '{dotted}'{suggestion}; "
                              f"valid keys in '{name}': {', '.join(fields)}")
        try:
            coerced = _coerce(value, hints[key])
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {dotted} must be {_describe(hints[key])}, got {value!r}") from None
        _check_bounds(dotted, coerced, fields[key].metadata, where)
        kwargs[key] = coerced
    return cls(**kwargs)


def _check_choices(cfg: RunConfig, origins: dict[str, str]) -> None:
    """Checks that span fields or lists that `Literal` cannot express."""
    def where(key: str) -> str:
        return origins.get(key, origins.get(key.split(".")[0], "config"))

    m, d = cfg.model, cfg.data
    if m.netG is not None and m.netG not in GENERATORS:
        raise ConfigError(f"{where('model.netG')}: model.netG must be one of {', '.join(GENERATORS)}, got {m.netG!r}")
    if m.netD is not None and m.netD not in DISCRIMINATORS:
        raise ConfigError(f"{where('model.netD')}: model.netD must be one of {', '.join(DISCRIMINATORS)}, "
                          f"got {m.netD!r}")
    if m.input_nc == 2:
        raise ConfigError(f"{where('model.input_nc')}: model.input_nc must be 1 or 3, got 2")
    if d.color_space == "lab" and m.input_nc == 3:
        raise ConfigError(f"{where('model.input_nc')}: model.input_nc must be 1 with data.color_space 'lab' "
                          "(the input is the L channel)")
    if any(i < 0 for i in m.nce_layers) or not m.nce_layers:
        raise ConfigError(f"{where('model.nce_layers')}: model.nce_layers must be a non-empty list of layer "
                          f"indices >= 0, got {list(m.nce_layers)}")
    if d.load_size is not None and d.load_size < d.size:
        raise ConfigError(f"{where('data.load_size')}: data.load_size ({d.load_size}) must be >= data.size "
                          f"({d.size}): the random crop is taken from the resized image")
    if m.ab_bins and (d.color_space != "lab" or m.family != "pix2pix"):
        raise ConfigError(f"{where('model.ab_bins')}: model.ab_bins needs pix2pix with data.color_space 'lab' (it "
                          "classifies a*b*)")
    if m.ab_bins and m.ab_bins < 2:
        raise ConfigError(f"{where('model.ab_bins')}: model.ab_bins is a bin width in a*b* units (2 to 48, e.g. "
                          f"8), got {m.ab_bins}")
    if m.target_tint and d.color_space != "lab":
        raise ConfigError(f"{where('model.target_tint')}: model.target_tint needs data.color_space 'lab' (it shifts "
                          "the ground truth's a*b*)")
    if d.color_space == "lab" and m.family != "pix2pix":
        raise ConfigError(f"{where('data.color_space')}: data.color_space 'lab' is only defined for pix2pix "
                          f"(the study's factor 3), not for {m.family!r}; use 'rgb'")
    if m.family == "bicyclegan" and cfg.train.batch_size is not None and cfg.train.batch_size % 2:
        raise ConfigError(f"{where('train.batch_size')}: train.batch_size must be even for BicycleGAN (half the "
                          f"batch is encoded, half uses random z), got {cfg.train.batch_size}")


def resolve(cfg: RunConfig) -> RunConfig:
    """Replace every ``None`` that has a family (or GAN-loss) default by that default; other values are kept."""
    sections = {name: getattr(cfg, name) for name in SECTIONS}

    def fill(defaults: dict[str, Any]) -> None:
        for dotted, value in defaults.items():
            section, key = dotted.split(".")
            current = getattr(sections[section], key)
            if current is None or (dotted == "data.layout" and current == "auto"):
                sections[section] = dataclasses.replace(sections[section], **{key: value})

    fill(family_defaults(cfg.model.family, cfg.model.cut_mode))
    model = sections["model"]
    fill(gan_mode_defaults(str(model.gan_mode), model.lambda_GAN))  # after the family's, which sets gan_mode
    data = sections["data"]
    if sections["model"].input_nc is None:
        sections["model"] = dataclasses.replace(sections["model"], input_nc=1 if data.color_space == "lab" else 3)
    if data.load_size is None:
        sections["data"] = dataclasses.replace(data, load_size=max(data.size, round(data.size * 286 / 256)))
    return RunConfig(**sections)


# --------------------------------------------------------------------------------------------- loading
def parse_override(text: str) -> tuple[str, Any]:
    """Split ``"model.ngf=32"`` into ``("model.ngf", 32)``; the value is read as YAML (``null``, lists, ...)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or "." not in key:
        raise ConfigError(f"override {text!r}: expected SECTION.KEY=VALUE, e.g. model.ngf=32")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check the path") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.__class__.__name__}); pass a YAML file") from None
    try:
        data = load_strict(text)
    except yaml.YAMLError as exc:
        where, _, problem = describe_error(exc).partition(": ")
        raise ConfigError(f"config file {path}{where}: not valid YAML ({problem}); fix it") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping with sections {', '.join(SECTIONS)}")
    return data


def config_from_dict(raw: dict[str, Any], *, source: str = "config",
                     origins: dict[str, str] | None = None, resolve_defaults: bool = True) -> RunConfig:
    """Build a validated :class:`RunConfig` from nested dicts (YAML, a Ray Tune trial, a logged run)."""
    origins = dict(origins or {})
    for name in raw:
        if name not in SECTIONS:
            hint = difflib.get_close_matches(str(name), list(SECTIONS), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            where = origins.get(str(name), source)
            raise ConfigError(f"{where}: unknown section '{name}'{suggestion}; valid sections: {', '.join(SECTIONS)}")
    for name in SECTIONS:
        origins.setdefault(name, source)
    sections = {name: _build_section(name, cls, raw.get(name), origins) for name, cls in SECTIONS.items()}
    cfg = RunConfig(**sections)
    _check_choices(cfg, origins)
    return resolve(cfg) if resolve_defaults else cfg


def load_config(path: str | os.PathLike[str] | None = None, overrides: typing.Iterable[str] = ()) -> RunConfig:
    """Load ``path`` (YAML; None = all defaults), apply dotted ``key=value`` overrides, validate, resolve."""
    source = str(path) if path is not None else "defaults"
    raw: dict[str, Any] = _read_yaml(Path(path)) if path is not None else {}
    origins: dict[str, str] = {}
    for text in overrides:
        key, value = parse_override(text)
        section, _, rest = key.partition(".")
        if "." in rest:
            raise ConfigError(f"override {text!r}: keys have two parts (SECTION.KEY), got {key!r}")
        if section not in raw:
            origins.setdefault(section, f"override {text!r}")
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"override {text!r}: section '{section}' in {source} is not a mapping")
        target[rest] = value
        origins[key] = f"override {text!r}"
        origins.setdefault(section, source)
    return config_from_dict(raw, source=source, origins=origins)


def config_to_dict(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """Plain nested dicts (tuples as lists) for YAML, JSON and MLflow params."""
    out: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        section = dataclasses.asdict(getattr(cfg, name))
        out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in section.items()}
    return out


def flatten(cfg: RunConfig) -> dict[str, Any]:
    """``{"model.ngf": 64, ...}``: one entry per key, as logged to MLflow and used by sweeps."""
    return {f"{s}.{k}": v for s, section in config_to_dict(cfg).items() for k, v in section.items()}


def dump_yaml(cfg: RunConfig) -> str:
    """The fully resolved config as YAML; :func:`load_config` reads it back to an equal config."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)


def describe_keys() -> list[tuple[str, str, Any, str]]:
    """``(dotted key, type, default, help)`` for every key, for ``aircolor config keys``."""
    rows = []
    for name, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            rows.append((f"{name}.{f.name}", _describe(hints[f.name]), default, f.metadata.get("help", "")))
    return rows
