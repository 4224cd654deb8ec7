"""``genolang compare``: retrain genotypes under one budget and the same seeds, then a
table (Markdown and JSON), a plot of the per-seed results and whether the best beats
each other beyond the seed noise. Progress goes to stderr, the table to stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from genolang.cli.options import DEVICE, DEVICE_HELP, NON_NEGATIVE, POSITIVE, PROBABILITY
from genolang.data.registry import DATA_DIR_HELP, dataset_help
from genolang.errors import UsageError

RECIPE_OPTIONS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "cutout", "augment", "drop_path",
                  "aux_weight", "grad_clip", "limit_train", "limit_test", "eval_batch_size", "bptt", "amp",
                  "channels_last", "log_every", "sync_bn")


MAX_SEEDS = 1000


def parse_seeds(text: str) -> tuple[int, ...]:
    """``0,1,2`` or ``0-4`` (or a mix: ``0-2,7``)."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else ("-" + part[1:].split("-", 1)[0],
                                                                                part[1:].split("-", 1)[1])
                a, b = int(lo), int(hi)
                if b < a or b - a >= MAX_SEEDS:
                    raise ValueError
                seeds += range(a, b + 1)
            else:
                seeds.append(int(part))
        except ValueError:
            raise click.BadParameter(f"'{text}': give seeds as 0,1,2 or a range 0-4 (at most {MAX_SEEDS} seeds)",
                                     param_hint="--seeds") from None
        if len(seeds) > MAX_SEEDS:
            raise click.BadParameter(f"'{text}' gives more than {MAX_SEEDS} seeds; 3 to 5 are usual",
                                     param_hint="--seeds")
    bad = [s for s in seeds if not 0 <= s < 2 ** 32]
    if bad:
        raise click.BadParameter(f"seed {bad[0]} is out of range: seeds are 0 to 4294967295", param_hint="--seeds")
    return tuple(seeds)


@click.command("compare")
@click.argument("genotypes", nargs=-1, required=True)
@click.option("-n", "--network", required=True,
              help="Network skeleton for every genotype: a name (small, cifar, ptb ...) or a .geno file.")
@click.option("-d", "--dataset", required=True, help=f"{dataset_help()}.")
@click.option("--data-dir", type=click.Path(), help=DATA_DIR_HELP)
@click.option("--download", is_flag=True, help="Download CIFAR-10 or CIFAR-100 into --data-dir (needs internet).")
@click.option("--seeds", default="0,1,2", show_default=True,
              help="Seeds every genotype is trained with: 0,1,2 or a range 0-4. 3 to 5 are usual; with fewer than "
                   "2 no test is possible.")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs of every run [as 'genolang train'].")
@click.option("--batch-size", type=click.IntRange(min=2), help="Batch size [as 'genolang train'].")
@click.option("--lr", type=POSITIVE, help="Initial learning rate [as 'genolang train'].")
@click.option("--momentum", type=NON_NEGATIVE, help="SGD momentum [0.9].")
@click.option("--weight-decay", type=NON_NEGATIVE, help="Weight decay [as 'genolang train'].")
@click.option("--cutout", type=click.IntRange(min=0), help="Cutout square side, 0 for none [as 'genolang train'].")
@click.option("--augment/--no-augment", default=None, help="Random crop / flip of the training images [on].")
@click.option("--drop-path", type=PROBABILITY, help="Final drop-path probability [the skeleton's].")
@click.option("--aux-weight", type=NON_NEGATIVE, help="Weight of the auxiliary loss [the skeleton's].")
@click.option("--grad-clip", type=NON_NEGATIVE, help="Gradient-norm clip, 0 for none [5; 0.25 for ptb].")
@click.option("--limit-train", type=click.IntRange(min=1),
              help="Train on this many training images (the same fixed subset in every run; tokens for text).")
