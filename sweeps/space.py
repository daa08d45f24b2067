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
import difflib
import hashlib
import json
import math
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from aircolor.config import SECTIONS, Family, RunConfig, config_from_dict, load_config
from aircolor.errors import ConfigError, UsageError
from sweeps.state import METRICS

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


# --------------------------------------------------------------------------------------------- loading
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue  # an unhashable key: construct_mapping reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


class _Loader:
    """Parses and checks one file; every error names ``self.src`` and the field."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.src = str(path)

    def fail(self, where: str, what: str) -> UsageError:
        return UsageError(f"{self.src}: {where}: {what}")

    def read(self) -> tuple[bytes, dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise UsageError(f"{self.src}: no such search-space file; check the path (the shipped ones are "
                             "search_spaces/*.yaml)") from None
        except OSError as exc:
            raise UsageError(f"{self.src}: cannot be read ({exc.__class__.__name__}); pass a YAML file") from None
        try:
            raw = yaml.load(data.decode("utf-8"), Loader=_StrictLoader)
        except UnicodeDecodeError:
            raise UsageError(f"{self.src}: not a text file; pass a YAML search space") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            raise UsageError(f"{self.src}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc}); "
                             "fix the syntax") from None
        if not isinstance(raw, dict):
            raise UsageError(f"{self.src}: expected a mapping with the fields {', '.join(FIELDS)}, got "
                             f"{type(raw).__name__ if raw is not None else 'an empty file'}")
        return data, raw

    def key(self, where: str, key: Any) -> str:
        """A dotted run-config key, or a clear error with the nearest valid one."""
        if isinstance(key, str) and key in _HINTS:
            return key
        near = difflib.get_close_matches(str(key), list(_HINTS), n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise self.fail(where, f"not a run-config key{hint}; 'aircolor config keys' lists them")

    def build(self, values: list[tuple[str, Any, str]]) -> RunConfig:
        """Validate (key, value, field) assignments as one run config; a bad value's error names its field."""
        raw: dict[str, dict[str, Any]] = {}
        origins: dict[str, str] = {}
        for key, value, where in values:
            section, name = key.split(".")
            raw.setdefault(section, {})[name] = value
            origins[key] = f"{self.src}: {where}"
        return config_from_dict(raw, source=self.src, origins=origins, resolve_defaults=False)

    # ------------------------------------------------------------------------------- fields
    def top(self, raw: dict[str, Any]) -> tuple[str, int, str | None]:
        for name in raw:
            if name not in FIELDS:
                near = difflib.get_close_matches(str(name), FIELDS, n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                raise self.fail(str(name), f"unknown field{hint}; the fields are {', '.join(FIELDS)}")
        description = raw.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"must be one line of text, got {description!r}")
        seeds = raw.get("seeds", 1)
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise self.fail("seeds", f"must be a positive integer (runs per configuration), got {seeds!r}")
        metric = raw.get("metric")
        if metric is not None and metric not in METRICS:
            raise self.fail("metric", f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        return description.strip(), seeds, metric

    def family(self, raw: dict[str, Any], factors: dict[str, Any]) -> str | None:
        if "family" in raw:
            family = raw["family"]
            if family not in FAMILIES:
                raise self.fail("family", f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
            if FAMILY_KEY in factors:
                raise self.fail("family", f"given both here and as the factor {FAMILY_KEY}; keep one")
            return family
        if FAMILY_KEY not in factors:
            raise self.fail("family", f"missing; name the model family ({', '.join(FAMILIES)}) or make "
                            f"{FAMILY_KEY} a factor")
        return None

    def fixed(self, raw: Any) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise self.fail("fixed", "must be a mapping of dotted run-config keys to values")
        for key in raw:
            self.key(f"fixed.{key}", key)
            if key == FAMILY_KEY:
                raise self.fail(f"fixed.{key}", "set the model family with the top-level 'family' field")
            if key == SEED_KEY:
                raise self.fail(f"fixed.{key}", "seeds come from the 'seeds' field (train.seed = 0 .. seeds-1)")
        return dict(raw)

    def factor(self, key: Any, spec: Any, fixed: dict[str, Any]) -> Factor:
        where = f"factors.{key}"
        self.key(where, key)
        if key == SEED_KEY:
            raise self.fail(where, "seeds come from the 'seeds' field (train.seed = 0 .. seeds-1)")
        if key in fixed:
            raise self.fail(where, "also in 'fixed'; a key is either fixed or a factor")
        if not isinstance(spec, dict):
            raise self.fail(where, "expected a distribution such as {choice: [a, b]} or {loguniform: [1.0e-5, 1.0e-3]}")
        options = ("step", "log", "when")
        for name in spec:
            if name not in KINDS and name not in options:
                near = difflib.get_close_matches(str(name), [*KINDS, *options], n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                raise self.fail(f"{where}.{name}", f"unknown distribution or option{hint}; distributions: "
                                f"{', '.join(KINDS)}; options: {', '.join(options)}")
        kinds = [k for k in spec if k in KINDS]
        if len(kinds) != 1:
            raise self.fail(where, f"give exactly one distribution ({', '.join(KINDS)}), got "
                            f"{' and '.join(kinds) or 'none'}")
        kind = kinds[0]
        for name in ("step", "log"):
            if name in spec and name not in KINDS[kind]:
                allowed = f"its options are {', '.join(KINDS[kind])}" if KINDS[kind] else "it takes no options"
                raise self.fail(f"{where}.{name}", f"not an option of '{kind}' ({allowed})")
        if kind == "choice":
            return Factor(key, kind, choices=self.choices(key, spec["choice"], f"{where}.choice"))
        if key == FAMILY_KEY:
            raise self.fail(where, f"{FAMILY_KEY} can only be a 'choice' factor")
        return self.numeric(key, kind, spec, where)

    def choices(self, key: str, values: Any, where: str) -> tuple[Any, ...]:
        if not isinstance(values, list) or not values:
            raise self.fail(where, "expected a non-empty list of values, e.g. [a, b]")
        for i, v in enumerate(values):
            if not isinstance(v, _Scalar):
                raise self.fail(f"{where}[{i}]", f"must be one value (number, text, true/false, null), got {v!r}")
            if key == FAMILY_KEY and v not in FAMILIES:
                raise self.fail(f"{where}[{i}]", f"unknown model family {v!r}; choose from {', '.join(FAMILIES)}")
        return tuple(values)  # normalised to the key's type later, by the run config itself

    def numeric(self, key: str, kind: str, spec: dict[str, Any], where: str) -> Factor:
        base = _base_type(key)
        if base not in (int, float) or (kind != "int" and base is int):
            takes = {int: "an integer", float: "a number", str: "text", bool: "true or false"}.get(base, "a list")
            if get_origin(base) is Literal:
                takes = "one of " + ", ".join(render(a) for a in get_args(base))
            use = "int or choice" if base is int else "choice"
            raise self.fail(where, f"'{kind}' samples {'integers' if kind == 'int' else 'numbers'} but {key} takes "
                            f"{takes}; use {use}")
        bounds = spec[kind]
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise self.fail(f"{where}.{kind}", f"expected [low, high], got {bounds!r}")
        low, high = (self.number(f"{where}.{kind}[{i}]", b, kind == "int") for i, b in enumerate(bounds))
        if not low < high:
            raise self.fail(f"{where}.{kind}", f"low ({render(low)}) must be < high ({render(high)})")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise self.fail(f"{where}.log", f"must be true or false, got {log!r}")
        step = spec.get("step")
        if step is not None:
            step = self.number(f"{where}.step", step, kind == "int")
            n = (high - low) / step if step > 0 else 0
            if step <= 0 or abs(n - round(n)) > 1e-9 * max(1.0, n):
                raise self.fail(f"{where}.step", f"{render(step)} must be > 0 and divide high - low "
                                f"({render(high - low)}) into whole steps")
            if log:
                raise self.fail(where, "step and log cannot be combined; drop one")
        if (log or kind == "loguniform") and low <= 0:
            raise self.fail(f"{where}.{kind}", f"a log scale needs low > 0, got {render(low)}")
        return Factor(key, kind, low=low, high=high, step=step, log=log)

    def number(self, where: str, value: Any, integer: bool) -> int | float:
        if integer:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(where, f"must be an integer, got {value!r}")
            return value
        try:  # PyYAML reads 1e-5 (no dot) as text
            out = float(value) if not isinstance(value, bool) and isinstance(value, (int, float, str)) else None
        except ValueError:
            out = None
        if out is None or not math.isfinite(out):
            raise self.fail(where, f"must be a number, got {value!r}")
        return out

    def when(self, factors: dict[str, Factor], specs: dict[str, Any], family: str | None) -> dict[str, Factor]:
        """Attach each factor's conditions (keys checked here, values in :meth:`normalise`)."""
        out = dict(factors)
        for key, factor in factors.items():
            spec = specs[key].get("when")
            if "when" not in specs[key]:
                continue
            where = f"factors.{key}.when"
            if not isinstance(spec, dict) or not spec:
                raise self.fail(where, "expected a mapping such as {model.family: cut}")
            conditions: dict[str, tuple[Any, ...]] = {}
            for cond, allowed in spec.items():
                cwhere = f"{where}.{cond}"
                if cond == key:
                    raise self.fail(cwhere, "a factor cannot depend on itself")
                if not (cond == FAMILY_KEY and family is not None) and not (
                        cond in factors and factors[cond].kind == "choice"):
                    keys = [k for k in factors if k != key and factors[k].kind == "choice"]
                    near = difflib.get_close_matches(str(cond), [FAMILY_KEY, *keys], n=1)
                    hint = f" (did you mean '{near[0]}'?)" if near and near[0] != cond else ""
                    raise self.fail(cwhere, f"not a condition key{hint}; name {FAMILY_KEY} or a 'choice' factor "
                                    "of this space")
                values = allowed if isinstance(allowed, list) else [allowed]
                if not values:
                    raise self.fail(cwhere, "expected a value or a non-empty list of values")
                conditions[cond] = tuple(values)
            out[key] = dataclasses.replace(factor, when=conditions)
        return out

    def order(self, factors: dict[str, Factor]) -> tuple[str, ...]:
        """File order, except that a factor comes after the factors its ``when`` names."""
        done: list[str] = []

        def visit(key: str, path: tuple[str, ...]) -> None:
            if key in done:
                return
            if key in path:
                loop = " -> ".join([*path[path.index(key):], key])
                raise self.fail(f"factors.{path[-1]}.when", f"conditions go round in a circle ({loop})")
            for cond in factors[key].when:
                if cond in factors:
                    visit(cond, (*path, key))
            done.append(key)

        for key in factors:
            visit(key, ())
        return tuple(done)

    # ------------------------------------------------------------------------------- whole-config checks
    def normalise(self, space: SearchSpace, base: list[tuple[str, Any, str]]) -> SearchSpace:
        """Check, with the run config itself (types, ranges, cross-key rules), every ``when`` value and every
        choice value and bound, in each context where its factor is active. Choice values (and the ``when``
        values that name them) are stored as the config reads them: ``1e-4`` (text to PyYAML) becomes 0.0001."""
        raw_choices: dict[str, tuple[Any, ...]] = {}
        for key in space.order:  # conditions first: their values are normalised when a factor names them
            factor = dataclasses.replace(space.factors[key], when=self.conditions(space, key, raw_choices))
            space = dataclasses.replace(space, factors={**space.factors, key: factor})
            contexts = self.contexts(space, factor)
            bounds = factor.choices if factor.kind == "choice" else (factor.low, factor.high)
            normalised = []
            for i, value in enumerate(bounds):
                where = f"factors.{key}.{factor.kind}[{i}]"
                for context in contexts:
                    cfg = self.build([*base, *context, (key, value, where)])
                section, name = key.split(".")
                normalised.append(getattr(getattr(cfg, section), name))
            if factor.kind == "choice":
                for i, v in enumerate(normalised):
                    first = next(j for j, w in enumerate(normalised) if _same(v, w))
                    if first != i:
                        raise self.fail(f"factors.{key}.choice[{i}]", f"duplicate of choice[{first}] ({render(v)}); "
                                        "list each value once")
                raw_choices[key] = factor.choices
                factor = dataclasses.replace(factor, choices=tuple(normalised))
                space = dataclasses.replace(space, factors={**space.factors, key: factor})
        return space

    def conditions(self, space: SearchSpace, key: str, raw_choices: dict[str, tuple[Any, ...]]
                   ) -> dict[str, tuple[Any, ...]]:
        """``key``'s ``when`` values, each matched to a value its condition key can take."""
        out: dict[str, tuple[Any, ...]] = {}
        for cond, values in space.factors[key].when.items():
            if cond in space.factors:
                domain, raw = space.factors[cond].choices, raw_choices[cond]
            else:
                domain = raw = (space.family,)
            matched = []
            for v in values:
                hit = next((d for d, r in zip(domain, raw) if _same(v, r) or _same(v, d)), _MISSING)
                if hit is _MISSING:
                    raise self.fail(f"factors.{key}.when.{cond}", f"{v!r} is not one of {cond}'s values "
                                    f"({', '.join(render(d) for d in domain)})")
                matched.append(hit)
            out[cond] = tuple(matched)
        return out

    def contexts(self, space: SearchSpace, factor: Factor) -> list[list[tuple[str, Any, str]]]:
        """Assignments of the factors that ``factor``'s conditions name (transitively) that make it active."""
        needed: list[str] = []

        def collect(f: Factor) -> None:
            for cond in f.when:
                if cond in space.factors and cond not in needed:
                    collect(space.factors[cond])
                    needed.append(cond)

        collect(factor)
        out: list[list[tuple[str, Any, str]]] = []
        sub = dataclasses.replace(space, factors={k: space.factors[k] for k in needed},
                                  order=tuple(k for k in space.order if k in needed))
        for combo in sub._combinations():
            if space.is_active(factor, combo):
                out.append([(k, v, f"factors.{k}") for k, v in combo.items()])
        if not out:
            raise self.fail(f"factors.{factor.key}.when", "the conditions can never all hold, so the factor is "
                            "never active")
        return out

    def combinations(self, space: SearchSpace) -> None:
        """Every choice combination, numeric factors at their bounds, must be a valid run config."""
        for n, point in enumerate(space._combinations(numeric=True)):
            if n >= MAX_CHECKED_COMBINATIONS:
                return
            overrides = space.overrides({**point, SEED_KEY: 0})
            try:
                load_config(None, overrides)
            except ConfigError as exc:
                values = ", ".join(f"{k}={render(v)}" for k, v in space._ordered(point).items())
                reason = str(exc).split(": ", 1)[-1]
                raise self.fail("factors", f"the combination {values} is not a valid run config "
                                f"({reason})") from None


def load_space(path: str | Path) -> SearchSpace:
    """Read and check a search-space file; every problem is a one-line UsageError naming file and field."""
    loader = _Loader(path)
    data, raw = loader.read()
    description, seeds, metric = loader.top(raw)
    specs = raw.get("factors")
    if not isinstance(specs, dict) or not specs:
        raise loader.fail("factors", "missing or empty; map run-config keys to distributions, e.g. "
                          "model.ngf: {choice: [32, 64]}")
    family = loader.family(raw, specs)
    fixed = loader.fixed(raw.get("fixed"))
    base = [(FAMILY_KEY, family, "family")] if family is not None else []
    base += [(k, v, f"fixed.{k}") for k, v in fixed.items()]
    cfg = loader.build(base)  # the fixed part alone, once: its errors name the fixed key
    fixed = {k: getattr(getattr(cfg, k.split(".")[0]), k.split(".")[1]) for k in fixed}
    factors = {key: loader.factor(key, spec, fixed) for key, spec in specs.items()}
    factors = loader.when(factors, specs, family)
    space = SearchSpace(path=Path(path), name=Path(path).stem, description=description, family=family, fixed=fixed,
                        factors=factors, seeds=seeds, metric=metric, sha256=hashlib.sha256(data).hexdigest(),
                        order=loader.order(factors))
    space = loader.normalise(space, base)
    loader.combinations(space)
    if space.is_categorical:
        names = [space.trial_name(p) for p in space.grid()]
        if len(set(names)) < len(names):
            space = dataclasses.replace(space, qualified_names=True)
    return space
