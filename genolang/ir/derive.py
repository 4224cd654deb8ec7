"""Derivation: softmax alphas to a discrete genotype (DARTS section 2.4), following the
space's derive rule (``genolang.spec.checked.DeriveRule``: ``exclude``, ``distinct``, caps).

The rule, for one cell. A *choice* is an (edge, op) pair whose op the edge chooses from
(``CellShape.edge_ops``: the edge's own set, or the space's ops) and the rule does not
exclude; its strength is its softmax weight. Choices are taken greedily, strongest first, over the
whole cell; a choice is skipped when its node already has ``keep`` choices (every
in-edge for ``keep = all``), when ``distinct`` holds and the node already reads that
input, when the node already has that very (input, op) pair, or when its op has reached
its ``cap`` in this cell. Without caps this is exactly the paper's rule: every node
keeps the ``keep`` in-edges whose strongest non-excluded weight is largest, each with
that op. With caps, a capped op goes to its strongest instances in the cell and the
other edges fall back to their next best choice (which may be another op on the same
edge or another edge), as P-DARTS keeps its strongest skip connections.

Ties are broken deterministically, in this order: the earlier node, then the earlier
edge (the IR's order: inputs first, then earlier nodes), then the earlier op in the
space's op list. A node's terms are written strongest first (as the paper's code lists
them). Recurrent cells keep one input per node; their output lists every node.

Torch-free: it reads ``genolang.ir.alphas.CellAlphas`` tables and returns checked
genotypes (``genolang.spec.syntax.genotype_tree`` turns one into syntax for the printer)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from genolang.errors import GenolangError
from genolang.ir.alphas import CellAlphas
from genolang.ir.lower import lower_space_cell
from genolang.spec.checked import CellGenotype, CellShape, DeriveRule, GenotypeSpec, NodeSpec, SpaceSpec
from genolang.spec.validate import errors, genotype_problems

Terms = list[tuple[str, str]]  # (op, input) pairs of one node, strongest first


class DeriveError(GenolangError):
    """A derive rule that the alphas cannot satisfy (caps too tight for the cell)."""


def derive_cell(shape: CellShape, alphas: CellAlphas, rule: DeriveRule) -> list[tuple[str, Terms]]:
    """The chosen (op, input) terms of every intermediate node of one cell."""
    nodes = list(shape.node_names)
    node_index = {n: i for i, n in enumerate(nodes)}
    in_edges: dict[str, list[int]] = {n: [] for n in nodes}
    for row, (_, dst) in enumerate(alphas.edges):
        if dst not in in_edges:
            raise ValueError(f"cell {shape.name}: alpha row {row} names unknown node {dst!r}")
        in_edges[dst].append(row)
    want = {n: len(in_edges[n]) if shape.keep == 0 else shape.keep for n in nodes}

    choices = []  # (-weight, node index, slot, op index, node, src, op)
    for node, rows in in_edges.items():
        for slot, row in enumerate(rows):
            src = alphas.edges[row][0]
            allowed = shape.edge_ops(src, node, alphas.ops)  # never an op outside the edge's own set
            for k, op in enumerate(alphas.ops):
                if op in allowed and op not in rule.exclude:
                    choices.append((-alphas.weights[row][k], node_index[node], slot, k, node, src, op))
    choices.sort(key=lambda c: c[:4])

    picked: dict[str, Terms] = {n: [] for n in nodes}
    used = Counter[str]()
    for _, _, _, _, node, src, op in choices:
        terms = picked[node]
        if len(terms) >= want[node] or (op, src) in terms:
            continue
        if rule.distinct and any(s == src for _, s in terms):
            continue
        cap = rule.cap(op)
        if cap is not None and used[op] >= cap:
            continue
        terms.append((op, src))
        used[op] += 1

    short = [n for n in nodes if len(picked[n]) < want[n]]
    if short:
        caps = ", ".join(f"cap {op} = {n}" for op, n in rule.caps) or "none"
        raise DeriveError(f"cell '{shape.name}': node{'s' if len(short) > 1 else ''} {', '.join(short)} cannot get "
                          f"{shape.keep or 'all'} input(s) under the derive rule (exclude: "
                          f"{', '.join(rule.exclude) or 'nothing'}; caps: {caps}); raise the caps or exclude fewer ops")
    return [(n, picked[n]) for n in nodes]


def derive_genotype(space: SpaceSpec, alphas: Mapping[str, CellAlphas], name: str = "found",
                    path: str = "<derived>") -> GenotypeSpec:
    """The checked genotype of ``space`` that ``alphas`` (softmax tables by cell type)
    select. It is validated as a genotype read from a file would be; a problem means a
    bug in the derivation, never a user error."""
    cells = []
    for shape in space.cells:
        if shape.name not in alphas:
            raise ValueError(f"no alphas for cell {shape.name!r}")
        chosen = derive_cell(shape, alphas[shape.name], space.derive)
        nodes = tuple(NodeSpec(node, tuple(terms)) for node, terms in chosen)
        output = tuple(lower_space_cell(shape, space).output_nodes)
        cells.append(CellGenotype(shape, nodes, output))
    geno = GenotypeSpec(name, space, tuple(cells), path)
    problems = errors(genotype_problems(geno))
    if problems:
        raise AssertionError(f"derived genotype '{name}' is invalid: " + "; ".join(p.message for p in problems))
    return geno


def genotype_terms(geno: GenotypeSpec) -> dict[str, set[tuple[str, str, str]]]:
    """Per cell, the set of (node, op, input) terms."""
    return {c.name: {(n.name, op, src) for n in c.nodes for op, src in n.edges} for c in geno.cells}


def changed_edges(old: GenotypeSpec | None, new: GenotypeSpec) -> dict[str, int]:
    """Per cell, how many of ``new``'s (node, op, input) terms ``old`` lacks."""
    after = genotype_terms(new)
    if old is None:
        return dict.fromkeys(after, 0)
    before = genotype_terms(old)
    return {cell: len(terms - before.get(cell, set())) for cell, terms in after.items()}
