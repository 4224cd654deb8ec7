"""The components a search method is made of, each one module registered by name:

* ``relaxation``: alphas to the weights each edge mixes its ops by (softmax, ...);
* ``transform``: a change to the supernet's structure (partial channels, ...);
* ``regularizer``: a term added to the architecture loss;
* ``perturbation``: a change to the edge weights during the weight step;
* ``selection``: how the final cell is chosen from the trained supernet.

A component class is registered with ``@register(kind, name)``; its constructor takes
its hyperparameters as keyword arguments (numbers, words, booleans), all with defaults.
``build(kind, name, params)`` makes one and reports unknown names or parameters as
``UsageError``s. Components that change with the epoch implement ``set_epoch(epoch,
epochs)`` (0-based epoch; called at the start of every epoch, and once with ``epoch ==
epochs`` when the epochs are over, before the selection); anything they draw comes from torch's global generator, whose
state every checkpoint keeps, so resumed searches stay bit-identical."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genolang.errors import UsageError, did_you_mean

KINDS = ("relaxation", "transform", "regularizer", "perturbation", "selection")
Param = int | float | str | bool

_REGISTRY: dict[str, dict[str, type]] = {kind: {} for kind in KINDS}


def register(kind: str, name: str) -> Callable[[type], type]:
    """Register a component class of ``kind`` under ``name``."""
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}")

    def deco(cls: type) -> type:
        if name in _REGISTRY[kind]:
            raise ValueError(f"{kind} {name!r} is registered twice")
        cls.component_kind = kind  # type: ignore[attr-defined]
        cls.component_name = name  # type: ignore[attr-defined]
        _REGISTRY[kind][name] = cls
        return cls

    return deco


def _load_all() -> None:
    """Import every component module of this package (each registers itself)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def registry(kind: str) -> dict[str, type]:
    _load_all()
    return dict(_REGISTRY[kind])


def parameters(kind: str, name: str) -> dict[str, Param]:
    """A component's hyperparameters and their defaults."""
    cls = _component_class(kind, name)
    sig = inspect.signature(cls)
    return {p.name: p.default for p in sig.parameters.values() if p.name != "self" and p.default is not p.empty}


def _kind(default: object) -> str:
    """``a number``, ``a whole number``, ``true or false``, ``a word`` for a parameter's default."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a number"
    return "a word"


def _component_class(kind: str, name: str) -> type:
    known = registry(kind)
    if name not in known:
        raise UsageError(f"no {kind} named '{name}'{did_you_mean(name, known)}; known: {', '.join(sorted(known))}")
    return known[name]


@dataclass(frozen=True)
class ComponentSpec:
    """A component by name with its hyperparameters (all of them, defaults filled in)."""

    kind: str
    name: str
    params: tuple[tuple[str, Param], ...] = ()

    @staticmethod
    def of(kind: str, name: str, **given: Param) -> ComponentSpec:
        """The spec with ``given`` over the component's defaults (checked)."""
        defaults = parameters(kind, name)
        wrong = sorted(set(given) - set(defaults))
        if wrong:
            raise UsageError(f"{kind} '{name}' has no parameter {', '.join(repr(w) for w in wrong)}"
                             f"{did_you_mean(wrong[0], defaults)}; its parameters: "
                             f"{', '.join(f'{k} (default {v})' for k, v in defaults.items()) or 'none'}")
        merged = {**defaults, **given}
        for key, value in merged.items():
            default = defaults[key]
            if isinstance(default, bool) != isinstance(value, bool) or (
                    isinstance(default, (int, float)) and not isinstance(value, (int, float))) or (
                    isinstance(default, str) and not isinstance(value, str)):
                raise UsageError(f"{kind} '{name}': parameter '{key}' takes {_kind(default)}, "
                                 f"got {value!r}")
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                merged[key] = float(value)
        return ComponentSpec(kind, name, tuple(sorted(merged.items())))

    def build(self) -> Any:
        return _component_class(self.kind, self.name)(**dict(self.params))

    def get(self, key: str) -> Param:
        return dict(self.params)[key]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}

    @staticmethod
    def from_json(kind: str, d: dict[str, Any]) -> ComponentSpec:
        return ComponentSpec.of(kind, str(d["name"]), **dict(d.get("params", {})))

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params)
        return f"{self.name}({args})" if args else self.name
