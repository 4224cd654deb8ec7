"""Semantic diff and canonical hashes: equivalent genotypes (renumbered nodes, reordered
terms, reordered outputs) hash alike and diff as equal; any real change is found and
named; the CLI exits 0 / 1 / 2 like diff."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from _specs import of_kind
from conftest import SPECS
from genolang.cli import main
from genolang.parse import ast as A
from genolang.parse.printer import format_spec
from genolang.spec.check import load, load_text
from genolang.spec.checked import GenotypeSpec, SpaceSpec
from genolang.vcs import cell_hash, genotype_hash, space_hash
from genolang.vcs.canon import canonical_cell, equivalent, space_text
from genolang.vcs.diff import diff_genotypes, diff_spaces

GENOTYPES = sorted((SPECS / "genotypes").glob("*.geno"))
IDS = [p.stem for p in GENOTYPES]


def geno(path: Path | str) -> GenotypeSpec:
    return of_kind(GenotypeSpec, load(str(path)).single("genotype"))


def text_of(g: GenotypeSpec, cells: list[tuple[str, list[tuple[str, list[tuple[str, str]]]], str, list[str]]]) -> str:
    return format_spec(A.SpecFile((A.make_genotype(g.name, g.space.name, cells),)))


def scrambled(g: GenotypeSpec, rng: random.Random, prefix: str = "x") -> str:
    """The text of ``g`` with every cell's nodes renamed, written in another
    topological order, terms and outputs shuffled: the same architecture."""
    cells = []
    for cell in g.cells:
        deps = {n.name: {src for _, src in n.edges if src in cell.node_names} for n in cell.nodes}
        order: list[str] = []
        while len(order) < len(cell.nodes):
            ready = [n for n in cell.node_names if n not in order and deps[n] <= set(order)]
            order.append(rng.choice(ready))
        names = [f"{prefix}{i}" for i in range(len(order))]
        rng.shuffle(names)
        rename = dict(zip(order, names))
        nodes = []
        for name in order:
            terms = [(op, rename.get(src, src)) for op, src in cell.nodes[cell.node_names.index(name)].edges]
            rng.shuffle(terms)
            nodes.append((rename[name], terms))
        output = [rename[n] for n in cell.output]
        rng.shuffle(output)
        cells.append((cell.name, nodes, cell.shape.reducer, output))
    return text_of(g, cells)


def reloaded(text: str, tmp_path: Path, name: str = "b.geno") -> GenotypeSpec:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return geno(path)


# ---- hashes ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", GENOTYPES, ids=IDS)
def test_scrambled_genotypes_hash_alike_and_diff_equal(path: Path, tmp_path: Path) -> None:
    g = geno(path)
    rng = random.Random(path.stem)
    for trial in range(5):
        other = reloaded(scrambled(g, rng), tmp_path, f"s{trial}.geno")
        assert genotype_hash(other) == genotype_hash(g)
        assert [cell_hash(c) for c in other.cells] == [cell_hash(c) for c in g.cells]
        d = diff_genotypes(g, other)
        assert d.equivalent and d.summary() and all("equivalent" in s for s in d.summary())


def test_hashes_are_sha256_hex_and_differ_between_shipped_genotypes() -> None:
    hashes = {p.stem: genotype_hash(geno(p)) for p in GENOTYPES}
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes.values())
    assert len(set(hashes.values())) == len(hashes)
    cells = [cell_hash(c) for p in GENOTYPES for c in geno(p).cells]
    assert len(set(cells)) == len(cells)


def test_hash_ignores_names_and_comments(tmp_path: Path) -> None:
    text = (SPECS / "genotypes" / "darts_v2.geno").read_text(encoding="utf-8")
    renamed = text.replace("genotype darts_v2", "genotype other").replace("# DARTS", "# a comment about DARTS")
    assert genotype_hash(reloaded(renamed, tmp_path)) == genotype_hash(geno(SPECS / "genotypes" / "darts_v2.geno"))


@pytest.mark.parametrize("path", GENOTYPES, ids=IDS)
def test_canonical_cell_is_a_fixed_point(path: Path, tmp_path: Path) -> None:
    g = geno(path)
    cells = []
    for cell in g.cells:
        canon = canonical_cell(cell)
        assert canonical_cell(canon.cell).text == canon.text
        assert sorted(canon.order) == sorted(cell.node_names)
        cells.append((cell.name, [(n.name, list(n.edges)) for n in canon.cell.nodes], cell.shape.reducer,
                      list(canon.cell.output)))
    # the canonical cells form a valid genotype with the same hash
    assert genotype_hash(reloaded(text_of(g, cells), tmp_path)) == genotype_hash(g)


def test_one_op_changes_the_hash_of_that_cell_only(tmp_path: Path) -> None:
    path = SPECS / "genotypes" / "darts_v2.geno"
    changed = path.read_text(encoding="utf-8").replace("dil_conv_3x3(n2)", "sep_conv_3x3(n2)")
    a, b = geno(path), reloaded(changed, tmp_path)
    assert genotype_hash(a) != genotype_hash(b)
    assert cell_hash(a.cell("normal")) != cell_hash(b.cell("normal"))
    assert cell_hash(a.cell("reduce")) == cell_hash(b.cell("reduce"))


NASNET_SPACE = "nasnet"  # 5 nodes, 2 terms each, inputs may repeat


def _nasnet_cell(nodes: str, out: str) -> str:
    reduce = "\n".join(f"n{k} = skip_connect(c0) + skip_connect(c1)" for k in range(2, 7))
    return (f"genolang 1\ngenotype g : {NASNET_SPACE} {{\n normal {{\n{nodes}\nout = concat({out})\n}}\n"
            f" reduce {{\n{reduce}\nout = concat(n2..n6)\n}}\n}}\n")


def test_sharing_is_not_confused_with_duplication() -> None:
    """n4 reading two identical nodes is not n4 reading one of them twice, although
    a hash of each node's computation tree alone would call them equal."""
    head = "n2 = sep_conv_3x3(c0) + sep_conv_3x3(c1)\nn3 = sep_conv_3x3(c0) + sep_conv_3x3(c1)\n"
    tail = "\nn5 = avg_pool_3x3(c0) + avg_pool_3x3(c1)\nn6 = avg_pool_3x3(c0) + avg_pool_3x3(c1)"
    shared = of_kind(GenotypeSpec, load_text(_nasnet_cell(head + "n4 = skip_connect(n2) + skip_connect(n3)" + tail,
                                                          "n4, n5, n6"), "/x/a.geno").single("genotype"))
    doubled = of_kind(GenotypeSpec, load_text(_nasnet_cell(head + "n4 = skip_connect(n2) + skip_connect(n2)" + tail,
                                                           "n4, n5, n6"), "/x/b.geno").single("genotype"))
    assert genotype_hash(shared) != genotype_hash(doubled)
    assert not diff_genotypes(shared, doubled).equivalent


