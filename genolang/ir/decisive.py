"""How decided a search is: figures of the softmax alphas next to the genotype they
derive, so that a user can tell a search whose alphas moved from one whose genotype is
a coin toss.

For one cell type with K candidate ops per edge (uniform weight 1/K; an edge with its
own ops has its own K; a row is read as shares of its sum, so sigmoid weights and rows
scaled by PC-DARTS's edge betas compare alike):

* ``kept_over_uniform``: the mean share of the (edge, op) terms the genotype keeps,
  divided by 1/K. 1.0 means the kept ops weigh what every op weighed at the
  start (a coin toss); K means every kept op holds all of its edge's weight.
* ``entropy``: the mean over all of the cell's mixed edges of the entropy of the edge's
  softmax row divided by log K: 1.0 is uniform, 0.0 one op per edge.
* ``lowest``, ``highest``: the smallest and largest softmax weight of the cell.

For a whole search the figures pool every cell: ``kept_over_uniform`` over all kept
terms, ``entropy`` over all edges. Torch-free: it reads ``genolang.ir.alphas.CellAlphas``
tables and a checked genotype."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genolang.ir.alphas import CellAlphas
from genolang.spec.checked import GenotypeSpec


@dataclass(frozen=True)
class CellDecisiveness:
    """The figures of one cell type (see the module docstring)."""

    cell: str
    ops: int
    kept: int  # kept (edge, op) terms
    edges: int  # mixed edges
    kept_weight: float  # mean over the kept terms of their share of the edge x (the edge's K / ops)
    entropy: float
    lowest: float
    highest: float

    @property
    def uniform(self) -> float:
        return 1.0 / self.ops

    @property
    def kept_over_uniform(self) -> float:
        return self.kept_weight * self.ops

    def to_json(self) -> dict[str, Any]:
        return {"cell": self.cell, "ops": self.ops, "kept": self.kept, "edges": self.edges,
                "kept_weight": self.kept_weight, "kept_over_uniform": self.kept_over_uniform,
                "uniform": self.uniform, "entropy": self.entropy, "lowest": self.lowest, "highest": self.highest}


@dataclass(frozen=True)
class Decisiveness:
    """The figures of a whole search: every cell's and the pooled ones."""

    cells: tuple[CellDecisiveness, ...]

    @property
    def kept_over_uniform(self) -> float:
        """Mean of weight x K over every kept term of every cell."""
        total = sum(c.kept for c in self.cells)
        return sum(c.kept_over_uniform * c.kept for c in self.cells) / total if total else math.nan

    @property
    def entropy(self) -> float:
        """Mean normalised entropy over every mixed edge of every cell."""
        total = sum(c.edges for c in self.cells)
        return sum(c.entropy * c.edges for c in self.cells) / total if total else math.nan

    @property
    def lowest(self) -> float:
        return min(c.lowest for c in self.cells)

    @property
    def highest(self) -> float:
        return max(c.highest for c in self.cells)

    @property
    def ops(self) -> int:
        """K, the candidate ops per edge (the largest of the cells')."""
        return max(c.ops for c in self.cells)

    def to_json(self) -> dict[str, Any]:
        return {"kept_over_uniform": self.kept_over_uniform, "entropy": self.entropy, "lowest": self.lowest,
                "highest": self.highest, "uniform": 1.0 / self.ops, "ops": self.ops,
                "cells": {c.cell: c.to_json() for c in self.cells}}

    def summary(self) -> str:
        """``kept ops at 1.08x uniform (1 = coin toss, 8 = certain), edge entropy 0.9996 (1 = uniform,
        0 = one op per edge), softmax weights 0.109-0.142 (uniform 1/8 = 0.125)``."""
        return (f"kept ops at {self.kept_over_uniform:.2f}x uniform (1 = coin toss, {self.ops} = certain), "
                f"edge entropy {self.entropy:.4f} (1 = uniform, 0 = one op per edge), "
                f"softmax weights {self.lowest:.3f}-{self.highest:.3f} (uniform 1/{self.ops} = {1 / self.ops:.3f})")

    def short(self) -> str:
        """``decisiveness: kept ops 1.08x uniform (of 8), edge entropy 0.9996 (uniform 1)``."""
        return (f"decisiveness: kept ops {self.kept_over_uniform:.2f}x uniform (of {self.ops}), "
                f"edge entropy {self.entropy:.4f} (uniform 1)")


