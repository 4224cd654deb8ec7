"""Genotype files written for a space of the user's own ops check wherever they are
copied: the files of ``search`` (``--out``, the run folder) and of ``sample`` carry the
op declarations the space needs (shipped ops and plugins resolve by name anywhere)."""

from __future__ import annotations

from pathlib import Path

from _cli import run
from _search_util import write_tiny_cnn

USER_SPACE = """genolang 1

op relu_conv_3x3 = relu > conv(3, stride) > bn

space mine {
    ops = none, skip_connect, relu_conv_3x3
    cell normal {
        nodes = 2
    }
    cell reduce {
        nodes = 2
        stride = 2
    }
}
"""


def _checks_alone(path: Path, elsewhere: Path) -> None:
    """``path`` copied into an empty folder still checks (no GENOLANG_PATH)."""
    elsewhere.mkdir()
    copy = elsewhere / path.name
    copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    result = run("check", copy)
    assert result.exit_code == 0, result.output
    assert "op relu_conv_3x3 = " in copy.read_text(encoding="utf-8")


def test_sampled_genotypes_of_a_user_op_space_check_anywhere(tmp_path: Path) -> None:
    space = tmp_path / "specs" / "mine.geno"
    space.parent.mkdir()
    space.write_text(USER_SPACE, encoding="utf-8")
    result = run("sample", space, "-n", "2", "--seed", "1", "-o", tmp_path / "random")
    assert result.exit_code == 0, result.output
    _checks_alone(tmp_path / "random" / "sample_000.geno", tmp_path / "copy")


def test_found_genotypes_of_a_user_op_space_check_anywhere(tmp_path: Path) -> None:
    space = tmp_path / "specs" / "mine.geno"
    space.parent.mkdir()
    space.write_text(USER_SPACE, encoding="utf-8")
    net = write_tiny_cnn(tmp_path)
    out = tmp_path / "found" / "found.geno"
    out.parent.mkdir()
    result = run("search", space, "--network", net, "--epochs", "1", "--batch-size", "8", "--limit", "1",
                 "--out", out, "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.output
    _checks_alone(out, tmp_path / "copy")
    _checks_alone(tmp_path / "run" / "genotype.geno", tmp_path / "copy2")
    compiled = run("compile", out, "--network", net)
    assert compiled.exit_code == 0, compiled.output


def test_ops_that_expand_past_the_limit_are_refused_quickly(tmp_path: Path) -> None:
    """Nested repeats multiply, and an op doubling another doubles again: both are
    counted without expanding them, and refused at the op's name."""
    nested = tmp_path / "nested.geno"
    nested.write_text("genolang 1\n\nop n1 = 16 * (16 * (16 * (16 * (16 * (relu > conv(3, stride) > bn)))))\n")
    result = run("check", nested)
    assert result.exit_code == 1 and "nested.geno:3:4: error: op 'n1' expands to more than 256 layers" in result.output
    chain = tmp_path / "chain.geno"
    chain.write_text("genolang 1\n\nop a0 = relu > conv(3, stride) > bn\n"
                     + "".join(f"op a{i} = 2 * (a{i - 1} > a{i - 1})\n" for i in range(1, 40)))
    result = run("check", chain)
    assert result.exit_code == 1 and "op 'a4' expands to more than 256 layers" in result.output


def test_a_skeleton_of_one_reduction_cell_searches(tmp_path: Path) -> None:
    """With one cell (a reduction) the normal cell's alphas take no part: their
    gradient is zero, not an error."""
    net = tmp_path / "one.geno"
    net.write_text("genolang 1\nnetwork one {\n    stem = cifar\n    stem_multiplier = 3\n    channels = 4\n"
                   "    layers = 1\n    reduce_at = 1/3, 2/3\n    input_size = 8\n}\n")
    result = run("search", "darts_cnn", "--network", net, "--epochs", "1", "--batch-size", "8", "--limit", "1",
                 "--out", tmp_path / "f.geno", "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.output