def test_identical_twins_are_interchangeable() -> None:
    """Swapping which of two identical nodes a later node reads is no change."""
    head = "n2 = sep_conv_3x3(c0) + sep_conv_3x3(c1)\nn3 = sep_conv_3x3(c0) + sep_conv_3x3(c1)\n"
    tail = "\nn5 = avg_pool_3x3(n4) + skip_connect(c1)\nn6 = avg_pool_3x3(c0) + avg_pool_3x3(c1)"
    a = of_kind(GenotypeSpec, load_text(_nasnet_cell(head + "n4 = dil_conv_3x3(n2) + skip_connect(n3)" + tail,
                                                     "n2..n6").replace("dil_conv_3x3", "sep_conv_5x5"),
                                        "/x/a.geno").single("genotype"))
    b = of_kind(GenotypeSpec, load_text(_nasnet_cell(head + "n4 = dil_conv_3x3(n3) + skip_connect(n2)" + tail,
                                                     "n2..n6").replace("dil_conv_3x3", "sep_conv_5x5"),
                                        "/x/b.geno").single("genotype"))
    assert equivalent(a, b)


def test_output_order_is_ignored_but_output_membership_is_not(tmp_path: Path) -> None:
    path = SPECS / "genotypes" / "nasnet_a.geno"
    text = path.read_text(encoding="utf-8")
    reordered = text.replace("out = concat(n4, n5, n6)", "out = concat(n6, n4, n5)")
    assert reordered != text
    assert genotype_hash(reloaded(reordered, tmp_path, "r.geno")) == genotype_hash(geno(path))
    fewer = text.replace("out = concat(n4, n5, n6)", "out = concat(n4, n5, n6, n3)")
    d = diff_genotypes(geno(path), reloaded(fewer, tmp_path, "f.geno"))
    assert not d.equivalent
    assert d.summary() == ["cell reduce: output: concat(n4, n5, n6) -> concat(n4, n5, n6, n3)"]


