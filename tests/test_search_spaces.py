"""Search spaces (``sweeps/space.py``, ``search_spaces/*.yaml``): loading, grids, overrides, Optuna, bad files.

Fast (no Ray cluster): Ray is imported only to check ``OptunaSearch`` and ``grid_search`` without starting it.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from aircolor.config import flatten, load_config
from aircolor.errors import UsageError
from sweeps.space import SEED_KEY, SearchSpace, load_space, render

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))
SHIPPED = {"g_d_balance", "pix2pix_generator", "pix2pix_colorspace", "cut_gan_loss", "cut_identity",
           "bicyclegan_z", "gan_weight", "full"}
NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+/seed\d+$")


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def assert_matches(space: SearchSpace, params: dict, cfg) -> None:
    """The trial's config holds every param exactly (same value, same type family)."""
    flat = flatten(cfg)
    for key, value in params.items():
        assert flat[key] == value and isinstance(flat[key], bool) == isinstance(value, bool), (key, flat[key], value)
    if space.family is not None:
        assert cfg.model.family == space.family
    for key, value in space.fixed.items():
        assert flat[key] == (list(value) if isinstance(value, tuple) else value)


# --------------------------------------------------------------------------------------------- shipped spaces
def test_every_factor_has_a_space() -> None:
    assert {p.stem for p in SPACES} >= SHIPPED


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_shipped_space_loads(path: Path) -> None:
    space = load_space(path)
    assert space.name == path.stem and space.description and "\n" not in space.description
    assert space.metric in (None, "fid", "kid", "is", "psnr", "ssim", "delta_e2000", "colorfulness")
    assert len(space.sha256) == 64
    raw = yaml.safe_load(path.read_text())
    assert list(space.factors) == list(raw["factors"])  # file order kept


@pytest.mark.parametrize("path", [p for p in SPACES if load_space(p).is_categorical], ids=lambda p: p.stem)
def test_categorical_grid_is_every_combination_times_seeds(path: Path) -> None:
    space = load_space(path)
    raw = yaml.safe_load(path.read_text())  # count independently of the loader
    assert not any("when" in spec for spec in raw["factors"].values())
    expected = math.prod(len(spec["choice"]) for spec in raw["factors"].values()) * raw.get("seeds", 1)
    grid = space.grid()
    assert len(grid) == expected
    assert len({json.dumps(p, sort_keys=True) for p in grid}) == expected
    assert grid == space.grid()  # deterministic
    names = [space.trial_name(p) for p in grid]
    assert len(set(names)) == expected and all(NAME_RE.match(n) for n in names), names
    for params in grid:
        assert list(params) == [*raw["factors"], SEED_KEY]
        assert 0 <= params[SEED_KEY] < space.seeds
        assert_matches(space, params, space.trial_config(params))
        assert space.from_tune({"params": params}) == params


def test_shipped_grids_by_hand() -> None:
    names = ("pix2pix_generator", "pix2pix_colorspace", "cut_gan_loss", "cut_identity", "bicyclegan_z", "gan_weight")
    assert [len(load_space(ROOT / f"search_spaces/{n}.yaml").grid()) for n in names] == [4, 4, 6, 4, 6, 6]
    cut = load_space(ROOT / "search_spaces/cut_identity.yaml")
    assert [cut.trial_name(p) for p in cut.grid()] == ["cut/seed0", "fastcut/seed0", "cut/seed1", "fastcut/seed1"]
    fast = cut.trial_config({"model.cut_mode": "fastcut", SEED_KEY: 1})
    assert (fast.model.family, fast.model.cut_mode, fast.model.nce_idt, fast.train.n_epochs, fast.train.seed) == \
        ("cut", "fastcut", False, 150, 1)
    lab = load_space(ROOT / "search_spaces/pix2pix_colorspace.yaml").trial_config({"data.color_space": "lab",
                                                                                   SEED_KEY: 0})
    assert lab.model.input_nc == 1


