"""``merge_kernels``: the grouped calls (``group_convs``) of one feed whose ops differ
only in their depthwise kernel sizes (``OpFacts.kernel_free``: ``sep_conv_3x3`` and
``sep_conv_5x5``; ``dil_conv_3x3`` and ``dil_conv_5x5``) become one grouped call: the
smaller kernels zero-padded to the largest (a 3x3 kernel inside a 5x5 one of zeros, the
padding of the input grown to match, computes the same), one depthwise conv, one 1x1
and one BN per block for all of them. For a DARTS cell: 3 grouped calls per source
instead of 6, about half the ops of the grouped convs. The merged ``apply`` node lists
its ``ops``, smallest kernels first; its parts are the first op's edges, then the next
op's, and so on, each term naming its own op.

The zeros cost multiplies: a 3x3 depthwise conv padded to 5x5 does 25/9 of its work.
That is cheap where launches, not arithmetic, bound the time (a GPU at DARTS's sizes);
kernels more than ``MAX_GROWTH`` times apart are not merged. Results agree to rounding."""

from __future__ import annotations

import networkx as nx

from genolang.ir.graph import CellIR, applied_ops
from genolang.passes.manager import register_pass
from genolang.passes.roles import place_after, renumber

NAME = "merge_kernels"
# the most a merged call pads a kernel's side: 3x3 and 5x5 (or 7x7) merge, 1x1 and 5x5 do
# not (a padded kernel does (K/k)^2 times its multiplies)
MAX_GROWTH = 3


def merged_name(ops: tuple[str, ...], feed: str) -> str:
    return f"{'+'.join(ops)}({feed})"


@register_pass(NAME, "grouped calls of one feed whose ops differ only in depthwise kernel sizes run as one")
def merge_kernels(ir: CellIR) -> nx.MultiDiGraph[str]:
    g = ir.graph.copy()
    for feed in [n for n in ir.order() if ir.role(n) in ("input", "node", "relu")]:
        groups: dict[tuple[object, ...], list[str]] = {}
        for a in sorted((v for _, v in g.out_edges(feed)), key=lambda n: (g.nodes[n]["order"], n)):
            d = g.nodes[a]
            if d.get("role") != "apply" or d.get("shared"):
                continue
            key = ir.op(d["op"]).facts(d["stride"]).kernel_free
            scaled = {bool(t.get("scaled")) for _, _, t in g.out_edges(a, data=True)}
            if key is not None:
                groups.setdefault((key, d["stride"], bool(d.get("recompute")), tuple(scaled)), []).append(a)
        for applies in groups.values():
            # smallest kernels first (stable): one padded run per kernel size; a kernel
            # more than MAX_GROWTH times the smallest one's side starts a new call
            sizes = {a: _kernel(ir, g.nodes[a]["op"], g.nodes[a]["stride"]) for a in applies}
            calls: list[list[str]] = []
            for a in sorted(applies, key=sizes.__getitem__):
                if calls and sizes[a] <= MAX_GROWTH * sizes[calls[-1][0]]:
                    calls[-1].append(a)
                else:
                    calls.append([a])
            for call in calls:
                if len(call) > 1:
                    _merge(g, feed, call)
    return renumber(g)


def _kernel(ir: CellIR, op: str, stride: int) -> int:
    """The depthwise kernel size of ``op`` (its first block's; ``kernel_free`` ops have one)."""
    return next(p.layer.kernel[0] for p in ir.op(op).facts(stride).layers if p.layer.prim == "dwconv")


def _merge(g: nx.MultiDiGraph[str], feed: str, applies: list[str]) -> None:
    """One apply node for the apply nodes ``applies`` (of one feed): their terms as its
    parts, apply by apply."""
    first = g.nodes[applies[0]]
    ops = tuple(op for a in applies for op in applied_ops(g.nodes[a]))
    node = merged_name(ops, feed)
    g.add_node(node, role="apply", op=ops[0], ops=ops, stride=first["stride"], shared=False,
               origin=first["origin"], **({"recompute": True} if first.get("recompute") else {}))
    place_after(g, node, feed)
    g.add_edge(feed, node, role="feed")
    part = 0
    for a in applies:
        for _, v, d in sorted(g.out_edges(a, data=True), key=lambda t: t[2]["part"]):
            g.add_edge(node, v, **{**d, "part": part})
            part += 1
        g.remove_node(a)
