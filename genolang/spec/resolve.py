"""Finding spaces, genotypes and network skeletons by name.

A name resolves, in order, through the file that uses it, the spec's own folder, the
folders of ``GENOLANG_PATH`` (``os.pathsep``-separated) and the library shipped inside
the package. In a folder, ``NAME.geno`` is tried first, then every ``*.geno`` file of
that folder (not its subfolders); the shipped library is searched recursively."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from genolang import resources
from genolang.errors import SpecError
from genolang.parse import ast as A
from genolang.parse.parser import parse, read_text

SUFFIX = ".geno"
_KEYWORD = {"space": A.Space, "genotype": A.Genotype, "network": A.Network, "op": A.OpDecl, "search": A.Search}
_OP_DECL = re.compile(r"(?m)^\s*op\s")


@dataclass(frozen=True)
class Found:
    """A declaration found by name, with the file it came from."""

    decl: A.Decl
    file: A.SpecFile
    source: str


class Library:
    """Looks names up along a search path; parses each file at most once."""

    def __init__(self, roots: list[Path], recursive_roots: list[Path] | None = None) -> None:
        self.roots = [Path(r) for r in roots]
        self.recursive_roots = [Path(r) for r in (recursive_roots or [])]
        self._files: dict[Path, tuple[A.SpecFile, str] | SpecError] = {}
        self.op_cache: dict[str, object] = {}  # name -> checked op (genolang.spec.opcheck keeps it)

    @classmethod
    def for_file(cls, path: str | os.PathLike[str] | None) -> Library:
        """The search path seen by a spec at ``path``."""
        roots: list[Path] = []
        if path is not None and not str(path).startswith("<"):
            roots.append(Path(path).resolve().parent)
        for entry in os.environ.get("GENOLANG_PATH", "").split(os.pathsep):
            if entry.strip():
                roots.append(Path(entry).expanduser().resolve())
        return cls(roots, [resources.specs_dir()])

    @property
    def search_path(self) -> list[Path]:
        return [*self.roots, *self.recursive_roots]

    def load(self, path: Path) -> tuple[A.SpecFile, str]:
        """Parse a file of the library (cached); raises its ``SpecError``."""
        key = path.resolve()
        if key not in self._files:
            try:
                text = read_text(str(path))
                self._files[key] = (parse(text, str(path)), text)
            except SpecError as err:
                self._files[key] = err
        entry = self._files[key]
        if isinstance(entry, SpecError):
            raise entry
        return entry

    def _candidates(self, name: str) -> Iterator[Path]:
        seen: set[Path] = set()
        for root in self.roots:
            direct = root / f"{name}{SUFFIX}"
            if direct.is_file():
                seen.add(direct.resolve())
                yield direct
        for root in self.recursive_roots:
            for direct in sorted(root.rglob(f"{name}{SUFFIX}")):
                if direct.resolve() not in seen:
                    seen.add(direct.resolve())
                    yield direct
        for root in self.roots:
            for path in sorted(root.glob(f"*{SUFFIX}")) if root.is_dir() else ():
                if path.resolve() not in seen:
                    seen.add(path.resolve())
                    yield path
        for root in self.recursive_roots:
            for path in sorted(root.rglob(f"*{SUFFIX}")):
                if path.resolve() not in seen:
                    seen.add(path.resolve())
                    yield path

    def find(self, keyword: str, name: str) -> Found | None:
        """The first ``keyword`` declaration (space, genotype, network) named ``name``."""
        wanted = _KEYWORD[keyword]
        pattern = re.compile(rf"\b{keyword}\s+{re.escape(name)}\b")
        for path in self._candidates(name):
            if path.stem != name:
                try:
                    head = path.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                if not pattern.search(head):
                    continue
            try:
                spec, text = self.load(path)
            except SpecError:
                if path.stem == name:
                    raise  # the file named after the wanted spec is broken: say so
                continue  # a broken neighbour must not hide the rest of the folder
            except Exception:  # noqa: BLE001 - unreadable neighbour
                continue
            decl = next((d for d in spec.decls if isinstance(d, wanted) and d.name.text == name), None)
            if decl is not None:
                return Found(decl, spec, text)
        return None

    def find_op(self, name: str) -> Found | None:
        """The first op declaration (or family) declaring ``name``, in the search path's
        order. A file with syntax errors that mentions ``name`` raises its error when
        nothing else declares the op; other broken files are skipped."""
        from genolang.spec.opcheck import family_names

        broken: SpecError | None = None
        for path in self._candidates(""):
            try:
                head = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if not _OP_DECL.search(head):
                continue
            try:
                spec, text = self.load(path)
            except SpecError as err:
                if broken is None and re.search(rf"\b{re.escape(name)}\b", head):
                    broken = err
                continue
            for decl in spec.decls:
                if isinstance(decl, A.OpDecl) and name in family_names(decl):
                    return Found(decl, spec, text)
        if broken is not None:
            raise broken
        return None

    def op_declarations(self) -> Iterator[tuple[str, A.OpDecl, A.SpecFile]]:
        """Every (name, declaration, file) of an op on the search path, in lookup order
        (a name may come again later: the first one wins); broken files are skipped."""
        from genolang.spec.opcheck import family_names

        for path in self._candidates(""):
            try:
                if not _OP_DECL.search(path.read_text(encoding="utf-8", errors="replace")):
                    continue
                spec, _ = self.load(path)
            except (OSError, SpecError):
                continue
            for decl in spec.decls:
                if isinstance(decl, A.OpDecl):
                    for name in family_names(decl):
                        yield name, decl, spec

    def op_names(self) -> list[str]:
        """Every op name declared on the search path (families expanded)."""
        return sorted({name for name, _, _ in self.op_declarations()})

    def names(self, keyword: str) -> list[str]:
        """Every name of that kind on the search path (for "did you mean")."""
        pattern = re.compile(rf"\b{keyword}\s+([A-Za-z_][A-Za-z0-9_]*)")
        out: set[str] = set()
        for path in self._candidates(""):
            try:
                out.update(pattern.findall(path.read_text(encoding="utf-8", errors="replace")))
            except OSError:
                continue
        return sorted(out)
