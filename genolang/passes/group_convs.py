"""``group_convs``: the same conv op on the edges that read the same node (or that
node's shared ReLU) runs as one grouped call: an ``apply`` node whose part k is edge k's
result, computed with edge k's own parameters (for the 4 ``sep_conv_3x3`` reading c0 in
a DARTS normal cell: one depthwise conv producing 4C channels, one block-diagonal 1x1,
one BN over 4C channels, and so on). An op on a single edge becomes a group of one: the
grouped implementation's kernels (1x1 convs as matrix products, strided dilated convs
on the subsampled input) beat the plain modules' on the CPU. Which ops can be grouped is
read off their structure (``OpFacts.groupable``: a stack of convs, only activations
before the first); ``genolang.ops.grouped`` has an executor for every such structure."""

from __future__ import annotations

import networkx as nx

from genolang.ir.graph import CellIR
from genolang.passes.manager import register_pass
from genolang.passes.roles import mixed_out_edges, place_after, renumber, take_op

NAME = "group_convs"


@register_pass(NAME, "one grouped call per (node, conv op, stride) over the edges reading the node")
def group_convs(ir: CellIR) -> nx.MultiDiGraph[str]:
    g = ir.graph.copy()
    feeds = [n for n in ir.order() if ir.role(n) in ("input", "node", "relu")]
    for src in feeds:
        edges = mixed_out_edges(g, src)
        ops = [op for op in dict.fromkeys(op for e in edges for op in e[3]["candidates"])
               if ir.op(op).facts(ir.expected_stride(src)).groupable]
        for op in ops:
            members = [e for e in edges if op in e[3]["candidates"]]
            stride = members[0][3]["stride"]
            node = f"{op}({src})"
            g.add_node(node, role="apply", op=op, stride=stride, shared=False, origin=ir.origin(src))
            place_after(g, node, src)
            g.add_edge(src, node, role="feed")
            for part, edge in enumerate(members):
                scaled = {"scaled": (op,)} if op in edge[3].get("scaled", ()) else {}
                g.add_edge(node, edge[1], role="term", op=op, stride=stride, row=edge[3]["row"], part=part, **scaled)
                take_op(g, edge, op)
    return renumber(g)
