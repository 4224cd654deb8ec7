"""``genolang sample``: random genotypes of a space. The sampler's support is exactly the
set of cells the derive rule allows (enumerated here independently), its frequencies are
uniform over that set (chi-square tests with fixed seeds, p-values from scipy), derive
turns alphas that favour a sample into that very sample, and the files carry their
provenance, never replace a file and need no torch."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
from collections import Counter
from pathlib import Path

import pytest

from _cli import assert_torch_free, run
from genolang.errors import SpecError
from genolang.ir.alphas import CellAlphas
from genolang.ir.derive import derive_genotype
from genolang.ir.lower import lower_space_cell
from genolang.search.sample import (
    NodeChoices,
    SampleError,
    draw_cell,
    draw_node,
    node_choices,
    sample_genotype,
    sample_genotypes,
    sample_rng,
    space_size,
)
from genolang.spec.check import load, load_text
from genolang.spec.checked import CellGenotype, SpaceSpec
from genolang.spec.lookup import load_named
from genolang.spec.validate import genotype_problems
from genolang.vcs import genotype_hash

chi2 = pytest.importorskip("scipy.stats").chi2

CAPPED = """genolang 1

space capped {
    ops = none, skip_connect, max_pool_3x3, sep_conv_3x3
    cell normal {
        inputs = 2
        nodes = 2
        keep = 2
        output = concat
    }
    derive {
        exclude = none
        distinct = true
        cap skip_connect = 1
    }
}
"""

REPEATS = """genolang 1

space repeats {
    ops = skip_connect, max_pool_3x3, sep_conv_3x3
    cell normal {
        inputs = 2
        nodes = 2
        keep = 2
        output = concat
    }
    derive {
        distinct = false
    }
}
"""

ALL = """genolang 1

space all_edges {
    ops = none, skip_connect, nor_conv_3x3
    cell normal {
        inputs = 1
        nodes = 2
        keep = all
        output = last
    }
    derive {
        exclude = nothing
    }
}
"""

RECURRENT = """genolang 1

