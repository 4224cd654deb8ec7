"""A search as a spec: a ``search`` declaration (``genolang.spec.checked.SearchSpec``) to
the configuration ``genolang search`` runs (command-line flags over its values), and
back: the effective recipe of a run (every value concrete) as the declaration written to
its run folder (``recipe.geno``) with its canonical hash (``genolang.vcs.canon``).

Flags override the declaration's values one by one. ``--method`` replaces the
declaration's method together with what belongs to it (its components, warm-up, step
order and component settings), keeping only those the command line gives; ``--set``
adds to the declaration's settings (a setting of the same key replaces it).

What the torch-free checker cannot know, the names of methods and components and their
parameters, ``method_diagnostics`` checks at the declaration's line and column."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from genolang.errors import Diagnostic, GenolangError, SpecError
from genolang.search.output import space_declarations, space_resolves_to
from genolang.search.recipe import Recipe, SearchConfig
from genolang.spec.checked import NetworkSpec, SearchSpec, Setting, SpaceSpec, same_content
from genolang.spec.resolve import Library
from genolang.spec.syntax import network_tree, search_tree, spec_text
from genolang.vcs.canon import search_hash

RECIPE = "recipe.geno"
METHOD_PARTS = ("relaxation", "transforms", "regularizers", "perturbation", "selection", "warmup", "step_order")
_CONFIG_FIELDS = ("network", "dataset", "data_dir", "epochs", "batch_size", "order", "seed", "lr", "lr_min",
                  "momentum", "weight_decay", "grad_clip", "arch_lr", "arch_weight_decay", "train_portion", "bptt",
                  "limit", "augment", "sync_bn", "method", "hessian", *METHOD_PARTS)


def search_config(search: SearchSpec, flags: SearchConfig) -> SearchConfig:
    """The configuration of ``search`` with the command line's ``flags`` over it."""
    values: dict[str, Any] = {k: getattr(search, k) for k in _CONFIG_FIELDS}
    params: dict[str, Any] = dict(search.settings)
    if flags.method is not None and flags.method != search.method:
        for key in METHOD_PARTS:
            values[key] = None
        params = {}
    for key in _CONFIG_FIELDS:
        given = getattr(flags, key)
        if given is not None:
            values[key] = given
    params.update(dict(flags.params))
    return dataclasses.replace(flags, space=search.space.name, relative_to=search.path, params=tuple(params.items()),
                               recipe_name=search.name, **values)


def effective_search(recipe: Recipe, space: SpaceSpec, name: str, network: str | None = None) -> SearchSpec:
    """The declaration of what a run searches, every value written out: running it
    gives the same recipe. ``network`` replaces the recipe's skeleton reference."""
    spec = recipe.method_spec()
    settings: list[tuple[str, Setting]] = []
    for part in spec.components():
        settings += [(f"{part.name}.{k}", v) for k, v in part.params]
    return SearchSpec(
        name, space, network=network or recipe.network, dataset=recipe.dataset, data_dir=recipe.data_dir,
        method=spec.name, relaxation=spec.relaxation.name, transforms=tuple(t.name for t in spec.transforms),
        regularizers=tuple(r.name for r in spec.regularizers),
        perturbation=spec.perturbation.name if spec.perturbation is not None else "none",
        selection=spec.selection.name, warmup=spec.warmup, step_order=spec.step_order, order=recipe.order,
        hessian=recipe.hessian, epochs=recipe.epochs, batch_size=recipe.batch_size, seed=recipe.seed, lr=recipe.lr,
        lr_min=recipe.lr_min, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
        grad_clip=recipe.grad_clip, arch_lr=recipe.arch_lr, arch_weight_decay=recipe.arch_weight_decay,
        train_portion=recipe.train_portion, bptt=recipe.bptt if recipe.kind == "rnn" else None,
        augment=recipe.augment, sync_bn=recipe.sync_bn, limit=recipe.limit, settings=tuple(settings))


def recipe_file(recipe: Recipe, space: SpaceSpec, network: NetworkSpec, name: str, folder: Path) -> tuple[str, str]:
    """The text of ``folder/recipe.geno`` and the recipe's canonical hash. The space and
    the skeleton are named where their names resolve from ``folder`` (its own files
    aside) to the same declarations, else written into the file (with the space's ops
    that are not shipped), so the file runs again as it is."""
    decls: list[Any] = []
    if not space_resolves_to(space, folder, own_folder=True):
        decls += space_declarations(space)
    reference = network.name
    if not _network_resolves_to(network, folder):
        decls.append(network_tree(network))
    search = effective_search(recipe, space, name, network=reference)
    digest = search_hash(search, network)
    decls.append(search_tree(search))
    header = ["The effective recipe of the search in this folder, every value written out;",
              "'genolang search recipe.geno' runs it again (flags override its values).",
              f"recipe hash: {digest}"]
    return spec_text(*decls, header=header), digest


def _network_resolves_to(network: NetworkSpec, folder: Path) -> bool:
    from genolang.spec.check import check

    library = Library.for_file(str(folder / "_.geno"))
    library = Library([r for r in library.roots if r != folder.resolve()], library.recursive_roots)
    try:
        found = library.find("network", network.name)
        if found is None:
            return False
        resolved = check(found.file, found.source, library).networks.get(network.name)
    except GenolangError:
        return False
    return resolved is not None and same_content(resolved, network)


def method_diagnostics(search: SearchSpec) -> list[Diagnostic]:
    """The problems of a search's method, components and settings (unknown names,
    parameters, values), each at the line and column it was written (imports torch:
    the components live with their code)."""
    from genolang.errors import UsageError
    from genolang.search.method import override, preset

    out: list[Diagnostic] = []

    def problem(key: str, err: UsageError) -> None:
        out.append(Diagnostic(search.path, search.span(key), str(err).split("; known:")[0],
                              _hint(str(err))))

    try:
        spec = preset(search.method or "darts").spec()
    except UsageError as err:
        problem("method", err)
        return out
    parts = {k: getattr(search, k) for k in METHOD_PARTS if getattr(search, k) is not None}
    for key, value in parts.items():
        try:
            spec = override(spec, **{key: value})
        except UsageError as err:
            problem(key, err)
    for key, value in search.settings:
        try:
            spec = override(spec, params={key: value})
        except UsageError as err:
            problem(f"set:{key}", err)
    if search.order is not None:
        from genolang.search.recipe import refuse_order_without_arch_steps

        try:
            refuse_order_without_arch_steps(spec, search.order, search.method or "darts")
        except UsageError as err:
            problem("order", err)
    return out


def _hint(message: str) -> str | None:
    _, sep, known = message.partition("; known: ")
    return f"known: {known}" if sep else None


def raise_method_problems(search: SearchSpec, source: str) -> None:
    """``method_diagnostics`` as a ``SpecError`` (nothing when there are none)."""
    problems = method_diagnostics(search)
    if problems:
        raise SpecError(tuple(problems), {search.path: source})
