"""Derivation: alphas to a genotype by the space's derive rule (torch-free)."""

from __future__ import annotations

import random

import pytest

from genolang.ir.alphas import CellAlphas, format_alpha_table
from genolang.ir.derive import DeriveError, changed_edges, derive_cell, derive_genotype
from genolang.ir.lower import lower_space
from genolang.spec.check import load_text
from genolang.spec.checked import DeriveRule, GenotypeSpec, SpaceSpec
from genolang.spec.lookup import load_named
from genolang.spec.syntax import genotype_text


def space(name: str) -> SpaceSpec:
    found = load_named("space", name)
    assert isinstance(found, SpaceSpec)
    return found


def table(sp: SpaceSpec, cell: str, weights: dict[tuple[str, str], dict[str, float]] | None = None,
          rows: list[list[float]] | None = None) -> CellAlphas:
    """Alphas of ``cell``: uniform, overridden per (src, dst) edge by ``weights``."""
    ir = lower_space(sp)[cell]
    edges = tuple((e.src, e.dst) for e in ir.edges())
    n = len(sp.ops)
    out = []
    for i, edge in enumerate(edges):
        if rows is not None:
            out.append(tuple(rows[i]))
            continue
        row = [1.0 / n] * n
        for op, w in (weights or {}).get(edge, {}).items():
            row[sp.ops.index(op)] = w
        out.append(tuple(row))
    return CellAlphas(cell, edges, sp.ops, tuple(out))


def nodes_of(geno: GenotypeSpec, cell: str) -> dict[str, list[tuple[str, str]]]:
    return {n.name: list(n.edges) for n in geno.cell(cell).nodes}


def test_hand_written_alphas_give_the_expected_cnn_genotype() -> None:
    sp = space("darts_cnn")
    w = {
        ("c0", "n2"): {"sep_conv_3x3": 0.5},
        ("c1", "n2"): {"none": 0.9, "skip_connect": 0.3},  # 'none' is strongest but excluded
        ("c0", "n3"): {"dil_conv_5x5": 0.2},
        ("n2", "n3"): {"max_pool_3x3": 0.6},
        ("c1", "n4"): {"avg_pool_3x3": 0.4},
        ("n3", "n4"): {"sep_conv_5x5": 0.45},
        ("n4", "n5"): {"skip_connect": 0.7},
        ("n2", "n5"): {"dil_conv_3x3": 0.3},
    }
    tree = derive_genotype(sp, {"normal": table(sp, "normal", w), "reduce": table(sp, "reduce")}, "g")
    assert nodes_of(tree, "normal") == {
        "n2": [("sep_conv_3x3", "c0"), ("skip_connect", "c1")],
        "n3": [("max_pool_3x3", "n2"), ("dil_conv_5x5", "c0")],
        "n4": [("sep_conv_5x5", "n3"), ("avg_pool_3x3", "c1")],
        "n5": [("skip_connect", "n4"), ("dil_conv_3x3", "n2")],
    }
    text = genotype_text(tree)  # a derived genotype prints as a file that checks
    checked = load_text(text, "found.geno").single("genotype")
    assert checked.cell("normal").output == ("n2", "n3", "n4", "n5")


def test_ties_go_to_the_earlier_edge_then_the_earlier_op() -> None:
    sp = space("darts_cnn")
    tree = derive_genotype(sp, {c: table(sp, c) for c in ("normal", "reduce")})
    # all weights equal: every node keeps c0 then c1, each with the first op after 'none'
    for cell in ("normal", "reduce"):
        for terms in nodes_of(tree, cell).values():
            assert terms == [("max_pool_3x3", "c0"), ("max_pool_3x3", "c1")]
    # an exact tie between two ops of one edge: the earlier op in the space's order wins
    w = {("n2", "n3"): {"sep_conv_5x5": 0.5, "sep_conv_3x3": 0.5}, ("c1", "n3"): {"skip_connect": 0.4}}
    tree = derive_genotype(sp, {"normal": table(sp, "normal", w), "reduce": table(sp, "reduce")})
    assert nodes_of(tree, "normal")["n3"] == [("sep_conv_3x3", "n2"), ("skip_connect", "c1")]


def test_caps_keep_the_strongest_instances_and_fall_back() -> None:
    sp = space("darts_cnn")
    capped = SpaceSpec(sp.name, sp.kind, sp.ops, sp.cells, DeriveRule(("none",), True, (("skip_connect", 2),)))
    w = {
        ("c0", "n2"): {"skip_connect": 0.5, "sep_conv_3x3": 0.2},
        ("c1", "n3"): {"skip_connect": 0.9},
        ("c0", "n4"): {"skip_connect": 0.3, "dil_conv_3x3": 0.25},  # third-strongest skip: falls back
        ("n3", "n5"): {"skip_connect": 0.8},
    }
    normal = table(sp, "normal", w)
    uncapped = derive_cell(sp.cell("normal"), normal, sp.derive)
    assert sum(op == "skip_connect" for _, terms in uncapped for op, _ in terms) == 4
    nodes = dict(derive_cell(sp.cell("normal"), normal, capped.derive))
    assert nodes["n3"][0] == ("skip_connect", "c1")  # 0.9
    assert nodes["n5"][0] == ("skip_connect", "n3")  # 0.8
    assert ("skip_connect", "c0") not in nodes["n2"]  # 0.5 lost to the two stronger ones ...
    assert nodes["n2"][0] == ("sep_conv_3x3", "c0")  # ... so c0 -> n2 falls back to its next best op
    assert nodes["n4"][0] == ("dil_conv_3x3", "c0")
    assert sum(op == "skip_connect" for terms in nodes.values() for op, _ in terms) == 2


