"""Declarative search spaces: parsing with precise errors, sampling, grids, subsets, conversions.

A space is a mapping of hyperparameter name to a definition::

    lr:         {type: loguniform, low: 1.0e-4, high: 1.0e-1}
    units:      {type: int, low: 32, high: 256, step: 32}
    dropout:    {type: uniform, low: 0.0, high: 0.5, step: 0.1}
    optimizer:  {type: choice, values: [adam, sgd],
                 when: {sgd: {momentum: {type: uniform, low: 0.0, high: 0.99}}}}
    epochs_per_eval: 1            # a bare scalar (or {type: fixed, value: 1}) is a fixed value

``when`` attaches a conditional sub-space to a choice value: its parameters exist only when the
choice takes that value.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hopper.engine.errors import ValidationError

Scalar = int | float | str | bool | None
_RANGE_TYPES = ("int", "uniform", "loguniform")
_KNOWN_TYPES = ("choice", "fixed", *_RANGE_TYPES)
_GRID_LIMIT = 100_000


def param_stream(seed: int, name: str, index: int) -> np.random.Generator:
    """An independent random stream for one parameter of one suggestion.

    Each (workload seed, parameter path, suggestion index) gets its own generator, so two
    parameters never share draws and a restarted procedure reproduces the same suggestions.
    """
    digest = hashlib.sha256(f"{seed}\x00{name}\x00{index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


@dataclass(frozen=True)
class Fixed:
    value: Scalar

    def to_dict(self) -> Any:
        return self.value


@dataclass(frozen=True)
class Choice:
    values: tuple
    when: Mapping[str, SearchSpace] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out: dict = {"type": "choice", "values": list(self.values)}
        if self.when:
            out["when"] = {k: v.to_dict() for k, v in self.when.items()}
        return out


@dataclass(frozen=True)
class Range:
    kind: str  # int | uniform | loguniform
    low: float
    high: float
    step: float | None = None

    @property
    def is_int(self) -> bool:
        return self.kind == "int"

    @property
    def is_log(self) -> bool:
        return self.kind == "loguniform"

    def to_dict(self) -> dict:
        out: dict = {"type": self.kind, "low": self.low, "high": self.high}
        if self.step is not None:
            out["step"] = self.step
        return out

    def grid_points(self) -> list:
        if self.step is None:
            return []
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        points = [self.low + i * self.step for i in range(n)]
        return [int(round(p)) for p in points] if self.is_int else [round(p, 12) for p in points]

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.is_int and float(value) != int(value):
            return False
        if not self.low - 1e-12 <= value <= self.high + 1e-12:
            return False
        if self.step is not None:
            steps = (value - self.low) / self.step
            return abs(steps - round(steps)) < 1e-9
        return True


Param = Fixed | Choice | Range


def _choice_key(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class SearchSpace:
    params: Mapping[str, Param]

    # -- parsing ------------------------------------------------------------------------------
    @classmethod
    def parse(cls, raw: Any, *, path: str = "space") -> SearchSpace:
        """Parse and validate a space; errors name the offending key (``space.lr.low``)."""
        if isinstance(raw, SearchSpace):
            return raw
        if not isinstance(raw, Mapping):
            raise ValidationError(f"{path} must be a mapping of parameter name to definition", field=path)
        params: dict[str, Param] = {}
        for name, definition in raw.items():
            if not isinstance(name, str) or not name.strip() or not name.replace("_", "").isalnum():
                raise ValidationError(
                    f"{path}: parameter name {name!r} must be a non-empty identifier", field=f"{path}.{name}"
                )
            params[name] = _parse_param(definition, f"{path}.{name}")
        return cls(params)

    def to_dict(self) -> dict:
        return {name: p.to_dict() for name, p in self.params.items()}

    def names(self) -> list[str]:
        """All parameter names, conditional ones included."""
        out = []
        for name, p in self.params.items():
            out.append(name)
            if isinstance(p, Choice):
                for sub in p.when.values():
                    out.extend(n for n in sub.names() if n not in out)
        return out

    # -- suggestions --------------------------------------------------------------------------
    def sample(self, seed: int, index: int, *, prefix: str = "") -> dict:
        """The ``index``-th random configuration, drawn with one stream per parameter."""
        out: dict = {}
        for name, p in self.params.items():
            rng = param_stream(seed, prefix + name, index)
            if isinstance(p, Fixed):
                out[name] = p.value
            elif isinstance(p, Choice):
                value = p.values[int(rng.integers(len(p.values)))]
                out[name] = value
                sub = p.when.get(_choice_key(value))
                if sub is not None:
                    out.update(sub.sample(seed, index, prefix=f"{prefix}{name}={_choice_key(value)}/"))
            else:
                out[name] = _sample_range(p, rng)
        return out

    def grid(self) -> list[dict]:
        """Every combination; continuous ranges need a ``step`` (the error names them)."""
        count = self.grid_size()
        if count > _GRID_LIMIT:
            raise ValidationError(f"the grid has {count} points, more than the limit of {_GRID_LIMIT}", field="space")
        return list(self._iter_grid())

    def grid_size(self) -> int:
        total = 1
        for name, p in self.params.items():
            if isinstance(p, Fixed):
                continue
            if isinstance(p, Choice):
                total *= sum(
                    (p.when[_choice_key(v)].grid_size() if _choice_key(v) in p.when else 1) for v in p.values
                )
            else:
                points = p.grid_points()
                if not points:
                    raise ValidationError(
                        f"grid search needs discrete values: space.{name} is a continuous {p.kind} range; "
                        "give it a step or use a choice",
                        field=f"space.{name}",
                    )
                total *= len(points)
        return total

    def _iter_grid(self) -> Iterator[dict]:
        axes: list[list[dict]] = []
        for name, p in self.params.items():
            if isinstance(p, Fixed):
                axes.append([{name: p.value}])
            elif isinstance(p, Choice):
                options: list[dict] = []
                for v in p.values:
                    sub = p.when.get(_choice_key(v))
                    if sub is None:
                        options.append({name: v})
                    else:
                        options.extend({name: v, **combo} for combo in sub._iter_grid())
                axes.append(options)
            else:
                axes.append([{name: v} for v in p.grid_points()])
        for combo in itertools.product(*axes):
            merged: dict = {}
            for part in combo:
                merged.update(part)
            yield merged

    # -- membership ---------------------------------------------------------------------------
    def active_params(self, hparams: Mapping[str, Any]) -> dict[str, Param]:
        """Parameters that apply to ``hparams`` (conditional ones only under their choice)."""
        active: dict[str, Param] = {}
        for name, p in self.params.items():
            active[name] = p
            if isinstance(p, Choice) and name in hparams:
                sub = p.when.get(_choice_key(hparams[name]))
                if sub is not None:
                    active.update(sub.active_params(hparams))
        return active

    def contains(self, hparams: Mapping[str, Any]) -> bool:
        for name, p in self.active_params(hparams).items():
            if name not in hparams:
                return False
            value = hparams[name]
            if isinstance(p, Fixed) and value != p.value:
                return False
            if isinstance(p, Choice) and value not in p.values:
                return False
            if isinstance(p, Range) and not p.contains(value):
                return False
        return True

    def check_subset_of(self, parent: SearchSpace, *, path: str = "space") -> None:
        """Raise ``ValidationError`` unless every value this space allows, ``parent`` allows too."""
        for name, p in self.params.items():
            key = f"{path}.{name}"
            if name not in parent.params:
                raise ValidationError(f"{key} is not a parameter of the parent space", field=key)
            q = parent.params[name]
            if isinstance(p, Fixed):
                if not _param_allows(q, p.value):
                    raise ValidationError(f"{key}={p.value!r} lies outside the parent's {_describe(q)}", field=key)
            elif isinstance(p, Choice):
                for v in p.values:
                    if not _param_allows(q, v):
                        raise ValidationError(f"{key} value {v!r} lies outside the parent's {_describe(q)}", field=key)
                    sub = p.when.get(_choice_key(v))
                    if sub is not None:
                        parent_sub = q.when.get(_choice_key(v)) if isinstance(q, Choice) else None
                        if parent_sub is None:
                            raise ValidationError(f"{key}: the parent has no sub-space for {v!r}", field=key)
                        sub.check_subset_of(parent_sub, path=f"{key}.when.{_choice_key(v)}")
            else:
                if not isinstance(q, Range) or (p.is_int and not q.is_int):
                    raise ValidationError(f"{key} is a {p.kind} range but the parent has {_describe(q)}", field=key)
                if p.low < q.low - 1e-12 or p.high > q.high + 1e-12:
                    raise ValidationError(
                        f"{key} range [{p.low}, {p.high}] is not inside the parent's [{q.low}, {q.high}]", field=key
                    )
                if q.step is not None and not all(q.contains(v) for v in (p.grid_points() or [p.low, p.high])):
                    raise ValidationError(f"{key} values are not on the parent's step of {q.step}", field=key)
        for name, q in parent.params.items():
            if name not in self.params and not isinstance(q, Fixed):
                raise ValidationError(f"{path}.{name} of the parent space is missing", field=f"{path}.{name}")

    # -- conversions --------------------------------------------------------------------------
    def to_hyperopt(self, *, prefix: str = "") -> dict:
        """A hyperopt space (``hp.*`` expressions); conditional sub-spaces become nested choices."""
        from hyperopt import hp

        out: dict = {}
        for name, p in self.params.items():
            label = prefix + name
            if isinstance(p, Fixed):
                out[name] = p.value
            elif isinstance(p, Choice):
                if p.when:
                    branches = []
                    for v in p.values:
                        branch = {name: v}
                        sub = p.when.get(_choice_key(v))
                        if sub is not None:
                            branch.update(sub.to_hyperopt(prefix=f"{label}={_choice_key(v)}/"))
                        branches.append(branch)
                    out[f"__branch__{name}"] = hp.choice(label, branches)
                else:
                    out[name] = hp.choice(label, list(p.values))
            elif p.is_log:
                out[name] = hp.loguniform(label, math.log(p.low), math.log(p.high))
            elif p.step is not None:
                out[name] = hp.quniform(label, p.low, p.high, p.step)
            elif p.is_int:
                out[name] = hp.quniform(label, p.low, p.high, 1)
            else:
                out[name] = hp.uniform(label, p.low, p.high)
        return out

    def from_hyperopt_sample(self, sample: Mapping[str, Any]) -> dict:
        """Flatten a sample drawn from ``to_hyperopt()`` into plain hparams with proper types."""
        flat: dict = {}
        for key, value in sample.items():
            if key.startswith("__branch__"):
                flat.update(self.from_hyperopt_sample(value))
            else:
                flat[key] = value
        active = self.active_params(flat)
        for name, p in active.items():
            if isinstance(p, Range) and name in flat:
                value = min(max(float(flat[name]), p.low), p.high)
                flat[name] = int(round(value)) if p.is_int else value
        return flat

    def to_keras_tuner(self):  # noqa: ANN201 - keras_tuner is imported lazily
        """A ``keras_tuner.HyperParameters`` with the same parameters (conditions as scopes)."""
        import keras_tuner as kt

        hps = kt.HyperParameters()
        self._declare_keras_tuner(hps)
        return hps

    def _declare_keras_tuner(self, hps) -> None:  # noqa: ANN001
        for name, p in self.params.items():
            if isinstance(p, Fixed):
                hps.Fixed(name, p.value)
            elif isinstance(p, Choice):
                hps.Choice(name, list(p.values))
                for value_key, sub in p.when.items():
                    value = next(v for v in p.values if _choice_key(v) == value_key)
                    with hps.conditional_scope(name, [value]):
                        sub._declare_keras_tuner(hps)
            elif p.is_int:
                hps.Int(name, int(p.low), int(p.high), step=int(p.step or 1))
            else:
                hps.Float(name, p.low, p.high, step=p.step, sampling="log" if p.is_log else "linear")

    @classmethod
    def from_keras_tuner(cls, hps) -> SearchSpace:  # noqa: ANN001
        """Read a space out of a ``keras_tuner.HyperParameters`` filled by a user's ``build_model(hp)``."""
        raw: dict = {}
        for h in hps.space:
            cfg = h.get_config()
            kind = type(h).__name__
            if kind == "Choice":
                raw[h.name] = {"type": "choice", "values": list(cfg["values"])}
            elif kind == "Boolean":
                raw[h.name] = {"type": "choice", "values": [False, True]}
            elif kind == "Fixed":
                raw[h.name] = {"type": "fixed", "value": cfg["value"]}
            elif kind == "Int":
                raw[h.name] = {"type": "int", "low": cfg["min_value"], "high": cfg["max_value"],
                               "step": cfg.get("step") or 1}
            elif kind == "Float":
                entry = {"type": "loguniform" if cfg.get("sampling") == "log" else "uniform",
                         "low": cfg["min_value"], "high": cfg["max_value"]}
                if cfg.get("step") and cfg.get("sampling") != "log":
                    entry["step"] = cfg["step"]
                raw[h.name] = entry
        return cls.parse(raw)


