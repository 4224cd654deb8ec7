"""``genolang search``: compile a space into a supernet, run DARTS and write the found
genotype as a spec file."""

from __future__ import annotations

import click

from genolang.data.registry import DATA_DIR_HELP, dataset_help
from genolang.errors import UsageError


@click.command("search")
@click.argument("space", type=str)
@click.option("--network", "network", default=None,
              help="Skeleton name or .geno file (default: small_search for digits and fashion-mnist, "
                   "cifar_search for cifar10, cifar100 and folder, ptb_search for ptb and text).")
@click.option("--dataset", default=None,
              help=f"CNN spaces: {dataset_help('image')} (default digits); recurrent spaces: {dataset_help('text')} "
                   "(default ptb).")
@click.option("--data-dir", default=None, type=click.Path(), help=DATA_DIR_HELP)
@click.option("--epochs", type=int, default=None,
              help="Epochs (default: 12 for digits, 10 for fashion-mnist, 50 for cifar10, cifar100, folder, ptb "
                   "and text).")
@click.option("--batch-size", type=int, default=None, help="Batch size (default 64; 256 for ptb).")
@click.option("--order", type=click.Choice(["1", "2"]), default=None,
              help="1: first-order DARTS (default); 2: second order (unrolled weight step).")
@click.option("--seed", type=int, default=None, help="Random seed (default 0).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the found genotype (default found.geno; with --run-dir only "
                   "RUN_DIR/genotype.geno).")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Run folder: checkpoint, per-epoch genotypes, metrics (default runs/search-<time>).")
@click.option("--resume", is_flag=True, help="Continue the search in --run-dir from its last checkpoint.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto takes CUDA when present.")
@click.option("--lr", type=float, default=None, help="Weight learning rate (default 0.025 cosine to 0.001; 20 ptb).")
@click.option("--arch-lr", type=float, default=None,
              help="Alpha learning rate for Adam (default 3e-4 as the paper; 3e-3 for ptb; 3e-2 for digits, whose "
                   "short search takes 100x fewer alpha steps).")
@click.option("--limit", type=int, default=None,
              help="At most N steps per epoch and N evaluation batches (quick trials and tests).")
@click.option("--threads", type=int, default=None,
              help="CPU threads for torch's operators (default: 1 for digits and fashion-mnist, whose tiny "
                   "tensors gain little from more; torch's choice, one per core, otherwise).")
@click.option("--augment/--no-augment", default=None,
              help="Random crop / flip of the images of both halves (default on, as the original).")
@click.option("--sync-bn/--no-sync-bn", default=None,
              help="Under torchrun: batch norm over the global batch, so N processes search as one with N x the "
                   "batch (default on); off, each process normalises its own batch and skips that communication.")
@click.option("--passes", default=None, metavar="A,B,...",
              help="CNN supernet: run only these optimizing passes, in this order ('' for none; default all). "
                   "They change speed and memory, not results.")
@click.option("--no-opt", is_flag=True, help="CNN supernet: no passes and NCHW tensors, as the paper's code builds it.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or per-epoch lines; only the result.")
def search(space: str, network: str | None, dataset: str | None, data_dir: str | None, epochs: int | None,
           batch_size: int | None, order: str | None, seed: int | None, out: str | None, run_dir: str | None,
           resume: bool, device: str, lr: float | None, arch_lr: float | None, limit: int | None,
           threads: int | None, augment: bool | None, sync_bn: bool | None, passes: str | None, no_opt: bool,
           quiet: bool) -> None:
    """Search SPACE (a space .geno file or a space name) with DARTS and write the found
    genotype as a spec file that 'genolang compile' and 'genolang train' accept.

    With no options, a CNN space is searched on the offline 'digits' data set with the
    small_search skeleton (first order, a few minutes on two CPU cores); a recurrent
    space on Penn Treebank with the DARTS recipe."""
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
                          arch_lr=arch_lr, limit=limit, augment=augment, sync_bn=sync_bn, device=device,
                          threads=threads, supernet=supernet)
    if resume and run_dir is None:
        raise UsageError("--resume needs --run-dir: the folder of the search to continue")
    from genolang.run.dist import is_main_process

    main_rank = is_main_process()
    result = run_search(config, run_dir=run_dir, out=out, resume=resume, progress=Reporter(quiet or not main_rank, "searching"))
    if not main_rank:
        return
    m = result.metrics
    score = (f"valid accuracy {100 * m['valid_acc']:.2f}%" if "valid_acc" in m
             else f"valid perplexity {m.get('valid_ppl', float('nan')):.2f}")
    where = result.out if result.out is not None else result.run_dir / "genotype.geno"
    click.echo(f"wrote {where} ({score}; {result.decisiveness.short()}; run folder {result.run_dir})")
    if not quiet:
        click.echo(result.declaration)
