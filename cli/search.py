"""``genolang search``: compile a space into a supernet, run DARTS and write the found
genotype as a spec file."""

from __future__ import annotations

from typing import Any

import click

from genolang.cli.options import DEVICE, DEVICE_HELP, POSITIVE, SEED, pipeline_help
from genolang.data.registry import DATA_DIR_HELP, dataset_help
from genolang.errors import UsageError


def parse_settings(settings: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """``--set gumbel.tau_max=5`` as ``(("gumbel.tau_max", 5),)``: numbers, true/false
    and words."""
    out = []
    for item in settings:
        key, eq, text = item.partition("=")
        if not eq or not key.strip() or not text.strip():
            raise UsageError(f"--set {item}: write COMPONENT.PARAM=VALUE, e.g. --set gumbel.tau_max=5")
        value: Any = text.strip()
        if value in ("true", "false"):
            value = value == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(value)
                    break
                except ValueError:
                    continue
        out.append((key.strip(), value))
    return tuple(out)


def search_declaration(arg: str) -> Any:
    """The ``search`` declaration ``arg`` names (a file holding one, or a search's name
    where no space has that name), checked, its method too; None for a space."""
    import re
    from pathlib import Path

    from genolang.errors import SpecError
    from genolang.parse.parser import read_text
    from genolang.search.recipe_spec import raise_method_problems
    from genolang.spec.check import check, load_text
    from genolang.spec.lookup import is_path
    from genolang.spec.resolve import Library

    if is_path(arg):
        text = read_text(arg)
        if not re.search(r"(?m)^\s*search\s", text):
            return None
        checked = load_text(text, arg)
        if not checked.searches:
            return None
        if len(checked.searches) > 1:
            raise UsageError(f"{arg} declares {len(checked.searches)} searches ({', '.join(checked.searches)}); "
                             "'genolang search' runs a file with one (or give a search's name)")
        found_text = text
        search = next(iter(checked.searches.values()))
    else:
        library = Library.for_file(str(Path.cwd() / "_.geno"))
        if library.find("space", arg) is not None:
            return None
        found = library.find("search", arg)
        if found is None:
            return None
        result = check(found.file, found.source, Library.for_file(found.file.path))
        if result.errors:
            raise SpecError(tuple(result.errors), {found.file.path: found.source, **result.sources})
        found_text = found.source
        search = result.searches[arg]
    raise_method_problems(search, found_text)
    return search


def _list_methods(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from genolang.search.components import KINDS, parameters, registry
    from genolang.search.method import PRESETS

    click.echo("methods:")
    for name in sorted(PRESETS):
        spec = PRESETS[name].spec()
        click.echo(f"  {spec.describe()}" + (f"  [{spec.paper}]" if spec.paper else ""))
    for kind in KINDS:
        click.echo(f"{kind}s:")
        for name in sorted(registry(kind)):
            params = ", ".join(f"{k}={v}" for k, v in parameters(kind, name).items())
            click.echo(f"  {name}" + (f"({params})" if params else ""))
    ctx.exit(0)


@click.command("search")
@click.argument("space", metavar="SPACE|SEARCH", type=str)
@click.option("--network", "network", default=None,
              help="Skeleton name or .geno file (default: small_search for digits and fashion-mnist, "
                   "cifar_search for cifar10, cifar100 and folder, ptb_search for ptb and text).")
@click.option("--dataset", default=None,
              help=f"CNN spaces: {dataset_help('image')} (default digits); recurrent spaces: {dataset_help('text')} "
                   "(default ptb).")
@click.option("--data-dir", default=None, type=click.Path(), help=DATA_DIR_HELP)
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Epochs (default: 12 for digits, 10 for fashion-mnist, 50 for cifar10, cifar100, folder, ptb "
                   "and text).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Batch size (default 64; 256 for ptb; at least 2 for images: batch norm needs two).")
@click.option("--order", type=click.Choice(["1", "2"]), default=None,
              help="1: first-order DARTS (default); 2: second order (unrolled weight step).")
@click.option("--seed", type=SEED, default=None, help="Random seed (default 0).")
@click.option("-o", "--output", "--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the found genotype (default found.geno; with --run-dir only "
                   "RUN_DIR/genotype.geno). An existing file is refused before the search starts unless --force.")
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Run folder: checkpoint, per-epoch genotypes, metrics (default runs/search-<time>).")
@click.option("--resume", is_flag=True, help="Continue the search in --run-dir from its last checkpoint.")
@click.option("--device", type=DEVICE, default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--lr", type=POSITIVE, default=None, help="Weight learning rate (default 0.025 cosine to 0.001; 20 ptb).")
@click.option("--arch-lr", type=POSITIVE, default=None,
              help="Alpha learning rate for Adam (default 3e-4 as the paper; 3e-3 for ptb; 3e-2 for digits, whose "
                   "short search takes 100x fewer alpha steps).")
@click.option("--nesterov/--no-nesterov", default=None,
              help="Nesterov momentum for the weights [the method's: on for gdas, as its code; off otherwise].")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="At most N training steps per epoch and N evaluation batches (quick trials and tests).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch's operators (default: 1 for digits and fashion-mnist, whose tiny "
                   "tensors gain little from more; torch's choice, one per core, otherwise).")
@click.option("--augment/--no-augment", default=None,
              help="Random crop / flip of the images of both halves (default on, as the original).")
@click.option("--sync-bn/--no-sync-bn", default=None,
              help="Under torchrun: batch norm over the global batch, so N processes search as one with N x the "
                   "batch (default on); off, each process normalises its own batch and skips that communication.")
@click.option("--passes", default=None, metavar="A,B,...",
              help="CNN supernet: run only these optimizing passes, in this order ('' for none; default all). "
                   "They change speed and memory, not results. " + pipeline_help())
@click.option("--no-opt", is_flag=True, help="CNN supernet: no passes and NCHW tensors, as the paper's code builds it.")
@click.option("--method", default=None, metavar="NAME",
              help="Search method: darts (default) or another of 'genolang search --list-methods', with its "
                   "paper's components and hyperparameters; every part can be overridden below.")
@click.option("--relaxation", default=None, help="Replace the method's relaxation (softmax, gumbel, ...).")
@click.option("--transform", "transforms", multiple=True,
              help="Supernet transform(s) instead of the method's (repeatable; 'none' for none).")
@click.option("--regularizer", "regularizers", multiple=True,
              help="Architecture regularizer(s) instead of the method's (repeatable; 'none' for none).")
@click.option("--perturbation", default=None, help="Weight-step perturbation instead of the method's ('none').")
@click.option("--selection", default=None, help="Final selection instead of the method's (magnitude, ...).")
@click.option("--set", "settings", multiple=True, metavar="COMPONENT.PARAM=VALUE",
              help="Set a component's hyperparameter, e.g. --set gumbel.tau_max=5 (repeatable).")
@click.option("--warmup", type=float, default=None,
              help="Fraction of the epochs with frozen alphas before the architecture steps start [the method's].")
@click.option("--step-order", type=click.Choice(["arch_first", "weight_first"]), default=None,
              help="Which step of an iteration runs first [the method's; arch_first for DARTS].")
@click.option("--hessian", type=click.Choice(["fd", "exact"]), default=None,
              help="Second order: the finite-difference Hessian-vector product (the paper's) or the exact one "
                   "(double backward) [fd].")
@click.option("--list-methods", is_flag=True, is_eager=True, expose_value=False, callback=_list_methods,
              help="List the search methods and components, and exit.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or per-epoch lines; only the result.")
def search(space: str, network: str | None, dataset: str | None, data_dir: str | None, epochs: int | None,
           batch_size: int | None, order: str | None, seed: int | None, out: str | None, run_dir: str | None,
           resume: bool, force: bool, device: str, lr: float | None, arch_lr: float | None, nesterov: bool | None,
           limit: int | None,
           threads: int | None, augment: bool | None, sync_bn: bool | None, passes: str | None, no_opt: bool,
           method: str | None, relaxation: str | None, transforms: tuple[str, ...],
           regularizers: tuple[str, ...], perturbation: str | None, selection: str | None,
           settings: tuple[str, ...], warmup: float | None, step_order: str | None, hessian: str | None,
           quiet: bool) -> None:
    """Search SPACE (a space .geno file or a space name) with DARTS (or --method) and
    write the found genotype as a spec file that 'genolang compile' and 'genolang train'
    accept; or run SEARCH, a file holding a 'search' declaration (or its name), with the
    options given here over its values.

    With no options, a CNN space is searched on the offline 'digits' data set with the
    small_search skeleton (first order, a few minutes on two CPU cores); a recurrent
    space on Penn Treebank with the DARTS recipe. Every run writes its effective recipe
    to RUN_DIR/recipe.geno."""
    from genolang.cli.progress import Reporter
    from genolang.search.entry import run_search
    from genolang.search.recipe import SearchConfig

    supernet = None
    if no_opt and passes is not None:
        raise UsageError("--no-opt and --passes contradict each other: --no-opt runs no pass; give one of them")
    if no_opt or passes is not None:
        from genolang.nets.supernet import NO_OPT, SupernetOptions
        from genolang.passes import parse_passes

        supernet = NO_OPT if no_opt else SupernetOptions(passes=parse_passes(passes or ""))

    if out is None and run_dir is None:
        out = "found.geno"
    config = SearchConfig(space=space, network=network, dataset=dataset, data_dir=data_dir, epochs=epochs,
                          batch_size=batch_size, order=int(order) if order else None, seed=seed, lr=lr,
                          arch_lr=arch_lr, nesterov=nesterov, limit=limit, augment=augment, sync_bn=sync_bn,
                          device=device,
                          threads=threads, supernet=supernet, method=method, relaxation=relaxation,
                          transforms=transforms or None, regularizers=regularizers or None,
                          perturbation=perturbation, selection=selection, params=parse_settings(settings),
                          warmup=warmup, step_order=step_order, hessian=hessian)
    declared = search_declaration(space)
    if declared is not None:
        from genolang.search.recipe_spec import search_config

        config = search_config(declared, config)
    if resume and run_dir is None:
        raise UsageError("--resume needs --run-dir: the folder of the search to continue")
    from genolang.run.dist import is_main_process

    main_rank = is_main_process()
    result = run_search(config, run_dir=run_dir, out=out, resume=resume, replace_out=force,
                        progress=Reporter(quiet or not main_rank, "searching"))
    if not main_rank:
        return
    m = result.metrics
    score = (f"valid accuracy {100 * m['valid_acc']:.2f}%" if "valid_acc" in m
             else f"valid perplexity {m.get('valid_ppl', float('nan')):.2f}")
    decided = f"; {result.decisiveness.short()}" if result.decisiveness is not None else ""
    click.echo(f"wrote {result.kept} ({score}{decided}; run folder {result.run_dir})")
    if not quiet:
        click.echo(result.declaration)
    if result.out_error is not None:
        click.echo(f"error: the genotype was not written to {out}: {result.out_error}\n"
                   f"  it is kept in {result.kept}; copy it from there", err=True)
        raise click.exceptions.Exit(1)
