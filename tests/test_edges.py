"""Edges with their own ops (``edge c0 -> n2 = ...`` in a cell of a space), torch-free:
the model (``CellShape.edge_ops``), printing and hashing, the checks (errors are in the
corpus of tests/test_errors.py; warnings here), the derivation and the genotype checks
respecting each edge's set, and the RobustDARTS spaces S1-S4 as RobustDARTS defines them."""

from __future__ import annotations

import dataclasses

import pytest

from conftest import SPECS
from genolang.interop.darts import darts_to_tree, read_darts, tree_to_darts
from genolang.ir.alphas import CellAlphas, format_alpha_table
from genolang.ir.derive import derive_genotype
from genolang.ir.lower import lower_space
from genolang.parse.parser import parse
from genolang.parse.printer import format_decl, format_spec
from genolang.spec.check import check, load_text
from genolang.spec.checked import CellShape, NetworkSpec, SpaceSpec, same_content
from genolang.spec.lookup import load_named
from genolang.spec.syntax import read_bundle, space_tree, spec_bundle, spec_text
from genolang.spec.validate import errors, genotype_problems
from genolang.vcs import space_hash
from genolang.vcs.diff import diff_spaces

SPACE = """genolang 1
space e {
    ops = none, skip_connect, max_pool_3x3, sep_conv_3x3
    cell normal {
        nodes = 3
        edge n2 -> n4 = sep_conv_3x3, none   # a comment
        edge c0 -> n2 = skip_connect, sep_conv_3x3
        edge c1 -> n3 = none, skip_connect, max_pool_3x3, sep_conv_3x3
    }
    cell reduce {
        nodes = 3
        stride = 2
        edge c0 -> n2 = max_pool_3x3
    }
}
"""

# RobustDARTS's lists (automl/RobustDARTS src/spaces.py, primitives_1), edge k of a cell
# being the k-th MixedOp its Cell builds: node by node, each reading states 0 .. i+1
RD_EDGES = [(s, f"n{i + 2}") for i in range(4) for s in ["c0", "c1", *[f"n{k + 2}" for k in range(i)]]]
RD_S1_NORMAL = [
    ["skip_connect", "dil_conv_3x3"], ["skip_connect", "dil_conv_5x5"], ["skip_connect", "dil_conv_5x5"],
    ["skip_connect", "sep_conv_3x3"], ["skip_connect", "dil_conv_3x3"], ["max_pool_3x3", "skip_connect"],
    ["skip_connect", "sep_conv_3x3"], ["skip_connect", "sep_conv_3x3"], ["skip_connect", "dil_conv_3x3"],
    ["skip_connect", "sep_conv_3x3"], ["max_pool_3x3", "skip_connect"], ["skip_connect", "dil_conv_3x3"],
    ["dil_conv_3x3", "dil_conv_5x5"], ["dil_conv_3x3", "dil_conv_5x5"]]
RD_S1_REDUCE = [
    ["max_pool_3x3", "avg_pool_3x3"], ["max_pool_3x3", "dil_conv_3x3"], ["max_pool_3x3", "avg_pool_3x3"],
    ["max_pool_3x3", "avg_pool_3x3"], ["skip_connect", "dil_conv_5x5"], ["max_pool_3x3", "avg_pool_3x3"],
    ["max_pool_3x3", "sep_conv_3x3"], ["skip_connect", "dil_conv_3x3"], ["skip_connect", "dil_conv_5x5"],
    ["max_pool_3x3", "avg_pool_3x3"], ["max_pool_3x3", "avg_pool_3x3"], ["skip_connect", "dil_conv_5x5"],
    ["skip_connect", "dil_conv_5x5"], ["skip_connect", "dil_conv_5x5"]]
RD_SAME = {"s2": ["skip_connect", "sep_conv_3x3"], "s3": ["none", "skip_connect", "sep_conv_3x3"],
           "s4": ["noise", "sep_conv_3x3"]}


def space_of(text: str, name: str = "e") -> SpaceSpec:
    return load_text(text, "e.geno").spaces[name]


# ---- the model ---------------------------------------------------------------------------

def test_edges_are_recorded_in_row_order_with_the_spaces_op_order() -> None:
    space = space_of(SPACE)
    normal = space.cell("normal")
    # listed out of order, ops out of order; the line listing every op changes nothing
    assert normal.edge_sets == (("c0", "n2", ("skip_connect", "sep_conv_3x3")), ("n2", "n4", ("none", "sep_conv_3x3")))
    assert normal.edge_ops("n2", "n4", space.ops) == ("none", "sep_conv_3x3")
    assert normal.edge_ops("c1", "n3", space.ops) == space.ops  # all of them: not recorded
    assert normal.edge_ops("c0", "n3", space.ops) == space.ops  # not listed
    assert space.edge_ops("reduce", "c0", "n2") == ("max_pool_3x3",)
    assert normal.sources("n4") == ("c0", "c1", "n2", "n3")


