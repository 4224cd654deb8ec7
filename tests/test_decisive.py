"""The decisiveness of a search's alphas (``genolang.ir.decisive``): uniform alphas are a
coin toss (1x uniform, entropy 1), alphas that put every kept edge's weight on its op
are certain (K x uniform), and a small table is computed by hand."""

from __future__ import annotations

import math

import pytest

from genolang.ir.alphas import CellAlphas
from genolang.ir.decisive import cell_decisiveness, decisiveness, edge_entropy
from genolang.ir.derive import derive_genotype
from genolang.ir.lower import lower_space
from genolang.spec.checked import SpaceSpec
from genolang.spec.lookup import load_named


def darts() -> SpaceSpec:
    space = load_named("space", "darts_cnn")
    assert isinstance(space, SpaceSpec)
    return space


def tables(space: SpaceSpec, row_for) -> dict[str, CellAlphas]:  # type: ignore[no-untyped-def]
    out = {}
    for name, ir in lower_space(space).items():
        edges = tuple((e.src, e.dst) for e in ir.edges())
        out[name] = CellAlphas(name, edges, space.ops, tuple(row_for(i, e) for i, e in enumerate(edges)))
    return out


def test_uniform_alphas_are_a_coin_toss() -> None:
    space = darts()
    alphas = tables(space, lambda i, e: tuple(1 / 8 for _ in space.ops))
    d = decisiveness(alphas, derive_genotype(space, alphas))
    assert d.kept_over_uniform == pytest.approx(1.0) and d.entropy == pytest.approx(1.0)
    assert (d.lowest, d.highest, d.ops) == (0.125, 0.125, 8)
    assert "kept ops at 1.00x uniform (1 = coin toss, 8 = certain)" in d.summary()
    assert d.short() == "decisiveness: kept ops 1.00x uniform (of 8), edge entropy 1.0000 (uniform 1)"


def test_alphas_that_hold_each_kept_edge_whole_are_certain() -> None:
    space = darts()
    sep = space.ops.index("sep_conv_3x3")
    alphas = tables(space, lambda i, e: tuple(1.0 if k == sep else 0.0 for k in range(8)))
    d = decisiveness(alphas, derive_genotype(space, alphas))
    assert d.kept_over_uniform == pytest.approx(8.0) and d.entropy == pytest.approx(0.0)
    assert d.to_json()["cells"]["normal"]["kept"] == 8 and d.to_json()["cells"]["reduce"]["edges"] == 14


def test_a_small_table_by_hand() -> None:
    """Two edges into n2 over ops (a, b): rows (0.75, 0.25) and (0.5, 0.5); the genotype
    keeps a on the first edge. Kept: 0.75 x 2 = 1.5x uniform; entropy: H(0.75, 0.25) / log 2
    = 0.8113 and 1, mean 0.9056."""
    table = CellAlphas("normal", (("c0", "n2"), ("c1", "n2")), ("a", "b"), ((0.75, 0.25), (0.5, 0.5)))
    cell = cell_decisiveness(table, [("n2", "a", "c0")])
    assert cell.kept_over_uniform == pytest.approx(1.5)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2)
    assert cell.entropy == pytest.approx((h + 1) / 2) and (cell.lowest, cell.highest) == (0.25, 0.75)
    assert edge_entropy({"normal": table}) == pytest.approx((h + 1) / 2)
    with pytest.raises(ValueError, match="does not have"):
        cell_decisiveness(table, [("n2", "a", "n9")])


def test_rows_are_shares_of_their_edge_so_scaled_rows_read_alike() -> None:
    """PC-DARTS's selection weights are softmax rows times each edge's normalised beta,
    FairDARTS's independent sigmoids: a row is read as shares of its sum, so scaling a
    row changes nothing."""
    space = darts()
    rows = [tuple(float(k + 1 + (i % 3)) for k in range(8)) for i in range(14)]
    plain = tables(space, lambda i, e: tuple(w / sum(rows[i]) for w in rows[i]))
    scaled = tables(space, lambda i, e: tuple(0.3 * (1 + i % 2) * w / sum(rows[i]) for w in rows[i]))
    geno = derive_genotype(space, plain)
    a, b = decisiveness(plain, geno), decisiveness(scaled, geno)
    assert b.kept_over_uniform == pytest.approx(a.kept_over_uniform) and b.entropy == pytest.approx(a.entropy)
    assert a.kept_over_uniform > 1.0


def test_an_edge_with_its_own_ops_has_its_own_uniform() -> None:
    """An edge choosing from 2 of the 3 ops, at 0.5 each, is a coin toss (entropy 1),
    not 1.5x uniform; the weight of an op off the edge (0) takes no part."""
    table = CellAlphas("normal", (("c0", "n2"), ("c1", "n2")), ("none", "skip_connect", "sep_conv_3x3"),
                       ((0.0, 0.5, 0.5), (0.2, 0.3, 0.5)),
                       (("skip_connect", "sep_conv_3x3"), ("none", "skip_connect", "sep_conv_3x3")))
    d = cell_decisiveness(table, [("n2", "skip_connect", "c0")])
    assert d.kept_over_uniform == pytest.approx(1.0) and d.ops == 3
    assert edge_entropy({"normal": table}) == pytest.approx(
        (1.0 + -sum(p * math.log(p) for p in (0.2, 0.3, 0.5)) / math.log(3)) / 2)
    with pytest.raises(ValueError, match="does not have"):
        cell_decisiveness(table, [("n2", "none", "c0")])
