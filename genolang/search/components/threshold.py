"""FairDARTS's selection (xiaomi-automl/FairDARTS ``fairdarts/utils.py`` ``parse`` with the
default ``--parse_method threshold_sparse``, ``--op_threshold 0.85``): per node the DARTS
rule on the selection weights (sigmoid(alpha) for FairDARTS): its strongest edges, each
with its strongest op; then an op is kept only if its weight is at least the threshold.
A node may so end with fewer inputs than the space keeps, or none.

genolang's genotypes sum exactly ``keep`` terms per node. Two ways to say the same:

* ``below=none`` (the default): a dropped op is written as the space's zero op
  (``none(c1)``: adds nothing), and a node left without inputs is left out of the cell's
  output, and the terms that read it become zero terms too; this is what the official
  fixed cell (``model.py`` ``DCOCell``) computes: it skips the dropped ops, leaves out a
  node nothing was kept for and concatenates the nodes that remain. The function and
  the parameter count of the network are the official's. Where a space has no zero op,
  where a cell's output is not a concatenation (recurrent cells, NAS-Bench-201's last
  node) or where nothing would be left of a cell, that cell keeps the DARTS rule's
  choice, as with ``below=keep``, and the header says so.
* ``below=keep``: the DARTS rule's genotype as it is; the ops under the threshold (which
  FairDARTS would drop) are listed in the found genotype's header.

``notes`` holds the lines for that header after ``select``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from genolang.errors import UsageError
from genolang.ir.alphas import CellAlphas
from genolang.ir.derive import derive_genotype
from genolang.search.components import register
from genolang.spec.checked import CellGenotype, GenotypeSpec, NodeSpec, SpaceSpec
from genolang.spec.validate import errors, genotype_problems

BELOW = ("none", "keep")


@register("selection", "threshold")
class Threshold:
    """The DARTS rule, then only the ops whose weight reaches ``threshold`` (FairDARTS: 0.85)."""

    fine_tunes = False

    def __init__(self, threshold: float = 0.85, below: str = "none") -> None:
        if below not in BELOW:
            raise UsageError(f"selection 'threshold': below must be one of {', '.join(BELOW)}, not {below!r}")
        self.threshold = threshold
        self.below = below
        self.notes: list[str] = []

    def select(self, context: Any) -> GenotypeSpec:
        tables: Mapping[str, CellAlphas] = context.model.cell_alphas()
        geno = derive_genotype(context.space, tables, context.name)
        out, self.notes = apply_threshold(geno, tables, self.threshold, self.below)
        return out


def zero_op(space: SpaceSpec) -> str | None:
    """The first op of ``space`` that computes zeros (``none``), if any."""
    for op in space.op_defs:
        if op.is_zero:
            return op.name
    return None


def apply_threshold(geno: GenotypeSpec, tables: Mapping[str, CellAlphas], threshold: float,
                    below: str = "none") -> tuple[GenotypeSpec, list[str]]:
    """``geno`` (the DARTS rule's choice on ``tables``) with the terms under
    ``threshold`` dropped as ``below`` says, and the header lines that describe it."""
    zero = zero_op(geno.space)
    notes = [f"selection: FairDARTS's threshold_sparse: an op is kept where its weight is at least {threshold:g}"]
    cells = []
    for cell in geno.cells:
        table = tables[cell.name]
        weak = [(node.name, op, src, table.weight(src, node.name, op))
                for node in cell.nodes for op, src in node.edges if table.weight(src, node.name, op) < threshold]
        listed = ", ".join(f"{op}({src}) -> {node} {w:.3f}" for node, op, src, w in weak)
        if not weak:
            notes.append(f"  cell {cell.name}: every kept op reaches it")
            cells.append(cell)
            continue
        dropped = None
        if below == "keep":
            why = "kept as the DARTS rule chose them (below=keep)"
        elif zero is None:
            why = f"kept: space '{geno.space.name}' has no zero op to write a dropped one with"
        elif cell.shape.reducer != "concat":
            why = f"kept: the cell's output is '{cell.shape.reducer}', not a concatenation a node can leave"
        else:
            dropped = _drop(cell, {(n, op, src) for n, op, src, _ in weak}, zero)
            why = "kept: dropping them would leave the cell no node" if dropped is None else ""
        if dropped is None:
            notes.append(f"  cell {cell.name}: under the threshold, {why}: {listed}")
            cells.append(cell)
            continue
        new, absent = dropped
        notes.append(f"  cell {cell.name}: under the threshold, written as '{zero}': {listed}")
        if absent:
            notes.append(f"  cell {cell.name}: left without inputs, so out of the output (and what reads them is "
                         f"'{zero}' too): {', '.join(absent)}")
        cells.append(new)
    out = dataclasses.replace(geno, cells=tuple(cells))
    problems = errors(genotype_problems(out))
    if problems:
        raise AssertionError(f"thresholded genotype '{geno.name}' is invalid: "
                             + "; ".join(p.message for p in problems))
    return out, notes


def _drop(cell: CellGenotype, weak: set[tuple[str, str, str]], zero: str) -> tuple[CellGenotype, list[str]] | None:
    """The cell with the ``weak`` (node, op, input) terms and every term reading a node
    left without inputs written as ``zero``; those nodes out of the output. None when
    no output node would remain."""
    absent: list[str] = []
    nodes = []
    for node in cell.nodes:
        edges = tuple((zero, src) if (node.name, op, src) in weak or src in absent else (op, src)
                      for op, src in node.edges)
        if all(op == zero for op, _ in edges):
            absent.append(node.name)
        nodes.append(NodeSpec(node.name, edges))
    output = tuple(n for n in cell.output if n not in absent)
    if not output:
        return None
    return CellGenotype(cell.shape, tuple(nodes), output), absent
