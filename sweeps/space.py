"""Search spaces: which run-config keys a sweep varies, and how, as data (``search_spaces/*.yaml``).

A space is checked completely when it is loaded, before Ray starts: a typo or a value the run config rejects
is a :class:`~aircolor.errors.UsageError` of one line that names the file and the field. Ray and Optuna are
imported only by the two methods that hand the space to them.

Format (every key of ``fixed``, ``factors`` and ``when`` is a dotted run-config key, see ``aircolor config keys``)::

    description: CUT vs FastCUT identity loss (factor 5)    # optional, one line
    family: cut          # pix2pix | cyclegan | cut | bicyclegan; required unless model.family is a factor
    fixed:               # optional: overrides applied to every trial
      model.netG: resnet_9blocks
    factors:             # required: key -> exactly one distribution, plus options
      model.cut_mode: {choice: [cut, fastcut]}                 # any scalar values, distinct, non-empty
      train.lr_G: {loguniform: [1.0e-5, 1.0e-3]}               # low > 0
      model.ngf: {int: [32, 128], step: 32}                    # options: step (divides high - low) or log
      model.lambda_L1: {uniform: [0.0, 100.0], step: 10.0}     # option: step (divides high - low)
      model.lambda_identity: {uniform: [0.0, 1.0], when: {model.family: cyclegan}}
    seeds: 2             # optional (default 1): every configuration runs with train.seed = 0 .. seeds-1
    metric: fid          # optional default metric: a key of sweeps.state.METRICS

Rules: bounds are ``[low, high]`` with ``low < high``; ``step`` and ``log`` do not combine; ``uniform`` and
``loguniform`` need a key that takes a number (``int`` also suits a number key). ``when`` maps
``model.family`` or another ``choice`` factor to a value or a list of values; the factor is active only when
every condition holds (conditions may chain, not loop). A key is either fixed or a factor; ``model.family`` is
set by ``family`` or is a factor, and ``train.seed`` by ``seeds``. A space whose factors are all ``choice`` is
*categorical*: the driver runs its :meth:`SearchSpace.grid` (every combination x seeds once); any other space
is searched by Optuna through :meth:`SearchSpace.optuna_space`.

A trial's parameters (*params*) are a flat dict of dotted keys: the active factors and ``train.seed``.
``SearchSpace.from_tune`` reads them back from a Ray Tune trial config, which is ``{"params": {...}}`` for a
grid (:meth:`tune_grid_space`) and the flat dict itself for Optuna (``OptunaSearch`` un-flattens on "/" only).

Example::

    space = load_space("search_spaces/cut_identity.yaml")
    for params in space.grid():
        print(space.trial_name(params), space.overrides(params))
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from aircolor.config import SECTIONS, Family, RunConfig, load_config
from aircolor.errors import UsageError

FAMILIES: tuple[str, ...] = get_args(Family)
FIELDS = ("description", "family", "fixed", "factors", "seeds", "metric")
KINDS: dict[str, tuple[str, ...]] = {"choice": (), "uniform": ("step",), "loguniform": (), "int": ("step", "log")}
SEED_KEY = "train.seed"
FAMILY_KEY = "model.family"
MAX_CHECKED_COMBINATIONS = 4096  # load-time check of whole trial configs; beyond this only values are checked
_HINTS = {f"{s}.{name}": hint for s, cls in SECTIONS.items() for name, hint in typing.get_type_hints(cls).items()}
_Scalar = (str, int, float, bool, type(None))


# --------------------------------------------------------------------------------------------- values
def _same(a: Any, b: Any) -> bool:
    """Equality that keeps true/false apart from 1/0."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _float_text(v: float) -> str:
    """repr, with a '.0' added where YAML would read the number as a string ('1e-05' -> '1.0e-05')."""
    text = repr(float(v))
    mantissa, e, exponent = text.partition("e")
    return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text


def render(value: Any) -> str:
    """``value`` as the text after ``key=`` that ``aircolor.config.parse_override`` reads back exactly."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, str):
        try:
            if yaml.safe_load(value) == value and value.strip() == value:
                return value
        except yaml.YAMLError:
            pass
        return json.dumps(value)  # a JSON string is a YAML double-quoted scalar
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render(v) for v in value) + "]"
    raise TypeError(f"cannot render {value!r} as an override")


def _compact(value: float, digits: int | None) -> str:
    """'2e-4', '2.5e-5', '0.5', '100': exact (shortest) when ``digits`` is None, else rounded to ``digits``."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    p = digits - 1 if digits else next(p for p in range(17) if float(f"{value:.{p}e}") == value)
    mantissa, exponent = f"{value:.{p}e}".split("e")
    e = int(exponent)
    if -2 <= e <= 4:
        return f"{value:.{max(0, p - e)}f}".rstrip("0").rstrip(".") if p - e > 0 else f"{value:.0f}"
    return f"{mantissa.rstrip('0').rstrip('.')}e{e}"