def _parse_param(definition: Any, path: str) -> Param:
    if not isinstance(definition, Mapping):
        if isinstance(definition, int | float | str | bool) or definition is None:
            return Fixed(definition)
        raise ValidationError(f"{path} must be a scalar or a mapping with a 'type'", field=path)
    kind = definition.get("type")
    if kind not in _KNOWN_TYPES:
        raise ValidationError(f"{path}.type must be one of {', '.join(_KNOWN_TYPES)} (got {kind!r})",
                              field=f"{path}.type")
    allowed = {"type"} | {
        "fixed": {"value"}, "choice": {"values", "when"}}.get(kind, {"low", "high", "step"})
    unknown = sorted(set(definition) - allowed)
    if unknown:
        raise ValidationError(f"{path}: unknown key {unknown[0]!r} for a {kind}", field=f"{path}.{unknown[0]}")
    if kind == "fixed":
        if "value" not in definition:
            raise ValidationError(f"{path}.value is required for a fixed parameter", field=f"{path}.value")
        return Fixed(definition["value"])
    if kind == "choice":
        values = definition.get("values")
        if not isinstance(values, list | tuple) or not values:
            raise ValidationError(f"{path}.values must be a non-empty list", field=f"{path}.values")
        for i, v in enumerate(values):
            if not (isinstance(v, int | float | str | bool) or v is None):
                raise ValidationError(f"{path}.values[{i}] must be a scalar", field=f"{path}.values[{i}]")
        if len({_choice_key(v) for v in values}) != len(values):
            raise ValidationError(f"{path}.values has duplicates", field=f"{path}.values")
        when_raw = definition.get("when") or {}
        if not isinstance(when_raw, Mapping):
            raise ValidationError(f"{path}.when must map choice values to sub-spaces", field=f"{path}.when")
        keys = {_choice_key(v) for v in values}
        when: dict[str, SearchSpace] = {}
        for value_key, sub in when_raw.items():
            key = _choice_key(value_key)
            if key not in keys:
                raise ValidationError(f"{path}.when.{key} is not one of the values", field=f"{path}.when.{key}")
            when[key] = SearchSpace.parse(sub, path=f"{path}.when.{key}")
        return Choice(tuple(values), when)
    # ranges
    for bound in ("low", "high"):
        if bound not in definition:
            raise ValidationError(f"{path}.{bound} is required for a {kind} range", field=f"{path}.{bound}")
        v = definition[bound]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValidationError(f"{path}.{bound} must be a finite number (got {v!r})", field=f"{path}.{bound}")
    low, high = definition["low"], definition["high"]
    if kind == "int" and (int(low) != low or int(high) != high):
        raise ValidationError(f"{path}: an int range needs integer bounds", field=f"{path}.low")
    if low > high:
        raise ValidationError(f"{path}.low ({low}) must not exceed high ({high})", field=f"{path}.low")
    if kind == "loguniform" and low <= 0:
        raise ValidationError(f"{path}.low must be > 0 for a loguniform range", field=f"{path}.low")
    step = definition.get("step")
    if step is not None:
        if kind == "loguniform":
            raise ValidationError(f"{path}.step is not supported on a loguniform range; use a choice",
                                  field=f"{path}.step")
        if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
            raise ValidationError(f"{path}.step must be a positive number", field=f"{path}.step")
        if kind == "int" and int(step) != step:
            raise ValidationError(f"{path}.step must be an integer for an int range", field=f"{path}.step")
    if kind == "int":
        return Range(kind, int(low), int(high), int(step) if step is not None else None)
    return Range(kind, float(low), float(high), float(step) if step is not None else None)


def _sample_range(p: Range, rng: np.random.Generator) -> int | float:
    points = p.grid_points()
    if points:
        return points[int(rng.integers(len(points)))]
    if p.is_int:
        return int(rng.integers(int(p.low), int(p.high) + 1))
    if p.is_log:
        return float(math.exp(rng.uniform(math.log(p.low), math.log(p.high))))
    return float(rng.uniform(p.low, p.high))


def _param_allows(p: Param, value: Any) -> bool:
    if isinstance(p, Fixed):
        return p.value == value
    if isinstance(p, Choice):
        return _choice_key(value) in {_choice_key(v) for v in p.values}
    return p.contains(value)


def _describe(p: Param) -> str:
    if isinstance(p, Fixed):
        return f"fixed value {p.value!r}"
    if isinstance(p, Choice):
        return f"choice {list(p.values)!r}"
    return f"{p.kind} range [{p.low}, {p.high}]"
