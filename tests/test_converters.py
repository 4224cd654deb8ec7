"""Converters: DARTS tuples, NAS-Bench-201 arch strings and NASLib's compact tuples
round-trip through checked genotype specs; malformed input is a SpecError at the
offending column."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import SPECS
from genolang.cli import main
from genolang.errors import SpecError
from genolang.interop import FORMATS
from genolang.interop.naslib import OPS as NASLIB_OPS
from genolang.interop.naslib import read_naslib
from genolang.interop.nb201 import OPS_201, read_nb201
from genolang.ir.lower import lower_genotype, lower_space
from genolang.parse.ast import Genotype, SpecFile
from genolang.parse.printer import format_spec
from genolang.spec.check import load, load_text
from genolang.spec.checked import GenotypeSpec
from genolang.spec.resolve import Library
from genolang.vcs import genotype_hash

GENOTYPES = sorted((SPECS / "genotypes").glob("*.geno"))
IDS = [p.stem for p in GENOTYPES]

NB201 = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|nor_conv_1x1~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|none~0|skip_connect~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|none~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|",
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
]


def _random_nb201(rng: random.Random) -> str:
    return "+".join("|" + "|".join(f"{rng.choice(OPS_201)}~{i}" for i in range(node)) + "|" for node in (1, 2, 3))


NB201_RANDOM = sorted({_random_nb201(random.Random(seed)) for seed in range(40)})


def imported(fmt: str, text: str, name: str = "imported", space: str | None = None) -> GenotypeSpec:
    """Text in ``fmt`` -> genotype tree -> canonical spec text -> checked genotype."""
    tree = FORMATS[fmt].read(text, "<text>", name, space)
    spec_text = format_spec(SpecFile((tree,)))
    checked = load_text(spec_text, "/nowhere/imported.geno", Library.for_file(None))
    return checked.single("genotype")


# ---- NAS-Bench-201 ------------------------------------------------------------------------

def test_nb201_space_is_shipped_and_lowers_to_a_last_node_supernet() -> None:
    space = load(str(SPECS / "spaces" / "nb201.geno")).single("space")
    assert space.ops == OPS_201
    shape = space.cells[0]
    assert (shape.inputs, shape.nodes, shape.keeps_all, shape.reducer) == (1, 3, True, "last")
    assert [shape.terms_of(i) for i in range(3)] == [1, 2, 3]
    assert space.derive.exclude == ()
    cell = lower_space(space)["normal"]
    assert len(cell.edges()) == 6 and cell.output_nodes == ["n3"]


@pytest.mark.parametrize("arch", NB201 + NB201_RANDOM)
def test_nb201_round_trip(arch: str) -> None:
    g = imported("nb201", arch)
    assert g.space.name == "nb201" and [c.name for c in g.cells] == ["normal"]
    cell = g.cells[0]
    assert cell.output == ("n3",) and [len(n.edges) for n in cell.nodes] == [1, 2, 3]
    assert FORMATS["nb201"].write(g) == arch
    ir = lower_genotype(g)["normal"]
    assert ir.output_nodes == ["n3"] and len(ir.edges()) == 6


def test_nb201_strings_are_distinct_architectures() -> None:
    archs = NB201 + NB201_RANDOM
    assert len(set(archs)) >= 10 and sum("none" in a for a in archs) >= 3
    hashes = {genotype_hash(imported("nb201", a)) for a in archs}
    assert len(hashes) == len(set(archs))


def test_nb201_export_sorts_edges_by_input(tmp_path: Path) -> None:
    text = ("genolang 1\ngenotype g : nb201 {\n    normal {\n        n1 = none(c0)\n"
            "        n2 = skip_connect(n1) + nor_conv_1x1(c0)\n"
            "        n3 = avg_pool_3x3(n2) + none(c0) + nor_conv_3x3(n1)\n        out = last(n3)\n    }\n}\n")
    g = load_text(text, str(tmp_path / "g.geno")).single("genotype")
    expected = "|none~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|"
    assert FORMATS["nb201"].write(g) == expected


BAD_NB201 = [
    # (text, line, column, part of the message)
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pol_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", 1, 34,
     "unknown NAS-Bench-201 op 'avg_pol_3x3'; did you mean 'avg_pool_3x3'?"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~2|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", 1, 47,
     "node 2 cannot read node 2"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|", 1, 50,
     "node 3 has no edge from node 2"),
    ("|nor_conv_3x3~0|+nor_conv_3x3~0|avg_pool_3x3~1|", 1, 18, "expected '|' to open node 2"),
    ("|nor_conv_3x3 0|", 1, 2, "has no '~input'"),
    ("|nor_conv_3x3~x|", 1, 15, "input 'x' of node 1 is not a node number"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~0|", 1, 47, "node 2 reads node 0 twice"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2", 1, 95,
     "node 3 is not closed"),
    ("  \n |nor_conv_3x3~0|+|bad~0|", 2, 20, "unknown NAS-Bench-201 op 'bad'"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", 1, 49, "has 3 nodes, this string has 2"),
    (NB201[0] + "+|none~0|none~1|none~2|none~3|", 1, 97, "a NAS-Bench-201 cell has 3 nodes; this is node 4"),
    ("|sep_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", 1, 2, "unknown NAS-Bench-201 op 'sep_conv_3x3'"),
    ("|nor_conv_3x3~0||", 1, 17, "empty edge in node 1"),
]


@pytest.mark.parametrize("text, line, column, message", BAD_NB201)
def test_malformed_nb201_strings_point_at_the_column(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(SpecError) as info:
        read_nb201(text, "<arg>")
    diag = info.value.diagnostics[0]
    assert diag.path == "<arg>" and diag.span is not None
    assert (diag.span.line, diag.span.column) == (line, column)
    assert message in diag.message
    assert "^" in info.value.render()


def test_nb201_rejects_genotypes_of_other_spaces() -> None:
    g = load(str(SPECS / "genotypes" / "darts_v2.geno")).single("genotype")
    with pytest.raises(SpecError, match="holds one cell"):
        FORMATS["nb201"].write(g)
    rnn = load(str(SPECS / "genotypes" / "darts_rnn_v2.geno")).single("genotype")
    with pytest.raises(SpecError, match="is not a NAS-Bench-201 cell"):
        FORMATS["nb201"].write(rnn)


# ---- NASLib's compact tuples ---------------------------------------------------------------

NASLIB_FITS = {"darts_v1", "darts_v2"}


@pytest.mark.parametrize("path", GENOTYPES, ids=IDS)
def test_naslib_round_trip_of_shipped_genotypes(path: Path) -> None:
    g = load(str(path)).single("genotype")
    if path.stem not in NASLIB_FITS:
        with pytest.raises(SpecError):
            FORMATS["naslib"].write(g)
        return
    compact = FORMATS["naslib"].write(g)
    back = imported("naslib", compact, g.name)
    assert format_spec(SpecFile((_tree(back),))) == format_spec(SpecFile((_tree(g),)))
    assert FORMATS["naslib"].write(back) == compact


def _tree(g: GenotypeSpec) -> Genotype:
    from genolang.spec.syntax import genotype_tree

    return genotype_tree(g)


def test_naslib_compact_of_darts_v2_matches_naslib_numbering() -> None:
    g = load(str(SPECS / "genotypes" / "darts_v2.geno")).single("genotype")
    compact = FORMATS["naslib"].write(g)
    # DARTS_V2 normal starts (sep_conv_3x3, 0), (sep_conv_3x3, 1); sep_conv_3x3 is op 3 of NASLib's list
    assert compact.startswith("(((0, 3), (1, 3), (0, 3), (1, 3), (1, 3), (0, 2), (0, 2), (2, 5)), ((0, 0), (1, 0),")
    assert NASLIB_OPS.index("sep_conv_3x3") == 3


@pytest.mark.parametrize("seed", range(10))
def test_naslib_round_trip_of_random_compacts(seed: int) -> None:
    rng = random.Random(seed)
    cells = []
    for _ in range(2):
        pairs = []
        for node in range(2, 6):
            for src in rng.sample(range(node), 2):
                pairs.append(f"({src}, {rng.randrange(len(NASLIB_OPS))})")
        cells.append("(" + ", ".join(pairs) + ")")
    compact = "(" + ", ".join(cells) + ")"
    assert FORMATS["naslib"].write(imported("naslib", compact)) == compact


BAD_NASLIB = [
    ("(((0, 3), (1, 3), (0, 3), (1, 3), (1, 3), (0, 2), (0, 2), (2, 9)), ("
     + ", ".join(["(0, 0)", "(1, 0)"] * 4) + "))",
     1, 63, "op index 9 is out of range 0..6"),
    ("(((0, 3), (1, 3)), ((0, 0), (1, 0)))", 1, 2, "the normal cell has 2 entries, expected 8"),
    ("(((0, 3), (1, 3), (0, 3), (5, 3), (1, 3), (0, 2), (0, 2), (2, 5)), ())", 1, 28,
     "normal pair 3 (node 3): input node 5 is out of range 0..2"),
    ("(((0, 3), (1, 3), (0, 'x'), (1, 3), (1, 3), (0, 2), (0, 2), (2, 5)), ())", 1, 23, "op index must be a whole"),
    ("(((0, 3), (1, 3)", 1, 2, "not a compact tuple: '(' was never closed"),
    ("  (1, 2, 3)", 1, 3, "the compact tuple (normal, reduce) has 3 entries"),
]


@pytest.mark.parametrize("text, line, column, message", BAD_NASLIB)
def test_malformed_naslib_compacts_point_at_the_column(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(SpecError) as info:
        read_naslib(text, "<arg>")
    diag = info.value.diagnostics[0]
    assert diag.span is not None and (diag.span.line, diag.span.column) == (line, column), diag
    assert message in diag.message


# ---- DARTS tuples ------------------------------------------------------------------------

@pytest.mark.parametrize("path", GENOTYPES, ids=IDS)
def test_darts_round_trip_of_shipped_genotypes(path: Path) -> None:
    g = load(str(path)).single("genotype")
    text = FORMATS["darts"].write(g)
    back = imported("darts", text, g.name, g.space.name)
    assert genotype_hash(back) == genotype_hash(g)
    assert format_spec(SpecFile((_tree(back),))) == format_spec(SpecFile((_tree(g),)))


# ---- the commands -------------------------------------------------------------------------

def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_import_and_export_nb201(tmp_path: Path) -> None:
    out = tmp_path / "arch.geno"
    code, _, err = run("import", "--from", "nb201", NB201[2], "--name", "resnetish", "-o", str(out))
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert "genotype resnetish : nb201 {" in text and "n2 = none(c0) + nor_conv_3x3(n1)" in text
    assert "out = last(n3)" in text
    code, printed, _ = run("export", "--to", "nb201", str(out))
    assert code == 0 and printed == NB201[2] + "\n"
    code, _, err = run("import", "--from", "nb201", NB201[0].replace("avg_pool", "avg_pol"))
    assert code == 1 and "<text>:1:34: error: unknown NAS-Bench-201 op 'avg_pol_3x3'" in err
    assert "Traceback" not in err


def test_cli_naslib_and_unknown_formats() -> None:
    v2 = str(SPECS / "genotypes" / "darts_v2.geno")
    code, compact, _ = run("export", "--to", "naslib", v2)
    assert code == 0
    code, spec, _ = run("import", "--from", "naslib", compact.strip(), "--name", "darts_v2")
    assert code == 0 and "n5 = skip_connect(c0) + dil_conv_3x3(n2)" in spec
    code, _, err = run("import", "--from", "nb202", NB201[0])
    assert code == 2 and "'nb202' is not one of" in err
    code, _, err = run("export", "--to", "naslib", str(SPECS / "genotypes" / "nasnet_a.geno"))
    assert code == 1 and "is not a DARTS cell" in err


def test_every_format_is_tested() -> None:
    assert set(FORMATS) == {"darts", "nb201", "naslib"}
    assert all(callable(fn) for f in FORMATS.values() for fn in (f.read, f.write))
    assert list(itertools.islice(NB201_RANDOM, 1))