def test_recurrent_mean_order_and_numbering_are_ignored(tmp_path: Path) -> None:
    path = SPECS / "genotypes" / "enas.geno"
    text = path.read_text(encoding="utf-8").replace("out = mean(n2, n5, n6, n9, n10, n11)",
                                                    "out = mean(n11, n10, n9, n6, n5, n2)")
    assert genotype_hash(reloaded(text, tmp_path)) == genotype_hash(geno(path))


# ---- diffs ------------------------------------------------------------------------------

def test_diff_names_the_changed_op_in_a_renumbered_cell(tmp_path: Path) -> None:
    """The hidden-isomorphism case plus one real change: n2 and n3 swapped everywhere
    and one op changed; only the op change is reported, in A's names."""
    path = SPECS / "genotypes" / "darts_v2.geno"
    text = path.read_text(encoding="utf-8")
    swapped = re.sub(r"\bn([23])\b", lambda m: "n" + {"2": "3", "3": "2"}[m.group(1)], text)
    assert swapped != text
    assert genotype_hash(reloaded(swapped, tmp_path, "s.geno")) == genotype_hash(geno(path))
    changed = swapped.replace("dil_conv_3x3(n3)", "sep_conv_3x3(n3)")
    d = diff_genotypes(geno(path), reloaded(changed, tmp_path, "c.geno"))
    assert not d.equivalent
    assert d.summary() == ["cell normal: node n5: dil_conv_3x3(n2) -> sep_conv_3x3(n2)",
                           "cell reduce: equivalent (nodes renamed: n2 -> n3, n3 -> n2)"]
    rendered = d.render("a.geno", "b.geno")
    assert "-   n5 = skip_connect(c0) + dil_conv_3x3(n2)\n+   n5 = skip_connect(c0) + sep_conv_3x3(n2)\n" in rendered


def test_term_order_alone_is_equivalent(tmp_path: Path) -> None:
    path = SPECS / "genotypes" / "darts_v1.geno"
    text = path.read_text(encoding="utf-8")
    flipped = re.sub(r"= (\w+\(\w+\)) \+ (\w+\(\w+\))", r"= \2 + \1", text)
    assert flipped != text
    d = diff_genotypes(geno(path), reloaded(flipped, tmp_path))
    assert d.equivalent
    assert [c.status for c in d.cells] == ["equivalent", "equivalent"]


def test_diff_between_darts_v1_and_v2_is_by_name() -> None:
    d = diff_genotypes(geno(SPECS / "genotypes" / "darts_v1.geno"), geno(SPECS / "genotypes" / "darts_v2.geno"))
    assert d.summary() == [
        "cell normal: node n3: skip_connect(c0) -> sep_conv_3x3(c0)",
        "cell normal: node n5: sep_conv_3x3(c0) -> skip_connect(c0); skip_connect(n2) -> dil_conv_3x3(n2)",
        "cell reduce: node n3: max_pool_3x3(c0) -> max_pool_3x3(c1)",
        "cell reduce: node n5: avg_pool_3x3(c0) -> max_pool_3x3(c1)",
    ]


def test_diff_reports_cells_of_different_spaces() -> None:
    d = diff_genotypes(geno(SPECS / "genotypes" / "darts_v2.geno"), geno(SPECS / "genotypes" / "nasnet_a.geno"))
    lines = d.summary()
    assert "cell normal: nodes 4 -> 5" in lines
    assert any(line.startswith("cell normal: node n6 added: ") for line in lines)


