"""The layout reads as the pipeline, and imports only point down it (docs/architecture.md):
a module may import from its own package and from lower layers, never from a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# lowest first; modules of one layer may import each other
LAYERS: list[set[str]] = [
    {"errors", "fsio", "resources", "tensorio"},
    {"parse", "data"},
    {"spec"},
    {"interop", "ir", "vcs"},
    {"passes"},
    {"ops"},
    {"nets"},
    {"run"},
    {"search", "train"},
    {"draw", "report", "bench"},
    {"cli"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def unit(module: str) -> str | None:
    """``genolang.spec.check`` -> ``spec``; None for the package itself."""
    parts = module.split(".")
    return parts[1] if parts[0] == "genolang" and len(parts) > 1 else None


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "genolang" else [f"genolang.{a.name}" for a in node.names]
            out += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def sources() -> list[tuple[str, Path]]:
    files = [(f"genolang.{p.relative_to(REPO / 'genolang').with_suffix('').as_posix().replace('/', '.')}", p)
             for p in (REPO / "genolang").rglob("*.py")]
    files += [(f"genolang.cli.{p.stem}", p) for p in (REPO / "cli").glob("*.py")]
    return files


def test_every_unit_has_a_layer() -> None:
    units = {u for m, _ in sources() if (u := unit(m)) is not None} - {"__init__", "__main__"}
    assert units <= set(LAYER), sorted(units - set(LAYER))


def test_imports_point_down() -> None:
    wrong = []
    for module, path in sources():
        own = unit(module)
        if own not in LAYER:
            continue
        for line, target in imports(path):
            other = unit(target)
            if other in LAYER and LAYER[other] > LAYER[own]:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {own} imports {target} (a higher layer)")
    assert not wrong, "\n".join(wrong)
