"""NAS-Bench-201 architecture strings (Dong and Yang, ICLR 2020)::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

Groups separated by ``+`` are the intermediate nodes 1, 2, 3; ``op~i`` is the edge from
node ``i`` (node 0 is the cell's input). Every node reads every earlier node once, and
the cell's output is its last node: in genolang, the ``nb201`` space
(``specs/spaces/nb201.geno``: ``inputs = 1; nodes = 3; keep = all; output = last``)
with node 0 named ``c0`` and node ``k`` named ``n{k}``. ``none`` edges are kept."""

from __future__ import annotations

import re

from genolang.errors import Diagnostic, SpecError, did_you_mean
from genolang.interop.source import Source
from genolang.parse import ast as A
from genolang.spec.checked import GenotypeSpec
from genolang.spec.resolve import Library

SPACE = "nb201"
CELL = "normal"
NODES = 3
OPS_201 = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
_OP = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INDEX = re.compile(r"\d+\Z")
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def _name(index: int) -> str:
    return "c0" if index == 0 else f"n{index}"


def _earlier(node: int) -> str:
    return "node 0" if node == 1 else f"nodes 0..{node - 1}"


def read_nb201(text: str, label: str = "<nb201>", space: str | None = None) -> list[list[tuple[str, int]]]:
    """The nodes of an arch string, each as ``[(op, input), ...]`` in written order.
    Malformed strings raise ``SpecError`` at the offending column. With the default
    space the string must have NAS-Bench-201's 3 nodes and ops."""
    src = Source(text, label)
    body, start = src.stripped()
    if len(body) >= 2 and body[0] == body[-1] and body[0] in "'\"":
        body, start = body[1:-1], start + 1  # a quoted string pasted from Python
    if not body:
        raise src.error(None, "empty input: expected a NAS-Bench-201 arch string", f"for example {EXAMPLE}")
    if len(body) > 100_000:
        raise src.error(None, "input is too long for a NAS-Bench-201 arch string")
    standard = space in (None, SPACE)
    nodes: list[list[tuple[str, int]]] = []
    pos, end = 0, len(body)
    while True:
        node = len(nodes) + 1
        if pos >= end or body[pos] != "|":
            found = f"'{body[pos]}'" if pos < end else "the end of the text"
            raise src.error(start + pos, f"expected '|' to open node {node}, found {found}",
                            f"a node is written |op~input|op~input|...|, nodes are joined by '+': {EXAMPLE}")
        edges: list[tuple[str, int]] = []
        seen: dict[int, int] = {}
        node_start = pos
        while True:
            bar = body.find("|", pos + 1)
            if bar < 0:
                raise src.error(start + end, f"node {node} is not closed: expected '|'",
                                "every edge is enclosed in '|': |op~input|")
            entry, at = body[pos + 1:bar], start + pos + 1
            if not entry:
                raise src.error(at, f"empty edge in node {node}", "write each edge as op~input, e.g. nor_conv_3x3~0")
            op, tilde, index = entry.partition("~")
            if not tilde:
                raise src.error(at, f"edge '{entry}' has no '~input'",
                                "write each edge as op~input, e.g. skip_connect~0", width=len(entry))
            if not _OP.match(op):
                raise src.error(at, f"'{op}' is not an op name" if op else "missing op name before '~'",
                                f"the ops are: {', '.join(OPS_201)}", width=max(len(op), 1))
            known = OPS_201 if standard else tuple(Library.for_file(None).op_names())
            if op not in known:
                where = "NAS-Bench-201" if standard else "genolang"
                raise src.error(at, f"unknown {where} op '{op}'{did_you_mean(op, known)}",
                                f"the ops are: {', '.join(known)}", width=len(op))
            i_at = at + len(op) + 1
            if not _INDEX.match(index):
                raise src.error(i_at, f"input '{index}' of node {node} is not a node number" if index
                                else f"missing input number after '~' in node {node}",
                                f"node {node} reads {_earlier(node)}", width=max(len(index), 1))
            source = int(index)
            if source >= node:
                raise src.error(i_at, f"node {node} cannot read node {source}",
                                f"node {node} reads earlier nodes only: {_earlier(node)}", width=len(index))
            if source in seen:
                raise src.error(i_at, f"node {node} reads node {source} twice",
                                "each node has exactly one edge from every earlier node", width=len(index))
            seen[source] = bar
            edges.append((op, source))
            pos = bar
            if bar + 1 >= end or body[bar + 1] == "+":
                break
        missing = [i for i in range(node) if i not in seen]
        if missing:
            raise src.error(start + node_start, f"node {node} has no edge from node{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(map(str, missing))}",
                            f"node {node} has one edge from each of {_earlier(node)}; 'none~i' means no "
                            "connection", width=pos + 1 - node_start)
        nodes.append(edges)
        if standard and len(nodes) > NODES:
            raise src.error(start + node_start, f"a NAS-Bench-201 cell has {NODES} nodes; this is node {node}",
                            "remove the extra '+|...|' group, or pass --space for a bigger keep-all space")
        if pos + 1 >= end:
            break
        pos += 2  # past '|+'
    if standard and len(nodes) != NODES:
        raise src.error(start + end, f"a NAS-Bench-201 cell has {NODES} nodes, this string has {len(nodes)}",
                        f"for example {EXAMPLE}")
    return nodes


def nb201_to_tree(nodes: list[list[tuple[str, int]]], name: str, space: str | None = None) -> A.Genotype:
    """The genotype tree of parsed arch-string nodes (node k named n{k}, 0 named c0)."""
    cell_nodes = [(_name(k + 1), [(op, _name(i)) for op, i in edges]) for k, edges in enumerate(nodes)]
    return A.make_genotype(name, space or SPACE, [(CELL, cell_nodes, "last", [_name(len(nodes))])])


def tree_to_nb201(geno: GenotypeSpec) -> str:
    """A genotype of a keep-all, one-input, output-last space (``nb201``) as an arch string."""
    def fail(message: str) -> SpecError:
        return SpecError((Diagnostic(geno.path, None, message,
                                     "the nb201 format holds genotypes of the 'nb201' space "
                                     "(one cell: inputs = 1, keep = all, output = last)"),))

    if len(geno.cells) != 1:
        raise fail(f"a NAS-Bench-201 string holds one cell; '{geno.name}' has {len(geno.cells)}")
    cell = geno.cells[0]
    shape = cell.shape
    if shape.inputs != 1 or not shape.keeps_all or shape.reducer != "last":
        raise fail(f"cell '{cell.name}' of '{geno.name}' is not a NAS-Bench-201 cell "
                   f"(inputs = {shape.inputs}, keep = {'all' if shape.keeps_all else shape.keep}, "
                   f"output = {shape.reducer})")
    groups = []
    for node in cell.nodes:
        edges = sorted(((cell.index_of(src), op) for op, src in node.edges))
        groups.append("|" + "|".join(f"{op}~{i}" for i, op in edges) + "|")
    return "+".join(groups)


def read(text: str, label: str, name: str, space: str | None) -> A.Genotype:
    """``FORMATS`` entry: arch string to genotype tree."""
    return nb201_to_tree(read_nb201(text, label, space), name, space)
