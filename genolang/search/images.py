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
from collections.abc import Iterator, Mapping
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
                                 nesterov=r.nesterov, foreach=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(weight_opt, T_max=r.epochs, eta_min=r.lr_min)
    architect = s.method.architect(model, weight_opt, r, world)
    method = s.method
    sampler = torch.Generator().manual_seed(r.seed)
    start = s.restore(model, weight_opt, architect, scheduler, sampler)
    metrics: dict[str, Any] = dict(s.run.metrics()[-1]) if start else {}
    steps_hint = len(batches(split, r.batch_size, torch.Generator().manual_seed(0), world))
    steps = min(steps_hint, r.limit) if r.limit else steps_hint
    s.start(model, start, steps)

    def run_epoch(epoch: int, epochs: int, lr: float, fine_tuning: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One epoch: ``steps`` iterations, then the validation figures, the epoch's
        files and the checkpoint. A search epoch (``fine_tuning`` None) steps the
        cosine schedule; an epoch a selection adds keeps the learning rate and saves
        the selection's state ``fine_tuning`` with the checkpoint."""
        t0 = time.perf_counter()
        model.train()
        train_batches = batches(split, r.batch_size, sampler, world)
        search_batches = batches(n - split, r.batch_size, sampler, world)
        if r.limit:
            train_batches = train_batches[: r.limit]
        if fine_tuning is None:
            method.start_epoch(epoch)
        else:  # an epoch a selection adds: the components see the search over (set_epoch(epochs, epochs))
            method.end_epochs()
        s.progress(Progress("epoch_start", epoch, epochs, 0, len(train_batches)))
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
                s.progress(Progress("step", epoch, epochs, step, len(train_batches),
                                    {"loss": total_loss / total_seen, "acc": total_correct / total_seen},
                                    s.changes(model)))
        total_loss, total_correct, total_seen = (float(v) for v in sums)
        if fine_tuning is None:
            scheduler.step()
        valid_scores = evaluate_images(model, eval_batches(valid_set, EVAL_BATCH, s.device, r.limit, world),
                                       s.device, world)
        total_loss, total_correct, total_seen = dist.reduce_sums([total_loss, total_correct, total_seen], world,
                                                                 s.device)
        record: dict[str, Any] = {
            "epoch": epoch, "train_loss": total_loss / total_seen, "train_acc": total_correct / total_seen,
            "valid_loss": valid_scores["loss"], "valid_acc": valid_scores["acc"], "lr": lr,
            "seconds": round(time.perf_counter() - t0, 3)}
        if fine_tuning is not None:
            record["phase"] = "selection"
        changes = s.log_epoch(epoch, model, record, selection=fine_tuning is not None)
        s.save(epoch, model, weight_opt, architect, scheduler, sampler, selection=fine_tuning)
        s.progress(Progress("epoch_end", epoch, epochs, len(train_batches), len(train_batches), record, changes))
        return record

    for epoch in range(start + 1, r.epochs + 1):
        metrics = run_epoch(epoch, r.epochs, float(scheduler.get_last_lr()[0]))
    method.end_epochs()
    context = SelectionContext(s.space, model, "found", metrics=metrics, epochs_done=max(start, r.epochs),
                               resumed=s.saved_selection(), lr=r.lr)
    scorer = _Scorer(model, valid_set, r.batch_size, r.limit, r.seed, s.device, world)

    def train_epoch(state: Mapping[str, Any], planned: int) -> Mapping[str, Any]:
        context.epochs_done += 1
        context.metrics = run_epoch(context.epochs_done, r.epochs + planned, float(weight_opt.param_groups[0]["lr"]),
                                    fine_tuning=state)
        return context.metrics

    def fine_tune(lr: float) -> None:
        weight_opt.state.clear()  # as a new SGD: the momentum starts again from the first gradient
        for group in weight_opt.param_groups:
            group["lr"] = lr

    context.score, context.train_epoch, context.fine_tune = scorer, train_epoch, fine_tune
    return s.finish(out, model, metrics, context)


class _Scorer:
    """``SelectionContext.score`` for images: the accuracy of the supernet as it is on
    the validation split (the alpha half, without augmentation), under ``no_grad``."""

    def __init__(self, model: torch.nn.Module, dataset: Any, batch_size: int, limit: int | None, seed: int,
                 device: torch.device, world: dist.World) -> None:
        self.model, self.dataset, self.batch_size, self.limit = model, dataset, batch_size, limit
        self.device, self.world = device, world
        self.order = torch.Generator().manual_seed(seed + 1)  # the cycling iterator's shuffles
        self.queue: list[torch.Tensor] = []

    def __call__(self, batches: int | None = None, train_mode: bool = False) -> float:
        n = len(self.dataset)
        if batches is None:  # the whole split in order (at most --limit batches)
            size = self.batch_size if train_mode else EVAL_BATCH
            chosen = [torch.arange(i, min(i + size, n)) for i in range(0, n, size)]
            chosen = [b for b in chosen if len(b) > 1 or not train_mode]
            if self.limit:
                chosen = chosen[: self.limit]
        else:
            if self.limit:
                batches = min(batches, self.limit)
            chosen = []
            while len(chosen) < batches:
                if not self.queue:  # a new pass over the shuffled split, the same on every rank
                    perm = torch.randperm(n, generator=self.order)
                    self.queue = [b for b in perm.split(self.batch_size) if len(b) > 1]
                chosen.append(self.queue.pop(0))
        if train_mode:
            return self._train_mode(chosen)
        world = self.world
        shares = (stack(self.dataset, idx, self.device) for b, idx in enumerate(chosen) if b % world.size == world.rank)
        return float(evaluate_images(self.model, shares, self.device, world)["acc"])

    @torch.no_grad()
    def _train_mode(self, chosen: list[torch.Tensor]) -> float:
        """Accuracy with batch norm on each batch's statistics (every rank takes its
        share of every batch, so batch norm over the global batch sees the whole
        batch); the running statistics are restored afterwards."""
        model, world = self.model, self.world
        saved = [b.clone() for b in model.buffers()]
        was_training = model.training
        model.train()
        correct = seen = 0.0
        try:
            for idx in chosen:
                x, y = stack(self.dataset, idx[world.rank::world.size] if world.distributed else idx, self.device)
                correct += float((model(x).argmax(1) == y).sum())
                seen += y.numel()
        finally:
            for b, old in zip(model.buffers(), saved):
                b.copy_(old)
            model.train(was_training)
        correct, seen = dist.reduce_sums([correct, seen], world, self.device)
        return correct / max(seen, 1)
