"""The installed wheel works outside the checkout: it carries the grammar, the spec
library and the CLI, and a fresh virtualenv with only the wheel and the language's
dependencies (lark, networkx, click) checks specs from any folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, SPECS

pytestmark = pytest.mark.slow

SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "genolang", "cli", "grammar", "specs")
MINE = """genolang 1

genotype mine : darts_cnn {
    normal {
        n2 = sep_conv_3x3(c0) + sep_conv_3x3(c1)
        n3 = sep_conv_3x3(c0) + skip_connect(n2)
        n4 = dil_conv_5x5(n3) + skip_connect(c0)
        n5 = avg_pool_3x3(c1) + sep_conv_5x5(n4)
        out = concat(n2, n3, n4, n5)
    }
    reduce {
        n2 = max_pool_3x3(c0) + max_pool_3x3(c1)
        n3 = skip_connect(n2) + max_pool_3x3(c1)
        n4 = max_pool_3x3(c0) + skip_connect(n2)
        n5 = skip_connect(n2) + max_pool_3x3(c1)
        out = concat(n2, n3, n4, n5)
    }
}
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GENOLANG_PATH", "VIRTUAL_ENV",
                                                            "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _checkout_packages() -> set[str]:
    """Every package of the checkout as the wheel should name it."""
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "genolang").rglob("__init__.py")
             if "__pycache__" not in p.parts}
    found |= {"genolang.cli." + ".".join(p.parent.relative_to(REPO / "cli").parts)
              for p in (REPO / "cli").rglob("__init__.py") if p.parent != REPO / "cli"}
    return found | {"genolang.cli"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, a scratch folder outside the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    assert REPO.resolve() not in root.resolve().parents
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")  # (not "build": genolang/build is code)
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, src / name)
    wheelhouse = root / "wheelhouse"
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                 "-w", str(wheelhouse), str(src)], cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(wheelhouse.glob("genolang-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], root


def test_wheel_contents(built: tuple[Path, Path]) -> None:
    wheel, _ = built
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "genolang/grammar/genolang.lark" in names
    assert {"genolang/cli/__init__.py", "genolang/cli/spec.py", "genolang/cli/convert.py"} <= names
    shipped = {"genolang/specs/" + str(p.relative_to(SPECS)) for p in SPECS.rglob("*.geno")}
    assert shipped and shipped <= names, sorted(shipped - names)
    packages = {os.path.dirname(n).replace("/", ".") for n in names if n.endswith("/__init__.py")}
    missing = _checkout_packages() - packages
    assert not missing, f"packages missing from the wheel (add them to pyproject.toml): {sorted(missing)}"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "genolang = genolang.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not any(n.startswith(("tests/", "cli/", "specs/", "grammar/")) for n in names)


def test_installed_wheel_works_outside_the_checkout(built: tuple[Path, Path]) -> None:
    wheel, root = built
    venv = root / "venv"
    proc = _run([sys.executable, "-m", "venv", str(venv)], cwd=root)
    if proc.returncode != 0:
        pytest.skip(f"cannot create a virtualenv here: {proc.stderr.strip() or proc.stdout.strip()}")
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    proc = _run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], cwd=root)
    assert proc.returncode == 0, proc.stderr
    proc = _run([str(python), "-m", "pip", "install", "-q", "lark", "networkx", "click"], cwd=root, timeout=600)
    assert proc.returncode == 0, f"installing lark, networkx, click from the package index failed:\n{proc.stderr}"

    work = root / "work"
    work.mkdir()
    proc = _run([str(python), "-c", "import genolang, os; print(os.path.dirname(genolang.__file__))"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    package = Path(proc.stdout.strip())
    assert venv.resolve() in package.resolve().parents, package  # the installed copy, not the checkout

    genolang = str(bindir / "genolang")
    installed_v2 = package / "specs" / "genotypes" / "darts_v2.geno"
    proc = _run([genolang, "check", str(installed_v2)], cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"{installed_v2}: ok (genotype darts_v2)"

    (work / "mine.geno").write_text(MINE, encoding="utf-8")
    proc = _run([genolang, "check", "mine.geno"], cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "mine.geno: ok (genotype mine)"

    proc = _run([genolang, "show", "mine.geno"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert f"genotype mine : darts_cnn ({package / 'specs' / 'spaces' / 'darts_cnn.geno'})" in proc.stdout

    proc = _run([genolang, "check", str(package / "specs")], cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(proc.stdout.splitlines()) == len(list(SPECS.rglob("*.geno")))

    (work / "bad.geno").write_text(MINE.replace("dil_conv_5x5(n3)", "dil_conv_5x5(n7)"), encoding="utf-8")
    proc = _run([genolang, "check", "bad.geno"], cwd=work)
    assert proc.returncode == 1
    assert "bad.geno:7:27: error: undefined node 'n7'" in proc.stderr
    assert "Traceback" not in proc.stderr

    proc = _run([str(python), "-m", "genolang", "--version"], cwd=work)
    assert proc.returncode == 0 and proc.stdout.startswith("genolang "), proc.stderr
