"""Converters between genolang genotypes and other genotype formats, by name."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from genolang.errors import Diagnostic, Span, SpecError
from genolang.interop import darts, naslib, nb201
from genolang.parse import ast as A
from genolang.spec.checked import GenotypeSpec

SourceMap = dict[tuple[str, str], Span]  # (cell, node name | 'out' | '') -> span in the input


@dataclass(frozen=True)
class Format:
    """A genotype format: ``read(text, label, name, space)`` gives a genotype tree,
    ``write(genotype)`` gives text; ``locate(text, label)`` says where the parts of the
    tree were written (empty when the reader checks every part itself)."""

    name: str
    read: Callable[[str, str, str, str | None], A.Genotype]
    write: Callable[[GenotypeSpec], str]
    locate: Callable[[str, str], SourceMap] = lambda text, label: {}


def _read_darts(text: str, label: str, name: str, space: str | None) -> A.Genotype:
    return darts.darts_to_tree(darts.read_darts(text, label), name, space)


def _locate_darts(text: str, label: str) -> SourceMap:
    return darts.source_map(darts.read_darts(text, label))


FORMATS: dict[str, Format] = {
    "darts": Format("darts", _read_darts, darts.tree_to_darts, _locate_darts),
    "nb201": Format("nb201", nb201.read, nb201.tree_to_nb201),
    "naslib": Format("naslib", naslib.read, naslib.tree_to_naslib),
}

_CELL = re.compile(r"^ {4}([A-Za-z_]\w*) \{$")
_NODE = re.compile(r"^ {8}([A-Za-z_]\w*) = ")


def at_input(err: SpecError, generated: str, generated_path: str, where: SourceMap, text: str,
             label: str) -> SpecError:
    """The errors found checking an imported genotype's generated spec text, moved to
    the parts of the user's input they are about (the generated text was never seen);
    an error about no part in particular points at the whole input."""
    keys: dict[int, tuple[str, str]] = {}
    lines = generated.split("\n")
    cell = ""
    for number, line in enumerate(lines, 1):
        if (m := _CELL.match(line)) is not None:
            cell = m.group(1)
            keys[number] = (cell, "")
        elif (m := _NODE.match(line)) is not None and cell:
            keys[number] = (cell, m.group(1))
    stripped = text.strip()
    first = text.find(stripped) if stripped else 0
    row = text.count("\n", 0, first) + 1
    column = first - (text.rfind("\n", 0, first) + 1) + 1
    whole = Span(row, column, row, column + len(stripped.split("\n")[0]))
    moved = []
    for d in err.diagnostics:
        if d.path != generated_path:
            moved.append(d)
            continue
        key = keys.get(d.span.line) if d.span is not None else None
        span = None
        if key is not None and d.span is not None and key[1]:
            term = lines[d.span.line - 1][:d.span.column - 1].count(" + ")
            span = where.get((key[0], f"{key[1]}#{term}")) if " = " in lines[d.span.line - 1][:d.span.column] else None
        if span is None and key is not None:
            span = where.get(key)
        if span is None and key is not None:
            span = where.get((key[0], ""))
        moved.append(Diagnostic(label, span or whole, d.message, d.hint, d.severity))
    return SpecError(tuple(moved), {**err.sources, label: text})
