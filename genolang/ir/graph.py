"""The cell IR: a networkx multigraph of one cell, printable and lintable.

Nodes have a ``role``: ``input`` (c0, c1 or s0), ``node`` (an intermediate node, the sum
of its incoming edges) or ``output`` (``out``, which reduces the listed nodes). Every
non-output edge carries either one ``op`` (a fixed cell) or a tuple of ``candidates``
(a supernet's mixed edge), its ``stride`` and its ``slot`` (its position among the
node's inputs). Passes may add roles of their own (registered in ``ROLES``) and return
a new ``CellIR``; ``lint`` checks the invariants every stage relies on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
import networkx as nx

from genolang.opnames import OPS

ROLES = {"input", "node", "output"}


class IRError(Exception):
    """A broken IR invariant: a bug in a lowering or a pass, never a user error."""


@dataclass(frozen=True)
class Edge:
    """A read-only view of one IR edge."""

    src: str
    dst: str
    key: int
    op: str | None
    candidates: tuple[str, ...] | None
    stride: int
    slot: int

    @property
    def name(self) -> str:
        """``n3<-c1:sep_conv_3x3`` for a fixed edge, ``n3<-c1`` for a mixed one."""
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
    graph: nx.MultiDiGraph = field(compare=False, repr=False)
    mixed: bool = False
    ops: tuple[str, ...] = ()
    passes: tuple[str, ...] = ()

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
    def _edge(u: str, v: str, k: int, d: dict) -> Edge:  # type: ignore[type-arg]
        cands = d.get("candidates")
        return Edge(u, v, k, d.get("op"), tuple(cands) if cands is not None else None, d.get("stride", 1), d["slot"])

    def with_graph(self, graph: nx.MultiDiGraph, pass_name: str) -> "CellIR":
        """A new IR with ``graph``, recording the pass that produced it."""
        return replace(self, graph=graph, passes=(*self.passes, pass_name))

    # -- invariants --------------------------------------------------------------
    def lint(self) -> "CellIR":
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
        for u, v, d in g.edges(data=True):
            if g.nodes[u]["order"] >= g.nodes[v]["order"]:
                raise IRError(f"cell {self.name}: edge {u}->{v} goes against the node order")
        for n in self.nodes:
            edges = self.in_edges(n)
            if not edges:
                raise IRError(f"cell {self.name}: node {n} has no input")
            slots = [e.slot for e in edges]
            if slots != list(range(len(slots))):
                raise IRError(f"cell {self.name}: node {n} has slots {slots}, expected 0..{len(slots) - 1}")
            if self.kind == "rnn" and not self.mixed and len(edges) != 1:
                raise IRError(f"cell {self.name}: recurrent node {n} has {len(edges)} inputs")
            for e in edges:
                self._lint_edge(e)
        if not self.output_nodes:
            raise IRError(f"cell {self.name}: the output reduces no node")
        for n in self.output_nodes:
            if g.nodes[n]["role"] != "node":
                raise IRError(f"cell {self.name}: the output reads {n}, which is not an intermediate node")
        return self

    def _lint_edge(self, e: Edge) -> None:
        if (e.op is None) == (e.candidates is None):
            raise IRError(f"cell {self.name}: edge {e.name} needs exactly one of op / candidates")
        for op in (e.op,) if e.op is not None else e.candidates or ():
            if op not in OPS:
                raise IRError(f"cell {self.name}: edge {e.name} has unknown op {op!r}")
        if e.mixed != self.mixed:
            raise IRError(f"cell {self.name}: edge {e.name} is {'mixed' if e.mixed else 'fixed'} in a "
                          f"{'mixed' if self.mixed else 'fixed'} cell")
        from_input = self.graph.nodes[e.src]["role"] == "input"
        expected = self.stride if from_input else 1
        if e.stride != expected:
            raise IRError(f"cell {self.name}: edge {e.name} has stride {e.stride}, expected {expected}")

    # -- text and pictures -------------------------------------------------------
    def header(self) -> str:
        parts = [self.kind, f"stride {self.stride}", self.reducer]
        if self.mixed:
            parts.append(f"mixed over {len(self.ops)} ops: {', '.join(self.ops)}")
        if self.passes:
            parts.append("passes: " + ", ".join(self.passes))
        return f"cell {self.name} ({'; '.join(parts)})"

    def dump(self) -> str:
        """A readable listing: one line per node, edges with their op and stride."""
        lines = [self.header()]
        for n in self.inputs:
            lines.append(f"  {n} = input")
        for n in self.nodes:
            terms = []
            for e in self.in_edges(n):
                op = e.op if e.op is not None else f"mixed[{len(e.candidates or ())}]"
                stride = f", stride={e.stride}" if e.stride != 1 else ""
                terms.append(f"{op}({e.src}{stride})")
            lines.append(f"  {n} = " + " + ".join(terms))
        lines.append(f"  out = {self.reducer}({', '.join(self.output_nodes)})")
        return "\n".join(lines)

    def dot_body(self, prefix: str = "") -> list[str]:
        """The node and edge statements of this cell, ids prefixed by ``prefix`` so
        several cells can share one graph."""
        def nid(n: str) -> str:
            return _dot_id(prefix + n)

        lines = []
        for n in self.inputs:
            lines.append(f'{nid(n)} [shape=box, style=filled, fillcolor="#d8e8f8", label="{n}"];')
        for n in self.nodes:
            lines.append(f'{nid(n)} [shape=circle, style=filled, fillcolor="#f8f0c8", label="{n}"];')
        lines.append(f'{nid("out")} [shape=box, style=filled, fillcolor="#d8f0d8", label="{self.reducer}"];')
        for e in self.edges():
            label = e.op if e.op is not None else f"mixed[{len(e.candidates or ())}]"
            if e.stride != 1:
                label += f" /{e.stride}"
            lines.append(f'{nid(e.src)} -> {nid(e.dst)} [label="{label}"];')
        for n in self.output_nodes:
            lines.append(f"{nid(n)} -> {nid('out')} [style=dashed];")
        return lines

    def to_dot(self, graph_name: str | None = None) -> str:
        """Graphviz DOT text: inputs and output as boxes, nodes as circles, ops on edges."""
        return dot_document([(graph_name or f"cell {self.name}", self)])


def dot_document(cells: list[tuple[str, "CellIR"]]) -> str:
    """One DOT digraph; with several cells, one labelled cluster per cell."""
    lines = ["digraph genolang {", "  rankdir=LR;", '  node [fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    if len(cells) == 1:
        label, cell = cells[0]
        lines.append(f'  label="{label}";')
        lines += ["  " + line for line in cell.dot_body()]
    else:
        for i, (label, cell) in enumerate(cells):
            lines.append(f"  subgraph cluster_{i} {{")
            lines.append(f'    label="{label}";')
            lines += ["    " + line for line in cell.dot_body(f"k{i}_")]
            lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_id(text: str) -> str:
    return text if text.replace("_", "a").isalnum() and not text[0].isdigit() else f'"{text}"'
