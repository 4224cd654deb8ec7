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
from genolang.passes.roles import apply_once, mixed_out_edges, renumber

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
            apply_once(g, src, op, members, shared=False, origin=ir.origin(src))
    return renumber(g)
