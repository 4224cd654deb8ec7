"""Finding a checked spec from what a user typed on a command line: a file path, or a
name resolved along the search path."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, cast, overload

from genolang.errors import UsageError, did_you_mean
from genolang.parse.parser import STDIN, read_text
from genolang.spec.check import check, load_text
from genolang.spec.checked import GenotypeSpec, NetworkSpec, SpaceSpec
from genolang.spec.resolve import Ambiguous, Library

Spec = SpaceSpec | GenotypeSpec | NetworkSpec


def is_path(name_or_path: str) -> bool:
    """Whether a command-line argument names a file (or '-', standard input) rather
    than a spec."""
    if name_or_path == "-" or name_or_path.endswith(".geno") or "/" in name_or_path or os.sep in name_or_path:
        return True
    try:
        return os.path.lexists(name_or_path)
    except (OSError, ValueError):
        return False


@overload
def load_named_source(kind: Literal["space"], name_or_path: str,
                      relative_to: str | None = None) -> tuple[SpaceSpec, str]: ...
@overload
def load_named_source(kind: Literal["genotype"], name_or_path: str,
                      relative_to: str | None = None) -> tuple[GenotypeSpec, str]: ...
@overload
def load_named_source(kind: Literal["network"], name_or_path: str,
                      relative_to: str | None = None) -> tuple[NetworkSpec, str]: ...
@overload
def load_named_source(kind: str, name_or_path: str, relative_to: str | None = None) -> tuple[Spec, str]: ...


def load_named_source(kind: str, name_or_path: str, relative_to: str | None = None) -> tuple[Spec, str]:
    """A checked space, genotype or network and the text of the file it is declared in,
    given either a spec file path or a name resolved along the search path (the folder
    of ``relative_to``, GENOLANG_PATH, the shipped library). A file must hold exactly
    one declaration of that kind. The file is read once."""
    if is_path(name_or_path):
        text = read_text(name_or_path)
        label = STDIN if name_or_path == "-" else name_or_path
        return cast(Spec, load_text(text, label).single(kind)), text
    library = Library.for_file(relative_to or str(Path.cwd() / "_.geno"))
    try:
        found = library.find(kind, name_or_path)
    except Ambiguous as err:
        raise UsageError(str(err)) from None
    if found is None:
        raise UsageError(f"no {kind} named '{name_or_path}'{did_you_mean(name_or_path, library.names(kind))}; "
                         f"give a .geno file or a name from 'genolang list {kind}s'{library.unreadable_note()}")
    checked = check(found.file, found.source, Library.for_file(found.file.path)).raise_errors()
    tables: dict[str, Mapping[str, Spec]] = {"space": checked.spaces, "genotype": checked.genotypes,
                                             "network": checked.networks}
    return tables[kind][name_or_path], found.source


@overload
def load_named(kind: Literal["space"], name_or_path: str, relative_to: str | None = None) -> SpaceSpec: ...
@overload
def load_named(kind: Literal["genotype"], name_or_path: str, relative_to: str | None = None) -> GenotypeSpec: ...
@overload
def load_named(kind: Literal["network"], name_or_path: str, relative_to: str | None = None) -> NetworkSpec: ...
@overload
def load_named(kind: str, name_or_path: str, relative_to: str | None = None) -> Spec: ...


def load_named(kind: str, name_or_path: str, relative_to: str | None = None) -> Spec:
    """The checked spec of ``load_named_source``."""
    return load_named_source(kind, name_or_path, relative_to)[0]
