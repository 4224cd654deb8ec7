"""``scale_bn``: an op that ends with a batch norm gets its alpha weight as that BN's
scale (``BN(x; weight=w)``) instead of a multiply of its output: one pass over the data
less, and the product is no longer a tensor autograd keeps for the backward. Applies to
the candidates of mixed edges and to the terms of grouped (not shared) ops."""

from __future__ import annotations

import networkx as nx

from genolang.ir.graph import CellIR
from genolang.passes.manager import register_pass

NAME = "scale_bn"


@register_pass(NAME, "an op's alpha weight scales its final BN instead of multiplying its output")
def scale_bn(ir: CellIR) -> nx.MultiDiGraph[str]:
    g = ir.graph.copy()
    for u, _v, d in g.edges(data=True):
        if d.get("candidates") is not None:
            scaled = tuple(op for op in d["candidates"] if ir.op(op).ends_with_bn(d["stride"]))
            if scaled:
                d["scaled"] = scaled
        elif d.get("role") == "term" and not g.nodes[u].get("shared") and ir.op(d["op"]).ends_with_bn(d["stride"]):
            d["scaled"] = (d["op"],)
    return g
