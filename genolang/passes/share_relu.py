"""``share_relu``: the ops that start with a ReLU (sep, dil and plain convs, and the
factorized reduce of ``skip_connect`` at stride 2) and read the same node read one
``relu`` node instead, and skip their own ReLU. In the DARTS space that is one ReLU per
node instead of four per edge."""

from __future__ import annotations

import networkx as nx

from genolang.ir.graph import CellIR
from genolang.passes.manager import register_pass
from genolang.passes.roles import mixed_out_edges, place_after, renumber, states, take_op

NAME = "share_relu"


@register_pass(NAME, "one ReLU per node for the ops that start with one")
def share_relu(ir: CellIR) -> nx.MultiDiGraph[str]:
    g = ir.graph.copy()
    for src in states(ir):
        moves = []
        for edge in mixed_out_edges(g, src):
            d = edge[3]
            ops = tuple(op for op in d["candidates"] if ir.op(op).starts_with_relu(d["stride"]))
            if ops:
                moves.append((edge, ops))
        applies = [v for _, v, d in g.out_edges(src, data=True)
                   if d.get("role") == "feed" and g.nodes[v]["role"] == "apply"
                   and ir.op(g.nodes[v]["op"]).starts_with_relu(g.nodes[v]["stride"])]
        if sum(len(ops) for _, ops in moves) + len(applies) < 2:
            continue  # one op keeps its own ReLU: nothing to share
        relu = f"relu({src})"
        g.add_node(relu, role="relu", origin=src)
        place_after(g, relu, src)
        g.add_edge(src, relu, role="feed")
        for edge, ops in moves:
            _, v, _, d = edge
            scaled = tuple(op for op in d.get("scaled", ()) if op in ops)
            g.add_edge(relu, v, candidates=ops, stride=d["stride"], slot=d["slot"], row=d["row"],
                       **({"scaled": scaled} if scaled else {}))
            for op in ops:
                take_op(g, edge, op)
        for apply in applies:
            for k in list(g[src][apply]):
                g.remove_edge(src, apply, k)
            g.add_edge(relu, apply, role="feed")
            place_after(g, apply, relu)
    return renumber(g)
