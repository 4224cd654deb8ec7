"""Lowering checked specs to the cell IR: a genotype cell becomes a fixed DAG, a space
cell becomes the complete DAG of a supernet (every node reads every earlier node
through a mixed edge over the ops that edge chooses from)."""

from __future__ import annotations

import networkx as nx

from genolang.ir.graph import CellIR
from genolang.spec.checked import CellGenotype, CellShape, GenotypeSpec, Kind, SpaceSpec
from genolang.spec.ops import OpDef


def _skeleton(shape: CellShape, node_names: tuple[str, ...]) -> nx.MultiDiGraph[str]:
    g: nx.MultiDiGraph[str] = nx.MultiDiGraph()
    for i, name in enumerate(shape.input_names):
        g.add_node(name, role="input", order=i)
    for i, name in enumerate(node_names):
        g.add_node(name, role="node", order=shape.inputs + i)
    g.add_node("out", role="output", order=shape.inputs + len(node_names))
    return g


def _stride(shape: CellShape, src: str) -> int:
    return shape.stride if src in shape.input_names else 1


def lower_genotype_cell(cell: CellGenotype, kind: Kind, op_defs: tuple[OpDef, ...]) -> CellIR:
    """A fixed cell: one edge per chosen (op, input), in the genotype's order."""
    shape = cell.shape
    g = _skeleton(shape, cell.node_names)
    for node in cell.nodes:
        for slot, (op, src) in enumerate(node.edges):
            g.add_edge(src, node.name, op=op, stride=_stride(shape, src), slot=slot)
    for slot, name in enumerate(cell.output):
        g.add_edge(name, "out", role="output", slot=slot)
    return CellIR(shape.name, kind, shape.reducer, shape.stride, g, op_defs=op_defs).lint()


def lower_space_cell(shape: CellShape, space: SpaceSpec) -> CellIR:
    """A supernet cell: node j reads every earlier node through one mixed edge whose
    candidates are the ops that edge chooses from (``CellShape.edge_ops``: its own set,
    or all the space's ops); the edges, node by node and source by source, are the rows
    of the cell's alpha (each edge's ``row``), whose columns stay the space's ops. The
    output reduces every node, or only the last one for ``output = last``."""
    names = shape.node_names
    g = _skeleton(shape, names)
    earlier = list(shape.input_names)
    row = 0
    for name in names:
        for slot, src in enumerate(earlier):
            g.add_edge(src, name, candidates=shape.edge_ops(src, name, space.ops), stride=_stride(shape, src),
                       slot=slot, row=row)
            row += 1
        earlier.append(name)
    # ``last`` (NAS-Bench-201): the cell's output is its last node; otherwise all nodes.
    for slot, name in enumerate(names[-1:] if shape.reducer == "last" else names):
        g.add_edge(name, "out", role="output", slot=slot)
    return CellIR(shape.name, space.kind, shape.reducer, shape.stride, g, mixed=True, ops=space.ops,
                  op_defs=space.op_defs).lint()


def lower_genotype(geno: GenotypeSpec) -> dict[str, CellIR]:
    """Every cell of a genotype, by cell name."""
    return {cell.name: lower_genotype_cell(cell, geno.kind, geno.space.op_defs) for cell in geno.cells}


def lower_space(space: SpaceSpec) -> dict[str, CellIR]:
    """Every cell of a space as a supernet cell, by cell name."""
    return {shape.name: lower_space_cell(shape, space) for shape in space.cells}
