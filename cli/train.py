"""``genolang train`` and ``genolang eval``: retrain a genotype from scratch with the
DARTS recipe and evaluate saved models. Progress goes to stderr (a bar per epoch when
stderr is a terminal), results to stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from genolang.cli.options import (
    DEVICE,
    DEVICE_HELP,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    SEED,
)
from genolang.data.registry import DATA_DIR_HELP, dataset_help
from genolang.errors import plural

# option name -> recipe field, for the options that change the recipe
RECIPE_OPTIONS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "schedule", "lr_min", "decay", "cutout",
                  "augment", "drop_path", "aux_weight", "grad_clip", "label_smoothing", "seed", "limit_train",
                  "limit_test", "eval_batch_size", "bptt", "alpha", "beta", "nonmono", "amp", "channels_last",
                  "log_every", "sync_bn")


@click.command("train")
@click.argument("genotype")
@click.option("-n", "--network", required=True,
              help="Network skeleton: a name (cifar, small, imagenet, ptb ...) or a .geno file.")
@click.option("-d", "--dataset", required=True, help=f"{dataset_help()}.")
@click.option("--data-dir", type=click.Path(), help=DATA_DIR_HELP)
@click.option("--download", is_flag=True, help="Download CIFAR-10 or CIFAR-100 into --data-dir (needs internet).")
@click.option("--epochs", type=click.IntRange(min=1),
              help="Epochs [cifar10 and cifar100 600, digits 30, fashion-mnist 50, folder 100, imagenet-stem 250, "
                   "ptb and text 8000].")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Batch size [cifar10 and cifar100 96, digits 64, fashion-mnist 96, folder 64, imagenet-stem 128, "
                   "ptb and text 64; at least 2 for images: batch norm needs two].")
@click.option("--lr", type=POSITIVE, help="Initial learning rate [0.025; 0.1 for an imagenet stem; 20 for ptb].")
@click.option("--momentum", type=PROBABILITY, help="SGD momentum [0.9].")
@click.option("--weight-decay", type=NON_NEGATIVE, help="Weight decay [3e-4; 3e-5 for an imagenet stem; 8e-7 for ptb].")
@click.option("--schedule", type=click.Choice(["cosine", "step", "constant"]),
              help="Learning-rate schedule [cosine to --lr-min; step (x --decay per epoch) for an imagenet stem].")
@click.option("--lr-min", type=NON_NEGATIVE, help="Final learning rate of the cosine schedule [0].")
@click.option("--decay", type=POSITIVE, help="Per-epoch factor of the step schedule [0.97].")
@click.option(
    "--cutout", type=click.IntRange(min=0), help="Cutout square side, 0 for none [cifar10 and cifar100 16, else 0]."
)
@click.option("--augment/--no-augment", default=None, help="Random crop / flip of the training images [on].")
@click.option("--drop-path", type=PROBABILITY, help="Final drop-path probability [the skeleton's drop_path].")
@click.option("--aux-weight", type=NON_NEGATIVE,
              help="Weight of the auxiliary loss [the skeleton's, 0 without a head].")
@click.option("--grad-clip", type=NON_NEGATIVE, help="Gradient-norm clip, 0 for none [5; 0.25 for ptb].")
@click.option("--label-smoothing", type=PROBABILITY, help="Label smoothing [the skeleton's: 0.1 for imagenet].")
@click.option("--eval-batch-size", type=click.IntRange(min=1),
              help="Evaluation batch size [images: --batch-size; ptb 10].")
@click.option("--bptt", type=click.IntRange(min=2), help="ptb: mean sequence length [35].")
@click.option("--alpha", type=NON_NEGATIVE, help="ptb: activation regularisation weight [0].")
@click.option("--beta", type=NON_NEGATIVE, help="ptb: temporal activation regularisation weight [1e-3].")
@click.option("--nonmono", type=click.IntRange(min=1), help="ptb: evaluations without improvement before ASGD [5].")
@click.option("--amp/--no-amp", default=None,
              help="Mixed precision: bfloat16 autocast where supported, else float16 with loss scaling [off].")
@click.option("--channels-last/--no-channels-last", default=None,
              help="NHWC memory layout (often faster on GPUs) [off].")
@click.option("--log-every", type=click.IntRange(min=1),
              help="On CUDA, steps between progress reports (each waits for the GPU) [20].")
@click.option("--sync-bn/--no-sync-bn", default=None,
              help="Under torchrun: batch norm over the global batch, so N processes train as one with N x the "
                   "batch [on]; off, each process normalises its own batch and skips that communication.")
@click.option("--seed", type=SEED, help="Random seed [0].")
@click.option("--limit-train", type=click.IntRange(min=1), help="Use only this many training images (tokens for ptb).")
@click.option("--limit", type=click.IntRange(min=1),
              help="Shorthand for --limit-train N --limit-test N (as 'eval --limit': this many images, "
                   "tokens for ptb).")
@click.option("--limit-test", type=click.IntRange(min=1),
              help="Use only this many test images (valid/test tokens for ptb).")
@click.option("--channels", type=click.IntRange(min=1), help="Override the skeleton's initial channels.")
@click.option("--layers", type=click.IntRange(min=1), help="Override the skeleton's number of cells.")
@click.option("--embedding", type=click.IntRange(min=1), help="Override a recurrent skeleton's embedding size.")
@click.option("--hidden", type=click.IntRange(min=1), help="Override a recurrent skeleton's hidden size.")
@click.option("--run-dir", type=click.Path(file_okay=False),
              help="Folder for metrics, checkpoints and results [runs/GENOTYPE-NETWORK-DATASET-TIME].")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir from its last checkpoint.")
@click.option("--device", type=DEVICE, default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="Data-loading processes.")
@click.option("--threads", type=click.IntRange(min=1), help="torch.set_num_threads (default: PyTorch's choice).")
@click.option("--tensorboard/--no-tensorboard", default=True, show_default=True,
              help="Write TensorBoard logs to RUN_DIR/tb when tensorboard is installed.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or per-epoch lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def train(genotype: str, network: str, dataset: str, data_dir: str | None, download: bool, run_dir: str | None,
          resume: bool, device: str, workers: int, threads: int | None, tensorboard: bool, quiet: bool, as_json: bool,
          channels: int | None, layers: int | None, embedding: int | None, hidden: int | None,
          **options: Any) -> None:
    """Retrain GENOTYPE on --network with the DARTS recipe for --dataset, writing
    metrics.jsonl, checkpoint.pt (every epoch), model.pt and result.json into the run
    folder. Every default in [brackets] can be overridden. Example:

        genolang train darts_v2 --network small --dataset digits --epochs 2
    """
    from genolang.cli.progress import Reporter
    from genolang.run.dist import is_main_process
    from genolang.train.entry import TrainConfig, run_training

    limit = options.pop("limit", None)
    if limit is not None:
        for key in ("limit_train", "limit_test"):
            options[key] = options.get(key) or limit
    main_rank = is_main_process()
    config = TrainConfig(genotype, network, dataset, data_dir=data_dir, download=download,
                         options={k: v for k, v in options.items() if k in RECIPE_OPTIONS},
                         overrides={"channels": channels, "layers": layers, "embedding": embedding, "hidden": hidden},
                         device=device, workers=workers, threads=threads, tensorboard=tensorboard)
    result = run_training(config, run_dir=run_dir, resume=resume,
                          progress=Reporter(quiet or not main_rank, "training"))
    if not main_rank:
        return
    out = result.to_dict()
    if as_json:
        click.echo(json.dumps(out, sort_keys=True))
        return
    if "test_ppl" in out:
        click.echo(f"test perplexity {out['test_ppl']:.2f} (best valid {out['best_valid_ppl']:.2f}) "
                   f"after {plural(out['epochs'], 'epoch')}; model: {out['model']}")
    else:
        click.echo(f"test accuracy {100 * out['test_acc']:.2f}% (loss {out['test_loss']:.4f}) on "
                   f"{out['test_images']} images after {plural(out['epochs'], 'epoch')}; model: {out['model']}")
    click.echo(f"run folder: {out['run_dir']} (metrics.jsonl, checkpoint.pt, model.pt, result.json)")


@click.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.option("-d", "--dataset", required=True, help=f"{dataset_help()}.")
@click.option("--data-dir", type=click.Path(), help=DATA_DIR_HELP)
@click.option("--download", is_flag=True, help="Download CIFAR-10 or CIFAR-100 into --data-dir (needs internet).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Evaluation batch size [images 256, ptb 10].")
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only this many test images (tokens).")
@click.option("--device", type=DEVICE, default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--threads", type=click.IntRange(min=1), help="torch.set_num_threads (default: PyTorch's choice).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def eval_cmd(checkpoint: str, dataset: str, data_dir: str | None, download: bool, batch_size: int | None,
             limit: int | None, device: str, threads: int | None, as_json: bool) -> None:
    """Evaluate the model in CHECKPOINT (model.pt or checkpoint.pt of a run, a run
    folder, or a file from 'genolang compile -o') on the test split of --dataset."""
    from genolang.train.evaluate import evaluate_checkpoint

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "model.pt" if (path / "model.pt").is_file() else path / "checkpoint.pt"
    result = evaluate_checkpoint(path, dataset, data_dir=data_dir, download=download, batch_size=batch_size,
                                 device=device, limit=limit)
    if "note" in result:
        click.echo(f"note: {result['note']}", err=True)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    elif "test_ppl" in result:
        click.echo(f"{result['genotype']} on {result['network']}: test perplexity {result['test_ppl']:.2f} "
                   f"(loss {result['test_loss']:.4f}) on {plural(result['test_tokens'], dataset + ' token')}")
    else:
        click.echo(f"{result['genotype']} on {result['network']}: test accuracy {100 * result['test_acc']:.2f}% "
                   f"(loss {result['test_loss']:.4f}) on {plural(result['test_images'], dataset + ' image')}")
