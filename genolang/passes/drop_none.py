"""``drop_none``: ``none`` leaves the computation. It adds a zero, so the sum does not
change; its alpha column stays in the table and in the softmax, so the other ops'
weights do not change either. An edge whose only candidate is ``none`` keeps it."""

from __future__ import annotations

import networkx as nx

from genolang.ir.graph import CellIR
from genolang.passes.manager import register_pass

NAME = "drop_none"


@register_pass(NAME, "compute no 'none' (its alpha still takes its share of the softmax)")
def drop_none(ir: CellIR) -> nx.MultiDiGraph[str]:
    g = ir.graph.copy()
    for _, _, d in g.edges(data=True):
        cands = d.get("candidates")
        if cands is None:
            continue
        kept = tuple(op for op in cands if not ir.op(op).is_zero)
        if kept:
            d["candidates"] = kept
    return g
