"""NASLib's compact encoding of DARTS-space genotypes (also used by BANANAS and by
Li and Talwalkar's random search)::

    (((0, 3), (1, 3), (0, 3), (1, 3), (1, 3), (0, 2), (0, 2), (2, 5)),   # normal
     ((0, 0), (1, 0), (2, 2), (1, 0), (0, 0), (2, 2), (2, 2), (1, 0)))   # reduce

Per cell, 8 pairs ``(input node, op index)``, two per intermediate node 2..5, inputs
numbered as DARTS numbers them (0 and 1 are c0 and c1); the op index counts from 0 in
NASLib's DARTS op list (no ``none``); both cells concatenate nodes 2..5.

Reference: automl/NASLib, ``naslib/search_spaces/darts/conversions.py``
(``convert_genotype_to_compact``: ``OPS.index(op)``, 0-based, as
``DartsSearchSpace.sample_random_architecture`` and ``mutate`` in
``naslib/search_spaces/darts/graph.py`` draw ``range(NUM_OPS)``). That file's
``convert_compact_to_genotype`` reads ``OPS[index - 1]``, which disagrees with the three
writers; genolang follows the writers, so ``genolang export --to naslib`` output is what
NASLib itself produces. The text is read with Python's ``ast`` module, never evaluated."""

from __future__ import annotations

import ast as pyast

from genolang.errors import Diagnostic, SpecError
from genolang.interop.source import Source
from genolang.parse import ast as A
from genolang.spec.checked import GenotypeSpec

# NASLib's DARTS op list, in its order (conversions.py, ``OPS``).
OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
CELLS = ("normal", "reduce")
NODES = 4
PAIRS = 2 * NODES
SPACE = "darts_cnn"
EXAMPLE = "(((0, 3), (1, 3), (0, 3), (1, 3), (1, 3), (0, 2), (0, 2), (2, 5)), ((0, 0), (1, 0), ...))"


def _name(index: int) -> str:
    return f"c{index}" if index < 2 else f"n{index}"


def read_naslib(text: str, label: str = "<naslib>") -> list[list[tuple[int, int]]]:
    """The two cells of a compact tuple as lists of ``(input, op index)`` pairs;
    ``SpecError`` at the offending element otherwise."""
    src = Source(text, label)
    body, start = src.stripped()
    if not body:
        raise src.error(None, "empty input: expected NASLib's compact tuple", f"for example {EXAMPLE}")
    if len(body) > 100_000:
        raise src.error(None, "input is too long for a compact DARTS genotype")
    try:
        tree = pyast.parse(body, mode="eval")
    except SyntaxError as err:
        offset = start
        if err.lineno:
            lines = body.split("\n")
            offset += sum(len(s) + 1 for s in lines[:err.lineno - 1]) + max((err.offset or 1) - 1, 0)
        raise src.error(offset, f"not a compact tuple: {err.msg}", f"expected {EXAMPLE}") from None
    except (RecursionError, MemoryError, ValueError):
        raise src.error(None, "not a compact tuple: the text cannot be read") from None

    def fail(node: pyast.expr, message: str, hint: str | None = None) -> SpecError:
        offset, width = src.offset_of(node, start)
        return src.error(offset, message, hint, width)

    def seq(node: pyast.expr, size: int, what: str) -> list[pyast.expr]:
        if not isinstance(node, (pyast.Tuple, pyast.List)):
            raise fail(node, f"{what} must be a tuple or list")
        if len(node.elts) != size:
            raise fail(node, f"{what} has {len(node.elts)} entries, expected {size}")
        return node.elts

    def number(node: pyast.expr, what: str, hi: int) -> int:
        if not (isinstance(node, pyast.Constant) and type(node.value) is int):
            raise fail(node, f"{what} must be a whole number")
        if not 0 <= node.value <= hi:
            raise fail(node, f"{what} {node.value} is out of range 0..{hi}")
        return node.value

    cells = []
    for c, cell_node in enumerate(seq(tree.body, 2, "the compact tuple (normal, reduce)")):
        pairs = []
        for p, pair in enumerate(seq(cell_node, PAIRS, f"the {CELLS[c]} cell")):
            node = 2 + p // 2
            where = f"{CELLS[c]} pair {p} (node {node})"
            items = seq(pair, 2, f"{where}: (input node, op index)")
            pairs.append((number(items[0], f"{where}: input node", node - 1),
                          number(items[1], f"{where}: op index", len(OPS) - 1)))
        cells.append(pairs)
    return cells


def naslib_to_tree(cells: list[list[tuple[int, int]]], name: str, space: str | None = None) -> A.Genotype:
    """A genotype tree from the two cells' pairs."""
    out = [_name(i) for i in range(2, 2 + NODES)]
    geno_cells = []
    for cell, pairs in zip(CELLS, cells):
        nodes = [(_name(2 + k), [(OPS[op], _name(i)) for i, op in pairs[2 * k:2 * k + 2]]) for k in range(NODES)]
        geno_cells.append((cell, nodes, "concat", out))
    return A.make_genotype(name, space or SPACE, geno_cells)


def tree_to_naslib(geno: GenotypeSpec) -> str:
    """A DARTS-space genotype as NASLib's compact tuple."""
    def fail(message: str) -> SpecError:
        return SpecError((Diagnostic(geno.path, None, message,
                                     "the naslib format holds DARTS-space genotypes: cells 'normal' and 'reduce', "
                                     "2 inputs, 4 nodes of 2 terms each, the output concatenating all 4 nodes, "
                                     f"ops from {', '.join(OPS)}"),))

    names = sorted(c.name for c in geno.cells)
    if names != sorted(CELLS):
        raise fail(f"'{geno.name}' has cells {', '.join(names)}, not normal and reduce")
    parts = []
    for cell_name in CELLS:
        cell = geno.cell(cell_name)
        if cell.shape.inputs != 2 or len(cell.nodes) != NODES or cell.shape.reducer != "concat":
            raise fail(f"cell '{cell_name}' of '{geno.name}' is not a DARTS cell")
        if sorted(cell.output) != sorted(cell.node_names):
            raise fail(f"cell '{cell_name}' of '{geno.name}' concatenates {', '.join(cell.output)}; "
                       "the compact form always concatenates every node")
        pairs = []
        for node in cell.nodes:
            if len(node.edges) != 2:
                raise fail(f"node '{node.name}' of cell '{cell_name}' has {len(node.edges)} terms, not 2")
            for op, src in node.edges:
                if op not in OPS:
                    raise fail(f"op '{op}' (cell '{cell_name}', node '{node.name}') is not in NASLib's DARTS op list")
                pairs.append(f"({cell.index_of(src)}, {OPS.index(op)})")
        parts.append("(" + ", ".join(pairs) + ")")
    return "(" + ", ".join(parts) + ")"


def read(text: str, label: str, name: str, space: str | None) -> A.Genotype:
    """``FORMATS`` entry: compact tuple to genotype tree."""
    return naslib_to_tree(read_naslib(text, label), name, space)
