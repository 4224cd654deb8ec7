"""The node roles the passes add to a cell IR, their lint checks, and small helpers.

* ``relu``: ``relu(origin)``; one ``feed`` edge from its origin (an input or node); its
  out-edges are mixed edges whose every candidate starts with a ReLU, or feeds of
  ``apply`` nodes whose op does.
* ``apply``: op ``op`` at ``stride`` applied once to its one ``feed`` (a node or its
  ``relu``) for several edges; each out-edge is a ``term`` (``part`` k of the result)
  into the node the edge ends at, with the edge's alpha ``row``. With ``shared`` the op
  has no parameters and every part is the same value; otherwise each part is computed
  with the parameters of its own edge (a grouped call); with ``recompute`` the grouped
  call recomputes its convs in the backward instead of storing their outputs; with
  ``ops`` (``merge_kernels``) several ops that differ only in their depthwise kernel
  sizes run as one grouped call, their parts op by op, each term naming its op."""

from __future__ import annotations

from typing import Any, TypeAlias

import networkx as nx

from genolang.ir.graph import CellIR, IRError, register_role


def _one_feed(ir: CellIR, n: str) -> str:
    preds = list(ir.graph.in_edges(n, data=True))
    if len(preds) != 1 or preds[0][2].get("role") != "feed":
        raise IRError(f"cell {ir.name}: {ir.role(n)} node {n} needs exactly one feed edge, has "
                      f"{len(preds)} in-edge{'s' if len(preds) != 1 else ''}")
    return str(preds[0][0])


def check_relu(ir: CellIR, n: str) -> None:
    g = ir.graph
    src = _one_feed(ir, n)
    if ir.role(src) not in ("input", "node"):
        raise IRError(f"cell {ir.name}: relu node {n} reads {src}, which is not an input or intermediate node")
    if g.nodes[n].get("origin") != src:
        raise IRError(f"cell {ir.name}: relu node {n} has origin {g.nodes[n].get('origin')!r} but reads {src}")
    if g.out_degree(n) == 0:
        raise IRError(f"cell {ir.name}: relu node {n} feeds nothing")
    for _, v, d in g.out_edges(n, data=True):
        if d.get("role") == "feed":
            if ir.role(v) != "apply":
                raise IRError(f"cell {ir.name}: relu node {n} feeds {v}, a node of role {ir.role(v)!r}")
            continue
        for op in (d["op"],) if d.get("op") is not None else d.get("candidates") or ():
            if not ir.op(op).starts_with_relu(d.get("stride", 1)):
                raise IRError(f"cell {ir.name}: edge {v}<-{n} feeds {op}, which does not start with a ReLU, "
                              f"from {n}")


def check_apply(ir: CellIR, n: str) -> None:
    g = ir.graph
    d = g.nodes[n]
    op = d.get("op")
    if not isinstance(op, str):
        raise IRError(f"cell {ir.name}: apply node {n} has no op")
    ir.op(op)  # known
    feed = _one_feed(ir, n)
    if ir.role(feed) not in ("input", "node", "relu"):
        raise IRError(f"cell {ir.name}: apply node {n} reads {feed}, a node of role {ir.role(feed)!r}")
    if ir.origin(feed) != d.get("origin"):
        raise IRError(f"cell {ir.name}: apply node {n} has origin {d.get('origin')!r} but reads {feed}")
    expected = ir.expected_stride(feed)
    if d.get("stride") != expected:
        raise IRError(f"cell {ir.name}: apply node {n} has stride {d.get('stride')}, expected {expected}")
    if ir.role(feed) == "relu" and not ir.op(op).starts_with_relu(expected):
        raise IRError(f"cell {ir.name}: apply node {n} applies {op}, which does not start with a ReLU, to {feed}")
    if d.get("shared"):
        facts = ir.op(op).facts(d.get("stride", 1))
        if facts.has_weights:
            raise IRError(f"cell {ir.name}: apply node {n} shares one result of {op}, which has parameters")
        if facts.random:
            raise IRError(f"cell {ir.name}: apply node {n} shares one result of {op}, which draws random numbers "
                          "(each edge needs its own draw)")
    if d.get("shared") and d.get("recompute"):
        raise IRError(f"cell {ir.name}: apply node {n} recomputes a shared op")
    outs = list(g.out_edges(n, data=True))
    if not outs:
        raise IRError(f"cell {ir.name}: apply node {n} feeds nothing")
    for _, v, e in outs:
        if e.get("role") != "term" or ir.role(v) != "node":
            raise IRError(f"cell {ir.name}: apply node {n} has an out-edge to {v} that is not a term of a node")
    parts = sorted(e.get("part", -1) for _, _, e in outs)
    if parts != list(range(len(outs))):
        raise IRError(f"cell {ir.name}: apply node {n} has parts {parts}, expected 0..{len(outs) - 1}")
    _check_merged(ir, n, op, expected)


