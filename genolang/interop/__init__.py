"""Converters between genolang genotypes and other genotype formats, by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from genolang.interop import darts, naslib, nb201
from genolang.parse import ast as A
from genolang.spec.checked import GenotypeSpec


@dataclass(frozen=True)
class Format:
    """A genotype format: ``read(text, label, name, space)`` gives a genotype tree,
    ``write(genotype)`` gives text."""

    name: str
    read: Callable[[str, str, str, str | None], A.Genotype]
    write: Callable[[GenotypeSpec], str]


def _read_darts(text: str, label: str, name: str, space: str | None) -> A.Genotype:
    return darts.darts_to_tree(darts.read_darts(text, label), name, space)


FORMATS: dict[str, Format] = {
    "darts": Format("darts", _read_darts, darts.tree_to_darts),
    "nb201": Format("nb201", nb201.read, nb201.tree_to_nb201),
    "naslib": Format("naslib", naslib.read, naslib.tree_to_naslib),
}
