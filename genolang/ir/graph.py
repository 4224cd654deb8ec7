"""The cell IR: a networkx multigraph of one cell, printable and lintable.

Nodes have a ``role``: ``input`` (c0, c1 or s0), ``node`` (an intermediate node, the sum
of its incoming edges) or ``output`` (``out``, which reduces the listed nodes). Every
non-output edge carries either one ``op`` (a fixed cell) or a tuple of ``candidates``
(a supernet's mixed edge), its ``stride`` and its ``slot`` (its position among the
node's inputs); a mixed edge also carries its ``row`` in the cell's alpha table.

Passes (``genolang.passes``) may add roles of their own with ``register_role`` (a
ReLU computed once per node, an op applied once for several edges) and return a new
``CellIR``; ``lint`` checks the invariants every stage relies on, including those of
the registered roles."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx

from genolang.spec.ops import OpDef

ROLES = {"input", "node", "output"}
# role -> the lint check of a node with that role (roles added by passes)
ROLE_CHECKS: dict[str, Callable[[CellIR, str], None]] = {}
FEEDING_ROLES = {"input", "node"}  # roles whose nodes op and mixed edges may read


def register_role(role: str, check: Callable[[CellIR, str], None], feeds_ops: bool = False) -> None:
    """Make ``role`` a known node role; ``check(ir, node)`` raises ``IRError`` when a
    node of that role breaks its invariants (called by ``CellIR.lint``). With
    ``feeds_ops`` op and mixed edges may read such nodes (the check vouches for them)."""
    ROLES.add(role)
    ROLE_CHECKS[role] = check
    if feeds_ops:
        FEEDING_ROLES.add(role)


class IRError(Exception):
    """A broken IR invariant: a bug in a lowering or a pass, never a user error."""


def applied_ops(node: Mapping[str, Any]) -> tuple[str, ...]:
    """The ops an ``apply`` node's attributes say it computes: its ``ops`` (merged
    kernels) or its one ``op``."""
    return tuple(node.get("ops") or (node.get("op"),))


@dataclass(frozen=True)
class Edge:
    """A read-only view of one IR edge. ``kind`` is ``op`` for an op or mixed edge and
    ``term`` for one output ``part`` of a node that applies an op for several edges."""

    src: str
    dst: str
    key: int
    op: str | None
    candidates: tuple[str, ...] | None
    stride: int
    slot: int
    row: int | None = None
    part: int | None = None
    kind: str = "op"
    scaled: tuple[str, ...] = ()  # ops whose alpha weight scales their final BN (genolang.passes)
    summed: bool = False  # a term summed with its source's other terms for every node it feeds (sum_by_source)

    @property
    def name(self) -> str:
        """``n3<-c1:sep_conv_3x3`` for a fixed edge, ``n3<-c1`` for a mixed one,
        ``n3<-sep_conv_3x3(c1)[1]`` for a term."""
        if self.kind == "term":
            return f"{self.dst}<-{self.src}[{self.part}]"
        if self.op is None:
            return f"{self.dst}<-{self.src}"
        return f"{self.dst}<-{self.src}:{self.op}"

    @property
    def mixed(self) -> bool:
        return self.candidates is not None


@dataclass(frozen=True)
class CellIR:
    """One cell type as a DAG. ``mixed`` cells come from spaces (supernets), the others
    from genotypes (fixed networks)."""

    name: str
    kind: str
    reducer: str
    stride: int
    graph: nx.MultiDiGraph[str] = field(compare=False, repr=False)
    mixed: bool = False
    ops: tuple[str, ...] = ()
    passes: tuple[str, ...] = ()
    op_defs: tuple[OpDef, ...] = field(default=(), compare=False, repr=False)

    def op(self, name: str) -> OpDef:
        """The checked declaration of an op the cell uses (its facts drive the passes)."""
        for op in self.op_defs:
            if op.name == name:
                return op
        raise IRError(f"cell {self.name}: unknown op {name!r}")

    # -- structure ---------------------------------------------------------------
    def _ordered(self, role: str) -> list[str]:
        nodes = [n for n, d in self.graph.nodes(data=True) if d.get("role") == role]
        return sorted(nodes, key=lambda n: self.graph.nodes[n]["order"])

    @property
    def inputs(self) -> list[str]:
        return self._ordered("input")

    @property
    def nodes(self) -> list[str]:
        """Intermediate nodes in evaluation order."""
        return self._ordered("node")

    @property
    def output_nodes(self) -> list[str]:
        """The nodes the output reduces, in output order."""
        return [e[0] for e in sorted(self.graph.in_edges("out", data=True), key=lambda e: e[2]["slot"])]

    def order(self) -> list[str]:
        """Every node in a deterministic topological order (inputs, nodes, out)."""
        return sorted(self.graph.nodes, key=lambda n: self.graph.nodes[n]["order"])

    def role(self, node: str) -> str:
        return str(self.graph.nodes[node].get("role"))

    def origin(self, node: str) -> str:
        """The input or intermediate node a derived node (a pass's) computes from;
        a node's own name otherwise."""
        return str(self.graph.nodes[node].get("origin", node))

    def expected_stride(self, node: str) -> int:
        """The stride of ops reading ``node``: the cell's for its inputs, 1 otherwise."""
        return self.stride if self.role(self.origin(node)) == "input" else 1

    def in_edges(self, node: str) -> list[Edge]:
        """The op edges into ``node``, by slot."""
        edges = [
            self._edge(u, v, k, d)
            for u, v, k, d in self.graph.in_edges(node, keys=True, data=True)
            if d.get("role") != "output"
        ]
        return sorted(edges, key=lambda e: e.slot)

    def edges(self) -> list[Edge]:
        """Every op edge, node by node in evaluation order, slot by slot."""
        return [e for n in self.nodes for e in self.in_edges(n)]

    @staticmethod
    def _edge(u: str, v: str, k: int, d: dict[str, Any]) -> Edge:
        cands = d.get("candidates")
        return Edge(u, v, k, d.get("op"), tuple(cands) if cands is not None else None, d.get("stride", 1),
                    d.get("slot", -1), d.get("row"), d.get("part"), d.get("role", "op"), tuple(d.get("scaled", ())),
                    bool(d.get("summed", False)))

    def with_graph(self, graph: nx.MultiDiGraph[str], pass_name: str) -> CellIR:
        """A new IR with ``graph``, recording the pass that produced it."""
        return replace(self, graph=graph, passes=(*self.passes, pass_name))

    # -- invariants --------------------------------------------------------------
    def lint(self) -> CellIR:
        """Raise ``IRError`` on the first broken invariant; return self when sound."""
        g = self.graph
        if not nx.is_directed_acyclic_graph(g):
            raise IRError(f"cell {self.name}: graph has a cycle")
        for n, d in g.nodes(data=True):
            role = d.get("role")
            if role not in ROLES:
                raise IRError(f"cell {self.name}: node {n} has unknown role {role!r}")
            if "order" not in d:
                raise IRError(f"cell {self.name}: node {n} has no order")
        outs = self._ordered("output")
        if outs != ["out"]:
            raise IRError(f"cell {self.name}: expected one output node 'out', found {outs}")
        if g.out_degree("out") != 0:
            raise IRError(f"cell {self.name}: 'out' has outgoing edges")
        if not self.inputs:
            raise IRError(f"cell {self.name}: no input node")
        for n in self.inputs:
            if g.in_degree(n) != 0:
                raise IRError(f"cell {self.name}: input {n} has incoming edges")
        for u, v in g.edges():
            if g.nodes[u]["order"] >= g.nodes[v]["order"]:
                raise IRError(f"cell {self.name}: edge {u}->{v} goes against the node order")
        for n, d in g.nodes(data=True):
            if d["role"] in ROLE_CHECKS:
                ROLE_CHECKS[d["role"]](self, n)
        for n in self.nodes:
            edges = self.in_edges(n)
            if not edges:
                raise IRError(f"cell {self.name}: node {n} has no input")
            if not self.mixed:
                slots = [e.slot for e in edges]
                if slots != list(range(len(slots))):
                    raise IRError(f"cell {self.name}: node {n} has slots {slots}, expected 0..{len(slots) - 1}")
            if self.kind == "rnn" and not self.mixed and len(edges) != 1:
                raise IRError(f"cell {self.name}: recurrent node {n} has {len(edges)} inputs")
            for e in edges:
                self._lint_edge(e)
        if self.mixed:
            self._lint_rows()
        if not self.output_nodes:
            raise IRError(f"cell {self.name}: the output reduces no node")
        for n in self.output_nodes:
            if g.nodes[n]["role"] != "node":
                raise IRError(f"cell {self.name}: the output reads {n}, which is not an intermediate node")
        return self

    def _lint_edge(self, e: Edge) -> None:
        if e.kind == "term":
            self._lint_term(e)
            return
        if e.kind != "op":
            raise IRError(f"cell {self.name}: edge {e.name} is a {e.kind} edge into an intermediate node")
        src_role = self.role(e.src)
        if src_role not in FEEDING_ROLES:
            raise IRError(f"cell {self.name}: edge {e.name} reads {e.src}, a node of role {src_role!r}")
        if (e.op is None) == (e.candidates is None):
            raise IRError(f"cell {self.name}: edge {e.name} needs exactly one of op / candidates")
        known = {d.name for d in self.op_defs}
        for op in (e.op,) if e.op is not None else e.candidates or ():
            if op not in known:
                raise IRError(f"cell {self.name}: edge {e.name} has unknown op {op!r}")
        if e.mixed != self.mixed:
            raise IRError(f"cell {self.name}: edge {e.name} is {'mixed' if e.mixed else 'fixed'} in a "
                          f"{'mixed' if self.mixed else 'fixed'} cell")
        if e.mixed and not e.candidates:
            raise IRError(f"cell {self.name}: edge {e.name} has no candidate op")
        expected = self.expected_stride(e.src)
        if e.stride != expected:
            raise IRError(f"cell {self.name}: edge {e.name} has stride {e.stride}, expected {expected}")
        self._lint_scaled(e, (e.op,) if e.op is not None else e.candidates or ())

    def _lint_scaled(self, e: Edge, ops: tuple[str, ...]) -> None:
        for op in e.scaled:
            if op not in ops:
                raise IRError(f"cell {self.name}: edge {e.name} scales the BN of {op}, which it does not compute")
            if not self.op(op).ends_with_bn(e.stride):
                raise IRError(f"cell {self.name}: edge {e.name} scales the BN of {op}, which ends with no BN")

    def _lint_term(self, e: Edge) -> None:
        if not self.mixed:
            raise IRError(f"cell {self.name}: term edge {e.name} in a fixed cell")
        if self.role(e.src) != "apply":
            raise IRError(f"cell {self.name}: term edge {e.name} comes from {e.src}, which applies no op")
        d = self.graph.nodes[e.src]
        applied: tuple[object, ...] = applied_ops(d)  # a malformed node may name none
        if e.op not in applied:
            raise IRError(f"cell {self.name}: term edge {e.name} names op {e.op!r}, "
                          f"but {e.src} applies {' + '.join(map(repr, applied))}")
        if e.stride != d.get("stride"):
            raise IRError(f"cell {self.name}: term edge {e.name} has stride {e.stride}, but {e.src} has "
                          f"{d.get('stride')}")
        if e.scaled and d.get("shared"):
            raise IRError(f"cell {self.name}: term edge {e.name} scales a BN that {e.src} computes once for all "
                          "its terms")
        self._lint_scaled(e, (e.op,) if e.op is not None else ())

    def _lint_rows(self) -> None:
        """Every term of a mixed cell names its alpha row; a row reads one input from one
        node (through derived nodes or not), and computes each of its ops at most once."""
        rows: dict[int, tuple[str, str]] = {}
        computed: set[tuple[int, str]] = set()
        for n in self.nodes:
            for e in self.in_edges(n):
                if not isinstance(e.row, int):
                    raise IRError(f"cell {self.name}: edge {e.name} has no alpha row")
                key = (self.origin(e.src), n)
                seen = rows.setdefault(e.row, key)
                if seen != key:
                    raise IRError(f"cell {self.name}: alpha row {e.row} is the edge {seen[1]}<-{seen[0]} and also "
                                  f"{key[1]}<-{key[0]}")
                for op in (e.op,) if e.op is not None else e.candidates or ():
                    if (e.row, op) in computed:
                        raise IRError(f"cell {self.name}: {op} of edge {n}<-{key[0]} (row {e.row}) is computed twice")
                    computed.add((e.row, op))

    def terms(self) -> set[tuple[int, str]]:
        """The (alpha row, op) pairs a mixed cell computes."""
        out = set()
        for e in self.edges():
            for op in (e.op,) if e.op is not None else e.candidates or ():
                if e.row is not None:
                    out.add((e.row, op))
        return out

    # -- text and pictures -------------------------------------------------------
    def header(self) -> str:
        parts = [self.kind, f"stride {self.stride}", self.reducer]
        if self.mixed:
            parts.append(f"mixed over {len(self.ops)} ops: {', '.join(self.ops)}")
        if self.passes:
            parts.append("passes: " + ", ".join(self.passes))
        return f"cell {self.name} ({'; '.join(parts)})"

    def summed_sources(self) -> dict[str, tuple[list[str], list[str]]]:
        """Per source (an input or node, ``origin``) whose terms are summed once for all
        the nodes it feeds (``Edge.summed``): the apply nodes summed and those nodes, in
        evaluation order."""
        out: dict[str, tuple[list[str], list[str]]] = {}
        for n in self.nodes:
            for e in self.in_edges(n):
                if e.summed:
                    applies, dsts = out.setdefault(self.origin(e.src), ([], []))
                    if e.src not in applies:
                        applies.append(e.src)
                    if n not in dsts:
                        dsts.append(n)
        order = {n: i for i, n in enumerate(self.order())}
        for applies, _ in out.values():
            applies.sort(key=order.__getitem__)
        return out

    def dump(self) -> str:
        """A readable listing: one line per node, edges with their op and stride; a
        source whose terms are summed once (``sum(c0)``) gets a line before the first node
        that reads the sum."""
        lines = [self.header()]
        for n in self.inputs:
            lines.append(f"  {n} = input")
        sums = self.summed_sources()
        printed: set[str] = set()
        for n in self.order():
            role = self.role(n)
            if role in ("input", "output"):
                continue
            if role != "node":
                lines.append(f"  {n} = {self._describe(n)}")
                continue
            terms = []
            for e in self.in_edges(n):
                if e.summed:
                    origin = self.origin(e.src)
                    applies, dsts = sums[origin]
                    if origin not in printed:
                        printed.add(origin)
                        lines.append(f"  sum({origin}) = {' + '.join(applies)} into {', '.join(dsts)}")
                    entry = f"sum({origin})[{dsts.index(n)}]"
                    if entry not in terms:
                        terms.append(entry)
                    continue
                if e.kind == "term":
                    terms.append(f"{e.src}[{e.part}]")
                    continue
                op = e.op if e.op is not None else f"mixed[{len(e.candidates or ())}]"
                stride = f", stride={e.stride}" if e.stride != 1 else ""
                terms.append(f"{op}({e.src}{stride})")
            lines.append(f"  {n} = " + " + ".join(terms))
        lines.append(f"  out = {self.reducer}({', '.join(self.output_nodes)})")
        return "\n".join(lines)

    def _describe(self, n: str) -> str:
        """A derived node's line: ``relu c0`` or ``sep_conv_3x3 x4 of relu(c0), stride=2``."""
        d = self.graph.nodes[n]
        feeds = [u for u, _ in self.graph.in_edges(n)]
        parts = self.graph.out_degree(n)
        if d["role"] == "apply":
            stride = f", stride={d.get('stride', 1)}" if d.get("stride", 1) != 1 else ""
            how = "once" if d.get("shared") else "grouped"
            ops = applied_ops(d)
            if len(ops) > 1:  # merged kernels (merge_kernels): the parts of each op
                counts = [sum(1 for _, _, t in self.graph.out_edges(n, data=True) if t.get("op") == op) for op in ops]
                return f"{' + '.join(f'{op} x{c}' for op, c in zip(ops, counts))} {how} of {', '.join(feeds)}{stride}"
            return f"{d.get('op')} x{parts} {how} of {', '.join(feeds)}{stride}"
        return f"{d['role']} of {', '.join(feeds)}"
