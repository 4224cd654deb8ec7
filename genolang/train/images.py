"""Retraining a compiled CNN genotype on an image data set (the DARTS recipe).

Reproducible and resumable bit for bit on the CPU: the weights are seeded, each
epoch's data order is a permutation derived from (seed, epoch), augmentation and drop
path draw from the global generators whose states every checkpoint stores, and the
learning rate is a closed form of the epoch. A run of N epochs interrupted after k
and resumed gives the same weights and metrics as an uninterrupted one.

Under torchrun the model is wrapped in DistributedDataParallel with batch norm over the
global batch; rank r trains on positions r, r+W, ... of each epoch's order, so with
``--batch-size B`` per process the step is that of one process with batch W x B.
Metrics are summed across ranks; only rank 0 writes files and reports progress.

On CUDA the step never waits for the device: losses and accuracies accumulate as
device tensors and are read (and checked for NaN) every ``recipe.log_every`` steps.
``recipe.amp`` runs forward passes under autocast (bfloat16 where supported, else
float16 with a gradient scaler); ``recipe.channels_last`` keeps activations NHWC."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from genolang.data.images import ImageData, load_images
from genolang.errors import UsageError
from genolang.nets.checkpoint import save_model
from genolang.nets.compile import DataShape, build, check_pair
from genolang.nets.count import count_params
from genolang.nets.fixed import FixedCNN
from genolang.run import dist
from genolang.run.diverged import check_finite
from genolang.run.evaluate import evaluate_images
from genolang.run.folder import RunDir
from genolang.run.progress import Progress, ProgressFn, emit
from genolang.run.runtime import seed_everything
from genolang.run.state import restore_rng
from genolang.spec.checked import GenotypeSpec, NetworkSpec
from genolang.train.recipe import ImageRecipe
from genolang.train.state import MODEL, RESULT, save_training, start_run

SUBSET_SEED = 0  # --limit-train/--limit-test take the same images whatever the run's seed


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports (also written to ``result.json``)."""

    run_dir: str
    model_path: str
    epochs: int
    metrics: dict[str, Any]
    params: int

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir, "model": self.model_path, "epochs": self.epochs, "params": self.params,
                **self.metrics}


def subset(n: int, limit: int | None) -> torch.Tensor | None:
    """A fixed random subset of ``limit`` of ``n`` indices (None: all of them)."""
    if limit is None or limit >= n:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(SUBSET_SEED))[:limit]


