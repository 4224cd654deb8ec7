"""The pass manager: the registry of passes, ``run_passes`` (lint after each pass, the
cell's (alpha row, op) terms preserved, a broken invariant reported as ``PassError``
naming the pass) and the parsing of a ``--passes`` list. Pass modules register here;
``genolang.passes`` declares the default order."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import networkx as nx

from genolang.errors import UsageError, did_you_mean
from genolang.ir.graph import CellIR, IRError

PassFn = Callable[[CellIR], "nx.MultiDiGraph[str]"]


@dataclass(frozen=True)
class Pass:
    """A registered pass: its name, what it does, and the function."""

    name: str
    summary: str
    run: PassFn


PASSES: dict[str, Pass] = {}


def register_pass(name: str, summary: str) -> Callable[[PassFn], PassFn]:
    """Register ``fn(ir) -> new graph`` as pass ``name``."""
    def deco(fn: PassFn) -> PassFn:
        if name in PASSES:
            raise ValueError(f"pass {name!r} is registered twice")
        PASSES[name] = Pass(name, summary, fn)
        return fn

    return deco


class PassError(IRError):
    """A pass broke an IR invariant (a bug in the pass)."""

    def __init__(self, pass_name: str, cell: str, message: str) -> None:
        super().__init__(f"pass '{pass_name}' broke cell {cell}: {message}")
        self.pass_name = pass_name


def _nonzero_terms(ir: CellIR) -> set[tuple[int, str]]:
    return {(row, op) for row, op in ir.terms() if not ir.op(op).is_zero}


def run_passes(ir: CellIR, names: Iterable[str] = ()) -> CellIR:
    """``ir`` after the passes ``names``, in order; raises ``PassError`` naming the pass
    whose output does not lint or computes other terms than its input."""
    for name in names:
        if name not in PASSES:
            raise UsageError(f"no pass named '{name}'{did_you_mean(name, PASSES)}; known: {', '.join(PASSES)}")
        before = _nonzero_terms(ir)
        try:
            out = ir.with_graph(PASSES[name].run(ir), name).lint()
        except PassError:
            raise
        except IRError as err:
            raise PassError(name, ir.name, str(err).removeprefix(f"cell {ir.name}: ")) from err
        after = _nonzero_terms(out)
        if after != before:
            lost = ", ".join(f"row {r} {op}" for r, op in sorted(before - after)[:3])
            extra = ", ".join(f"row {r} {op}" for r, op in sorted(after - before)[:3])
            raise PassError(name, ir.name, "the cell computes other terms than before"
                            + (f"; lost {lost}" if lost else "") + (f"; added {extra}" if extra else ""))
        ir = out
    return ir


def optimize_cells(irs: Mapping[str, CellIR], names: Iterable[str] = ()) -> dict[str, CellIR]:
    """``run_passes`` on every cell."""
    names = tuple(names)
    return {cell: run_passes(ir, names) for cell, ir in irs.items()}


def parse_passes(text: str) -> tuple[str, ...]:
    """``"drop_none,share_relu"`` -> the pass names, checked (``UsageError`` otherwise:
    an unknown name, an empty one between commas, one given twice); an empty text is no
    pass."""
    if not text.strip():
        return ()
    names = tuple(n.strip().replace("-", "_") for n in text.split(","))
    for i, name in enumerate(names):
        if not name:
            raise UsageError(f"pass list {text!r}: name {i + 1} is empty; give names separated by single commas "
                             "('' for no pass)")
        if name not in PASSES:
            raise UsageError(f"no pass named '{name}'{did_you_mean(name, PASSES)}; known: {', '.join(PASSES)}")
        if name in names[:i]:
            raise UsageError(f"pass list {text!r}: '{name}' is given twice; a pass runs once, where it is listed")
    return names
