"""Finding a checked spec from what a user typed on a command line: a file path, or a
name resolved along the search path."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal, overload

from genolang.errors import UsageError, did_you_mean
from genolang.parse.parser import read_text
from genolang.spec.check import check, load_text
from genolang.spec.checked import GenotypeSpec, NetworkSpec, SpaceSpec
from genolang.spec.resolve import Library

Spec = SpaceSpec | GenotypeSpec | NetworkSpec


def is_path(name_or_path: str) -> bool:
    """Whether a command-line argument names a file rather than a spec."""
    return name_or_path.endswith(".geno") or "/" in name_or_path or Path(name_or_path).is_file()


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
        return load_text(text, name_or_path).single(kind), text
    library = Library.for_file(relative_to or str(Path.cwd() / "_.geno"))
    found = library.find(kind, name_or_path)
    if found is None:
        raise UsageError(f"no {kind} named '{name_or_path}'{did_you_mean(name_or_path, library.names(kind))}; "
                         f"give a .geno file or a name from 'genolang list {kind}s'")
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
