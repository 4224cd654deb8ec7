"""Finding spaces, genotypes and network skeletons by name.

A name resolves, in order, through the file that uses it (``spec.check``), the spec's
own folder, the folders of ``GENOLANG_PATH`` (``os.pathsep``-separated) and the library
shipped inside the package; the first folder that declares the name wins. In a folder,
every ``*.geno`` regular file is read (``NAME.geno`` first; not subfolders); the shipped
library is searched recursively. Two files of one folder declaring the name
differently is an ``Ambiguous`` error naming both; a file that cannot be read is
remembered (``unreadable``), so an unknown name can say why, and a broken or
unreadable ``NAME.geno`` is reported as such rather than as an unknown name. Names
come from parsed declarations only, never from comments."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from genolang import resources
from genolang.errors import GenolangError, SpecError, UsageError
from genolang.fsio import os_reason
from genolang.parse import ast as A
from genolang.parse.parser import STDIN, parse, read_text
from genolang.parse.printer import format_decl

if TYPE_CHECKING:
    from genolang.spec.opcheck import CachedOp

SUFFIX = ".geno"
_COMMENT = re.compile(r"#[^\n]*")
_KEYWORD = {"space": A.Space, "genotype": A.Genotype, "network": A.Network, "op": A.OpDecl, "search": A.Search}
_OP_DECL = re.compile(r"(?m)^\s*op\s")


@dataclass(frozen=True)
class Found:
    """A declaration found by name, with the file it came from."""

    decl: A.Decl
    file: A.SpecFile
    source: str


class Ambiguous(GenolangError):
    """One folder declares a name in two files, differently."""

    def __init__(self, keyword: str, name: str, found: tuple[Found, ...]) -> None:
        self.keyword, self.name, self.found = keyword, name, found
        where = " and ".join(f"{f.file.path}:{f.decl.name.span.line if f.decl.name.span else '?'}" for f in found)
        super().__init__(f"{keyword} '{name}' is declared differently in two files of one folder: {where}; rename "
                         "or remove one of them (names must be unique within a folder)")


_TEXTS: dict[Path, tuple[tuple[int, int, int], str]] = {}
_PARSED: dict[tuple[Path, str], A.SpecFile | SpecError] = {}
_PARSED_MAX = 128


def _read_cached(key: Path, path: Path) -> str:
    """``read_text`` of a library file, remembered in this process while the file's
    inode, size and modification time stay the same."""
    try:
        st = os.stat(path)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        return read_text(str(path))  # says why
    cached = _TEXTS.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    text = read_text(str(path))
    if len(_TEXTS) >= 4 * _PARSED_MAX:
        _TEXTS.pop(next(iter(_TEXTS)))
    _TEXTS[key] = (stamp, text)
    return text


def _parse_cached(path: Path, text: str) -> A.SpecFile:
    """``parse`` of a library file, remembered for other lookups in this process while
    its text is the same (checking many files of one folder parses each neighbour once)."""
    key = (path, text)
    if key not in _PARSED:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.pop(next(iter(_PARSED)))
        try:
            _PARSED[key] = parse(text, str(path))
        except SpecError as err:
            _PARSED[key] = err
    entry = _PARSED[key]
    if isinstance(entry, SpecError):
        raise entry
    return entry


def where_found(found: Found) -> str:
    """``path:line`` of a declaration found by name."""
    span = found.decl.name.span
    return f"{found.file.path}:{span.line}" if span else found.file.path


class Library:
    """Looks names up along a search path; reads and parses each file at most once."""

    def __init__(self, roots: list[Path], recursive_roots: list[Path] | None = None) -> None:
        self.roots = [Path(r) for r in roots]
        self.recursive_roots = [Path(r) for r in (recursive_roots or [])]
        self._files: dict[Path, tuple[A.SpecFile, str] | GenolangError] = {}
        self._texts: dict[Path, str | GenolangError] = {}
        self._found: dict[tuple[str, str], Found | GenolangError | None] = {}
        self._listing: dict[tuple[Path, bool], list[Path]] = {}
        self.unreadable: dict[str, str] = {}  # path -> why it could not be read
        self.op_cache: dict[str, CachedOp] = {}  # name -> checked op (genolang.spec.opcheck keeps it)

    @classmethod
    def for_file(cls, path: str | os.PathLike[str] | None) -> Library:
        """The search path seen by a spec at ``path`` (standard input: the current folder)."""
        roots: list[Path] = []
        if path is not None and str(path) == STDIN:
            roots.append(Path.cwd())
        elif path is not None and not str(path).startswith("<"):
            roots.append(Path(os.path.abspath(path)).parent)
        for entry in os.environ.get("GENOLANG_PATH", "").split(os.pathsep):
            if entry.strip():
                roots.append(Path(os.path.abspath(os.path.expanduser(entry))))
        return cls(roots, [resources.specs_dir()])

    @property
    def search_path(self) -> list[Path]:
        return [*self.roots, *self.recursive_roots]

    # -- files ---------------------------------------------------------------------------
    def _files_of(self, root: Path, recursive: bool) -> list[Path]:
        """The ``*.geno`` regular files of a folder (below it when ``recursive``), sorted;
        entries that cannot be read (a symlink loop, no permission) are remembered."""
        if (root, recursive) in self._listing:
            return self._listing[(root, recursive)]
        found: list[Path] = []
        problems: list[OSError] = []
        if recursive:
            walk: Iterator[tuple[str, list[str], list[str]]] = os.walk(root, onerror=problems.append)
        else:
            walk = iter([(str(root), [], self._entries(root, problems))])
        for folder, dirs, names in walk:
            dirs.sort()
            for name in sorted(names):
                if not name.endswith(SUFFIX):
                    continue
                path = Path(folder) / name
                try:
                    if path.stat().st_mode & 0o170000 == 0o100000:
                        found.append(path)
                except OSError as err:
                    self.unreadable[str(path)] = os_reason(err)
        for problem in problems:
            if problem.filename is not None and os.path.exists(problem.filename):
                self.unreadable[str(problem.filename)] = os_reason(problem)
        self._listing[(root, recursive)] = found
        return found

    def _entries(self, root: Path, problems: list[OSError]) -> list[str]:
        try:
            with os.scandir(root) as it:
                return [e.name for e in it]
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            return []
        except OSError as err:
            problems.append(err)
            return []

    def preload(self, spec: A.SpecFile, text: str) -> None:
        """Use an already parsed file (the one being checked) instead of reading it again."""
        if spec.path and not spec.path.startswith("<"):
            key = Path(os.path.abspath(spec.path))
            self._texts[key] = text
            self._files[key] = (spec, text)

    def text(self, path: Path) -> str:
        """The text of a file of the library (cached); raises the ``UsageError`` or
        ``SpecError`` of a file that cannot be read."""
        key = Path(os.path.abspath(path))
        if key not in self._texts:
            try:
                self._texts[key] = _read_cached(key, path)
            except GenolangError as err:
                self._texts[key] = err
                if not isinstance(err, SpecError) or not err.diagnostics or err.diagnostics[0].span is None:
                    self.unreadable[str(path)] = str(err).partition(": ")[2] or str(err)
        entry = self._texts[key]
        if isinstance(entry, GenolangError):
            raise entry
        return entry

    def load(self, path: Path) -> tuple[A.SpecFile, str]:
        """Parse a file of the library (cached, also across libraries while the file is
        unchanged); raises its ``SpecError`` or the ``UsageError`` of a file that cannot
        be read."""
        key = Path(os.path.abspath(path))
        if key not in self._files:
            try:
                text = self.text(path)
                self._files[key] = (_parse_cached(key, text), text)
            except GenolangError as err:
                self._files[key] = err
        entry = self._files[key]
        if isinstance(entry, GenolangError):
            raise entry
        return entry

    def _ordered(self, name: str) -> Iterator[tuple[Path, list[Path]]]:
        """Each folder of the search path with its files, ``NAME.geno`` first."""
        for root, recursive in [*((r, False) for r in self.roots), *((r, True) for r in self.recursive_roots)]:
            files = self._files_of(root, recursive)
            yield root, sorted(files, key=lambda p: (p.stem != name, str(p)))

    def find(self, keyword: str, name: str) -> Found | None:
        """The ``keyword`` declaration (space, genotype, network) named ``name`` in the
        first folder of the search path that has one. Raises ``Ambiguous`` when that
        folder declares it differently in two files, the ``SpecError`` of a broken
        ``NAME.geno``, and a ``UsageError`` when ``NAME.geno`` cannot be read.
        Remembered: a file checking many genotypes of one space looks it up once."""
        key = (keyword, name)
        if key not in self._found:
            try:
                self._found[key] = self._find(keyword, name)
            except GenolangError as err:
                self._found[key] = err
        entry = self._found[key]
        if isinstance(entry, GenolangError):
            raise entry
        return entry

    def _find(self, keyword: str, name: str) -> Found | None:
        wanted = _KEYWORD[keyword]
        pattern = re.compile(rf"\b{keyword}\s+{re.escape(name)}\b")
        for _root, files in self._ordered(name):
            hits: list[Found] = []
            for path in files:
                named = path.stem == name
                if not named:
                    try:  # a cheap look first: only files whose text (outside comments) names it are parsed
                        if not pattern.search(_COMMENT.sub("", self.text(path))):
                            continue
                    except GenolangError:
                        continue
                try:
                    spec, text = self.load(path)
                except SpecError:
                    if named and self._mentions(path, pattern):
                        raise  # the file named after the wanted spec is broken: say so
                    continue  # a broken neighbour must not hide the rest of the folder
                except GenolangError as err:
                    if named:
                        raise UsageError(f"{path}: cannot read it ({str(err).partition(': ')[2] or err}); "
                                         f"it would declare {keyword} '{name}'") from None
                    continue
                decl = next((d for d in spec.decls if isinstance(d, wanted) and d.name.text == name), None)
                if decl is not None:
                    hits.append(Found(decl, spec, text))
            if hits:
                distinct = {format_decl(f.decl): f for f in hits}
                if len(distinct) > 1:
                    raise Ambiguous(keyword, name, tuple(distinct.values())[:2])
                return hits[0]
        return None

    def _mentions(self, path: Path, pattern: re.Pattern[str]) -> bool:
        """Whether a broken file's text looks like it declares the name (for a
        ``NAME.geno`` of another kind, the error is not the wanted one's)."""
        entry = self._files.get(Path(os.path.abspath(path)))
        source = entry.sources.get(str(path), "") if isinstance(entry, SpecError) else ""
        return bool(pattern.search(source)) or not source

    def find_op(self, name: str) -> Found | None:
        """The first op declaration (or family) declaring ``name``, in the search path's
        order. A file with syntax errors that mentions ``name`` raises its error when
        nothing else declares the op; other broken files are skipped."""
        from genolang.spec.opcheck import family_names

        broken: SpecError | None = None
        mention = re.compile(rf"\b{re.escape(name)}\b")
        for _root, files in self._ordered(""):
            for path in files:
                try:
                    head = _COMMENT.sub("", self.text(path))
                except GenolangError:
                    continue
                if not _OP_DECL.search(head):
                    continue
                try:
                    spec, text = self.load(path)
                except SpecError as err:
                    if broken is None and mention.search(head):
                        broken = err
                    continue
                except GenolangError:
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

        for _root, files in self._ordered(""):
            for path in files:
                try:
                    if not _OP_DECL.search(_COMMENT.sub("", self.text(path))):
                        continue
                    spec, _ = self.load(path)
                except GenolangError:
                    continue
                for decl in spec.decls:
                    if isinstance(decl, A.OpDecl):
                        for name in family_names(decl):
                            yield name, decl, spec

    def op_names(self) -> list[str]:
        """Every op name declared on the search path (families expanded)."""
        return sorted({name for name, _, _ in self.op_declarations()})

    def names(self, keyword: str) -> list[str]:
        """Every name of that kind declared along the search path (from parsed files;
        files with errors are skipped)."""
        wanted = _KEYWORD[keyword]
        out: set[str] = set()
        for _root, files in self._ordered(""):
            for path in files:
                try:
                    spec, _ = self.load(path)
                except GenolangError:
                    continue
                out.update(d.name.text for d in spec.decls if isinstance(d, wanted))
        return sorted(out)

    def broken(self) -> list[str]:
        """The files along the search path that were read and have errors."""
        return sorted(str(p) for p, e in self._files.items() if isinstance(e, SpecError))

    def unreadable_note(self) -> str:
        """``; could not read: a.geno (permission denied)`` for a hint, or ''."""
        if not self.unreadable:
            return ""
        items = list(self.unreadable.items())
        shown = ", ".join(f"{p} ({why})" for p, why in items[:3])
        more = f" and {len(items) - 3} more" if len(items) > 3 else ""
        return f"; could not read: {shown}{more}"