def test_a_space_with_edges_prints_canonically_and_round_trips() -> None:
    spec = parse(SPACE, "e.geno")
    text = format_spec(spec)
    assert "        edge n2 -> n4 = sep_conv_3x3, none  # a comment\n" in text  # as written, comment kept
    assert format_spec(parse(text)) == text and parse(text).decls == spec.decls
    space = space_of(SPACE)
    printed = format_decl(space_tree(space))
    assert ("        stride = 1\n        edge c0 -> n2 = skip_connect, sep_conv_3x3\n"
            "        edge n2 -> n4 = none, sep_conv_3x3\n    }") in printed
    again = space_of(spec_text(space_tree(space)))
    assert same_content(again, space)
    # what the IR, the hash and the diff see
    irs = lower_space(space)
    assert [e.candidates for e in irs["normal"].edges()][:2] == [("skip_connect", "sep_conv_3x3"), space.ops]
    assert next(e for e in irs["reduce"].edges() if (e.src, e.dst) == ("c0", "n2")).candidates == ("max_pool_3x3",)
    reordered = SPACE.replace("sep_conv_3x3, none   #", "none, sep_conv_3x3   #")
    assert space_hash(space_of(reordered)) == space_hash(space)
    changed = space_of(SPACE.replace("edge c0 -> n2 = max_pool_3x3", "edge c0 -> n2 = max_pool_3x3, none"))
    assert space_hash(changed) != space_hash(space)
    unrestricted = space_of(SPACE.replace("        edge c0 -> n2 = max_pool_3x3\n", ""))
    diff = diff_spaces(space, changed)
    assert diff.summary() == ["cell reduce: edge c0 -> n2: max_pool_3x3 -> none, max_pool_3x3"]
    assert diff_spaces(space, unrestricted).summary() == [
        "cell reduce: edge c0 -> n2: max_pool_3x3 -> all the space's ops"]
    assert "+        edge c0 -> n2 = none, max_pool_3x3" in diff.render()


def test_a_shipped_space_without_edges_prints_and_hashes_as_before() -> None:
    space = load_named("space", "darts_cnn")
    assert all(c.edge_sets == () for c in space.cells)
    assert "edge" not in format_decl(space_tree(space))


def test_warnings_edges_a_search_never_keeps_and_ops_on_no_edge() -> None:
    text = SPACE.replace("edge n2 -> n4 = sep_conv_3x3, none", "edge n2 -> n4 = none")
    result = check(parse(text, "e.geno"), text)
    assert result.errors == []
    (dead,) = result.warnings
    assert (dead.span.line, dead.span.column) == (6, 9)  # type: ignore[union-attr]
    assert dead.message == ("the derive rule excludes every op of edge n2 -> n4 (none): a search trains it but "
                            "never keeps it")
    # a space op no edge chooses
    text = """genolang 1
space f {
    ops = none, skip_connect, sep_conv_3x3
    cell normal {
        nodes = 1
        edge c0 -> n2 = skip_connect
        edge c1 -> n2 = sep_conv_3x3
    }
}
"""
    result = check(parse(text, "f.geno"), text)
    assert result.errors == []
    (unused,) = result.warnings
    assert "op 'none' of space 'f' is on no edge" in unused.message
    assert (unused.span.line, unused.span.column) == (3, 11)  # type: ignore[union-attr]


def test_an_op_that_cannot_stride_may_be_on_the_edges_that_do_not() -> None:
    base = """genolang 1
space g {
    ops = none, skip_connect, sep_conv_3x3, tanh
    cell normal { nodes = 2 }
    cell reduce {
        nodes = 2
        stride = 2
        edge c0 -> n2 = skip_connect, sep_conv_3x3
        edge c1 -> n2 = skip_connect, sep_conv_3x3
        edge c0 -> n3 = skip_connect, sep_conv_3x3
        edge c1 -> n3 = skip_connect, sep_conv_3x3
    }
}
"""
    space = space_of(base, "g")
    assert "tanh" in space.edge_ops("reduce", "n2", "n3")  # at stride 1
    broken = base.replace("edge c1 -> n3 = skip_connect, sep_conv_3x3", "edge c1 -> n3 = tanh, sep_conv_3x3")
    diags = check(parse(broken, "g.geno"), broken).errors
    assert [d.message.split(":")[0] for d in diags] == [
        "op 'tanh' cannot run at stride 2, which cell 'reduce' of space 'g' needs"]


