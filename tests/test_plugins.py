"""Python op plugins: the example plugin in examples/, installed into a folder of its own
and put on PYTHONPATH, makes its ops usable by name in any space: `genolang ops` lists
them, `check` reads only entry-point names (no torch, no plugin import), and a space
using them compiles, searches (with the supernet passes) and trains."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from _search_util import write_tiny_cnn

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "genolang-plugin-example"

SPACE = """genolang 1
space with_se {
    ops = none, skip_connect, sep_conv_3x3, squeeze_excite, biased_conv_3x3
    cell normal { nodes = 2 }
    cell reduce { nodes = 2; stride = 2 }
}
genotype se_cell : with_se {
    normal {
        n2 = squeeze_excite(c0) + sep_conv_3x3(c1)
        n3 = biased_conv_3x3(n2) + skip_connect(c0)
        out = concat(n2, n3)
    }
    reduce {
        n2 = squeeze_excite(c0) + biased_conv_3x3(c1)
        n3 = skip_connect(n2) + squeeze_excite(c1)
        out = concat(n2, n3)
    }
}
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    # a copy, so building leaves no egg-info or build folder in the checkout
    subprocess.run(["cp", "-r", str(EXAMPLE), str(build / "plugin")], check=True)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(build / "plugin")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return target


def genolang(plugin_path: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(plugin_path), "OMP_NUM_THREADS": "1"}
    env.pop("GENOLANG_PATH", None)
    return subprocess.run([sys.executable, "-m", "genolang", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def test_the_plugin_ops_are_listed_and_checked_without_importing_them(plugin_path: Path, tmp_path: Path) -> None:
    listing = genolang(plugin_path, "ops")
    assert listing.returncode == 0, listing.stderr
    line = next(ln for ln in listing.stdout.splitlines() if ln.startswith("squeeze_excite"))
    assert "plugin genolang-plugin-example 0.1.0" in line
    (tmp_path / "se.geno").write_text(SPACE)
    code = ("import sys; from genolang.spec.check import load; r = load(sys.argv[1]); "
            "print(sorted(r.spaces), sorted(r.genotypes)); "
            "assert 'torch' not in sys.modules and 'genolang_plugin_example' not in sys.modules, sorted(sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(plugin_path)}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "se.geno")], capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['with_se'] ['se_cell']"


def test_a_space_with_plugin_ops_compiles_searches_and_trains(plugin_path: Path, tmp_path: Path) -> None:
    (tmp_path / "se.geno").write_text(SPACE)
    net = write_tiny_cnn(tmp_path)
    compiled = genolang(plugin_path, "compile", str(tmp_path / "se.geno"), "--network", str(net), "--json")
    assert compiled.returncode == 0, compiled.stderr
    searched = genolang(plugin_path, "search", str(tmp_path / "se.geno"), "--network", str(net), "--epochs", "1",
                        "--batch-size", "8", "--limit", "2", "--out", str(tmp_path / "found.geno"), "--run-dir",
                        str(tmp_path / "run"), "--quiet")
    assert searched.returncode == 0, searched.stderr
    assert "genotype found : with_se" in (tmp_path / "found.geno").read_text()
    trained = genolang(plugin_path, "train", str(tmp_path / "se.geno"), "--network", str(net), "--dataset", "digits",
                       "--epochs", "1", "--batch-size", "16", "--limit-train", "48", "--limit-test", "16",
                       "--run-dir", str(tmp_path / "train"), "--quiet", "--no-tensorboard", "--json")
    assert trained.returncode == 0, trained.stderr
    evaluated = genolang(plugin_path, "eval", str(tmp_path / "train"), "--dataset", "digits", "--limit", "16")
    assert evaluated.returncode == 0, evaluated.stderr


def test_without_the_plugin_its_ops_are_unknown(tmp_path: Path) -> None:
    (tmp_path / "se.geno").write_text(SPACE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "genolang", "check", str(tmp_path / "se.geno")], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 1
    assert "unknown op 'squeeze_excite'" in done.stderr and "install a plugin" in done.stderr
