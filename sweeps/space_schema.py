"""Reading a search-space file (``search_spaces/*.yaml``): the schema and its checks, building a
:class:`~sweeps.space.SearchSpace` (the format is described in :mod:`sweeps.space`).

Every problem is a one-line :class:`~aircolor.errors.UsageError` naming the file and the field, found before Ray
starts: unknown fields and keys (with the nearest valid one), values the run config rejects, conditions that can
never hold, and combinations of factors that are not a valid run config.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from aircolor.config import RunConfig, config_from_dict, load_config
from aircolor.errors import ConfigError, UsageError
from aircolor.yamlio import describe_error, load_strict
from sweeps.space import (FAMILIES, FAMILY_KEY, FIELDS, KINDS, MAX_CHECKED_COMBINATIONS, SEED_KEY, _HINTS,
                          _MISSING, Factor, SearchSpace, _base_type, _same, _Scalar, render)
from sweeps.state import METRICS

MAX_NAMED_GRID = 100_000  # grids above this are never built here (sweep run refuses above --max-trials anyway)


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
            raw = load_strict(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise UsageError(f"{self.src}: not a text file; pass a YAML search space") from None
        except yaml.YAMLError as exc:
            line, problem = describe_error(exc).split(": ", 1)
            raise UsageError(f"{self.src}{line}: not valid YAML ({problem}); fix the syntax") from None
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
        if space.grid_size() > MAX_NAMED_GRID:  # too many to list: qualified labels are unique by construction
            return dataclasses.replace(space, qualified_names=True)
        names = [space.trial_name(p) for p in space.grid()]
        if len(set(names)) < len(names):
            space = dataclasses.replace(space, qualified_names=True)
    return space