def test_recurrent_spaces_take_edges_too() -> None:
    text = """genolang 1
space r {
    ops = none, tanh, relu, sigmoid, identity
    cell recurrent {
        nodes = 3
        edge s0 -> n1 = tanh, relu
        edge n1 -> n3 = identity
    }
}
"""
    space = space_of(text, "r")
    assert space.kind == "rnn" and space.edge_ops("recurrent", "n1", "n3") == ("identity",)


# ---- genotypes and derivation ------------------------------------------------------------

def test_genotype_nodes_meet_the_spaces_edges_by_position() -> None:
    text = SPACE + """
genotype g : e {
    normal {
        a = skip_connect(c0) + sep_conv_3x3(c1)
        b = max_pool_3x3(c1) + sep_conv_3x3(a)
        c = skip_connect(a) + sep_conv_3x3(b)
        out = concat(a, b, c)
    }
    reduce {
        n2 = max_pool_3x3(c0) + sep_conv_3x3(c1)
        n3 = skip_connect(c0) + sep_conv_3x3(n2)
        n4 = skip_connect(n2) + sep_conv_3x3(n3)
        out = concat(n2, n3, n4)
    }
}
"""
    diags = check(parse(text, "e.geno"), text).errors
    assert [(d.message, d.span.line, d.span.column) for d in diags] == [  # type: ignore[union-attr]
        (("op 'skip_connect' is not on edge a -> c (the space's edge n2 -> n4) of cell 'normal': space 'e' lets that "
         "edge choose from none, sep_conv_3x3 only"), 21, 13)]
    fixed = load_text(text.replace("c = skip_connect(a)", "c = none(a)"), "e.geno").genotypes["g"]
    assert errors(genotype_problems(fixed)) == []


def alphas_for(space: SpaceSpec, cell: str, weights: dict[tuple[str, str, str], float]) -> CellAlphas:
    """A cell's table: ``weights[(src, dst, op)]`` where given, 0 elsewhere."""
    edges = tuple((e.src, e.dst) for e in lower_space(space)[cell].edges())
    rows = tuple(tuple(weights.get((src, dst, op), 0.0) for op in space.ops) for src, dst in edges)
    return CellAlphas(cell, edges, space.ops, rows)


def test_derivation_never_picks_an_op_off_its_edge_even_on_ties_or_huge_weights() -> None:
    space = space_of(SPACE)
    # all weights tie at 0: the earliest edge and op win, among the edge's own ops ('none' excluded)
    flat = {c: alphas_for(space, c, {}) for c in space.cell_names}
    geno = derive_genotype(space, flat)
    assert geno.cell("normal").nodes[0].edges == (("skip_connect", "c0"), ("skip_connect", "c1"))
    assert geno.cell("normal").nodes[2].edges == (("skip_connect", "c0"), ("skip_connect", "c1"))
    assert geno.cell("reduce").nodes[0].edges == (("max_pool_3x3", "c0"), ("skip_connect", "c1"))
    # a huge weight on an op outside the edge's set is never read
    heavy = {("c0", "n2", "max_pool_3x3"): 9.0, ("c0", "n2", "sep_conv_3x3"): 0.2, ("c1", "n2", "sep_conv_3x3"): 0.1,
             ("n2", "n4", "skip_connect"): 9.0, ("n2", "n4", "sep_conv_3x3"): 0.3, ("c0", "n4", "none"): 9.0}
    tables = {"normal": alphas_for(space, "normal", heavy), "reduce": flat["reduce"]}
    normal = derive_genotype(space, tables).cell("normal")
    assert normal.nodes[0].edges == (("sep_conv_3x3", "c0"), ("sep_conv_3x3", "c1"))
    assert ("sep_conv_3x3", "n2") in normal.nodes[2].edges
    assert all(op in space.edge_ops("normal", src, node) for node, n in zip(("n2", "n3", "n4"), normal.nodes)
               for op, src in n.edges)