def _base_type(key: str) -> Any:
    """int, float, str, bool, a Literal, or a tuple type: the key's type without ``| None``."""
    hint = _HINTS[key]
    args = [a for a in get_args(hint) if a is not type(None)] if get_origin(hint) is not Literal else []
    return args[0] if len(args) == 1 else hint


# --------------------------------------------------------------------------------------------- factors
@dataclass(frozen=True)
class Factor:
    """One varied key: ``kind`` choice (``choices``) or uniform / loguniform / int (``low``, ``high``, ...)."""

    key: str
    kind: str
    choices: tuple[Any, ...] = ()
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(render(c) for c in self.choices)
        extra = f" step {render(self.step)}" if self.step is not None else " log" if self.log else ""
        return f"{self.kind} {render(self.low)}..{render(self.high)}{extra}"

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return any(_same(value, c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.kind == "int" and not (isinstance(value, int) or float(value).is_integer()):
            return False
        tol = 1e-9 * (self.high - self.low)
        if not self.low - tol <= value <= self.high + tol:
            return False
        if self.step is None:
            return True
        n = (value - self.low) / self.step
        return abs(n - round(n)) < 1e-6

    def suggest(self, trial: Any) -> Any:
        """Sample this factor on an ``optuna.trial.Trial`` (or Ray's wrapper of one)."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.kind == "loguniform")

    def label(self, value: Any, *, qualified: bool = False) -> str:
        """Short text for trial names: strings as they are, numbers after the key's name ('ngf64', 'lrG2e-4')."""
        short = self.key.split(".", 1)[1].replace("_", "")
        if isinstance(value, str):
            text = value.replace("/", "_").replace(" ", "_")
            return f"{short}_{text}" if qualified else text
        if value is None or isinstance(value, bool):
            return f"{short}_{render(value)}"
        if isinstance(value, float):
            return short + _compact(value, None if self.kind == "choice" else 3)
        return f"{short}{value}"


class _DefineByRun:
    """Optuna define-by-run function of a space (a class, so that Tune can pickle the searcher with it)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def __call__(self, trial: Any) -> None:
        values: dict[str, Any] = {}
        for key in self.space.order:
            factor = self.space.factors[key]
            if self.space.is_active(factor, values):
                values[key] = factor.suggest(trial)
        trial.suggest_int(SEED_KEY, 0, self.space.seeds - 1)


# --------------------------------------------------------------------------------------------- the space
@dataclass(frozen=True)
class SearchSpace:
    """A loaded, validated search space (see the module docstring for the file format)."""

    path: Path
    name: str
    description: str
    family: str | None
    fixed: dict[str, Any]
    factors: dict[str, Factor]
    seeds: int
    metric: str | None
    sha256: str
    order: tuple[str, ...] = field(default=(), repr=False)  # factors, conditions before what they condition
    qualified_names: bool = field(default=False, repr=False)  # prefix string labels: bare ones would collide

    @property
    def is_categorical(self) -> bool:
        return all(f.kind == "choice" for f in self.factors.values())

    def _fail(self, what: str) -> UsageError:
        return UsageError(f"{self.path}: {what}")

    def is_active(self, factor: Factor, values: Mapping[str, Any]) -> bool:
        """Whether ``factor``'s conditions hold, given the values of the factors sampled so far."""
        for key, allowed in factor.when.items():
            value = self.family if key == FAMILY_KEY and self.family is not None else values.get(key, _MISSING)
            if value is _MISSING or not any(_same(value, a) for a in allowed):
                return False
        return True

    def _combinations(self, numeric: bool = False) -> Iterator[dict[str, Any]]:
        """Every assignment of the active choice factors (each once), in ``order``; with ``numeric``, each
        twice more, with every active numeric factor at its low and then at its high bound."""
        keys = self.order

        def walk(i: int, acc: dict[str, Any]) -> Iterator[dict[str, Any]]:
            if i == len(keys):
                yield dict(acc)
                return
            factor = self.factors[keys[i]]
            if not self.is_active(factor, acc) or factor.kind != "choice":
                yield from walk(i + 1, acc)
                return
            for value in factor.choices:
                acc[factor.key] = value
                yield from walk(i + 1, acc)
                del acc[factor.key]

        for point in walk(0, {}):
            if not numeric:
                yield point
                continue
            active = [f for f in self.factors.values() if f.kind != "choice" and self.is_active(f, point)]
            for bound in ("low", "high") if active else ("low",):
                yield {**point, **{f.key: getattr(f, bound) for f in active}}

    def grid_size(self) -> int:
        """``len(self.grid())``, counted without building it: the condition factors' assignments are walked,
        every other choice factor only multiplies (a 10 x 10^9 space is counted in microseconds)."""
        if not self.is_categorical:
            raise self._fail("grid_size: only spaces whose factors are all 'choice' have a grid")
        conditions = {c for f in self.factors.values() for c in f.when if c in self.factors}
        sub = dataclasses.replace(self, factors={k: self.factors[k] for k in self.order if k in conditions},
                                  order=tuple(k for k in self.order if k in conditions))
        others = [f for k, f in self.factors.items() if k not in conditions]
        total = sum(math.prod(len(f.choices) for f in others if self.is_active(f, point))
                    for point in sub._combinations())
        return total * self.seeds

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the active factors x seeds, once each: seed 0 of every combination first."""
        if not self.is_categorical:
            raise self._fail("grid: only spaces whose factors are all 'choice' have a grid; this one is searched "
                             "with optuna_space()")
        combos = [self._ordered(c) for c in self._combinations()]
        return [{**c, SEED_KEY: seed} for seed in range(self.seeds) for c in combos]

    def _ordered(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: values[k] for k in self.factors if k in values}

    def params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` checked and in file order: every active factor and train.seed, inactive factors dropped."""
        if not isinstance(params, Mapping):
            raise self._fail(f"trial params: expected a mapping of dotted keys, got {params!r}")
        unknown = [k for k in params if k not in self.factors and k != SEED_KEY]
        if unknown:
            raise self._fail(f"trial params: unknown key {unknown[0]!r}; this space's keys are "
                             f"{', '.join([*self.factors, SEED_KEY])}")
        out: dict[str, Any] = {}
        for key in self.order:
            factor = self.factors[key]
            if not self.is_active(factor, out):
                continue
            if key not in params:
                raise self._fail(f"trial params: missing {key} (active here: {factor.describe()})")
            if not factor.contains(params[key]):
                raise self._fail(f"trial params: {key}={params[key]!r} is outside the factor ({factor.describe()})")
            out[key] = params[key]
        seed = params.get(SEED_KEY)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < self.seeds:
            raise self._fail(f"trial params: {SEED_KEY} must be an integer in 0..{self.seeds - 1}, got {seed!r}")
        return {**self._ordered(out), SEED_KEY: seed}

    def factor_values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The active factors' values (no seed), for MLflow params and tags."""
        return {k: v for k, v in self.params(params).items() if k != SEED_KEY}

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """``key=value`` run-config overrides of one trial: family, fixed, active factors, train.seed."""
        head = [f"{FAMILY_KEY}={self.family}"] if self.family is not None else []
        items = [*self.fixed.items(), *self.params(params).items()]
        return head + [f"{k}={render(v)}" for k, v in items]

    def trial_config(self, params: Mapping[str, Any], extra_overrides: typing.Iterable[str] = ()) -> RunConfig:
        """The trial's validated RunConfig; ``extra_overrides`` (sweep options, smoke sizes) come last and win."""
        return load_config(None, [*self.overrides(params), *extra_overrides])

    def trial_name(self, params: Mapping[str, Any]) -> str:
        """Readable and unique within the space: 'fastcut/seed1', 'ngf64-ndf32-lrG2e-4-lrD1e-4/seed0'."""
        p = self.params(params)
        parts = [self.factors[k].label(v, qualified=self.qualified_names) for k, v in p.items() if k != SEED_KEY]
        return f"{'-'.join(parts) or 'base'}/seed{p[SEED_KEY]}"

    def from_tune(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A Ray Tune trial config (grid: ``{"params": {...}}``; Optuna: the flat dict) -> checked params."""
        if isinstance(config, Mapping) and "params" in config:
            if set(config) != {"params"}:
                extra = sorted(set(config) - {"params"})
                raise self._fail(f"trial config: unexpected keys {extra} beside 'params'")
            config = config["params"]
        return self.params(config)

    def optuna_space(self) -> _DefineByRun:
        """Define-by-run function for ``OptunaSearch(space=...)``: samples the active factors (conditions
        first) and train.seed under their dotted names, which reach the Tune config unchanged; returns None."""
        return _DefineByRun(self)

    def tune_grid_space(self) -> dict[str, Any]:
        """``param_space`` for ``Tuner`` with ``num_samples=1``: one Tune trial per grid point, in grid order."""
        from ray import tune

        return {"params": tune.grid_search(self.grid())}


_MISSING = object()


def load_space(path: str | Path) -> SearchSpace:
    """Read and check a search-space file (:func:`sweeps.space_schema.load_space`)."""
    from sweeps.space_schema import load_space as load

    return load(path)
