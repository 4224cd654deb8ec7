"""Where the grammar and the shipped spec library live: inside the installed package
(``genolang/grammar``, ``genolang/specs``), or at the top of a source checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for path in candidates:
        if path.exists():
            return path
    return candidates[0]


@cache
def grammar_path() -> Path:
    """The LALR grammar file."""
    return _first_existing(
        _PACKAGE / "grammar" / "genolang.lark", _PACKAGE.parent / "grammar" / "genolang.lark"
    )


@cache
def specs_dir() -> Path:
    """The spec library shipped with genolang (spaces, genotypes, networks)."""
    return _first_existing(_PACKAGE / "specs", _PACKAGE.parent / "specs")
