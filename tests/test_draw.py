"""Cell diagrams: DOT always, SVG/PNG/PDF through Graphviz when it is installed, a clear
error (and no file) when it is not."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import SPECS
from genolang.cli import main
from genolang.draw import format_of, graphviz

DARTS_V2 = str(SPECS / "genotypes" / "darts_v2.geno")
needs_graphviz = pytest.mark.skipif(graphviz() is None,
                                    reason="Graphviz 'dot' is not installed (apt-get install graphviz)")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_dot_needs_nothing(tmp_path: Path) -> None:
    out = tmp_path / "cells.dot"
    code, _, err = run("draw", DARTS_V2, "-o", str(out))
    assert code == 0, err
    dot = out.read_text(encoding="utf-8")
    assert dot.startswith("digraph genolang {") and dot.rstrip().endswith("}")
    assert 'label="darts_v2.normal"' in dot and 'label="darts_v2.reduce"' in dot
    assert 'k0_c0 -> k0_n5 [label="skip_connect"];' in dot
    assert 'k0_n2 -> k0_n5 [label="dil_conv_3x3"];' in dot
    assert 'k1_c1 -> k1_n2 [label="max_pool_3x3 /2"];' in dot  # reduction edges show their stride
    code, printed, _ = run("draw", DARTS_V2)  # no -o: DOT on stdout
    assert code == 0 and printed == dot


def test_one_cell_and_spaces(tmp_path: Path) -> None:
    code, dot, _ = run("draw", DARTS_V2, "--cell", "reduce")
    assert code == 0 and "normal" not in dot and 'label="darts_v2.reduce"' in dot
    code, dot, _ = run("draw", str(SPECS / "spaces" / "nb201.geno"))
    assert code == 0 and dot.count('[label="mixed[5]"]') == 6 and 'label="last"' in dot
    code, _, err = run("draw", DARTS_V2, "--cell", "nope")
    assert code == 2 and "no cell 'nope'" in err


def test_format_from_the_name() -> None:
    assert format_of("a/b.SVG") == "svg" and format_of("x.gv") == "dot" and format_of("x", "pdf") == "pdf"
    code, _, err = run("draw", DARTS_V2, "-o", "cells.jpeg")
    assert code == 2 and "cannot tell the picture format" in err


@needs_graphviz
@pytest.mark.parametrize("fmt, magic", [("svg", b"<svg"), ("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_images_through_graphviz(tmp_path: Path, fmt: str, magic: bytes) -> None:
    out = tmp_path / f"cells.{fmt}"
    code, _, err = run("draw", DARTS_V2, "-o", str(out))
    assert code == 0, err
    data = out.read_bytes()
    assert magic in data[:400]
    if fmt == "svg":
        text = data.decode("utf-8")
        assert "dil_conv_3x3" in text and "sep_conv_3x3" in text and "concat" in text
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary left behind


def test_missing_graphviz_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "cells.svg"
    code, _, err = run("draw", DARTS_V2, "-o", str(out))
    assert code == 1
    assert "Graphviz's 'dot' program is not installed" in err and "apt-get install graphviz" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    code, _, _ = run("draw", DARTS_V2, "-o", str(tmp_path / "cells.dot"))  # DOT still works
    assert code == 0


def test_draw_does_not_import_torch_or_matplotlib(tmp_path: Path) -> None:
    code = ("import sys\nfrom click.testing import CliRunner\nfrom genolang.cli import main\n"
            f"r = CliRunner().invoke(main, ['draw', {DARTS_V2!r}, '-o', {str(tmp_path / 'c.dot')!r}])\n"
            "assert r.exit_code == 0, r.output\n"
            "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_graphviz_lookup_follows_path() -> None:
    assert graphviz() == shutil.which("dot")


def test_pictures_get_ordinary_file_permissions(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        out = tmp_path / "cells.dot"
        assert run("draw", DARTS_V2, "-o", str(out))[0] == 0
        assert out.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
        out.chmod(0o664)
        assert run("draw", DARTS_V2, "-o", str(out))[0] == 0
        assert out.stat().st_mode & 0o777 == 0o664  # an existing file keeps its mode
    finally:
        os.umask(old)
