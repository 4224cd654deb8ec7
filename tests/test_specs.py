"""Every shipped spec parses, checks cleanly, lowers to a sound IR and is already in
canonical form; the shipped genotypes are exactly those of DESIGN.md section 5."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SPEC_FILES, SPECS
from genolang.interop.darts import read_darts, tree_to_darts
from genolang.ir.lower import lower_genotype, lower_space
from genolang.parse.parser import parse
from genolang.parse.printer import format_spec
from genolang.resources import grammar_path, specs_dir
from genolang.spec.check import load, load_text
from genolang.spec.checked import GenotypeSpec

IDS = [str(p.relative_to(SPECS)) for p in SPEC_FILES]


def test_the_library_is_complete() -> None:
    names = {str(p.relative_to(SPECS)) for p in SPEC_FILES}
    for expected in ("spaces/darts_cnn.geno", "spaces/darts_rnn.geno", "spaces/nasnet.geno", "spaces/amoebanet.geno",
                     "spaces/enas_rnn.geno", "genotypes/darts_v1.geno", "genotypes/darts_v2.geno",
                     "genotypes/nasnet_a.geno", "genotypes/amoebanet_a.geno", "genotypes/darts_rnn_v1.geno",
                     "genotypes/darts_rnn_v2.geno", "genotypes/enas.geno", "networks/cifar.geno"):
        assert expected in names
    assert specs_dir().resolve() == SPECS.resolve()
    assert grammar_path().is_file()


@pytest.mark.parametrize("path", SPEC_FILES, ids=IDS)
def test_spec_checks_cleanly(path: Path) -> None:
    result = load(str(path))
    assert result.errors == []
    assert result.warnings == [], result.render_warnings()
    from genolang.parse.ast import OpDecl
    from genolang.spec.opcheck import family_names

    ops = [name for d in result.file.decls if isinstance(d, OpDecl) for name in family_names(d)]
    assert sorted(result.ops) == sorted(ops)  # every op declared checks
    declared = len(result.spaces) + len(result.genotypes) + len(result.networks) + len(result.searches)
    assert declared + sum(isinstance(d, OpDecl) for d in result.file.decls) == len(result.file.decls) >= 1
    if path.parent.name != "ops":  # the file's declaration is named after the file (op files: after their family)
        assert path.stem in {*result.spaces, *result.genotypes, *result.networks, *result.searches}


@pytest.mark.parametrize("path", SPEC_FILES, ids=IDS)
def test_spec_is_canonical(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    spec = parse(text, str(path))
    assert format_spec(spec) == text
    # and the comments are part of that text
    own_lines = [line.strip() for line in text.splitlines() if line.strip().startswith("#")]
    assert [c.text for c in spec.comments] == own_lines


@pytest.mark.parametrize("path", SPEC_FILES, ids=IDS)
def test_spec_lowers_and_lints(path: Path) -> None:
    result = load(str(path))
    for geno in result.genotypes.values():
        cells = lower_genotype(geno)
        assert list(cells) == [c.name for c in geno.cells]
        for cell, ir in cells.items():
            assert ir.lint() is ir
            assert not ir.mixed
            assert len(ir.edges()) == sum(len(n.edges) for n in geno.cell(cell).nodes)
    for space in result.spaces.values():
        cells = lower_space(space)
        assert list(cells) == list(space.cell_names)
        for shape in space.cells:
            ir = cells[shape.name].lint()
            assert ir.mixed
            assert len(ir.edges()) == sum(shape.inputs + i for i in range(shape.nodes))


# ---- DESIGN.md section 5, transcribed as DARTS (op, input) lists ---------------------

CNN = {
    "darts_v1": {
        "normal": [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
                   ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
        "normal_concat": [2, 3, 4, 5],
        "reduce": [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
                   ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
        "reduce_concat": [2, 3, 4, 5],
    },
    "darts_v2": {
        "normal": [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                   ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
        "normal_concat": [2, 3, 4, 5],
        "reduce": [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                   ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
        "reduce_concat": [2, 3, 4, 5],
    },
    "nasnet_a": {
        "normal": [("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
                   ("avg_pool_3x3", 1), ("skip_connect", 0), ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
                   ("sep_conv_3x3", 1), ("skip_connect", 1)],
        "normal_concat": [2, 3, 4, 5, 6],
        "reduce": [("sep_conv_5x5", 1), ("sep_conv_7x7", 0), ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
                   ("avg_pool_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 3), ("avg_pool_3x3", 2),
                   ("sep_conv_3x3", 2), ("max_pool_3x3", 1)],
        "reduce_concat": [4, 5, 6],
    },
    "amoebanet_a": {
        "normal": [("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
                   ("sep_conv_3x3", 0), ("avg_pool_3x3", 3), ("sep_conv_3x3", 1), ("skip_connect", 1),
                   ("skip_connect", 0), ("avg_pool_3x3", 1)],
        "normal_concat": [4, 5, 6],
        "reduce": [("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
                   ("sep_conv_7x7", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1),
                   ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5)],
        "reduce_concat": [3, 4, 6],
    },
}

RNN = {
    "darts_rnn_v1": {
        "recurrent": [("relu", 0), ("relu", 1), ("tanh", 2), ("relu", 3), ("relu", 4), ("identity", 1),
                      ("relu", 5), ("relu", 1)],
        "concat": list(range(1, 9)),
    },
    "darts_rnn_v2": {
        "recurrent": [("sigmoid", 0), ("relu", 1), ("relu", 1), ("identity", 1), ("tanh", 2), ("sigmoid", 5),
                      ("tanh", 3), ("relu", 5)],
        "concat": list(range(1, 9)),
    },
    "enas": {
        "recurrent": [("tanh", 0), ("tanh", 1), ("relu", 1), ("tanh", 3), ("tanh", 3), ("relu", 3), ("relu", 4),
                      ("relu", 7), ("relu", 8), ("relu", 8), ("relu", 8)],
        "concat": [2, 5, 6, 9, 10, 11],
    },
}


def _genotype(name: str) -> GenotypeSpec:
    return load(str(SPECS / "genotypes" / f"{name}.geno")).genotypes[name]


@pytest.mark.parametrize("name", sorted({**CNN, **RNN}))
def test_shipped_genotype_matches_design(name: str) -> None:
    fields = read_darts(tree_to_darts(_genotype(name))).fields
    assert fields == {**CNN, **RNN}[name]


def test_darts_v2_exports_to_the_exact_darts_tuple() -> None:
    assert tree_to_darts(_genotype("darts_v2")) == (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
        "normal_concat=[2, 3, 4, 5], "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[2, 3, 4, 5])"
    )


def test_darts_rnn_v2_exports_to_the_exact_darts_tuple() -> None:
    assert tree_to_darts(_genotype("darts_rnn_v2")) == (
        "Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), "
        "('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=[1, 2, 3, 4, 5, 6, 7, 8])"
    )


def test_genotype_spaces_and_shapes() -> None:
    expected_space = {"darts_v1": "darts_cnn", "darts_v2": "darts_cnn", "nasnet_a": "nasnet",
                      "amoebanet_a": "amoebanet", "darts_rnn_v1": "darts_rnn", "darts_rnn_v2": "darts_rnn",
                      "enas": "enas_rnn"}
    for name, space in expected_space.items():
        geno = _genotype(name)
        assert geno.space.name == space
        assert geno.kind == ("rnn" if name in RNN else "cnn")
    # reduction cells stride 2, normal cells stride 1
    for name in CNN:
        geno = _genotype(name)
        assert geno.cell("normal").shape.stride == 1
        assert geno.cell("reduce").shape.stride == 2


def test_darts_cnn_space_is_the_papers() -> None:
    space = load(str(SPECS / "spaces" / "darts_cnn.geno")).spaces["darts_cnn"]
    assert space.ops == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                         "dil_conv_3x3", "dil_conv_5x5")
    assert [(c.name, c.inputs, c.nodes, c.keep, c.reducer, c.stride) for c in space.cells] == [
        ("normal", 2, 4, 2, "concat", 1), ("reduce", 2, 4, 2, "concat", 2)]
    assert space.derive.exclude == ("none",) and space.derive.distinct
    rnn = load(str(SPECS / "spaces" / "darts_rnn.geno")).spaces["darts_rnn"]
    assert rnn.kind == "rnn" and rnn.ops == ("none", "tanh", "relu", "sigmoid", "identity")
    assert [(c.inputs, c.nodes, c.keep, c.reducer) for c in rnn.cells] == [(1, 8, 1, "mean")]


def test_networks_match_the_paper() -> None:
    cifar = load(str(SPECS / "networks" / "cifar.geno")).networks["cifar"]
    assert (cifar.channels, cifar.layers, cifar.reduction_cells(), cifar.auxiliary_cell()) == (36, 20, (6, 13), 13)
    assert (cifar.auxiliary_weight, cifar.drop_path) == (0.4, 0.2)
    search = load(str(SPECS / "networks" / "cifar_search.geno")).networks["cifar_search"]
    assert (search.channels, search.layers, search.reduction_cells(), search.auxiliary) == (16, 8, (2, 5), None)
    ptb = load(str(SPECS / "networks" / "ptb.geno")).networks["ptb"]
    assert (ptb.kind, ptb.embedding, ptb.hidden, ptb.tied) == ("rnn", 850, 850, True)


def test_a_spec_using_a_shipped_space_by_name() -> None:
    text = (SPECS / "genotypes" / "darts_v2.geno").read_text(encoding="utf-8")
    result = load_text(text.replace("darts_v2", "copy"), "<copy>")
    assert result.genotypes["copy"].cells == _genotype("darts_v2").cells