def epoch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[int]:
    """The training order of epoch ``epoch``: a permutation from (seed, epoch), without
    a trailing batch of one sample (BatchNorm cannot train on it)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=gen).tolist()
    if n > 1 and n % batch_size == 1:
        order = order[:-1]
    return order


def shape_of(data: ImageData) -> DataShape:
    return DataShape("cnn", in_channels=data.in_channels, input_size=data.input_size, classes=data.classes)


def loader(dataset: Dataset[tuple[torch.Tensor, torch.Tensor]], batch_size: int, order: Sequence[int] | None,
           workers: int, device: torch.device) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
    return DataLoader(dataset, batch_size=batch_size, sampler=order, shuffle=False, num_workers=workers,
                      pin_memory=device.type == "cuda", persistent_workers=False)


def autocast_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where the device computes it natively (recent GPUs, CPUs), else float16."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def train_images(geno: GenotypeSpec, network: NetworkSpec, recipe: ImageRecipe, run_dir: str | Path, *,
                 data: ImageData | None = None, data_dir: str | None = None, download: bool = False,
                 device: str | torch.device = "cpu", world: dist.World | None = None, workers: int = 0,
                 resume: bool = False, callbacks: Sequence[ProgressFn] = ()) -> TrainResult:
    """Train ``geno`` on ``network`` with ``recipe`` in ``run_dir``; ``data`` (already
    loaded) or the data set ``recipe.dataset`` from ``data_dir``. Without ``world`` the
    process group (under torchrun) is joined here and ``device`` is a name."""
    check_pair(geno, network)
    run = RunDir(run_dir)
    world, dev = dist.join(str(device)) if world is None else (world, torch.device(device))
    callbacks = callbacks if world.is_main else ()
    if data is None:
        data = load_images(recipe.dataset, data_dir, download)
    shape = shape_of(data)
    seed_everything(recipe.seed)
    use_aux = recipe.aux_weight > 0 and network.auxiliary is not None
    # a skeleton that misfits the data, or one too large for this machine, fails here
    model = build(geno, network, shape, auxiliary=use_aux, batch=recipe.batch_size, training=True).to(dev)
    assert isinstance(model, FixedCNN)
    state = start_run(run, geno, network, recipe, resume, world)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = dist.data_parallel(model, world, dev, recipe.sync_bn)  # the model itself in a single process
    amp_dtype = autocast_dtype(dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=recipe.amp and amp_dtype == torch.float16)
    sync_every = 1 if dev.type == "cpu" else max(1, recipe.log_every)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    train_idx = subset(len(data.train_y), recipe.limit_train)
    test_idx = subset(len(data.test_y), recipe.limit_test)
    train_set = data.dataset("train", augment=recipe.augment, cutout=recipe.cutout, indices=train_idx)
    test_set = data.dataset("test", indices=test_idx)
    if len(train_set) < 2:
        raise UsageError(f"{recipe.dataset}: {len(train_set)} training images are too few to train on")
    test_loader = loader(test_set, recipe.eval_batch_size or recipe.batch_size,
                         dist.shard(range(len(test_set)), world) if world.distributed else None, workers, dev)

    start = 0
    if state is not None:
        if DataShape.from_dict(dict(state.get("data_shape") or {})) != shape or \
                bool(state.get("auxiliary")) != use_aux:
            raise UsageError(f"{run.checkpoint} was trained on {DataShape.from_dict(state['data_shape']).describe()}, "
                             f"but {recipe.dataset} here has {shape.describe()}; choose another --run-dir")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["train"]["optimizer"])
        start = int(state["train"]["epoch"])
        restore_rng(state["train"], str(run.checkpoint), world)
        if world.is_main:
            run.truncate_jsonl("metrics.jsonl", start)
    if world.distributed and state is None:
        torch.manual_seed(recipe.seed + 7919 * world.rank)  # each rank its own augmentation, drop-path draws
    emit(callbacks, Progress("start", start, recipe.epochs, message="" if state is not None else "fresh run"))

    extra = {"dataset": recipe.dataset, **data.record()}  # normalisation and class names, for eval
    for epoch in range(start, recipe.epochs):
        began = time.perf_counter()
        lr = recipe.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.drop_path_prob = recipe.drop_path_at(epoch)
        order = dist.shard(epoch_order(len(train_set), recipe.batch_size * world.size, recipe.seed, epoch), world)
        batches = loader(train_set, recipe.batch_size, order, workers, dev)
        steps = len(batches)
        emit(callbacks, Progress("epoch_start", epoch + 1, recipe.epochs, 0, steps))
        model.train()
        sums = torch.zeros(3, dtype=torch.float64, device=dev)  # loss x n, correct, n: read every sync_every steps
        for step, (x, y) in enumerate(batches, 1):
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            if recipe.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=recipe.amp):
                logits, aux = net(x, return_aux=True)
                loss_main = criterion(logits.float(), y)
                loss = loss_main + recipe.aux_weight * criterion(aux.float(), y) if aux is not None else loss_main
            scaler.scale(loss).backward()
            if recipe.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            with torch.no_grad():
                sums += torch.stack([loss_main.detach().double() * y.numel(),
                                     (logits.argmax(1) == y).sum().double(), sums.new_tensor(y.numel())])
            if step % sync_every == 0 or step == steps:
                total_loss, correct, count = (float(v) for v in sums)
                check_finite(loss.detach(), "training loss", epoch + 1, step, run)
                check_finite(total_loss, "training loss", epoch + 1, step, run)
                emit(callbacks, Progress("step", epoch + 1, recipe.epochs, step, steps,
                                         {"loss": float(loss_main.detach()), "acc": correct / count}))
        total_loss, correct, count = (float(v) for v in sums)
        test = evaluate_images(model, test_loader, dev, world)
        total_loss, correct, count = dist.reduce_sums([total_loss, correct, count], world, dev)
        record = {
            "epoch": epoch + 1, "train_loss": total_loss / count, "train_acc": correct / count,
            "test_loss": test["loss"], "test_acc": test["acc"], "lr": lr, "drop_path": model.drop_path_prob,
            "seconds": time.perf_counter() - began,
        }
        if world.is_main:
            run.log_metrics(record)
        save_training(run, model, geno, network, shape, recipe, epoch + 1, optimizer, {}, extra, world)
        emit(callbacks, Progress("epoch_end", epoch + 1, recipe.epochs, steps, steps, record))

    model_path = run.path / MODEL
    if world.is_main:
        save_model(model_path, model, geno, network, shape, extra={**extra, "recipe": recipe.to_dict()})
    dist.barrier(world)
    last = run.metrics()[-1] if run.metrics() else {}
    metrics = {"test_acc": last.get("test_acc"), "test_loss": last.get("test_loss"),
               "train_loss": last.get("train_loss"), "train_acc": last.get("train_acc"),
               "test_images": len(test_set), "dataset": recipe.dataset, "genotype": geno.name,
               "network": network.name}
    result = TrainResult(str(run.path), str(model_path), recipe.epochs, metrics, count_params(model))
    if world.is_main:
        run.write_json(RESULT, result.to_dict())
    emit(callbacks, Progress("done", recipe.epochs, recipe.epochs, metrics=result.to_dict()))
    return result
