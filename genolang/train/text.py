"""Retraining a recurrent genotype on a corpus: the DARTS recipe for Penn Treebank
(after AWD-LSTM).

Each training batch has a random length (bptt with probability 0.95, else bptt/2,
then N(that, 5), at least 5, at most bptt + 20) and scales the step size by
seq_len / bptt; the hidden state is carried between batches and detached; the loss
adds temporal activation regularisation beta * mean((h[t+1] - h[t])^2) on the raw
cell outputs. After every epoch the validation loss is computed (with the averaged
weights once on ASGD); SGD switches to ASGD (t0 = 0, lambd = 0) when it is worse than
the best of all but the last ``nonmono`` evaluations. ``model.pt`` keeps the weights
with the best validation loss; the test perplexity is that model's.

Random lengths draw from Python's ``random``, dropout masks from torch's generator;
both states are in every checkpoint, so a resumed run continues exactly.

Under torchrun the training stream is cut into W x batch columns and rank r trains on
its own ``batch`` columns with DistributedDataParallel, which averages the gradients:
the step of one process with batch W x B. Python's generator (the sequence lengths)
runs identically on every rank; the validation and test perplexities are computed on
every rank alike; only rank 0 writes files."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genolang.data.text import Corpus, batchify, get_batch, load_corpus
from genolang.errors import UsageError
from genolang.nets.checkpoint import load_model, save_model
from genolang.nets.compile import DataShape, build, check_pair
from genolang.nets.count import count_params
from genolang.nets.rnn import RNNModel
from genolang.run import dist
from genolang.run.diverged import check_finite
from genolang.run.evaluate import evaluate_text, perplexity
from genolang.run.folder import RunDir
from genolang.run.progress import Progress, ProgressFn, emit
from genolang.run.runtime import seed_everything
from genolang.run.state import restore_rng
from genolang.spec.checked import GenotypeSpec, NetworkSpec
from genolang.train.images import TrainResult
from genolang.train.recipe import TextRecipe
from genolang.train.state import MODEL, RESULT, save_training, start_run


def vocab_digest(corpus: Corpus) -> str:
    """A fingerprint of the vocabulary (word ids must mean the same words)."""
    return hashlib.sha256("\n".join(corpus.vocab).encode("utf-8")).hexdigest()[:16]


def _seq_len(recipe: TextRecipe) -> int:
    bptt = recipe.bptt if random.random() < 0.95 else recipe.bptt / 2.0
    return min(max(5, int(random.gauss(bptt, 5))), recipe.bptt + recipe.max_seq_len_delta)


def _splits(corpus: Corpus, recipe: TextRecipe,
            world: dist.World = dist.SINGLE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    train = corpus.train[: recipe.limit_train] if recipe.limit_train else corpus.train
    valid = corpus.valid[: recipe.limit_test] if recipe.limit_test else corpus.valid
    test = corpus.test[: recipe.limit_test] if recipe.limit_test else corpus.test
    cols = slice(world.rank * recipe.batch_size, (world.rank + 1) * recipe.batch_size)
    return (batchify(train, recipe.batch_size * world.size)[:, cols].contiguous(),
            batchify(valid, recipe.eval_batch_size), batchify(test, recipe.eval_batch_size))


def _asgd(model: nn.Module, recipe: TextRecipe) -> torch.optim.Optimizer:
    return torch.optim.ASGD(model.parameters(), lr=recipe.lr, t0=0, lambd=0.0, weight_decay=recipe.weight_decay)


def _averaged(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[nn.Parameter, torch.Tensor]:
    """Swap ASGD's averaged weights into ``model``; returns the current ones."""
    saved = {}
    for p in model.parameters():
        saved[p] = p.data.clone()
        if "ax" in optimizer.state.get(p, {}):
            p.data.copy_(optimizer.state[p]["ax"])
    return saved


