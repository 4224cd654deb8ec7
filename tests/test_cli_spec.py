"""The spec commands of the CLI: check, fmt, show, graph, list, ops, import, export;
exit statuses, messages, files written, and no torch import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from _cli import assert_torch_free
from conftest import REPO, SPECS, write_spec
from genolang import __version__
from genolang.cli import COMMANDS, main
from genolang.interop.darts import tree_to_darts
from genolang.spec.check import load

V2 = SPECS / "genotypes" / "darts_v2.geno"
SPEC_COMMANDS = ["check", "fmt", "show", "graph", "list", "ops", "import", "export"]

MESSY = """genolang 1
# my genotype
genotype   messy:darts_rnn{recurrent{n1=relu(s0);n2=relu(n1) n3=tanh(n2)   # three
n4=relu(n3) n5=relu(n4) n6=relu(n5) n7=relu(n6) n8=sigmoid(n7)
out=mean(n1..n8)}}
"""

CANONICAL = """genolang 1

# my genotype
genotype messy : darts_rnn {
    recurrent {
        n1 = relu(s0)
        n2 = relu(n1)
        n3 = tanh(n2)  # three
        n4 = relu(n3)
        n5 = relu(n4)
        n6 = relu(n5)
        n7 = relu(n6)
        n8 = sigmoid(n7)
        out = mean(n1..n8)
    }
}
"""


def run(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), input=input)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"genolang {__version__} (spec format 1)"


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output


@pytest.mark.parametrize("command", SPEC_COMMANDS)
def test_help_of_each_command(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: main {command} [OPTIONS]")
    assert "--help" in result.output


def test_check_ok() -> None:
    result = run("check", str(V2))
    assert result.exit_code == 0
    assert result.stdout == f"{V2}: ok (genotype darts_v2)\n"
    assert run("check", "-q", str(V2)).stdout == ""


def test_check_the_whole_library() -> None:
    result = run("check", str(SPECS))
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == len(list(SPECS.rglob("*.geno")))
    assert result.stderr == ""


def test_check_failing(tmp_path: Path) -> None:
    bad = write_spec(tmp_path, V2.read_text().replace("dil_conv_3x3(n2)", "dil_cnv_3x3(n9)"), "bad.geno")
    result = run("check", str(V2), str(bad))
    assert result.exit_code == 1
    assert f"{V2}: ok" in result.stdout
    err = result.stderr
    assert f"{bad}:10:33: error: unknown op 'dil_cnv_3x3'; did you mean 'dil_conv_3x3'?" in err
    assert f"{bad}:10:45: error: undefined node 'n9'" in err
    assert " 10 |         n5 = skip_connect(c0) + dil_cnv_3x3(n9)" in err
    assert err.rstrip().endswith("2 errors")


def test_check_reports_warnings_and_passes(tmp_path: Path) -> None:
    path = write_spec(tmp_path, V2.read_text().replace("out = concat(n2, n3, n4, n5)\n    }\n    reduce",
                                                       "out = concat(n2, n3, n4)\n    }\n    reduce"), "w.geno")
    result = run("check", str(path))
    assert result.exit_code == 0
    assert "warning: node 'n5' is never used" in result.stderr
    assert f"{path}: ok (genotype darts_v2)" in result.stdout


def test_check_a_missing_file_and_a_syntax_error(tmp_path: Path) -> None:
    result = run("check", str(tmp_path / "nope.geno"))
    assert result.exit_code == 2  # a path on the command line that is not there: a usage error
    assert "nope.geno: no such file" in result.stderr
    broken = write_spec(tmp_path, "space s {\n", "broken.geno")
    result = run("check", str(broken))
    assert result.exit_code == 1
    assert f"{broken}:1:10: error: unexpected end of file" in result.stderr
    result = run("check", str(tmp_path / "empty_dir_does_not_exist"), str(broken))
    assert result.exit_code == 2  # the worst: a missing file


def test_fmt_rewrites_in_place(tmp_path: Path) -> None:
    path = write_spec(tmp_path, MESSY, "messy.geno")
    result = run("fmt", "--check", str(path))
    assert result.exit_code == 1
    assert f"would reformat {path}" in result.stderr
    assert path.read_text() == MESSY
    result = run("fmt", str(path))
    assert result.exit_code == 0
    assert f"reformatted {path}" in result.stderr
    assert path.read_text() == CANONICAL
    assert run("fmt", "--check", str(path)).exit_code == 0
    result = run("fmt", str(path))  # nothing left to do
    assert result.exit_code == 0 and result.stderr == ""
    assert not [p for p in tmp_path.iterdir() if p.name != "messy.geno"]  # no temp files left behind


def test_fmt_stdout_and_stdin(tmp_path: Path) -> None:
    path = write_spec(tmp_path, MESSY, "messy.geno")
    result = run("fmt", "--stdout", str(path))
    assert result.exit_code == 0
    assert result.stdout == CANONICAL
    assert path.read_text() == MESSY
    result = run("fmt", "-", input=MESSY)
    assert result.exit_code == 0
    assert result.stdout == CANONICAL


def test_fmt_refuses_a_broken_file(tmp_path: Path) -> None:
    path = write_spec(tmp_path, MESSY.replace("n1=relu(s0);", "n1=relu(s0),"), "broken.geno")
    result = run("fmt", str(path))
    assert result.exit_code == 1
    assert f"{path}:3:49: error: unexpected ','" in result.stderr
    assert path.read_text() == MESSY.replace("n1=relu(s0);", "n1=relu(s0),")


def test_show_genotype() -> None:
    result = run("show", str(V2))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("genotype darts_v2 : darts_cnn (")
    assert "  cell normal: 4 nodes, 8 edges, concat of n2, n3, n4, n5" in lines
    assert "  cell reduce: 4 nodes, 8 edges, concat of n2, n3, n4, n5" in lines
    result = run("show", "--ir", str(V2))
    assert result.exit_code == 0
    assert "  cell normal (cnn; stride 1; concat)" in result.stdout
    assert "    n5 = skip_connect(c0) + dil_conv_3x3(n2)" in result.stdout
    assert "    n2 = max_pool_3x3(c0, stride=2) + max_pool_3x3(c1, stride=2)" in result.stdout


def test_show_space_and_network() -> None:
    result = run("show", "--ir", str(SPECS / "spaces" / "darts_cnn.geno"))
    assert result.exit_code == 0
    assert "supernet: 14 edges x 8 ops" in result.stdout
    assert "  derive: exclude none; distinct inputs; caps: none" in result.stdout
    assert "mixed[8](n4)" in result.stdout
    result = run("show", str(SPECS / "networks" / "cifar.geno"))
    assert result.exit_code == 0
    assert "network cifar (cnn, stem cifar)" in result.stdout
    assert "  reduce_at = 1/3, 2/3" in result.stdout
    assert "  reduction cells: 6, 13; auxiliary head after cell: 13" in result.stdout


def test_show_the_optimized_ir_of_a_space() -> None:
    space = str(SPECS / "spaces" / "darts_cnn.geno")
    result = run("show", "--ir", "--passes", "all", space)
    assert result.exit_code == 0, result.output
    assert ("passes: drop_none, share_relu, share_param_free, group_convs, merge_kernels, scale_bn, recompute_convs, "
            "sum_by_source") in result.stdout
    assert ("    sep_conv_3x3+sep_conv_5x5(relu(c0)) = sep_conv_3x3 x4 + sep_conv_5x5 x4 grouped of relu(c0)"
            in result.stdout)
    result = run("show", "--ir", "--passes", "drop_none", space)
    n2 = [line for line in result.stdout.splitlines() if line.startswith("    n2 = ")]
    assert result.exit_code == 0 and n2 == ["    n2 = mixed[7](c0) + mixed[7](c1)",
                                            "    n2 = mixed[7](c0, stride=2) + mixed[7](c1, stride=2)"]
    for argv, message in ((("--passes", "all", space), "add --ir"),
                          (("--ir", "--passes", "share_rlu", space), "did you mean 'share_relu'?"),
                          (("--ir", "--passes", "all", str(SPECS / "spaces" / "darts_rnn.geno")), "only CNN spaces")):
        result = run("show", *argv)
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_show_a_broken_file(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "genolang 1\nnetwork n { stem = cifra }\n", "n.geno")
    result = run("show", str(path))
    assert result.exit_code == 1
    assert f"{path}:2:20: error: 'stem' must be one of cifar, imagenet, embedding; got 'cifra'" in result.stderr


def test_graph(tmp_path: Path) -> None:
    out = tmp_path / "g" / "v2.dot"
    result = run("graph", str(V2), "-o", str(out))
    assert result.exit_code == 0
    assert f"wrote {out}" in result.stderr
    dot = out.read_text()
    assert dot.startswith("digraph genolang {\n")
    assert "subgraph cluster_0 {" in dot and "subgraph cluster_1 {" in dot
    assert 'label="darts_v2.normal";' in dot and 'label="darts_v2.reduce";' in dot
    assert 'k1_c0 -> k1_n2 [label="max_pool_3x3 /2"];' in dot
    result = run("graph", str(V2), "--cell", "normal")
    assert result.exit_code == 0
    assert "cluster" not in result.stdout and 'label="darts_v2.normal";' in result.stdout
    result = run("graph", str(V2), "--cell", "nope")
    assert result.exit_code == 2
    assert "no cell 'nope'" in result.stderr and "darts_v2.normal" in result.stderr
    result = run("graph", str(SPECS / "networks" / "cifar.geno"))
    assert result.exit_code == 2
    assert "holds no genotype or space to draw" in result.stderr


def test_list_and_ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_spec(tmp_path, V2.read_text().replace("darts_v2", "local_one"), "local_one.geno")
    result = run("list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "spaces:" and "genotypes:" in lines and "networks:" in lines
    assert any(line.split()[0] == "local_one" for line in lines if line.startswith("  "))
    assert ["darts_cnn", str(SPECS / "spaces" / "darts_cnn.geno")] in [line.split() for line in lines]
    assert ["local_one", str(tmp_path / "local_one.geno")] in [line.split() for line in lines]
    result = run("list", "networks")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "networks:"
    assert {"cifar", "ptb", "small_search"} <= {line.split()[0] for line in result.stdout.splitlines()[1:]}
    result = run("ops")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"none", "sep_conv_3x3", "conv_7x1_1x7", "relu", "identity"} <= set(names)


def test_import_export_round_trip(tmp_path: Path) -> None:
    result = run("export", "--to", "darts", str(V2))
    assert result.exit_code == 0
    darts = result.stdout.strip()
    assert darts == tree_to_darts(load(str(V2)).genotypes["darts_v2"])
    out = tmp_path / "imported.geno"
    result = run("import", "--from", "darts", darts, "--name", "again", "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("# imported from the darts format (<text>)\ngenolang 1\n")
    assert load(str(out)).genotypes["again"].cells == load(str(V2)).genotypes["darts_v2"].cells
    assert run("check", str(out)).exit_code == 0
    assert run("fmt", "--check", str(out)).exit_code == 0
    # from a file, to stdout, into another space
    src = write_spec(tmp_path, run("export", "--to", "darts", str(SPECS / "genotypes" / "nasnet_a.geno")).stdout,
                     "nasnet.txt")
    result = run("import", "--from", "darts", str(src), "--space", "nasnet", "--name", "n")
    assert result.exit_code == 0
    assert "genotype n : nasnet {" in result.stdout
    assert f"# imported from the darts format ({src})" in result.stdout
    # stdin
    result = run("import", "--from", "darts", "-", input=darts)
    assert result.exit_code == 0 and "genotype imported : darts_cnn {" in result.stdout


def test_import_errors() -> None:
    result = run("import", "--from", "darts", "__import__('os').system('echo hi')")
    assert result.exit_code == 1
    assert "<text>:1:1: error: expected Genotype(...), got system(...)" in result.stderr
    result = run("import", "--from", "darts", "Genotype(recurrent=[('relu', 0)], concat=[1])")
    assert result.exit_code == 1
    assert "cell 'recurrent' has 1 node; space 'darts_rnn' declares 8" in result.stderr


def test_export_errors(tmp_path: Path) -> None:
    result = run("export", "--to", "darts", str(SPECS / "spaces" / "darts_cnn.geno"))
    assert result.exit_code == 1
    assert "expected exactly one genotype in this file, found 0" in result.stderr
    result = run("export", "--to", "darts", str(V2), "--name", "other")
    assert result.exit_code == 2
    assert "has no genotype 'other'; it has: darts_v2" in result.stderr


def test_usage_errors_exit_2() -> None:
    assert run("check", "--no-such-option", str(V2)).exit_code == 2
    assert run("no-such-command").exit_code == 2
    assert run("check").exit_code == 2  # FILES is required
    assert run("export", "--to", "yaml", str(V2)).exit_code == 2


def test_python_dash_m_genolang() -> None:
    proc = subprocess.run([sys.executable, "-m", "genolang", "--version"], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"genolang {__version__} (spec format 1)"


def test_spec_commands_do_not_import_torch(tmp_path: Path) -> None:
    argv = [["check", str(V2), str(SPECS)], ["show", "--ir", str(V2)], ["fmt", "--check", str(V2)],
            ["graph", str(V2), "-o", str(tmp_path / "g.dot")], ["export", "--to", "darts", str(V2)],
            ["import", "--from", "darts", ("Genotype(recurrent=[('relu', 0), ('relu', 1), ('relu', 2), ('relu', 3), "
                                           "('relu', 4), ('relu', 5), ('relu', 6), ('relu', 7)], concat=range(1, 9))")],
            ["ops"], ["list"]]
    assert_torch_free(argv, tmp_path)


def test_encodings(tmp_path: Path) -> None:
    canonical = "genolang 1\n\nnetwork n {\n    stem = cifar\n}\n"
    bom = tmp_path / "bom.geno"
    bom.write_bytes(b"\xef\xbb\xbf" + canonical.encode())
    result = run("check", str(bom))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{bom}: ok (network n)\n"
    assert run("fmt", "--check", str(bom)).exit_code == 0  # the byte-order mark is no part of the text
    latin = tmp_path / "latin.geno"
    latin.write_bytes("# caf\xe9\n".encode("latin-1") + canonical.encode())
    result = run("check", str(latin))
    assert result.exit_code == 1
    assert f"{latin}:1:6: error: not UTF-8 text: byte 0xe9 (invalid continuation byte)" in result.stderr
    assert run("check", str(tmp_path)).exit_code == 1  # the folder holds the latin-1 file
    result = run("check", str(tmp_path / "empty"))
    assert result.exit_code == 2 and "no such file" in result.stderr