def _check_merged(ir: CellIR, n: str, op: str, stride: int) -> None:
    """``ops`` (``merge_kernels``): ops that differ only in their depthwise kernel sizes
    (so with weights: never shared), the first the node's ``op``, each once, its parts
    op by op."""
    d = ir.graph.nodes[n]
    ops = d.get("ops")
    if ops is None:
        return
    if not isinstance(ops, tuple) or not ops or ops[0] != op or len(set(ops)) != len(ops):
        raise IRError(f"cell {ir.name}: apply node {n} has ops {ops!r}; expected distinct ops, the first {op!r}")
    key = ir.op(op).facts(stride).kernel_free
    for other in ops:
        ir.op(other)  # known
        if key is None or ir.op(other).facts(stride).kernel_free != key:
            raise IRError(f"cell {ir.name}: apply node {n} merges {op} and {other}, which differ in more than "
                          "their depthwise kernel sizes")
    parts = [e.get("op") for _, _, e in sorted(ir.graph.out_edges(n, data=True), key=lambda t: t[2]["part"])]
    stray = [p for p in parts if p not in ops]
    if stray:
        raise IRError(f"cell {ir.name}: apply node {n} has a term of {stray[0]!r}, which it does not apply")
    if parts != sorted(parts, key=ops.index) or set(parts) != set(ops):
        raise IRError(f"cell {ir.name}: apply node {n} has its parts out of op order: the parts of {ops[0]} first, "
                      "then the next op's, every op with a part")


register_role("relu", check_relu, feeds_ops=True)
register_role("apply", check_apply)


def states(ir: CellIR) -> list[str]:
    """The inputs and intermediate nodes, in evaluation order."""
    return [n for n in ir.order() if ir.role(n) in ("input", "node")]


def place_after(g: nx.MultiDiGraph[str], node: str, after: str) -> None:
    """Give ``node`` an order just after ``after`` (``renumber`` makes it an integer)."""
    g.nodes[node]["order"] = g.nodes[after]["order"] + 0.5


def renumber(g: nx.MultiDiGraph[str]) -> nx.MultiDiGraph[str]:
    """Orders 0, 1, 2, ... following the current (possibly fractional) orders; ties
    broken by name so the result is deterministic."""
    for i, n in enumerate(sorted(g.nodes, key=lambda n: (g.nodes[n]["order"], n))):
        g.nodes[n]["order"] = i
    return g


EdgeData: TypeAlias = "tuple[str, str, int, dict[str, Any]]"  # (src, dst, key, attributes) of a graph edge


def mixed_out_edges(g: nx.MultiDiGraph[str], src: str) -> list[EdgeData]:
    """The mixed edges leaving ``src``, by (destination order, row)."""
    edges = [(u, v, k, d) for u, v, k, d in g.out_edges(src, keys=True, data=True) if d.get("candidates") is not None]
    return sorted(edges, key=lambda e: (g.nodes[e[1]]["order"], e[3].get("row", 0)))


def take_op(g: nx.MultiDiGraph[str], edge: EdgeData, op: str) -> None:
    """Remove ``op`` from a mixed edge's candidates (and the edge when none is left)."""
    u, v, k, d = edge
    rest = tuple(c for c in d["candidates"] if c != op)
    if rest:
        d["candidates"] = rest
        if op in d.get("scaled", ()):
            d["scaled"] = tuple(c for c in d["scaled"] if c != op)
    else:
        g.remove_edge(u, v, k)


def apply_once(g: nx.MultiDiGraph[str], feed: str, op: str, members: list[EdgeData], *, shared: bool,
               origin: str) -> None:
    """Add the ``apply`` node ``op(feed)`` computing ``op`` once for the mixed edges
    ``members`` (all reading ``feed``): part k is a term into member k's node, with its
    alpha row (and its BN scale, for a grouped op whose edge had one); ``op`` leaves each
    member's candidates."""
    stride = members[0][3]["stride"]
    node = f"{op}({feed})"
    g.add_node(node, role="apply", op=op, stride=stride, shared=shared, origin=origin)
    place_after(g, node, feed)
    g.add_edge(feed, node, role="feed")
    for part, edge in enumerate(members):
        scaled = {"scaled": (op,)} if not shared and op in edge[3].get("scaled", ()) else {}
        g.add_edge(node, edge[1], role="term", op=op, stride=stride, row=edge[3]["row"], part=part, **scaled)
        take_op(g, edge, op)