def train_text(geno: GenotypeSpec, network: NetworkSpec, recipe: TextRecipe, run_dir: str | Path, *,
               corpus: Corpus | None = None, data_dir: str | None = None, device: str | torch.device = "cpu",
               world: dist.World | None = None, resume: bool = False,
               callbacks: Sequence[ProgressFn] = ()) -> TrainResult:
    """Train a recurrent ``geno`` on ``network`` with ``recipe`` in ``run_dir``. Without
    ``world`` the process group (under torchrun) is joined here and ``device`` is a name."""
    check_pair(geno, network)
    run = RunDir(run_dir)
    world, dev = dist.join(str(device)) if world is None else (world, torch.device(device))
    callbacks = callbacks if world.is_main else ()
    if corpus is None:
        corpus = load_corpus(recipe.dataset, data_dir)
    train_data, val_data, test_data = (t.to(dev) for t in _splits(corpus, recipe, world))
    shape = DataShape("rnn", ntokens=corpus.ntokens)
    seed_everything(recipe.seed)
    model = build(geno, network, shape, batch=recipe.batch_size, training=True).to(dev)
    assert isinstance(model, RNNModel)
    state = start_run(run, geno, network, recipe, resume, world)
    net = dist.data_parallel(model, world, dev)  # the model itself in a single process
    sync_every = 1 if dev.type == "cpu" else 20
    optimizer: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr,
                                                       weight_decay=recipe.weight_decay)
    extra = {"dataset": recipe.dataset, "vocab": vocab_digest(corpus), "recipe": recipe.to_dict()}
    loop: dict[str, Any] = {"asgd": False, "best_val": float("inf"), "history": []}
    start = 0
    if state is not None:
        if DataShape.from_dict(state["data_shape"]) != shape or state.get("extra", {}).get("vocab") != extra["vocab"]:
            raise UsageError(f"{run.checkpoint} was trained on another vocabulary than {recipe.dataset} here")
        model.load_state_dict(state["state_dict"])
        loop = dict(state["train"]["loop"])
        loop["history"] = list(loop["history"])
        if loop["asgd"]:
            optimizer = _asgd(model, recipe)
        optimizer.load_state_dict(state["train"]["optimizer"])
        start = int(state["train"]["epoch"])
        restore_rng(state["train"], str(run.checkpoint), world)
        if world.is_main:
            run.truncate_jsonl("metrics.jsonl", start)
    elif world.distributed:
        torch.manual_seed(recipe.seed + 7919 * world.rank)  # each rank its own dropout masks
    emit(callbacks, Progress("start", start, recipe.epochs, message="" if state is not None else "fresh run"))

    best_path = run.path / MODEL
    for epoch in range(start, recipe.epochs):
        began = time.perf_counter()
        used = "asgd" if loop["asgd"] else "sgd"
        steps = max(1, (train_data.size(0) - 2) // recipe.bptt)
        emit(callbacks, Progress("epoch_start", epoch + 1, recipe.epochs, 0, steps))
        model.train()
        hidden = model.init_hidden(recipe.batch_size)
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)  # read every sync_every steps
        count, step, i = 0, 0, 0
        while i < train_data.size(0) - 1 - 1:
            seq_len = _seq_len(recipe)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.param_groups[0]["lr"] = lr * seq_len / recipe.bptt
            x, y = get_batch(train_data, i, seq_len)
            hidden = hidden.detach()
            optimizer.zero_grad(set_to_none=True)
            log_prob, hidden, raw, dropped = net(x, hidden, return_h=True)
            raw_loss = nn.functional.nll_loss(log_prob.view(-1, model.ntokens), y)
            loss = raw_loss
            if recipe.alpha > 0:
                loss = loss + recipe.alpha * dropped.pow(2).mean()
            if recipe.beta > 0 and raw.size(0) > 1:
                loss = loss + recipe.beta * (raw[1:] - raw[:-1]).pow(2).mean()
            synced = (step + 1) % sync_every == 0
            if synced:  # on CUDA only every few batches: reading a value waits for the device
                check_finite(loss.detach(), "training loss", epoch + 1, step + 1, run)
            loss.backward()
            if recipe.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            optimizer.param_groups[0]["lr"] = lr
            loss_sum += raw_loss.detach().double() * y.numel()
            count += int(y.numel())
            step += 1
            i += seq_len
            if synced:
                value = float(raw_loss.detach())
                emit(callbacks, Progress("step", epoch + 1, recipe.epochs, min(step, steps), steps,
                                         {"loss": value, "ppl": perplexity(value)}))
        total = float(loss_sum)
        check_finite(total, "training loss", epoch + 1, 0, run)
        if loop["asgd"]:
            current = _averaged(model, optimizer)
            val_loss = evaluate_text(model, val_data, recipe.bptt)
            if val_loss < loop["best_val"]:
                if world.is_main:
                    save_model(best_path, model, geno, network, shape, extra={**extra, "epoch": epoch + 1})
                loop["best_val"] = val_loss
            for p, data in current.items():
                p.data.copy_(data)
        else:
            val_loss = evaluate_text(model, val_data, recipe.bptt)
            if val_loss < loop["best_val"]:
                if world.is_main:
                    save_model(best_path, model, geno, network, shape, extra={**extra, "epoch": epoch + 1})
                loop["best_val"] = val_loss
            history = loop["history"]
            if len(history) > recipe.nonmono and val_loss > min(history[:-recipe.nonmono]):
                optimizer = _asgd(model, recipe)
                loop["asgd"] = True
                emit(callbacks, Progress("note", epoch + 1, recipe.epochs,
                                         message=f"switching to ASGD after epoch {epoch + 1}"))
            history.append(val_loss)
        total, tokens = dist.reduce_sums([total, count], world, dev)
        train_loss = total / max(tokens, 1)
        record = {
            "epoch": epoch + 1, "train_loss": train_loss, "train_ppl": perplexity(train_loss),
            "valid_loss": val_loss, "valid_ppl": perplexity(val_loss), "lr": recipe.lr,
            "optimizer": used, "seconds": time.perf_counter() - began,
        }
        if world.is_main:
            run.log_metrics(record)
        save_training(run, model, geno, network, shape, recipe, epoch + 1, optimizer, loop, extra, world)
        emit(callbacks, Progress("epoch_end", epoch + 1, recipe.epochs, steps, steps, record))

    dist.barrier(world)  # rank 0 has written the best model
    best, _, _, _ = load_model(best_path, map_location=dev)
    assert isinstance(best, RNNModel)
    best.to(dev)
    test_loss = evaluate_text(best, test_data, recipe.bptt)
    metrics = {"test_loss": test_loss, "test_ppl": perplexity(test_loss), "best_valid_loss": loop["best_val"],
               "best_valid_ppl": perplexity(loop["best_val"]), "test_tokens": int(test_data.numel()),
               "dataset": recipe.dataset, "genotype": geno.name, "network": network.name}
    result = TrainResult(str(run.path), str(best_path), recipe.epochs, metrics, count_params(best, exclude=()))
    if world.is_main:
        run.write_json(RESULT, result.to_dict())
    emit(callbacks, Progress("done", recipe.epochs, recipe.epochs, metrics=result.to_dict()))
    return result
