"""Optimizing passes over a supernet's cell IR, and the pass manager that runs them.

Each pass is one module: a function from a ``CellIR`` to a new graph, registered with
``register_pass``. ``run_passes`` applies passes in order, records each in the IR's
``passes``, lints after each, and checks that the cell still computes the same (alpha
row, op) terms (only ``none``, a zero, may go); a broken invariant raises ``PassError``
naming the pass. The passes are torch-free: they rewrite names and edges, and the
supernet compiler (``genolang.build.supernet``) builds whatever the IR says.

Passes, in their default order:

* ``drop_none``: ``none`` leaves every mixed edge (its alpha column stays in the
  softmax; only its zero tensor and multiply disappear).
* ``share_relu``: one ``relu`` node per node whose ops start with a ReLU; those ops read
  it and skip their own ReLU.
* ``share_param_free``: a parameter-free op (a pool and its non-affine BN) reading the
  same node at the same stride on several edges is computed once (an ``apply`` node
  with ``shared``), each edge weighting the one result.
* ``group_convs``: the same conv op on several edges that read the same node (or its
  shared ReLU) runs as one grouped call (an ``apply`` node).
* ``scale_bn``: an op's alpha weight becomes the scale of its final BN instead of a
  multiply of its output.
* ``recompute_convs``: grouped convs keep only their input for the backward and
  recompute their depthwise convs there (less memory, a little more time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import networkx as nx

from genolang.errors import UsageError, did_you_mean
from genolang.ir.graph import CellIR, IRError
from genolang.opnames import OPS

PassFn = Callable[[CellIR], nx.MultiDiGraph]


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
    return {(row, op) for row, op in ir.terms() if not OPS[op].is_zero}


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
    """``"drop_none,share_relu"`` -> the pass names, checked (``UsageError`` otherwise);
    an empty text is no pass."""
    names = tuple(n.strip().replace("-", "_") for n in text.split(",") if n.strip())
    for name in names:
        if name not in PASSES:
            raise UsageError(f"no pass named '{name}'{did_you_mean(name, PASSES)}; known: {', '.join(PASSES)}")
    return names


# the passes register themselves on import, in their default order
from genolang.passes import (  # noqa: E402,F401
    drop_none, share_relu, share_param_free, group_convs, scale_bn, recompute_convs)

DEFAULT_PASSES: tuple[str, ...] = tuple(PASSES)