space tiny_rnn {
    ops = none, tanh, relu
    cell recurrent {
        inputs = 1
        nodes = 3
        keep = 1
        output = mean
    }
    derive {
        exclude = none
    }
}
"""


def space_of(text: str) -> SpaceSpec:
    space = load_text(text, "<test>").single("space")
    assert isinstance(space, SpaceSpec)
    return space


def cell_key(cell: CellGenotype) -> tuple[frozenset[tuple[str, str]], ...]:
    """A cell as its nodes' term sets (the order of a node's terms does not matter)."""
    return tuple(frozenset(node.edges) for node in cell.nodes)


def enumerate_cells(space: SpaceSpec) -> set[tuple[frozenset[tuple[str, str]], ...]]:
    """Every cell the derive rule allows, by brute force and independently of the
    sampler: per node every admissible term set, then every combination within the caps."""
    shape = space.cells[0]
    rule = space.derive
    ops = [op for op in space.ops if op not in rule.exclude]
    per_node = []
    earlier = list(shape.input_names)
    for node in shape.node_names:
        if shape.keeps_all:
            sets = [frozenset(zip(choice, earlier)) for choice in itertools.product(ops, repeat=len(earlier))]
        elif rule.distinct:
            sets = [frozenset(zip(choice, srcs)) for srcs in itertools.combinations(earlier, shape.keep)
                    for choice in itertools.product(ops, repeat=shape.keep)]
        else:
            pairs = [(op, src) for src in earlier for op in ops]
            sets = [frozenset(c) for c in itertools.combinations(pairs, shape.keep)]
        per_node.append(sets)
        earlier.append(node)
    cells = set()
    for combo in itertools.product(*per_node):
        used = Counter(op for terms in combo for op, _ in terms)
        if all(used[op] <= limit for op, limit in rule.caps):
            cells.add(tuple(combo))
    return cells


def chi_square_p(counts: Counter, support: set, draws: int) -> float:  # type: ignore[type-arg]
    expected = draws / len(support)
    stat = sum((counts.get(key, 0) - expected) ** 2 / expected for key in support)
    return float(chi2.sf(stat, len(support) - 1))


@pytest.mark.parametrize("text, cells", [(CAPPED, 144), (REPEATS, 15 * 36), (ALL, 27),
                                         (RECURRENT, 48)])
def test_samples_are_uniform_over_the_cells_the_rule_allows(text: str, cells: int) -> None:
    space = space_of(text)
    support = enumerate_cells(space)
    shape = space.cells[0]
    choices = node_choices(space, shape)
    assert len(support) == cells
    # the support holds every cell the sampler can draw; 40 draws per cell on average
    draws = 40 * len(support)
    rng = sample_rng(7, 0)
    counts = Counter(cell_key(draw_cell(rng, space, shape, choices)) for _ in range(draws))
    assert set(counts) == support
    assert chi_square_p(counts, support, draws) > 0.01


def test_unequal_candidate_sets_make_every_node_configuration_equally_likely() -> None:
    """A distinct-input node whose edges offer 3, 1 and 2 ops has 3 + 6 + 2 = 11
    configurations of 2 terms; the sampler draws each as often (the input pair with
    probability proportional to its op choices), as per-edge candidate sets need."""
    node = NodeChoices("n3", (("c0", ("a", "b", "c")), ("c1", ("a",)), ("n2", ("a", "b"))), 2)
    assert node.count(distinct=True, keeps_all=False) == 11
    rng = sample_rng(3, 0)
    draws = 11 * 400
    counts = Counter(frozenset(draw_node(rng, node, True, False)) for _ in range(draws))
    support = {frozenset(zip(ops, srcs)) for srcs, opsets in
               [(("c0", "c1"), [("a", "b", "c"), ("a",)]), (("c0", "n2"), [("a", "b", "c"), ("a", "b")]),
                (("c1", "n2"), [("a",), ("a", "b")])] for ops in itertools.product(*opsets)}
    assert set(counts) == support and len(support) == 11
    assert chi_square_p(counts, support, draws) > 0.01
    # by input pair: 3/11, 6/11, 2/11
    pairs = Counter(tuple(sorted(src for _, src in key)) for key in counts.elements())
    for srcs, share in ((("c0", "c1"), 3 / 11), (("c0", "n2"), 6 / 11), (("c1", "n2"), 2 / 11)):
        assert abs(pairs[srcs] / draws - share) < 4 * math.sqrt(share * (1 - share) / draws)


def test_ops_are_uniform_and_none_is_never_kept_in_darts_cnn() -> None:
    space = load_named("space", "darts_cnn")
    assert isinstance(space, SpaceSpec)
    genos = sample_genotypes(space, 300, seed=11)
    ops = Counter(op for g in genos for c in g.cells for n in c.nodes for op, _ in n.edges)
    assert "none" not in ops and sum(ops.values()) == 300 * 2 * 4 * 2
    allowed = [op for op in space.ops if op != "none"]
    expected = sum(ops.values()) / len(allowed)
    stat = sum((ops[op] - expected) ** 2 / expected for op in allowed)
    assert chi2.sf(stat, len(allowed) - 1) > 0.01
    # node n5 reads 2 of its 5 inputs, each of the 10 pairs equally often
    pairs = Counter(tuple(sorted(src for _, src in g.cell("normal").nodes[3].edges)) for g in genos)
    assert len(pairs) == 10 and all(len(set(p)) == 2 for p in pairs)
    expected = 300 / 10
    assert chi2.sf(sum((v - expected) ** 2 / expected for v in pairs.values()), 9) > 0.01


@pytest.mark.parametrize("name", ["darts_cnn", "darts_rnn", "nasnet", "amoebanet", "enas_rnn", "nb201"])
def test_every_shipped_space_samples_valid_genotypes(name: str) -> None:
    space = load_named("space", name)
    assert isinstance(space, SpaceSpec)
    for geno in sample_genotypes(space, 5, seed=0):
        assert genotype_problems(geno) == []  # no error and no warning: the derive rule holds
    assert space_size(load_named("space", "nb201")) == 5 ** 6
    assert space_size(load_named("space", "darts_rnn")) == 4 ** 8 * math.factorial(8)


def test_derive_turns_alphas_that_favour_a_sample_into_that_sample() -> None:
    """Every sample is a genotype the search's derivation can produce: alphas that put
    most of each kept edge's weight on the kept op derive exactly the sample (a space
    with a cap, so the caps are kept too)."""
    space = space_of(load_named_source_text("darts_cnn").replace("distinct = true", "distinct = true\n"
                                                                  "cap skip_connect = 2"))
    assert space.derive.caps == (("skip_connect", 2),)
    for i in range(20):
        geno = sample_genotype(space, seed=5, index=i)
        alphas = {}
        for cell in geno.cells:
            ir = lower_space_cell(cell.shape, space)
            kept = {(src, node.name): op for node in cell.nodes for op, src in node.edges}
            rows = []
            for e in ir.edges():
                if (e.src, e.dst) in kept:
                    rows.append(tuple(0.6 if op == kept[(e.src, e.dst)] else 0.4 / 7 for op in space.ops))
                else:
                    rows.append(tuple(1 / 8 for _ in space.ops))
            alphas[cell.name] = CellAlphas(cell.name, tuple((e.src, e.dst) for e in ir.edges()), space.ops,
                                           tuple(rows))
        derived = derive_genotype(space, alphas, geno.name)
        assert [cell_key(c) for c in derived.cells] == [cell_key(c) for c in geno.cells]


def load_named_source_text(name: str) -> str:
    space = load_named("space", name)
    assert isinstance(space, SpaceSpec)
    return Path(space.path).read_text(encoding="utf-8")


def test_a_sample_depends_on_its_seed_and_index_alone() -> None:
    space = load_named("space", "darts_cnn")
    assert isinstance(space, SpaceSpec)
    eight, sixteen = sample_genotypes(space, 8, 1), sample_genotypes(space, 16, 1)
    assert [genotype_hash(g) for g in sixteen[:8]] == [genotype_hash(g) for g in eight]
    assert len({genotype_hash(g) for g in sixteen}) == 16
    assert genotype_hash(sample_genotypes(space, 1, 2)[0]) != genotype_hash(eight[0])


def test_rules_no_cell_can_meet_are_clear_errors() -> None:
    """Four edges with skip_connect the only allowed op cannot obey 'cap skip_connect =
    3'; a node cannot keep 2 distinct inputs when excluding leaves none."""
    tight = space_of(CAPPED.replace("ops = none, skip_connect, max_pool_3x3, sep_conv_3x3", "ops = none, skip_connect")
                     .replace("cap skip_connect = 1", "cap skip_connect = 3"))
    with pytest.raises(SampleError, match=r"not one of 10,000 random cells obeys the caps \(cap skip_connect = 3\)"):
        draw_cell(sample_rng(0, 0), tight, tight.cells[0])
    # the checker refuses a rule that excludes every op; a space built in code is still refused by the sampler
    with pytest.raises(SpecError, match="excludes every op"):
        space_of(CAPPED.replace("exclude = none", "exclude = none, skip_connect, max_pool_3x3, sep_conv_3x3"))
    capped = space_of(CAPPED)
    empty = dataclasses.replace(capped, derive=dataclasses.replace(capped.derive, exclude=capped.ops))
    with pytest.raises(SampleError, match="node n2 cannot keep 2 term"):
        draw_cell(sample_rng(0, 0), empty, empty.cells[0])