def test_gan_weight_space_has_a_non_adversarial_arm():
    """What does the GAN add: pix2pix (Lab, U-Net) at lambda_GAN 0 (pure L1 regression), 0.1 and 1."""
    space = load_space(ROOT / "search_spaces/gan_weight.yaml")
    assert [space.trial_name(p) for p in space.grid()][:3] == ["lambdaGAN0/seed0", "lambdaGAN0.1/seed0",
                                                                "lambdaGAN1/seed0"]
    for weight in (0.0, 0.1, 1.0):
        cfg = space.trial_config({"model.lambda_GAN": weight, SEED_KEY: 0})
        assert (cfg.model.family, cfg.data.color_space, cfg.model.netG, cfg.model.input_nc) == \
            ("pix2pix", "lab", "unet_256", 1)
        assert (cfg.model.lambda_GAN, cfg.model.gan_mode, cfg.model.lambda_L1) == (weight, "vanilla", 100.0)


@pytest.mark.parametrize("name", ["g_d_balance", "full"])
def test_continuous_spaces_are_searched_not_gridded(name: str) -> None:
    space = load_space(ROOT / f"search_spaces/{name}.yaml")
    assert not space.is_categorical
    with pytest.raises(UsageError, match="grid"):
        space.grid()


def test_full_space_conditions() -> None:
    space = load_space(ROOT / "search_spaces/full.yaml")
    assert space.family is None and space.factors["model.family"].kind == "choice"
    own = {"pix2pix": {"model.netG", "data.color_space"}, "cut": {"model.gan_mode", "model.cut_mode"},
           "bicyclegan": {"model.z_injection"}}
    for family, keys in own.items():
        for key in keys:
            assert space.factors[key].when == {"model.family": (family,)}
    assert space.order.index("model.family") < min(space.order.index(k) for keys in own.values() for k in keys)


# --------------------------------------------------------------------------------------------- conditional grid
COND = """\
    description: conditional grid, counted by hand
    factors:
      model.family: {choice: [pix2pix, cut]}
      model.gan_mode: {choice: [vanilla, lsgan, wgangp], when: {model.cut_mode: fastcut}}   # before its condition
      model.netG: {choice: [unet_256, resnet_9blocks], when: {model.family: pix2pix}}
      model.cut_mode: {choice: [cut, fastcut], when: {model.family: [cut]}}
      model.ngf: {choice: [32, 64]}
    seeds: 2
"""


def test_conditional_grid_has_no_duplicates_and_no_misses(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, COND))
    assert space.order.index("model.cut_mode") < space.order.index("model.gan_mode")
    # by hand: pix2pix 2 netG x 2 ngf = 4; cut: (cut: 2 ngf) + (fastcut: 3 gan_mode x 2 ngf) = 8; x 2 seeds
    grid = space.grid()
    assert len(grid) == (4 + 2 + 6) * 2
    assert len({json.dumps(p, sort_keys=True) for p in grid}) == len(grid)
    expected = set()
    for seed in (0, 1):
        for ngf in (32, 64):
            expected |= {("pix2pix", g, None, None, ngf, seed) for g in ("unet_256", "resnet_9blocks")}
            expected.add(("cut", None, "cut", None, ngf, seed))
            expected |= {("cut", None, "fastcut", m, ngf, seed) for m in ("vanilla", "lsgan", "wgangp")}
    got = {(p["model.family"], p.get("model.netG"), p.get("model.cut_mode"), p.get("model.gan_mode"),
            p["model.ngf"], p[SEED_KEY]) for p in grid}
    assert got == expected
    names = {space.trial_name(p) for p in grid}
    assert len(names) == len(grid) and "cut-wgangp-fastcut-ngf64/seed1" in names  # file order
    for params in grid:
        assert_matches(space, params, space.trial_config(params))
    # an inactive factor in the params is dropped, not applied
    params = {"model.family": "cut", "model.cut_mode": "cut", "model.ngf": 32, "model.netG": "unet_256", SEED_KEY: 0}
    assert space.factor_values(params) == {"model.family": "cut", "model.cut_mode": "cut", "model.ngf": 32}
    assert not any(o.startswith("model.netG=") for o in space.overrides(params))


# --------------------------------------------------------------------------------------------- overrides, names
@pytest.mark.parametrize("key,value", [
    ("train.lr_G", 1e-4), ("train.lr_G", 2.5e-05), ("train.lr_G", 1e-05), ("train.lr_D", 0.1 + 0.2),
    ("train.lr_G", 1.0), ("model.lambda_GP", 1e20), ("model.lambda_GP", 123456789.125), ("model.ngf", 64),
    ("data.flip", False), ("tracking.run_name", None), ("tracking.run_name", "on"), ("tracking.run_name", "null"),
    ("tracking.run_name", "1e-4"), ("tracking.run_name", "123"), ("tracking.run_name", "a b: c"),
    ("tracking.run_name", ""), ("tracking.run_name", " padded "), ("model.nce_layers", (0, 4)),
])
def test_render_round_trips_through_load_config(key: str, value: object) -> None:
    cfg = load_config(None, [f"{key}={render(value)}"])
    got = flatten(cfg)[key]
    assert got == (list(value) if isinstance(value, tuple) else value) and type(got) is type(
        list(value) if isinstance(value, tuple) else value)


