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
    ``ops[col]`` on edge ``edges[row]`` (a ``(src, dst)`` pair of IR node names).
    ``allowed`` (empty: every edge chooses from every op) holds, per row, the ops that
    edge chooses from when a space gives edges their own sets; the others weigh 0."""

    cell: str
    edges: tuple[tuple[str, str], ...]
    ops: tuple[str, ...]
    weights: tuple[tuple[float, ...], ...]
    allowed: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.edges):
            raise ValueError(f"cell {self.cell}: {len(self.weights)} rows of weights for {len(self.edges)} edges")
        for row in self.weights:
            if len(row) != len(self.ops):
                raise ValueError(f"cell {self.cell}: a row of {len(row)} weights for {len(self.ops)} ops")
        if self.allowed:
            if len(self.allowed) != len(self.edges):
                raise ValueError(f"cell {self.cell}: {len(self.allowed)} rows of allowed ops for "
                                 f"{len(self.edges)} edges")
            for ops in self.allowed:
                unknown = [op for op in ops if op not in self.ops]
                if unknown or not ops:
                    raise ValueError(f"cell {self.cell}: an edge allows {', '.join(ops) or 'no op'}, not some of "
                                     f"{', '.join(self.ops)}")

    def row_ops(self, row: int) -> tuple[str, ...]:
        """The ops edge ``edges[row]`` chooses from, in column order."""
        return self.allowed[row] if self.allowed else self.ops

    @property
    def restricted(self) -> bool:
        """Whether some edge chooses from some ops only."""
        return any(len(ops) < len(self.ops) for ops in self.allowed)

    @property
    def edge_names(self) -> tuple[str, ...]:
        """``n3<-c1`` for every row."""
        return tuple(f"{dst}<-{src}" for src, dst in self.edges)

    def weight(self, src: str, dst: str, op: str) -> float:
        """The weight of ``op`` on the edge ``src -> dst``."""
        return self.weights[self.edges.index((src, dst))][self.ops.index(op)]

    def to_json(self) -> dict[str, Any]:
        """``{"edges": ["n2<-c0", ...], "ops": [...], "softmax": [[...], ...]}``, and
        ``"allowed": [[ops of row 0], ...]`` when some edge chooses from some ops only."""
        obj: dict[str, Any] = {"edges": list(self.edge_names), "ops": list(self.ops),
                               "softmax": [list(r) for r in self.weights]}
        if self.restricted:
            obj["allowed"] = [list(ops) for ops in self.allowed]
        return obj

    @staticmethod
    def from_json(cell: str, obj: Mapping[str, Any]) -> CellAlphas:
        """The inverse of ``to_json``."""
        edges = []
        for name in obj["edges"]:
            dst, _, src = str(name).partition("<-")
            edges.append((src, dst))
        allowed = tuple(tuple(str(op) for op in ops) for ops in obj.get("allowed") or ())
        return CellAlphas(cell, tuple(edges), tuple(obj["ops"]),
                          tuple(tuple(float(x) for x in row) for row in obj["softmax"]), allowed)


def format_alpha_table(tables: Sequence[CellAlphas] | Mapping[str, CellAlphas], digits: int = 3,
                       weights: str = "softmax") -> str:
    """One line per edge, ops in the space's order (only the edge's own ops where a space
    gives it some only; ``weights``: what the numbers are, the relaxation's selection
    weights)::

        cell normal (softmax over 8 ops per edge)
          n2 <- c0: none 0.124  max_pool_3x3 0.126  ...  sep_conv_3x3 0.310  ...
    """
    cells = list(tables.values()) if isinstance(tables, Mapping) else list(tables)
    lines: list[str] = []
    for table in cells:
        if table.restricted:
            sizes = sorted({len(table.row_ops(r)) for r in range(len(table.edges))})
            span = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}"
            lines.append(f"cell {table.cell} ({weights} over each edge's own ops: {span} of {len(table.ops)})")
        else:
            lines.append(f"cell {table.cell} ({weights} over {len(table.ops)} ops per edge)")
        width = max((len(f"{dst} <- {src}") for src, dst in table.edges), default=0)
        for r, ((src, dst), row) in enumerate(zip(table.edges, table.weights)):
            shown = table.row_ops(r)
            cells_text = "  ".join(f"{op} {w:.{digits}f}" for op, w in zip(table.ops, row) if op in shown)
            lines.append(f"  {f'{dst} <- {src}':<{width}}: {cells_text}")
    return "\n".join(lines)