# ---- the command -----------------------------------------------------------------------------

def test_the_command_writes_checked_files_with_provenance(tmp_path: Path) -> None:
    out = tmp_path / "random"
    result = run("sample", "darts_cnn", "-n", "3", "--seed", "4", "-o", out)
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.geno"))
    assert [f.name for f in files] == ["sample_000.geno", "sample_001.geno", "sample_002.geno"]
    space = load_named("space", "darts_cnn")
    assert isinstance(space, SpaceSpec)
    space_sha = hashlib.sha256(Path(space.path).read_bytes()).hexdigest()
    for i, path in enumerate(files):
        text = path.read_text(encoding="utf-8")
        geno = load(str(path)).single("genotype")
        assert geno.name == f"sample_{i:03d}"
        assert f"random genotype {i} of 3 (seed 4) of space darts_cnn" in text
        assert f"sha256 {space_sha}" in text and f"seed 4, index {i}" in text
        assert f"genotype hash: {genotype_hash(geno)}" in text
        assert "space darts_cnn {" not in text  # the name resolves from the folder: not embedded
        assert genotype_hash(geno) == genotype_hash(sample_genotype(space, 4, i))


def test_the_command_never_replaces_a_file(tmp_path: Path) -> None:
    out = tmp_path / "random"
    out.mkdir()
    (out / "sample_001.geno").write_text("mine\n")
    result = run("sample", "darts_cnn", "-n", "3", "-o", out)
    assert result.exit_code == 2, result.output
    assert "sample_001.geno already exists" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["sample_001.geno"]
    assert (out / "sample_001.geno").read_text() == "mine\n"
    assert run("sample", "darts_cnn", "-n", "0", "-o", out).exit_code == 2
    assert run("sample", "darts_cnn", "-n", "1", "--prefix", "1x", "-o", out).exit_code == 2


def test_a_space_the_folder_cannot_name_is_embedded(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    space_file = tmp_path / "mine" / "capped.geno"
    space_file.write_text(CAPPED)
    out = tmp_path / "elsewhere"
    result = run("sample", space_file, "-n", "2", "-o", out)
    assert result.exit_code == 0, result.output
    text = (out / "sample_000.geno").read_text()
    assert "space capped {" in text
    checked = load(str(out / "sample_000.geno"))
    assert checked.single("genotype").space.derive.caps == (("skip_connect", 1),)


def test_sampling_needs_no_torch(tmp_path: Path) -> None:
    assert_torch_free([["sample", "nb201", "-n", "2", "-o", str(tmp_path / "s")]], tmp_path)