def test_caps_that_cannot_be_met_are_a_clear_error() -> None:
    sp = space("darts_cnn")
    caps = tuple((op, 0) for op in sp.ops if op not in ("none", "skip_connect")) + (("skip_connect", 3),)
    rule = DeriveRule(("none",), True, caps)
    with pytest.raises(DeriveError, match="raise the caps"):
        derive_cell(sp.cell("normal"), table(sp, "normal"), rule)


def test_non_distinct_inputs_may_repeat_an_input_with_another_op() -> None:
    sp = space("nasnet")  # derive { distinct = false }
    assert not sp.derive.distinct
    w = {("c0", "n2"): {"sep_conv_3x3": 0.4, "avg_pool_3x3": 0.35}, ("c1", "n2"): {"skip_connect": 0.2}}
    nodes = dict(derive_cell(sp.cell("normal"), table(sp, "normal", w), sp.derive))
    assert nodes["n2"] == [("sep_conv_3x3", "c0"), ("avg_pool_3x3", "c0")]


def test_recurrent_derivation_keeps_one_input_per_node() -> None:
    sp = space("darts_rnn")
    expected = {"n1": ("sigmoid", "s0"), "n2": ("relu", "n1"), "n3": ("relu", "n1"), "n4": ("identity", "n1"),
                "n5": ("tanh", "n2"), "n6": ("sigmoid", "n5"), "n7": ("tanh", "n3"), "n8": ("relu", "n5")}
    w = {(src, node): {op: 0.6, "none": 0.95} for node, (op, src) in expected.items()}
    tree = derive_genotype(sp, {"recurrent": table(sp, "recurrent", w)}, "rnn_found")
    assert {n: terms[0] for n, terms in nodes_of(tree, "recurrent").items()} == expected
    reference = load_named("genotype", "darts_rnn_v2")
    checked = load_text(genotype_text(tree), "found.geno").single("genotype")
    assert checked.cells[0].nodes == reference.cells[0].nodes
    assert checked.cells[0].output == tuple(f"n{i}" for i in range(1, 9))


# ---- the original DARTS code's rule, ported literally, as a reference ---------------

def _darts_parse_cnn(weights: list[list[float]], primitives: tuple[str, ...], steps: int = 4) -> list[tuple[str, int]]:
    gene: list[tuple[str, int]] = []
    n, start = 2, 0
    none = primitives.index("none")
    for i in range(steps):
        end = start + n
        W = weights[start:end]
        edges = sorted(range(i + 2), key=lambda x: -max(W[x][k] for k in range(len(W[x])) if k != none))[:2]
        for j in edges:
            k_best = None
            for k in range(len(W[j])):
                if k != none and (k_best is None or W[j][k] > W[j][k_best]):
                    k_best = k
            assert k_best is not None
            gene.append((primitives[k_best], j))
        start = end
        n += 1
    return gene


def _darts_parse_rnn(probs: list[list[float]], primitives: tuple[str, ...], steps: int = 8) -> list[tuple[str, int]]:
    gene: list[tuple[str, int]] = []
    start = 0
    none = primitives.index("none")
    for i in range(steps):
        end = start + i + 1
        W = probs[start:end]
        j = sorted(range(i + 1), key=lambda x: -max(W[x][k] for k in range(len(W[x])) if k != none))[0]
        k_best = None
        for k in range(len(W[j])):
            if k != none and (k_best is None or W[j][k] > W[j][k_best]):
                k_best = k
        assert k_best is not None
        gene.append((primitives[k_best], j))
        start = end
    return gene


@pytest.mark.parametrize("seed", range(25))
def test_without_caps_the_rule_is_the_original_codes(seed: int) -> None:
    rnd = random.Random(seed)
    # coarse values make ties common, so the tie-breaking is compared too
    sp = space("darts_cnn")
    rows = [[rnd.choice([0.1, 0.2, 0.3]) for _ in sp.ops] for _ in range(14)]
    nodes = derive_cell(sp.cell("normal"), table(sp, "normal", rows=rows), sp.derive)
    names = ["c0", "c1", "n2", "n3", "n4", "n5"]
    ours = [(op, names.index(src)) for _, terms in nodes for op, src in terms]
    assert ours == _darts_parse_cnn(rows, sp.ops)

    rs = space("darts_rnn")
    probs = [[rnd.choice([0.1, 0.2, 0.3]) for _ in rs.ops] for _ in range(36)]
    nodes = derive_cell(rs.cell("recurrent"), table(rs, "recurrent", rows=probs), rs.derive)
    rnames = ["s0"] + [f"n{i}" for i in range(1, 9)]
    assert [(terms[0][0], rnames.index(terms[0][1])) for _, terms in nodes] == _darts_parse_rnn(probs, rs.ops)


def test_changed_edges_counts_new_terms_per_cell() -> None:
    sp = space("darts_cnn")
    before = derive_genotype(sp, {c: table(sp, c) for c in ("normal", "reduce")})
    w = {("n2", "n3"): {"sep_conv_3x3": 0.9}}
    after = derive_genotype(sp, {"normal": table(sp, "normal", w), "reduce": table(sp, "reduce")})
    assert changed_edges(before, after) == {"normal": 1, "reduce": 0}
    assert changed_edges(None, after) == {"normal": 0, "reduce": 0}


def test_alpha_tables_print_and_round_trip_through_json() -> None:
    sp = space("darts_cnn")
    t = table(sp, "normal", {("c1", "n3"): {"sep_conv_3x3": 0.31}})
    text = format_alpha_table([t])
    assert "n3 <- c1: none 0.125" in text and "sep_conv_3x3 0.310" in text
    assert CellAlphas.from_json("normal", t.to_json()) == t
    assert t.weight("c1", "n3", "sep_conv_3x3") == 0.31