def test_overrides_round_trip_float_choices(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, """\
        family: pix2pix
        fixed: {train.lr_D: 2.5e-05, model.nce_layers: [0, 4]}
        factors:
          train.lr_G: {choice: [1e-4, 2.5e-05, 1.0e-3, 0.0002]}   # 1e-4 is text to PyYAML: stored as 0.0001
    """))
    assert space.factors["train.lr_G"].choices == (1e-4, 2.5e-05, 1e-3, 2e-4)
    assert space.fixed == {"train.lr_D": 2.5e-05, "model.nce_layers": (0, 4)}
    params = {"train.lr_G": 2.5e-05, SEED_KEY: 0}
    assert space.overrides(params) == ["model.family=pix2pix", "train.lr_D=2.5e-05", "model.nce_layers=[0, 4]",
                                       "train.lr_G=2.5e-05", "train.seed=0"]
    for p in space.grid():
        cfg = space.trial_config(p, ["train.lr_D=0.5"])  # extra overrides come last and win
        assert cfg.train.lr_G == p["train.lr_G"] and cfg.train.lr_D == 0.5
    assert [space.trial_name(p) for p in space.grid()] == ["lrG1e-4/seed0", "lrG2.5e-5/seed0", "lrG1e-3/seed0",
                                                            "lrG2e-4/seed0"]


def test_trial_names_readable(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, """\
        family: pix2pix
        factors:
          model.ngf: {choice: [64, 32]}
          model.ndf: {choice: [32]}
          train.lr_G: {choice: [2.0e-4]}
          train.lr_D: {choice: [1.0e-4, 0.5]}
          data.flip: {choice: [true, false]}
          model.netG: {choice: [unet_256, null]}
    """))
    params = {"model.ngf": 64, "model.ndf": 32, "train.lr_G": 2e-4, "train.lr_D": 1e-4, "data.flip": True,
              "model.netG": None, SEED_KEY: 0}
    assert space.trial_name(params) == "ngf64-ndf32-lrG2e-4-lrD1e-4-flip_true-netG_null/seed0"
    names = [space.trial_name(p) for p in space.grid()]
    assert len(set(names)) == len(names) == 16


def test_trial_names_qualified_when_bare_values_would_collide(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, """\
        family: cut
        factors:
          tracking.experiment: {choice: [x, x-y]}
          tracking.run_name: {choice: [y], when: {tracking.experiment: x}}
    """))
    names = [space.trial_name(p) for p in space.grid()]
    assert names == ["experiment_x-runname_y/seed0", "experiment_x-y/seed0"]


def test_params_are_checked_strictly() -> None:
    space = load_space(ROOT / "search_spaces/cut_identity.yaml")
    for bad, field in [({"model.cut_mode": "cut"}, "train.seed"),
                       ({"model.cut_mode": "cut", SEED_KEY: 2}, "train.seed"),
                       ({"model.cut_mode": "cutt", SEED_KEY: 0}, "model.cut_mode"),
                       ({"model.cut_mod": "cut", SEED_KEY: 0}, "model.cut_mod"),
                       ({SEED_KEY: 0}, "missing model.cut_mode"),
                       ({"params": {"model.cut_mode": "cut", SEED_KEY: 0}, "extra": 1}, "extra")]:
        with pytest.raises(UsageError, match=re.escape(field)) as info:
            space.from_tune(bad)
        assert str(info.value).startswith(str(space.path)) and "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------- Optuna
