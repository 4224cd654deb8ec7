"""The genotype files a search writes: ``epoch-NNN.geno`` after every epoch,
``genotype.geno`` and ``--out`` at the end, each with its provenance as header comments
(space, skeleton, data, recipe, final score, the genotype's canonical hash and the
alpha table).

A genotype file names its space when the name resolves, from the file's folder, to the
very space searched; otherwise the space is written into the file, so the file always
checks. That is decided once per folder (``GenotypeFile``), so writing the file of an
epoch neither parses nor checks anything: the genotype is validated as a model
(``genolang.ir.derive``) and formatted once."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genolang import resources
from genolang.errors import GenolangError, plural
from genolang.ir.alphas import CellAlphas, format_alpha_table
from genolang.ir.decisive import Decisiveness
from genolang.parse import ast as A
from genolang.parse.printer import compose_file, format_decl
from genolang.spec.check import checked_space
from genolang.spec.checked import GenotypeSpec, SpaceSpec, same_content
from genolang.spec.resolve import Library
from genolang.spec.syntax import genotype_tree, op_tree, space_tree
from genolang.vcs import genotype_hash


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def display_path(path: str | Path) -> str:
    """``path`` relative to the current folder when it is below it, else absolute."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def genotype_name(path: str | Path | None, fallback: str = "found") -> str:
    """A genotype name from a file name: ``found.geno`` -> ``found``."""
    if path is None:
        return fallback
    stem = re.sub(r"[^A-Za-z0-9_]", "_", Path(path).stem)
    return stem if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", stem) else fallback


def space_resolves_to(space: SpaceSpec, folder: Path, own_folder: bool = False) -> bool:
    """Whether the name of ``space``, looked up as a genotype file in ``folder`` would look
    it up, finds a space with the same content. ``own_folder``: ``folder`` is a run
    folder, whose own files (the genotypes of earlier epochs, which may declare the
    space) do not count, so a resumed run writes its files as the first run did."""
    library = Library.for_file(str(folder / "_.geno"))
    if own_folder:
        library = Library([r for r in library.roots if r != folder.resolve()], library.recursive_roots)
    try:
        found = library.find("space", space.name)
    except GenolangError:
        return False
    if found is None:
        return False
    if not isinstance(found.decl, A.Space):
        return False
    resolved = checked_space(found)[0]
    return resolved is not None and same_content(resolved, space)


def space_declarations(space: SpaceSpec) -> list[A.Decl]:
    """What a file must hold for ``space`` to check wherever the file goes: the
    declarations of its ops that are neither shipped nor plugins (those resolve by
    name anywhere), then the space."""
    shipped = str(resources.specs_dir().resolve())
    ops: list[A.Decl] = [op_tree(op) for op in space.op_defs
                         if not op.is_plugin and not str(Path(op.origin).resolve()).startswith(shipped)]
    return [*ops, space_tree(space)]


class GenotypeFile:
    """Writes the genotypes of one search into one folder: ``header`` comments, the
    space by name or in full with the ops it needs (decided here, once), the genotype."""

    def __init__(self, space: SpaceSpec, folder: Path, own_folder: bool = False) -> None:
        self.space = space
        self.embed_space = not space_resolves_to(space, folder, own_folder)
        self._space_texts = [format_decl(d) for d in space_declarations(space)] if self.embed_space else []

    def text(self, geno: GenotypeSpec, header: list[str]) -> str:
        """The file text of ``geno``, formatted once."""
        return self.compose(declaration(geno), header, genotype_hash(geno))

    def compose(self, declaration: str, header: list[str], digest: str) -> str:
        """The file text around a formatted genotype ``declaration``: the header's
        ``HASH_SLOT`` line becomes the genotype's canonical hash ``digest``."""
        lines = [f"genotype hash: {digest}" if line == HASH_SLOT else line for line in header]
        return compose_file([*self._space_texts, declaration], lines)


_DATASET_LINE = re.compile(r"^#\s*dataset:\s*([A-Za-z0-9_.-]+)\s*;", re.MULTILINE)


def provenance_dataset(text: str) -> str | None:
    """The data set a genotype file written by a search was searched on (its header's
    ``dataset:`` line, before the first declaration), or None."""
    head = text.split("\ngenolang ", 1)[0] if not text.startswith("genolang ") else ""
    match = _DATASET_LINE.search(head)
    return match.group(1) if match else None


def declaration(geno: GenotypeSpec) -> str:
    """The canonical text of a genotype's declaration alone (its space by name)."""
    return format_decl(genotype_tree(geno))


HASH_SLOT = "\x00genotype-hash"  # a header line replaced by the genotype's canonical hash


def header(title: str, provenance: Mapping[str, Any], metrics: Mapping[str, Any],
           alphas: Mapping[str, CellAlphas], weights: str = "softmax",
           decisive: Decisiveness | None = None) -> list[str]:
    """The provenance comments of a genotype file (``provenance``: the search's
    ``SearchRun.provenance``; ``weights``: what the alpha table shows, the relaxation's
    selection weights; ``decisive``: how far the alphas moved from uniform)."""
    r = provenance["recipe"]
    lines = [
        title,
        f"space: {provenance['space']} (space {provenance['space_name']}, sha256 {provenance['space_sha256']})",
        f"skeleton: {provenance['network']} ({provenance['network_path']})",
        f"dataset: {r['dataset']}; order {r['order']}; seed {r['seed']}; epochs {r['epochs']}; batch {r['batch_size']}"
        + (f"; limit {plural(r['limit'], 'step')} per epoch" if r.get("limit") else ""),
    ]
    if provenance.get("recipe_hash"):
        lines.append(f"recipe: {provenance['recipe_hash']} (recipe.geno in the run folder: every value of the search)")
    if "valid_acc" in metrics:
        lines.append(f"final validation accuracy: {100 * metrics['valid_acc']:.2f}% "
                     f"(loss {metrics['valid_loss']:.4f}, epoch {metrics['epoch']})")
    if "valid_ppl" in metrics:
        lines.append(f"final validation perplexity: {metrics['valid_ppl']:.2f} (epoch {metrics['epoch']})")
    if decisive is not None:
        lines.append(f"decisiveness: {decisive.summary()}")
    lines.append(HASH_SLOT)
    lines += ["", f"{weights} alphas at the end of the search:"]
    lines += format_alpha_table(alphas, weights=weights).splitlines()
    lines.append("")
    return lines