@click.option("--limit-test", type=click.IntRange(min=1), help="Test on this many test images (the same in every run).")
@click.option("--eval-batch-size", type=click.IntRange(min=1), help="Evaluation batch size.")
@click.option("--bptt", type=click.IntRange(min=2), help="Text: mean sequence length [35].")
@click.option("--amp/--no-amp", default=None, help="Mixed precision [off].")
@click.option("--channels-last/--no-channels-last", default=None, help="NHWC memory layout [off].")
@click.option("--log-every", type=click.IntRange(min=1), help="On CUDA, steps between progress reports [20].")
@click.option("--sync-bn/--no-sync-bn", default=None, help="Under torchrun: batch norm over the global batch [on].")
@click.option("--channels", type=click.IntRange(min=1), help="Override the skeleton's initial channels.")
@click.option("--layers", type=click.IntRange(min=1), help="Override the skeleton's number of cells.")
@click.option("--embedding", type=click.IntRange(min=1), help="Override a recurrent skeleton's embedding size.")
@click.option("--hidden", type=click.IntRange(min=1), help="Override a recurrent skeleton's hidden size.")
@click.option("--out-dir", type=click.Path(file_okay=False),
              help="Folder of the comparison: compare.json, compare.md, compare.png and a run folder per genotype "
                   "and seed [runs/compare-TIME].")
@click.option("--resume", is_flag=True,
              help="Continue the comparison in --out-dir: reuse finished runs, resume unfinished ones, start "
                   "missing ones (genotypes and seeds may be added; the recipe may not change).")
@click.option("--device", type=DEVICE, default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="Data-loading processes.")
@click.option("--threads", type=click.IntRange(min=1), help="torch.set_num_threads (default: PyTorch's choice).")
@click.option("-q", "--quiet", is_flag=True, help="No per-epoch lines; only the table.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object instead of the table.")
def compare(genotypes: tuple[str, ...], network: str, dataset: str, data_dir: str | None, download: bool,
            seeds: str, channels: int | None, layers: int | None, embedding: int | None, hidden: int | None,
            out_dir: str | None, resume: bool, device: str, workers: int, threads: int | None, quiet: bool,
            as_json: bool, **options: Any) -> None:
    """Retrain every GENOTYPE (files or names) on --network with --dataset under one
    recipe and every seed of --seeds, one run folder each, then write a table of the
    test accuracy (perplexity for text) as mean ± std over the seeds, with parameters and
    time (compare.md, compare.json), a plot of the per-seed results (compare.png), and
    whether the best genotype is better than each other beyond the seed noise (Welch's
    t-test, two-sided, Holm-corrected over the comparisons). Runs under torchrun like
    'genolang train'. Example:

        genolang compare found.geno baselines/*.geno --network small --dataset digits --epochs 5
    """
    from genolang.cli.progress import Reporter
    from genolang.run.dist import is_main_process
    from genolang.train.compare import CompareConfig, markdown, run_compare

    config = CompareConfig(tuple(genotypes), network, dataset, parse_seeds(seeds), data_dir=data_dir,
                           download=download, options={k: v for k, v in options.items() if k in RECIPE_OPTIONS},
                           overrides={"channels": channels, "layers": layers, "embedding": embedding, "hidden": hidden},
                           device=device, workers=workers, threads=threads)
    reporter = Reporter(quiet or not is_main_process(), "training")
    comparison = run_compare(config, out_dir=out_dir, resume=resume, progress=reporter)
    if not is_main_process():
        return
    data = comparison.to_json()
    folder = Path(comparison.out_dir)
    try:
        from genolang.report.compare import write_compare_plot

        click.echo(f"wrote {write_compare_plot(data, folder)}", err=True)
    except UsageError as err:  # matplotlib missing: the table is still there
        click.echo(f"note: no plot: {err}", err=True)
    click.echo(f"wrote {folder / 'compare.md'} and {folder / 'compare.json'}", err=True)
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
    else:
        click.echo(markdown(comparison), nl=False)