NUMERIC = """\
    description: every kind of distribution, with conditions
    family: cut
    factors:
      model.ngf: {int: [32, 128], step: 32}
      model.ndf: {int: [8, 256], log: true}
      model.lambda_GP: {uniform: [0.0, 1.0], step: 0.1}
      train.lr_G: {loguniform: [1e-5, 1.0e-3]}
      model.gan_mode: {choice: [lsgan, wgangp]}
      model.lambda_NCE: {uniform: [0.5, 2.0], when: {model.cut_mode: fastcut}}
      model.cut_mode: {choice: [cut, fastcut], when: {model.gan_mode: wgangp}}
      model.lambda_L1: {int: [0, 100], step: 10, when: {model.gan_mode: lsgan}}   # int on a number key
    seeds: 3
"""


def _sample(space: SearchSpace, n: int, sampler: str) -> list[dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {"random": optuna.samplers.RandomSampler(seed=0), "tpe": optuna.samplers.TPESampler(seed=0)}
    study = optuna.create_study(sampler=samplers[sampler])
    define = space.optuna_space()
    study.optimize(lambda t: (define(t), float(len(t.params)))[1], n_trials=n)
    assert len(study.trials) == n
    return [t.params for t in study.trials]


def _check_sample(space: SearchSpace, sample: dict) -> None:
    params = space.from_tune(sample)  # raises if an active factor is missing or out of its domain
    assert set(params) == set(sample), "an inactive factor was sampled"
    assert 0 <= sample[SEED_KEY] < space.seeds
    for key, value in sample.items():
        if key == SEED_KEY:
            continue
        f = space.factors[key]
        if f.kind == "int":
            assert isinstance(value, int) and f.low <= value <= f.high
            assert f.step is None or (value - f.low) % f.step == 0
        elif f.kind != "choice":
            assert isinstance(value, float) and f.low <= value <= f.high
            if f.step is not None:
                assert abs((value - f.low) / f.step - round((value - f.low) / f.step)) < 1e-6
    assert_matches(space, params, space.trial_config(params))


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_optuna_define_by_run_respects_bounds_steps_and_conditions(tmp_path: Path, sampler: str) -> None:
    space = load_space(write(tmp_path, NUMERIC))
    assert space.order.index("model.gan_mode") < space.order.index("model.cut_mode") < \
        space.order.index("model.lambda_NCE")
    samples = _sample(space, 40, sampler)
    for sample in samples:
        _check_sample(space, sample)
        wgan = sample["model.gan_mode"] == "wgangp"
        assert ("model.cut_mode" in sample) == wgan and ("model.lambda_L1" in sample) == (not wgan)
        assert ("model.lambda_NCE" in sample) == (sample.get("model.cut_mode") == "fastcut")
    assert {s["model.gan_mode"] for s in samples} == {"lsgan", "wgangp"}
    assert len({s[SEED_KEY] for s in samples}) == 3
    assert any(s["model.ndf"] < 32 for s in samples)  # log scale reaches the low end


@pytest.mark.parametrize("name", ["g_d_balance", "full"])
def test_optuna_on_shipped_spaces(name: str) -> None:
    space = load_space(ROOT / f"search_spaces/{name}.yaml")
    samples = _sample(space, 30, "random")
    for sample in samples:
        _check_sample(space, sample)
    if name == "full":
        for s in samples:
            family = s["model.family"]
            assert ("model.netG" in s) == ("data.color_space" in s) == (family == "pix2pix")
            assert ("model.gan_mode" in s) == ("model.cut_mode" in s) == (family == "cut")
            assert ("model.z_injection" in s) == (family == "bicyclegan")
        assert len({s["model.family"] for s in samples}) == 4


def test_ray_optuna_search_and_grid_search_round_trip() -> None:
    """Ray Tune's own code paths, without a cluster: OptunaSearch.suggest and the grid's variant generator."""
    pytest.importorskip("ray.tune.search.optuna")
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.search.variant_generator import generate_variants

    space = load_space(ROOT / "search_spaces/full.yaml")
    assert pickle.loads(pickle.dumps(space.optuna_space())).space == space  # Tune saves the searcher with it
    searcher = OptunaSearch(space=space.optuna_space(), metric="val.fid", mode="min", seed=0)
    for i in range(8):
        config = searcher.suggest(f"t{i}")
        assert SEED_KEY in config and "model.family" in config  # flat, dotted names as sampled
        _check_sample(space, config)
        searcher.on_trial_complete(f"t{i}", {"val.fid": float(i), "training_iteration": 1})

    grid_space = load_space(ROOT / "search_spaces/cut_gan_loss.yaml")
    configs = [config for _, config in generate_variants(grid_space.tune_grid_space())]
    assert [grid_space.from_tune(c) for c in configs] == grid_space.grid()


# --------------------------------------------------------------------------------------------- bad files
GOOD_FACTOR = "factors:\n  model.ngf: {choice: [32, 64]}\n"
BAD: list[tuple[str, str, str]] = [  # (id, file text, what the one-line message must name)
    ("not_yaml", "family: cut\nfactors: {model.ngf: [32\n", "not valid YAML"),
    ("not_mapping", "- family\n- factors\n", "expected a mapping"),
    ("empty_file", "", "empty file"),
    ("duplicate_yaml_key", "family: cut\nfactors:\n  model.ngf: {choice: [32]}\n  model.ngf: {choice: [64]}\n",
     "line 4: not valid YAML (key 'model.ngf' is given twice)"),
    ("unknown_field", "famliy: cut\n" + GOOD_FACTOR, "famliy: unknown field (did you mean 'family'?)"),
    ("description_not_text", "description: [a]\nfamily: cut\n" + GOOD_FACTOR, "description:"),
    ("factors_missing", "family: cut\n", "factors: missing"),
    ("factors_empty", "family: cut\nfactors: {}\n", "factors: missing or empty"),
    ("unknown_kind", "family: cut\nfactors:\n  model.ngf: {normal: [32, 64]}\n",
     "factors.model.ngf.normal: unknown distribution"),
    ("misspelt_kind", "family: cut\nfactors:\n  model.ngf: {choise: [32, 64]}\n", "did you mean 'choice'?"),
    ("two_kinds", "family: cut\nfactors:\n  model.ngf: {choice: [32], int: [1, 2]}\n",
     "factors.model.ngf: give exactly one distribution"),
    ("no_kind", "family: cut\nfactors:\n  model.ngf: {step: 2}\n", "factors.model.ngf: give exactly one"),
    ("spec_not_mapping", "family: cut\nfactors:\n  model.ngf: [32, 64]\n",
     "factors.model.ngf: expected a distribution"),
    ("unknown_key", "family: cut\nfactors:\n  model.ngff: {choice: [32, 64]}\n",
     "factors.model.ngff: not a run-config key (did you mean 'model.ngf'?)"),
    ("key_without_section", "family: cut\nfactors:\n  ngf: {choice: [32, 64]}\n", "factors.ngf: not a run-config key"),
    ("seed_as_factor", "family: cut\nfactors:\n  train.seed: {choice: [1, 2]}\n", "factors.train.seed: seeds come"),
    ("empty_choice", "family: cut\nfactors:\n  model.ngf: {choice: []}\n",
     "factors.model.ngf.choice: expected a non-empty"),
    ("choice_not_list", "family: cut\nfactors:\n  model.ngf: {choice: 32}\n", "factors.model.ngf.choice: expected"),
    ("choice_value_list", "family: cut\nfactors:\n  model.nce_layers: {choice: [[0, 4]]}\n",
     "factors.model.nce_layers.choice[0]: must be one value"),
    ("duplicate_choice", "family: cut\nfactors:\n  model.ngf: {choice: [32, 64, 32]}\n",
     "factors.model.ngf.choice[2]: duplicate of choice[0]"),
    ("duplicate_choice_after_parsing", "family: cut\nfactors:\n  train.lr_G: {choice: [1e-4, 1.0e-4]}\n",
     "factors.train.lr_G.choice[1]: duplicate of choice[0]"),
    ("wrong_type_choice", "family: cut\nfactors:\n  model.ngf: {choice: [a, 64]}\n",
     "factors.model.ngf.choice[0]: model.ngf must be an integer"),
    ("invalid_choice", "family: pix2pix\nfactors:\n  model.netG: {choice: [unet_256, unet_512]}\n",
     "factors.model.netG.choice[1]: model.netG must be one of"),
    ("invalid_literal", "family: cut\nfactors:\n  model.cut_mode: {choice: [cut, slowcut]}\n",
     "factors.model.cut_mode.choice[1]"),
    ("choice_invalid_for_family", "family: cut\nfactors:\n  data.color_space: {choice: [rgb, lab]}\n",
     "factors.data.color_space.choice[1]: data.color_space 'lab' is only defined for pix2pix"),
    ("low_above_high", "family: cut\nfactors:\n  train.lr_G: {uniform: [1.0e-3, 1.0e-4]}\n",
     "factors.train.lr_G.uniform: low (0.001) must be < high (0.0001)"),
    ("low_equals_high", "family: cut\nfactors:\n  model.ngf: {int: [64, 64]}\n", "factors.model.ngf.int: low (64)"),
    ("bounds_shape", "family: cut\nfactors:\n  train.lr_G: {uniform: [1.0e-3]}\n",
     "factors.train.lr_G.uniform: expected [low, high]"),
    ("bound_not_number", "family: cut\nfactors:\n  train.lr_G: {uniform: [a, 1.0e-3]}\n",
     "factors.train.lr_G.uniform[0]: must be a number"),
    ("int_bound_not_int", "family: cut\nfactors:\n  model.ngf: {int: [32.5, 64]}\n",
     "factors.model.ngf.int[0]: must be an integer"),
    ("loguniform_low_zero", "family: cut\nfactors:\n  train.lr_G: {loguniform: [0.0, 1.0e-3]}\n",
     "factors.train.lr_G.loguniform: a log scale needs low > 0"),
    ("int_log_low_zero", "family: cut\nfactors:\n  model.ngf: {int: [0, 64], log: true}\n",
     "factors.model.ngf.int: a log scale needs low > 0"),
    ("step_zero", "family: cut\nfactors:\n  model.ngf: {int: [32, 128], step: 0}\n",
     "factors.model.ngf.step: 0 must be > 0"),
    ("step_negative", "family: cut\nfactors:\n  model.lambda_GP: {uniform: [0.0, 1.0], step: -0.1}\n",
     "factors.model.lambda_GP.step"),
    ("step_not_dividing_int", "family: cut\nfactors:\n  model.ngf: {int: [32, 128], step: 40}\n",
     "factors.model.ngf.step: 40 must be > 0 and divide high - low (96)"),
    ("step_not_dividing_float", "family: cut\nfactors:\n  model.lambda_GP: {uniform: [0.0, 1.0], step: 0.3}\n",
     "factors.model.lambda_GP.step: 0.3 must be > 0 and divide"),
    ("step_and_log", "family: cut\nfactors:\n  model.ngf: {int: [1, 65], step: 2, log: true}\n",
     "factors.model.ngf: step and log cannot be combined"),
    ("log_not_bool", "family: cut\nfactors:\n  model.ngf: {int: [1, 64], log: yes please}\n", "factors.model.ngf.log"),
    ("log_on_uniform", "family: cut\nfactors:\n  train.lr_G: {uniform: [1.0e-5, 1.0e-3], log: true}\n",
     "factors.train.lr_G.log: not an option of 'uniform'"),
    ("step_on_loguniform", "family: cut\nfactors:\n  train.lr_G: {loguniform: [1.0e-5, 1.0e-3], step: 1.0e-5}\n",
     "factors.train.lr_G.step: not an option of 'loguniform'"),
    ("uniform_on_int_key", "family: cut\nfactors:\n  model.ngf: {uniform: [32, 64]}\n",
     "factors.model.ngf: 'uniform' samples numbers but model.ngf takes an integer"),
    ("int_on_text_key", "family: pix2pix\nfactors:\n  model.netG: {int: [1, 2]}\n",
     "factors.model.netG: 'int' samples integers but model.netG takes text; use choice"),
    ("uniform_on_literal_key", "family: cut\nfactors:\n  model.z_injection: {uniform: [1.0, 2.0]}\n",
     "model.z_injection takes one of input, all, middle; use choice"),
    ("bound_out_of_range", "family: cut\nfactors:\n  train.lr_G: {loguniform: [1.0e-5, 2.0]}\n",
     "factors.train.lr_G.loguniform[1]: train.lr_G must be <= 1"),
    ("numeric_family", "factors:\n  model.family: {int: [1, 2]}\n", "factors.model.family"),
    ("unknown_family", "family: stylegan\n" + GOOD_FACTOR, "family: unknown model family 'stylegan'"),
    ("unknown_family_in_factor", "factors:\n  model.family: {choice: [pix2pix, stylegan]}\n",
     "factors.model.family.choice[1]: unknown model family 'stylegan'"),
    ("family_missing", GOOD_FACTOR, "family: missing"),
    ("family_twice", "family: cut\nfactors:\n  model.family: {choice: [pix2pix, cut]}\n",
     "family: given both here and as the factor model.family"),
    ("when_unknown_key", ("factors:\n  model.family: {choice: [pix2pix, cut]}\n"
     "  model.ngf: {choice: [32, 64], when: {model.famly: cut}}\n"),
     "factors.model.ngf.when.model.famly: not a condition key (did you mean 'model.family'?)"),
    ("when_not_a_factor", "family: pix2pix\nfactors:\n  model.ngf: {choice: [32, 64], when: {model.netD: basic}}\n",
     "factors.model.ngf.when.model.netD: not a condition key"),
    ("when_on_numeric_factor", ("family: cut\nfactors:\n  train.lr_G: {uniform: [0.1, 0.2]}\n"
     "  model.ngf: {choice: [32, 64], when: {train.lr_G: 0.1}}\n"), "factors.model.ngf.when.train.lr_G"),
    ("when_value_outside", ("factors:\n  model.family: {choice: [pix2pix, cut]}\n"
     "  model.ngf: {choice: [32, 64], when: {model.family: [cut, cyclegan]}}\n"),
     "factors.model.ngf.when.model.family: 'cyclegan' is not one of model.family's values (pix2pix, cut)"),
    ("when_value_outside_fixed_family", ("family: pix2pix\nfactors:\n"
     "  model.ngf: {choice: [32, 64], when: {model.family: cut}}\n"),
     "factors.model.ngf.when.model.family: 'cut' is not one of model.family's values (pix2pix)"),
    ("when_value_outside_factor", ("family: cut\nfactors:\n  model.cut_mode: {choice: [cut, fastcut]}\n"
     "  model.ngf: {choice: [32, 64], when: {model.cut_mode: slowcut}}\n"), "factors.model.ngf.when.model.cut_mode"),
    ("when_self", "family: cut\nfactors:\n  model.ngf: {choice: [32, 64], when: {model.ngf: 32}}\n",
     "factors.model.ngf.when.model.ngf: a factor cannot depend on itself"),
    ("when_cycle", ("family: cut\nfactors:\n  model.ngf: {choice: [32, 64], when: {model.ndf: 32}}\n"
     "  model.ndf: {choice: [32, 64], when: {model.ngf: 32}}\n"), "conditions go round in a circle"),
    ("when_not_mapping", "family: cut\nfactors:\n  model.ngf: {choice: [32, 64], when: cut}\n",
     "factors.model.ngf.when: expected a mapping"),
    ("when_never_active", ("family: pix2pix\nfactors:\n  model.ngf: {choice: [32, 64]}\n"
     "  model.netD: {choice: [basic], when: {model.ngf: 32}}\n  model.norm: {choice: [batch], when: {model.ngf: 64}}\n"
     "  model.netG: {choice: [unet_256], when: {model.netD: basic, model.norm: batch}}\n"),
     "factors.model.netG.when: the conditions can never all hold"),
    ("factor_also_fixed", "family: cut\nfixed: {model.ngf: 64}\n" + GOOD_FACTOR,
     "factors.model.ngf: also in 'fixed'"),
    ("seeds_zero", "family: cut\nseeds: 0\n" + GOOD_FACTOR, "seeds: must be a positive integer"),
    ("seeds_text", "family: cut\nseeds: two\n" + GOOD_FACTOR, "seeds: must be a positive integer"),
    ("seeds_bool", "family: cut\nseeds: true\n" + GOOD_FACTOR, "seeds: must be a positive integer"),
    ("seeds_float", "family: cut\nseeds: 2.0\n" + GOOD_FACTOR, "seeds: must be a positive integer"),
    ("unknown_metric", "family: cut\nmetric: lpips\n" + GOOD_FACTOR, "metric: unknown metric 'lpips'"),
    ("fixed_invalid_value", "family: pix2pix\nfixed: {model.netG: unet_512}\n" + GOOD_FACTOR,
     "fixed.model.netG: model.netG must be one of"),
    ("fixed_wrong_type", "family: pix2pix\nfixed: {train.lr_D: fast}\n" + GOOD_FACTOR,
     "fixed.train.lr_D: train.lr_D must be a number"),
    ("fixed_cross_key", "family: cut\nfixed: {data.color_space: lab}\n" + GOOD_FACTOR, "fixed.data.color_space"),
    ("fixed_unknown_key", "family: cut\nfixed: {model.ngff: 64}\n" + GOOD_FACTOR,
     "fixed.model.ngff: not a run-config key (did you mean 'model.ngf'?)"),
    ("fixed_family", "family: cut\nfixed: {model.family: cut}\n" + GOOD_FACTOR, "fixed.model.family: set the model"),
    ("fixed_seed", "family: cut\nfixed: {train.seed: 3}\n" + GOOD_FACTOR, "fixed.train.seed: seeds come"),
    ("fixed_not_mapping", "family: cut\nfixed: [model.ngf]\n" + GOOD_FACTOR, "fixed: must be a mapping"),
    ("choice_conflicts_with_fixed", ("family: pix2pix\nfixed: {model.input_nc: 3}\n"
     "factors:\n  data.color_space: {choice: [rgb, lab]}\n"), "fixed.model.input_nc: model.input_nc must be 1"),
    ("invalid_combination", ("family: pix2pix\nfactors:\n  data.color_space: {choice: [rgb, lab]}\n"
     "  model.input_nc: {choice: [1, 3]}\n"),
     "factors: the combination data.color_space=lab, model.input_nc=3 is not a valid run config"),
    ("invalid_combination_family", ("factors:\n  model.family: {choice: [pix2pix, bicyclegan]}\n"
     "  train.batch_size: {choice: [1, 2]}\n"), "factors: the combination model.family=bicyclegan, train.batch_size=1"),
]


def bad_files(folder: Path) -> list[tuple[Path, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    out = [(folder / "missing.yaml", "no such search-space file")]
    for name, text, field in BAD:
        path = folder / f"{name}.yaml"
        path.write_text(text)
        out.append((path, field))
    return out


@pytest.mark.parametrize("index", range(len(BAD) + 1), ids=["missing", *(b[0] for b in BAD)])
def test_bad_space_is_one_clear_line(tmp_path: Path, index: int) -> None:
    path, field = bad_files(tmp_path / "bad")[index]
    with pytest.raises(UsageError) as info:
        load_space(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert field in message, message


def test_bad_spaces_fail_before_ray_starts(tmp_path: Path) -> None:
    """Every bad file fails in load_space, and neither that nor using a good space imports Ray or Optuna."""
    cases = [(str(p), f) for p, f in bad_files(tmp_path / "bad")]
    script = textwrap.dedent(f"""
        import json, sys
        from aircolor.errors import UsageError
        from sweeps.space import load_space
        for path, field in json.loads({json.dumps(json.dumps(cases))}):
            try:
                load_space(path)
            except UsageError as exc:
                assert field in str(exc), (path, str(exc))
            else:
                raise SystemExit("no error for " + path)
        space = load_space({str(ROOT / "search_spaces/full.yaml")!r})
        space.trial_config({{"model.family": "cut", "model.ngf": 32, "model.ndf": 64, "train.lr_G": 1e-4,
                            "train.lr_D": 1e-4, "model.gan_mode": "wgangp", "model.cut_mode": "fastcut",
                            "train.seed": 0}})
        grid = load_space({str(ROOT / "search_spaces/cut_identity.yaml")!r})
        [grid.trial_config(p) for p in grid.grid()]
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("ray", "optuna"))
        assert not loaded, loaded
        print("ok", len(json.loads({json.dumps(json.dumps(cases))})))
    """)
    proc = subprocess.run([sys.executable, "-c", script], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["ok", str(len(cases))]


def test_cli_reports_a_bad_space_in_one_line_without_ray(tmp_path: Path) -> None:
    """``aircolor sweep run BAD.yaml``: exit 2, one line naming the file and the field, Ray never imported."""
    chosen = {"unknown_key", "wrong_type_choice", "when_value_outside", "step_not_dividing_int"}
    cases = [(str(p), f) for p, f in bad_files(tmp_path / "bad") if p.stem in chosen]
    script = textwrap.dedent(f"""
        import contextlib, io, json, sys
        from aircolor.cli import main
        for path, field in json.loads({json.dumps(json.dumps(cases))}):
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                rc = main(["sweep", "run", path, "--storage", {str(tmp_path / "sweeps")!r}])
            lines = err.getvalue().strip().splitlines()
            assert rc == 2 and len(lines) == 1, (rc, lines)
            assert lines[0].startswith("aircolor: error: " + path) and field in lines[0], lines[0]
        assert "ray" not in sys.modules, "the CLI imported ray before the space was checked"
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
