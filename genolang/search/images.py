"""The image driver of a search (DARTS's CNN recipe, the original ``train_search.py``).

The training images are split in two halves (``train_portion`` 0.5): the first trains
the weights, the second the alphas; every step takes one batch of each (``search.step``:
an architecture step, then a weight step: SGD, momentum 0.9, weight decay 3e-4,
gradient norm clipped at 5, lr cosine-annealed from 0.025 to 0.001 over the epochs).
Both halves are augmented as for training (as the original); an epoch's validation
figures are measured on the alpha half without augmentation, in eval mode.

Under torchrun rank r takes positions r, r+W, ... of the epoch's permutation, so the
ranks' batches together are the batch of one process with W times the batch size."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from genolang.data.images import load_images
from genolang.errors import UsageError
from genolang.nets.compile import SIZE_FIX
from genolang.nets.size import estimate_supernet, refuse_too_large
from genolang.nets.supernet import SupernetOptions, build_supernet
from genolang.ops.norm import globalize_batchnorm
from genolang.run import dist
from genolang.run.diverged import check_finite
from genolang.run.evaluate import evaluate_images
from genolang.run.progress import Progress
from genolang.run.runtime import seed_everything
from genolang.search.method import SelectionContext
from genolang.search.recipe import EVAL_BATCH
from genolang.search.state import SearchResult, SearchRun
from genolang.search.step import image_iteration


def batches(n: int, batch: int, generator: torch.Generator, world: dist.World = dist.SINGLE) -> list[torch.Tensor]:
    """A random order of ``range(n)`` cut into batches; a last batch of one sample is
    dropped (batch norm cannot train on it). With several ranks, this rank's share:
    positions r, r+W, ... of the permutation (padded to a multiple of W), so the
    ranks' i-th batches together are the i-th batch of W times the size."""
    perm = torch.randperm(n, generator=generator)
    if world.distributed:
        total = -(-n // world.size) * world.size
        perm = torch.cat([perm, perm[: total - n]])[world.rank::world.size]
    out = [perm[i:i + batch] for i in range(0, len(perm), batch)]
    return [b for b in out if len(b) > 1]


def stack(dataset: Any, idx: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[int(i)] for i in idx]
    return torch.stack([x for x, _ in items]).to(device), torch.stack([y for _, y in items]).to(device)


def eval_batches(dataset: Any, batch: int, device: torch.device, limit: int | None,
                 world: dist.World = dist.SINGLE) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The dataset in order, in batches of ``batch`` (at most ``limit``), every W-th one
    on this rank."""
    n = len(dataset)
    for b, i in enumerate(range(0, n, batch)):
        if limit and b >= limit:
            break
        if b % world.size == world.rank:
            yield stack(dataset, torch.arange(i, min(i + batch, n)), device)


def distribute(model: torch.nn.Module, s: SearchRun) -> None:
    """Prepare a supernet for data parallelism: batch norm over the global batch, the
    same starting weights on every rank, and per-rank random streams (augmentation,
    dropout) from here on. A no-op in a single process."""
    world = s.world
    if world.distributed:
        if s.recipe.sync_bn:
            globalize_batchnorm(model)
        dist.broadcast_([*model.parameters(), *model.buffers()], world)
        # torch's generator (augmentation, dropout) differs per rank from here on; python's,
        # which picks the recurrent sequence lengths, stays seeded alike on every rank
        torch.manual_seed(s.recipe.seed + 7919 * world.rank)


def search_images(s: SearchRun, out: Path | None) -> SearchResult:
    r = s.recipe
    data = load_images(r.dataset, r.data_dir)
    n = len(data.train_y)
    split = math.floor(n * r.train_portion)
    if split < 2 or n - split < 2:
        raise UsageError(f"{r.dataset} has {n} training images: too few to split for search")
    train_set = data.dataset("train", augment=r.augment, cutout=0, indices=torch.arange(0, split))
    search_set = data.dataset("train", augment=r.augment, cutout=0, indices=torch.arange(split, n))
    valid_set = data.dataset("train", augment=False, indices=torch.arange(split, n))

    seed_everything(r.seed)
    refuse_too_large(estimate_supernet(s.space, s.network, in_channels=data.in_channels, input_size=data.input_size,
                                       classes=data.classes),
                     f"the supernet of space '{s.space.name}' on network '{s.network.name}' for {r.dataset}", SIZE_FIX,
                     2 * r.batch_size, training=True)
    options = s.method.supernet_options(s.config.supernet if s.config.supernet is not None else SupernetOptions())
    model = build_supernet(s.space, s.network, in_channels=data.in_channels, input_size=data.input_size,
                           classes=data.classes, options=options).to(s.device)
    s.method.prepare(model)
    distribute(model, s)
    world = s.world
    weights = model.weight_parameters()
    weight_opt = torch.optim.SGD(weights, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay,
                                 nesterov=r.nesterov)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(weight_opt, T_max=r.epochs, eta_min=r.lr_min)
    architect = s.method.architect(model, weight_opt, r, world)
    method = s.method
    sampler = torch.Generator().manual_seed(r.seed)
    start = s.restore(model, weight_opt, architect, scheduler, sampler)
    metrics: dict[str, Any] = dict(s.run.metrics()[-1]) if start else {}
    steps_hint = len(batches(split, r.batch_size, torch.Generator().manual_seed(0), world))
    steps = min(steps_hint, r.limit) if r.limit else steps_hint
    s.start(model, start, steps)
    for epoch in range(start + 1, r.epochs + 1):
        t0 = time.perf_counter()
        lr = float(scheduler.get_last_lr()[0])
        model.train()
        train_batches = batches(split, r.batch_size, sampler, world)
        search_batches = batches(n - split, r.batch_size, sampler, world)
        if r.limit:
            train_batches = train_batches[: r.limit]
        method.start_epoch(epoch)
        s.progress(Progress("epoch_start", epoch, r.epochs, 0, len(train_batches)))
        sums = torch.zeros(3, dtype=torch.float64, device=s.device)  # loss x n, correct, n
        for step, idx in enumerate(train_batches, 1):
            x, y = stack(train_set, idx, s.device)
            valid = stack(search_set, search_batches[(step - 1) % len(search_batches)], s.device)
            loss, logits, norm = image_iteration(model, architect, weight_opt, weights, (x, y), valid, lr,
                                                 r.grad_clip, world, method)
            synced = step % s.sync_every == 0 or step == len(train_batches)
            if synced:  # on CUDA, only every few steps: each check waits for the device
                if norm is not None:
                    check_finite(norm, "architecture gradient", epoch, step, s.run, "lower --lr/--arch-lr")
                check_finite(loss, "training loss", epoch, step, s.run, "lower --lr/--arch-lr")
            with torch.no_grad():
                sums += torch.stack([loss.detach().double() * len(y), (logits.argmax(1) == y).sum().double(),
                                     sums.new_tensor(len(y))])
            if synced and world.is_main:
                total_loss, total_correct, total_seen = (float(v) for v in sums)
                s.progress(Progress("step", epoch, r.epochs, step, len(train_batches),
                                    {"loss": total_loss / total_seen, "acc": total_correct / total_seen},
                                    s.changes(model)))
        total_loss, total_correct, total_seen = (float(v) for v in sums)
        scheduler.step()
        valid_scores = evaluate_images(model, eval_batches(valid_set, EVAL_BATCH, s.device, r.limit, world),
                                       s.device, world)
        total_loss, total_correct, total_seen = dist.reduce_sums([total_loss, total_correct, total_seen], world,
                                                                 s.device)
        metrics = {"epoch": epoch, "train_loss": total_loss / total_seen, "train_acc": total_correct / total_seen,
                   "valid_loss": valid_scores["loss"], "valid_acc": valid_scores["acc"], "lr": lr,
                   "seconds": round(time.perf_counter() - t0, 3)}
        changes = s.log_epoch(epoch, model, metrics)
        s.save(epoch, model, weight_opt, architect, scheduler, sampler)
        s.progress(Progress("epoch_end", epoch, r.epochs, len(train_batches), len(train_batches), metrics, changes))
    method.end_epochs()

    def valid_accuracy() -> float:
        return evaluate_images(model, eval_batches(valid_set, EVAL_BATCH, s.device, r.limit, world), s.device,
                               world)["acc"]

    return s.finish(out, model, metrics, SelectionContext(s.space, model, "found", evaluate=valid_accuracy))