def test_alpha_tables_show_each_edges_own_ops_and_keep_them_through_json() -> None:
    space = space_of(SPACE)
    table = alphas_for(space, "reduce", {("c0", "n2", "max_pool_3x3"): 1.0})
    edges = table.edges
    allowed = tuple(space.edge_ops("reduce", s, d) for s, d in edges)
    table = dataclasses.replace(table, allowed=allowed)
    assert table.restricted and table.row_ops(0) == ("max_pool_3x3",)
    text = format_alpha_table([table])
    assert text.splitlines()[:2] == ["cell reduce (softmax over each edge's own ops: 1 to 4 of 4)",
                                     "  n2 <- c0: max_pool_3x3 1.000"]
    assert CellAlphas.from_json("reduce", table.to_json()) == table
    assert "allowed" not in alphas_for(space, "reduce", {}).to_json()
    with pytest.raises(ValueError, match="an edge allows sep_conv_5x5"):
        dataclasses.replace(table, allowed=(("sep_conv_5x5",), *allowed[1:]))


def test_the_bundle_of_a_checkpoint_keeps_the_edges() -> None:
    space = space_of(SPACE)
    geno = derive_genotype(space, {c: alphas_for(space, c, {}) for c in space.cell_names})
    net = NetworkSpec("tiny", "cnn", "cifar", channels=4, layers=3)
    again, _ = read_bundle(spec_bundle(geno, net))
    assert again.space.cell("normal").edge_sets == space.cell("normal").edge_sets
    assert same_content(again.space, space)


# ---- the RobustDARTS spaces --------------------------------------------------------------

def shipped(name: str) -> SpaceSpec:
    space = load_named("space", name)
    assert isinstance(space, SpaceSpec)
    return space


def test_s1_is_robustdarts_primitives_1_edge_by_edge() -> None:
    space = shipped("s1")
    assert space.ops == ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3",
                         "dil_conv_5x5")
    irs = lower_space(space)
    for cell, lists in (("normal", RD_S1_NORMAL), ("reduce", RD_S1_REDUCE)):
        shape = space.cell(cell)
        rows = [(e.src, e.dst) for e in irs[cell].edges()]
        assert rows == RD_EDGES  # RobustDARTS's edge order is the alpha row order
        for (src, dst), ops in zip(RD_EDGES, lists):
            assert shape.edge_ops(src, dst, space.ops) == tuple(ops)  # each pair already in the space's op order
        assert len(shape.edge_sets) == 14
    assert space.derive.exclude == () and space.derive.distinct


@pytest.mark.parametrize("name", ["s2", "s3", "s4"])
def test_s2_s3_s4_have_one_set_on_every_edge(name: str) -> None:
    space = shipped(name)
    assert list(space.ops) == RD_SAME[name]
    assert all(c.edge_sets == () for c in space.cells)
    assert [(c.name, c.inputs, c.nodes, c.keep, c.reducer, c.stride) for c in space.cells] == [
        ("normal", 2, 4, 2, "concat", 1), ("reduce", 2, 4, 2, "concat", 2)]
    # RobustDARTS's genotype() leaves out 'none' only (S3); S4's 'noise' may be kept
    assert space.derive.exclude == (("none",) if name == "s3" else ())
    assert space.derive.distinct and space.derive.caps == ()


def test_a_genotype_of_s1_goes_to_darts_and_back() -> None:
    space = shipped("s1")
    geno = derive_genotype(space, {c: alphas_for(space, c, {}) for c in space.cell_names})
    text = tree_to_darts(geno)
    assert text.startswith("Genotype(normal=[('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), ")
    tree = darts_to_tree(read_darts(text), "back", "s1")
    back = load_text(spec_text(tree), "back.geno").genotypes["back"]
    assert [n.edges for c in back.cells for n in c.nodes] == [n.edges for c in geno.cells for n in c.nodes]
    # a DARTS genotype outside S1's pairs is refused, naming the edge's pair
    wrong = text.replace("('skip_connect', 0)", "('sep_conv_3x3', 0)", 1)
    diags = check(parse(spec_text(darts_to_tree(read_darts(wrong), "w", "s1")), "w.geno"),
                  spec_text(darts_to_tree(read_darts(wrong), "w", "s1"))).errors
    assert [d.message for d in diags if d.severity == "error"] == [
        ("op 'sep_conv_3x3' is not on edge c0 -> n2 of cell 'normal': space 's1' lets that edge choose from "
         "skip_connect, dil_conv_3x3 only; did you mean 'dil_conv_3x3'?")]
    # with a note naming the file of the space the genotype was checked against
    assert [d.message for d in diags if d.severity == "note"] == [
        f"space 's1' is the one declared at {SPECS / 'spaces' / 's1.geno'}:15"]


def test_cellshape_edge_ops_is_the_one_question() -> None:
    shape = CellShape("c", 2, 2, 2, edge_sets=(("c0", "n2", ("a",)),))
    assert shape.edge_ops("c0", "n2", ("a", "b")) == ("a",)
    assert shape.edge_ops("c1", "n2", ("a", "b")) == ("a", "b")
