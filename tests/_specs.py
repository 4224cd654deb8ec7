"""Checked specs of a known kind. ``load_named`` and ``Checked.single`` return a space,
a genotype or a network, whichever kind was asked for; these helpers check that it is
that kind, so the tests (and the type checker) get the precise type."""

from __future__ import annotations

from typing import TypeVar

from genolang.spec.checked import GenotypeSpec, NetworkSpec, SpaceSpec
from genolang.spec.lookup import load_named

T = TypeVar("T")


def of_kind(kind: type[T], spec: object) -> T:
    """``spec``, checked to be a ``kind``."""
    assert isinstance(spec, kind), f"expected a {kind.__name__}, got {type(spec).__name__}"
    return spec


def named_space(name_or_path: str) -> SpaceSpec:
    return of_kind(SpaceSpec, load_named("space", name_or_path))


def named_genotype(name_or_path: str) -> GenotypeSpec:
    return of_kind(GenotypeSpec, load_named("genotype", name_or_path))


def named_network(name_or_path: str) -> NetworkSpec:
    return of_kind(NetworkSpec, load_named("network", name_or_path))
