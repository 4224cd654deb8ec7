"""``sum_by_source``: every node's terms from one source are summed once per source for
all the nodes that source feeds, instead of term by term in each node.

After the grouping passes, a source node s of a DARTS cell feeds each later node d
with a term per op: the grouped convs' parts (already alpha-weighted through their BN
scale), the shared pools (one result, weighted by each edge's alpha) and the identity
(``skip_connect`` at stride 1). This pass makes the identity a shared ``apply`` too
(its one result is s itself) and marks every term of the source's ``apply`` nodes
``summed``, for every source that feeds at least two nodes. The
supernet then computes, per source and for all its destinations at once, the weighted
sum of its shared results as one matrix product (the (destinations x results) alpha
weights times the stacked results) plus each grouped call's whole output, and each
node adds one slice per source: a handful of ops per source where there were two or
three per (edge, op) term, forward and backward.

The (row, op) terms are unchanged (``run_passes`` checks it); only the order of the
additions changes, so results agree to rounding."""

from __future__ import annotations

import networkx as nx

from genolang.ir.graph import CellIR
from genolang.passes.manager import register_pass
from genolang.passes.roles import apply_once, mixed_out_edges, renumber, states
from genolang.spec.ops import OpDef

NAME = "sum_by_source"


def is_identity(op: OpDef, stride: int) -> bool:
    """Whether ``op`` returns its input unchanged at ``stride`` in a supernet (``skip_connect``
    at stride 1): its one result can serve every edge, and is the input itself."""
    if op.is_plugin:
        return False
    facts = op.facts(stride)
    return bool(facts.layers) and all(p.layer.prim == "identity" for p in facts.layers)


MIN_NODES = 2  # a source feeding one node keeps its terms: one sum would cost more ops than it saves


def _applies(g: nx.MultiDiGraph[str], origin: str) -> list[str]:
    return [n for n, d in g.nodes(data=True) if d.get("role") == "apply" and d.get("origin") == origin]


@register_pass(NAME, "sum each source's terms once for all the nodes it feeds (identity ops shared)")
def sum_by_source(ir: CellIR) -> nx.MultiDiGraph[str]:
    g = ir.graph.copy()
    for src in states(ir):
        edges = mixed_out_edges(g, src)
        stride = ir.expected_stride(src)
        ops = [op for op in dict.fromkeys(op for e in edges for op in e[3]["candidates"])
               if is_identity(ir.op(op), stride)]
        fed = {v for a in _applies(g, src) for _, v in g.out_edges(a)}
        fed |= {e[1] for e in edges if any(op in e[3]["candidates"] for op in ops)}
        if len(fed) < MIN_NODES:
            continue
        for op in ops:  # the identity: one shared result, the source itself
            apply_once(g, src, op, [e for e in edges if op in e[3]["candidates"]], shared=True, origin=src)
        for a in _applies(g, src):
            for _, _, d in g.out_edges(a, data=True):
                d["summed"] = True
    return renumber(g)
