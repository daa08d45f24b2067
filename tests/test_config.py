"""Run configuration: strict loading, overrides, family defaults, and the YAML round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from aircolor.config import (
    RunConfig,
    config_from_dict,
    config_to_dict,
    describe_keys,
    dump_yaml,
    flatten,
    load_config,
    parse_override,
)
from aircolor.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_defaults_follow_the_papers():
    cfg = load_config()
    assert cfg.model.family == "pix2pix"
    assert (cfg.model.netG, cfg.model.netD, cfg.model.norm, cfg.model.gan_mode) == ("unet_256", "basic", "batch",
                                                                                      "vanilla")
    assert cfg.model.lambda_L1 == 100.0 and cfg.model.dropout is True
    assert (cfg.train.lr_G, cfg.train.lr_D, cfg.train.beta1, cfg.train.beta2) == (2e-4, 2e-4, 0.5, 0.999)
    assert cfg.train.n_critic == 1 and cfg.model.lambda_GAN == 1.0
    assert (cfg.train.n_epochs, cfg.train.n_epochs_decay, cfg.train.batch_size) == (100, 100, 1)
    assert cfg.model.n_layers_D == 3  # 70x70 PatchGAN
    assert (cfg.data.size, cfg.data.load_size, cfg.data.layout) == (256, 286, "aligned")


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["model.family=cyclegan"], {"model.netG": "resnet_9blocks", "model.norm": "instance",
                                     "model.gan_mode": "lsgan", "model.pool_size": 50, "data.layout": "unaligned"}),
        (["model.family=cut"], {"model.lambda_NCE": 1.0, "model.nce_idt": True, "train.n_epochs": 200,
                                "train.n_epochs_decay": 200}),
        (["model.family=cut", "model.cut_mode=fastcut"], {"model.lambda_NCE": 10.0, "model.nce_idt": False,
                                                          "model.flip_equivariance": True, "train.n_epochs": 150,
                                                          "train.n_epochs_decay": 50}),
        (["model.family=bicyclegan"], {"train.batch_size": 2, "model.lambda_L1": 10.0, "model.netD": "multiscale",
                                       "model.nz": 8, "model.z_injection": "all", "data.layout": "aligned"}),
    ],
)
def test_family_defaults_resolve(overrides, expected):
    flat = flatten(load_config(None, overrides))
    for key, value in expected.items():
        assert flat[key] == value, key


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["model.gan_mode=lsgan"], (1, 0.5, 0.999)),
        (["model.family=cut", "model.gan_mode=wgangp"], (5, 0.0, 0.9)),           # WGAN-GP's Algorithm 1
        (["model.family=bicyclegan", "model.gan_mode=wgangp"], (5, 0.0, 0.9)),
        (["model.gan_mode=wgangp", "train.beta1=0.5"], (5, 0.5, 0.9)),             # explicit values win
        (["model.gan_mode=wgangp", "train.n_critic=1", "train.beta2=0.99"], (1, 0.0, 0.99)),
        (["model.gan_mode=lsgan", "train.n_critic=3", "train.beta1=0.0"], (3, 0.0, 0.999)),
        (["model.gan_mode=wgangp", "model.lambda_GAN=0"], (1, 0.5, 0.999)),         # no critic: no critic recipe
    ],
)
def test_n_critic_and_adam_betas_follow_the_gan_loss(overrides, expected, tmp_path):
    cfg = load_config(None, overrides)
    assert (cfg.train.n_critic, cfg.train.beta1, cfg.train.beta2) == expected
    assert load_config(write(tmp_path, dump_yaml(cfg))) == cfg  # resolved values survive the YAML round trip


def test_lambda_gan_applies_to_every_family_and_is_checked():
    for family in ("pix2pix", "cyclegan", "cut", "bicyclegan"):
        assert load_config(None, [f"model.family={family}", "model.lambda_GAN=0.1"]).model.lambda_GAN == 0.1
    with pytest.raises(ConfigError, match="model.lambda_GAN must be >= 0"):
        load_config(None, ["model.lambda_GAN=-1"])
    with pytest.raises(ConfigError, match="train.n_critic must be >= 1"):
        load_config(None, ["train.n_critic=0"])


def test_explicit_values_beat_family_defaults():
    cfg = load_config(None, ["model.family=cut", "model.cut_mode=fastcut", "train.n_epochs=3", "model.nce_idt=true"])
    assert cfg.train.n_epochs == 3 and cfg.model.nce_idt is True and cfg.model.lambda_NCE == 10.0


def test_yaml_plus_overrides(tmp_path):
    path = write(tmp_path, "model:\n  ngf: 16\n  ndf: 16\ndata:\n  size: 64\ntrain:\n  lr_G: 1e-4\n")
    cfg = load_config(path, ["model.ngf=32", "data.size=32", "train.lr_D=5e-5", "model.nce_layers=[0,4]"])
    assert cfg.model.ngf == 32 and cfg.model.ndf == 16
    assert cfg.data.size == 32 and cfg.data.load_size == 36  # 286/256 of the crop
    assert cfg.train.lr_G == 1e-4 and cfg.train.lr_D == 5e-5  # "1e-4" is a string to PyYAML
    assert cfg.model.nce_layers == (0, 4)


def test_config_is_frozen():
    cfg = load_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.ngf = 3  # type: ignore[misc]


def test_dump_round_trip(tmp_path):
    cfg = load_config(None, ["model.family=cut", "model.cut_mode=fastcut", "model.ngf=8", "data.size=32",
                             "metrics.inception_weights=/w.pth"])
    text = dump_yaml(cfg)
    assert "null" not in yaml.safe_load(text)["model"].values()
    path = write(tmp_path, text)
    assert load_config(path) == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["model.ngff=3"], ["model.ngff", "did you mean 'model.ngf'"]),
        (["modle.ngf=3"], ["unknown section 'modle'", "did you mean 'model'"]),
        (["model.ngf=abc"], ["model.ngf", "an integer", "'abc'"]),
        (["model.ngf=2.5"], ["model.ngf", "an integer"]),
        (["model.ngf=0"], ["model.ngf", ">= 1"]),
        (["train.lr_G=-1"], ["train.lr_G", "> 0"]),
        (["train.lr_G=nan"], ["train.lr_G", "a number"]),
        (["model.gan_mode=hinge"], ["model.gan_mode", "'vanilla'", "'wgangp'"]),
        (["model.netG=unet_512"], ["model.netG", "resnet_9blocks"]),
        (["data.flip=maybe"], ["data.flip", "true or false"]),
        (["data.flip=1"], ["data.flip", "true or false"]),
        (["data.size=64", "data.load_size=32"], ["data.load_size", ">= data.size"]),
        (["model.family=cyclegan", "data.color_space=lab"], ["data.color_space", "pix2pix"]),
        (["model.family=bicyclegan", "train.batch_size=3"], ["train.batch_size", "even"]),
        (["ngf=3"], ["SECTION.KEY=VALUE"]),
        (["model.ngf"], ["SECTION.KEY=VALUE"]),
    ],
)
def test_bad_values_name_the_key(overrides, words):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    if "=" in overrides[-1] and overrides[-1].count(".") == 1 and overrides[-1][0] != "n":
        assert "override" in message  # says where the bad value came from


def test_on_off_switches_read_as_words_from_overrides_and_yaml(tmp_path):
    """YAML 1.1 reads on/off as booleans; the on/off/auto switches take them as the words they were."""
    cfg = load_config(None, ["train.channels_last=on", "train.fused_adam=off", "data.on_device=on"])
    assert (cfg.train.channels_last, cfg.train.fused_adam, cfg.data.on_device) == ("on", "off", "on")
    cfg = load_config(write(tmp_path, "train:\n  cudnn_benchmark: off\ndata:\n  on_device: off\n"))
    assert (cfg.train.cudnn_benchmark, cfg.data.on_device) == ("off", "off")
    with pytest.raises(ConfigError, match="train.amp must be one of"):
        load_config(None, ["train.amp=on"])  # amp is auto/off/bf16: 'on' would not say which precision


def test_errors_in_files_name_the_file(tmp_path):
    path = write(tmp_path, "model:\n  ngf: -4\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: model\.ngf must be >= 1, got -4"):
        load_config(path)
    path = write(tmp_path, "model: [1, 2]\n")
    with pytest.raises(ConfigError, match="section 'model' must be a mapping"):
        load_config(path)
    path = write(tmp_path, "model:\n  ngf: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_parse_override_reads_yaml_values():
    assert parse_override("model.ngf=32") == ("model.ngf", 32)
    assert parse_override("tracking.run_name=null") == ("tracking.run_name", None)
    assert parse_override("model.nce_layers=[0, 4]") == ("model.nce_layers", [0, 4])
    assert parse_override("data.root=a=b") == ("data.root", "a=b")


def test_every_key_is_described():
    rows = describe_keys()
    keys = {row[0] for row in rows}
    assert keys == set(flatten(RunConfig()))
    assert all(row[3] for row in rows), "every key needs a help text"
