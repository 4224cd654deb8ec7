"""``recompute_convs``: each [ReLU,] depthwise, 1x1, BN block of a grouped conv
(``group_convs``) keeps only its BN's output for the backward, instead of the ReLU's,
the depthwise conv's and the 1x1's inputs and outputs: the BN's backward runs from its
output, the 1x1's input gradient needs only its weight, and only the weights'
gradients (the weight step's, not the architecture step's) compute the depthwise output
again. A memory pass: it changes no result."""

from __future__ import annotations

import networkx as nx

from genolang.ir.graph import CellIR
from genolang.passes.manager import register_pass

NAME = "recompute_convs"


@register_pass(NAME, "grouped convs keep only their BNs' outputs for the backward (less memory)")
def recompute_convs(ir: CellIR) -> nx.MultiDiGraph[str]:
    g = ir.graph.copy()
    for _, d in g.nodes(data=True):
        if d.get("role") == "apply" and not d.get("shared"):
            d["recompute"] = True
    return g