def edge_entropy(alphas: Mapping[str, CellAlphas]) -> float:
    """The mean normalised entropy over every mixed edge of every cell (no genotype
    needed)."""
    rows = [_row(table, r) for table in alphas.values() for r in range(len(table.edges))]
    return sum(_entropy(row) for row in rows) / len(rows) if rows else math.nan


def _entropy(row: Sequence[float]) -> float:
    """Entropy of a row of weights (normalised to sum 1) over log K (0 for one op)."""
    k = len(row)
    if k < 2:
        return 0.0
    total = sum(row)
    if not total > 0:
        return math.nan
    h = -sum((w / total) * math.log(w / total) for w in row if w > 0)
    return h / math.log(k)


def _row(alphas: CellAlphas, r: int) -> list[float]:
    """Row ``r``'s weights over the ops its edge chooses from (all of them unless the
    space gives the edge its own ops)."""
    ops = alphas.row_ops(r)
    return [alphas.weights[r][alphas.ops.index(op)] for op in ops]


def cell_decisiveness(alphas: CellAlphas, terms: Sequence[tuple[str, str, str]]) -> CellDecisiveness:
    """The figures of one cell from its table and its kept ``(node, op, input)`` terms
    (each the weight of ``op`` on the edge ``input -> node``). A row is read as shares of
    its edge's weight (divided by its sum: a softmax row is unchanged, a sigmoid row or
    one scaled by PC-DARTS's edge betas becomes comparable) over the ops the edge
    chooses from, so K and uniform are the edge's own (``ops`` reports the largest)."""
    index = {edge: row for row, edge in enumerate(alphas.edges)}
    rows = [_row(alphas, r) for r in range(len(alphas.edges))]
    kept = []  # share x the edge's K, per kept term
    for node, op, src in terms:
        row = index.get((src, node))
        if row is None or op not in alphas.row_ops(row):
            raise ValueError(f"cell {alphas.cell}: the genotype keeps {op}({src}) on node {node}, which the alpha "
                             "table does not have")
        total = sum(rows[row])
        share = alphas.weights[row][alphas.ops.index(op)] / total if total > 0 else math.nan
        kept.append(share * len(rows[row]))
    flat = [w for row in rows for w in row]
    k = max((len(row) for row in rows), default=len(alphas.ops))
    return CellDecisiveness(
        cell=alphas.cell, ops=k, kept=len(kept),
        edges=len(alphas.edges),
        kept_weight=sum(kept) / len(kept) / k if kept else math.nan,
        entropy=sum(_entropy(row) for row in rows) / len(rows) if rows else math.nan,
        lowest=min(flat) if flat else math.nan, highest=max(flat) if flat else math.nan)


def decisiveness(alphas: Mapping[str, CellAlphas], genotype: GenotypeSpec) -> Decisiveness:
    """The figures of the alphas ``alphas`` (softmax tables by cell type) and the
    genotype they derive."""
    cells = []
    for cell in genotype.cells:
        if cell.name not in alphas:
            raise ValueError(f"no alphas for cell {cell.name!r}")
        terms = [(node.name, op, src) for node in cell.nodes for op, src in node.edges]
        cells.append(cell_decisiveness(alphas[cell.name], terms))
    if not cells:
        raise ValueError(f"genotype {genotype.name!r} has no cells")
    return Decisiveness(tuple(cells))