def test_space_diff_and_hash(tmp_path: Path) -> None:
    path = SPECS / "spaces" / "darts_cnn.geno"
    a = of_kind(SpaceSpec, load(str(path)).single("space"))
    text = path.read_text(encoding="utf-8")
    same = text.replace("space darts_cnn", "space renamed").replace("        keep = 2\n", "")  # default spelt out
    b = of_kind(SpaceSpec, load_text(same, str(tmp_path / "b.geno")).single("space"))
    assert space_hash(a) == space_hash(b) and space_text(a) == space_text(b)
    assert diff_spaces(a, b).equivalent
    other = text.replace("dil_conv_5x5\n", "dil_conv_5x5, sep_conv_7x7\n").replace("        stride = 2\n", "")
    c = of_kind(SpaceSpec, load_text(other, str(tmp_path / "c.geno")).single("space"))
    d = diff_spaces(a, c)
    assert space_hash(a) != space_hash(c)
    assert d.summary() == ["ops: added sep_conv_7x7", "cell reduce: stride 2 -> 1"]
    assert "+    ops = none, max_pool_3x3" in d.render()


# ---- the commands ------------------------------------------------------------------------

def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_diff_exit_status(tmp_path: Path) -> None:
    v1, v2 = str(SPECS / "genotypes" / "darts_v1.geno"), str(SPECS / "genotypes" / "darts_v2.geno")
    code, out, _ = run("diff", v2, v2)
    assert code == 0 and "equivalent genotypes" in out
    code, out, _ = run("diff", v1, v2)
    assert code == 1 and "cell reduce: node n5: avg_pool_3x3(c0) -> max_pool_3x3(c1)" in out
    code, out, _ = run("diff", "-q", v1, v2)
    assert code == 1 and out == ""
    code, _, err = run("diff", v1, str(tmp_path / "missing.geno"))
    assert code == 2 and "no such file" in err
    code, _, err = run("diff", v1, str(SPECS / "spaces" / "darts_cnn.geno"))
    assert code == 2 and "cannot compare a genotype" in err
    code, _, err = run("diff", v1, str(SPECS / "networks" / "cifar.geno"))
    assert code == 2 and "one genotype (or one space)" in err
    bad = tmp_path / "bad.geno"
    bad.write_text("genolang 1\ngenotype g : darts_cnn {\n", encoding="utf-8")
    code, _, err = run("diff", v1, str(bad))
    assert code == 2 and "bad.geno:2" in err
    code, _, _ = run("diff", v1)
    assert code == 2
    code, out, _ = run("diff", str(SPECS / "spaces" / "darts_cnn.geno"), str(SPECS / "spaces" / "nasnet.geno"))
    assert code == 1 and "ops: removed none, dil_conv_3x3, dil_conv_5x5" in out


def test_cli_hash(tmp_path: Path) -> None:
    v2 = SPECS / "genotypes" / "darts_v2.geno"
    code, out, _ = run("hash", str(v2), str(SPECS / "spaces" / "darts_cnn.geno"))
    assert code == 0
    lines = out.splitlines()
    g = geno(v2)
    assert lines[0] == f"{genotype_hash(g)[:16]}  genotype darts_v2  ({v2})"
    assert lines[1] == f"{cell_hash(g.cell('normal'))[:16]}    cell normal"
    assert lines[3].endswith("space darts_cnn  (" + str(SPECS / "spaces" / "darts_cnn.geno") + ")")
    code, out, _ = run("hash", "--full", str(v2))
    assert out.split()[0] == genotype_hash(g)
    swapped = reloaded(scrambled(g, random.Random(1)), tmp_path)
    code, out2, _ = run("hash", "--full", swapped.path)
    assert out2.split()[0] == out.split()[0]
    code, _, err = run("hash", str(tmp_path / "nope.geno"))
    assert code == 2 and "no such file" in err


def test_commands_do_not_import_torch() -> None:
    import subprocess

    code = ("import sys\nfrom click.testing import CliRunner\nfrom genolang.cli import main\n"
            f"r = CliRunner().invoke(main, ['diff', {str(SPECS / 'genotypes' / 'darts_v1.geno')!r}, "
            f"{str(SPECS / 'genotypes' / 'darts_v2.geno')!r}])\n"
            f"r = CliRunner().invoke(main, ['hash', {str(SPECS / 'genotypes' / 'darts_v1.geno')!r}])\n"
            "assert r.exit_code == 0, r.output\n"
            "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
