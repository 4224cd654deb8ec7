"""``share_param_free``: a parameter-free op (max and average pooling, followed in a
supernet by a BN without parameters) that reads the same node at the same stride on
several edges is computed once: an ``apply`` node with ``shared``, whose one result
every edge weights with its own alpha. In training mode the BN's output depends only on
its input, so it is the same for every edge; each edge's running statistics are still
updated (and used in eval mode) as before. A pool on a single edge becomes such a node
too: its implementation keeps less for the backward than the plain modules."""

from __future__ import annotations

import networkx as nx

from genolang.ir.graph import CellIR
from genolang.passes.manager import register_pass
from genolang.passes.roles import apply_once, mixed_out_edges, renumber, states

NAME = "share_param_free"


@register_pass(NAME, "compute parameter-free ops (pool + BN) once per (node, op, stride)")
def share_param_free(ir: CellIR) -> nx.MultiDiGraph[str]:
    g = ir.graph.copy()
    for src in states(ir):
        edges = mixed_out_edges(g, src)
        ops = [op for op in dict.fromkeys(op for e in edges for op in e[3]["candidates"])
               if ir.op(op).facts(ir.expected_stride(src)).shareable]
        for op in ops:
            members = [e for e in edges if op in e[3]["candidates"]]
            apply_once(g, src, op, members, shared=True, origin=src)
    return renumber(g)
