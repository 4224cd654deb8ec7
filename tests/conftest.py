"""Shared fixtures for the language-layer tests: where the checkout and its specs are,
and a helper that writes a spec file into a temporary folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
SPEC_FILES = sorted(SPECS.rglob("*.geno"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def specs_dir() -> Path:
    return SPECS


def write_spec(folder: Path, text: str, name: str = "spec.geno") -> Path:
    """Write ``text`` to ``folder/name`` and return the path."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def spec_writer(tmp_path: Path) -> Callable[..., Path]:
    """``spec_writer(text, name='spec.geno')`` writes a spec into this test's temp folder."""

    def write(text: str, name: str = "spec.geno") -> Path:
        return write_spec(tmp_path, text, name)

    return write


@pytest.fixture(autouse=True)
def _no_genolang_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the folders they set up, never the caller's GENOLANG_PATH."""
    if "GENOLANG_PATH" in os.environ:
        monkeypatch.delenv("GENOLANG_PATH")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread for tiny models (``pytestmark = pytest.mark.usefixtures(
    "one_thread")``): on a 2-core machine shared with other work, two OpenMP threads
    make millisecond-scale stalls out of microsecond ops."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
