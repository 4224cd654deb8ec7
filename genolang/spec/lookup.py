"""Finding a checked spec from what a user typed on a command line: a file path, or a
name resolved along the search path."""

from __future__ import annotations

from pathlib import Path
from typing import Union

from genolang.spec.check import check, load
from genolang.errors import UsageError, did_you_mean
from genolang.spec.checked import GenotypeSpec, NetworkSpec, SpaceSpec
from genolang.spec.resolve import Library

Spec = Union[SpaceSpec, GenotypeSpec, NetworkSpec]


def load_named(kind: str, name_or_path: str, relative_to: str | None = None) -> Spec:
    """A checked space, genotype or network given either a spec file path or a name
    resolved along the search path (the folder of ``relative_to``, GENOLANG_PATH, the
    shipped library). A file must hold exactly one declaration of that kind."""
    if name_or_path.endswith(".geno") or "/" in name_or_path or Path(name_or_path).is_file():
        return load(name_or_path).single(kind)
    library = Library.for_file(relative_to or str(Path.cwd() / "_.geno"))
    found = library.find(kind, name_or_path)
    if found is None:
        raise UsageError(f"no {kind} named '{name_or_path}'{did_you_mean(name_or_path, library.names(kind))}; "
                         f"give a .geno file or a name from 'genolang list {kind}s'")
    checked = check(found.file, found.source, Library.for_file(found.file.path)).raise_errors()
    return getattr(checked, kind + "s")[name_or_path]  # type: ignore[no-any-return]
