"""Named architecture weights: a supernet's alpha of one cell type as a table whose rows
are the cell IR's mixed edges (``n3<-c1``) and whose columns are the space's ops.

Torch-free, so derivation, printing and the run files (alphas.jsonl, the provenance
header of a found genotype) can read alphas without a model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CellAlphas:
    """One cell type's softmax weights: ``weights[row][col]`` is the share of op
    ``ops[col]`` on edge ``edges[row]`` (a ``(src, dst)`` pair of IR node names)."""

    cell: str
    edges: tuple[tuple[str, str], ...]
    ops: tuple[str, ...]
    weights: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.edges):
            raise ValueError(f"cell {self.cell}: {len(self.weights)} rows of weights for {len(self.edges)} edges")
        for row in self.weights:
            if len(row) != len(self.ops):
                raise ValueError(f"cell {self.cell}: a row of {len(row)} weights for {len(self.ops)} ops")

    @property
    def edge_names(self) -> tuple[str, ...]:
        """``n3<-c1`` for every row."""
        return tuple(f"{dst}<-{src}" for src, dst in self.edges)

    def weight(self, src: str, dst: str, op: str) -> float:
        """The weight of ``op`` on the edge ``src -> dst``."""
        return self.weights[self.edges.index((src, dst))][self.ops.index(op)]

    def to_json(self) -> dict[str, Any]:
        """``{"edges": ["n2<-c0", ...], "ops": [...], "softmax": [[...], ...]}``."""
        return {"edges": list(self.edge_names), "ops": list(self.ops), "softmax": [list(r) for r in self.weights]}

    @staticmethod
    def from_json(cell: str, obj: Mapping[str, Any]) -> CellAlphas:
        """The inverse of ``to_json``."""
        edges = []
        for name in obj["edges"]:
            dst, _, src = str(name).partition("<-")
            edges.append((src, dst))
        return CellAlphas(cell, tuple(edges), tuple(obj["ops"]),
                          tuple(tuple(float(x) for x in row) for row in obj["softmax"]))


def format_alpha_table(tables: Sequence[CellAlphas] | Mapping[str, CellAlphas], digits: int = 3,
                       weights: str = "softmax") -> str:
    """One line per edge, ops in the space's order (``weights``: what the numbers are,
    the relaxation's selection weights)::

        cell normal (softmax over 8 ops per edge)
          n2 <- c0: none 0.124  max_pool_3x3 0.126  ...  sep_conv_3x3 0.310  ...
    """
    cells = list(tables.values()) if isinstance(tables, Mapping) else list(tables)
    lines: list[str] = []
    for table in cells:
        lines.append(f"cell {table.cell} ({weights} over {len(table.ops)} ops per edge)")
        width = max((len(f"{dst} <- {src}") for src, dst in table.edges), default=0)
        for (src, dst), row in zip(table.edges, table.weights):
            cells_text = "  ".join(f"{op} {w:.{digits}f}" for op, w in zip(table.ops, row))
            lines.append(f"  {f'{dst} <- {src}':<{width}}: {cells_text}")
    return "\n".join(lines)
