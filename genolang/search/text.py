"""The text driver of a search (DARTS's recurrent recipe on Penn Treebank, the
original ``rnn/train_search.py``).

The training stream trains the weights and the *validation* stream (in batches of the
same size) the alphas, as the original's ``search_data``; sequence length 35 (17 with
probability 0.05, the learning rate scaled by its length), SGD lr 20 without momentum,
weight decay 5e-7, clip 0.25, temporal activation regularisation 1e-3; alphas by Adam
lr 3e-3, betas (0.9, 0.999), weight decay 1e-3; an epoch's validation perplexity is
measured on the validation stream in batches of 10.

Under torchrun each rank takes its own columns of the token streams."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from genolang.data.text import batchify, get_batch, load_corpus
from genolang.errors import UsageError
from genolang.nets.compile import SIZE_FIX
from genolang.nets.size import estimate_rnn, refuse_too_large
from genolang.nets.supernet_rnn import build_rnn_supernet
from genolang.run import dist
from genolang.run.diverged import check_finite
from genolang.run.evaluate import evaluate_text, perplexity
from genolang.run.progress import Progress
from genolang.run.runtime import seed_everything
from genolang.search.images import distribute
from genolang.search.method import SelectionContext
from genolang.search.state import SearchResult, SearchRun
from genolang.search.step import weight_step


def _nll(x: torch.Tensor, y: torch.Tensor, hidden: torch.Tensor, ntok: int,
         keep: list[torch.Tensor] | None = None) -> Callable[[Callable[..., Any]], torch.Tensor]:
    """The architect's objective: the mean negative log-likelihood of ``y`` given ``x``
    from ``hidden``; ``keep[0]`` receives the hidden state it ends with."""
    def objective(call: Callable[..., Any]) -> torch.Tensor:
        log_prob, h_next = call(x, hidden)
        if keep is not None:
            keep[0] = h_next
        return F.nll_loss(log_prob.view(-1, ntok), y)

    return objective


def search_text(s: SearchRun, out: Path | None) -> SearchResult:
    r = s.recipe
    corpus = load_corpus(r.dataset, r.data_dir)
    seed_everything(r.seed)
    nodes = sum(cell.nodes for cell in s.space.cells)
    refuse_too_large(estimate_rnn(s.network, nodes, corpus.ntokens),
                     f"the supernet of space '{s.space.name}' on network '{s.network.name}' for {s.recipe.dataset}",
                     SIZE_FIX, s.recipe.batch_size, training=True)
    model = build_rnn_supernet(s.space, s.network, corpus.ntokens).to(s.device)
    s.method.prepare(model)
    distribute(model, s)
    world = s.world
    # with W ranks, the streams are cut into W x batch columns and rank r takes its own
    cols = slice(world.rank * r.batch_size, (world.rank + 1) * r.batch_size)
    train_data = batchify(corpus.train, r.batch_size * world.size)[:, cols].contiguous().to(s.device)
    search_data = batchify(corpus.valid, r.batch_size * world.size)[:, cols].contiguous().to(s.device)
    val_data = batchify(corpus.valid, r.eval_batch_size).to(s.device)
    weights = model.weight_parameters()
    weight_opt = torch.optim.SGD(weights, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay,
                                 nesterov=r.nesterov, foreach=True)
    architect = s.method.architect(model, weight_opt, r, world)
    start = s.restore(model, weight_opt, architect, None, None)
    ntok = corpus.ntokens

    metrics: dict[str, Any] = dict(s.run.metrics()[-1]) if start else {}
    steps = max(1, (train_data.size(0) - 2) // r.bptt)
    steps = min(steps, r.limit) if r.limit else steps
    s.start(model, start, steps)
    for epoch in range(start + 1, r.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        s.method.start_epoch(epoch)
        s.progress(Progress("epoch_start", epoch, r.epochs, 0, steps))
        hidden = model.init_hidden(r.batch_size)
        hidden_valid = [model.init_hidden(r.batch_size)]
        loss_sum = torch.zeros((), dtype=torch.float64, device=s.device)
        total_tokens = 0.0
        i = step = 0
        while i < train_data.size(0) - 1 - 1 and not (r.limit and step >= r.limit):
            step += 1
            bptt = r.bptt if random.random() < 0.95 else r.bptt / 2.0
            seq_len = int(bptt)
            base_lr = weight_opt.param_groups[0]["lr"]
            weight_opt.param_groups[0]["lr"] = base_lr * seq_len / r.bptt
            xv, yv = get_batch(search_data, i % (search_data.size(0) - 1), r.bptt)
            x, y = get_batch(train_data, i, seq_len)
            hidden = hidden.detach()
            valid_obj = _nll(xv, yv, hidden_valid[0].detach(), ntok, keep=hidden_valid)
            train_obj = _nll(x, y, hidden, ntok) if r.order == 2 else None
            norm = None
            if s.method.arch_step_due():
                norm = architect.step(valid_obj, train_obj, weight_opt.param_groups[0]["lr"])
                hidden_valid[0] = hidden_valid[0].detach()
            with s.method.weight_phase():
                log_prob, hidden, raw, _ = model(x, hidden, return_h=True)
                raw_loss = F.nll_loss(log_prob.view(-1, ntok), y)
                synced = step % s.sync_every == 0
                if synced:  # on CUDA, only every few steps: each check waits for the device
                    if norm is not None:
                        check_finite(norm, "architecture gradient", epoch, step, s.run, "lower --lr/--arch-lr")
                    check_finite(raw_loss, "training loss", epoch, step, s.run, "lower --lr/--arch-lr")
                loss = raw_loss + r.tar * (raw[1:] - raw[:-1]).pow(2).mean()
                weight_step(loss, weights, weight_opt, r.grad_clip, world)
            weight_opt.param_groups[0]["lr"] = base_lr
            loss_sum += raw_loss.detach().double() * len(y)
            total_tokens += len(y)
            i += seq_len
            if synced and world.is_main:
                avg = float(loss_sum) / total_tokens
                s.progress(Progress("step", epoch, r.epochs, step, steps, {"loss": avg, "ppl": perplexity(avg)},
                                    s.changes(model)))
        total_loss = float(loss_sum)
        check_finite(loss_sum, "training loss", epoch, step, s.run, "lower --lr/--arch-lr")
        valid_loss = evaluate_text(model, val_data, r.bptt, r.limit)
        total_loss, total_tokens = dist.reduce_sums([total_loss, total_tokens], world, s.device)
        train_loss = total_loss / max(total_tokens, 1)
        metrics = {"epoch": epoch, "train_loss": train_loss, "train_ppl": perplexity(train_loss),
                   "valid_loss": valid_loss, "valid_ppl": perplexity(valid_loss),
                   "lr": float(weight_opt.param_groups[0]["lr"]), "seconds": round(time.perf_counter() - t0, 3)}
        changes = s.log_epoch(epoch, model, metrics)
        s.save(epoch, model, weight_opt, architect, None, None)
        s.progress(Progress("epoch_end", epoch, r.epochs, step, steps, metrics, changes))
    s.method.end_epochs()
    return s.finish(out, model, metrics, SelectionContext(s.space, model, "found", score=_TextScorer(model, val_data,
                                                                                                  r.bptt, r.limit),
                                                          metrics=metrics, epochs_done=r.epochs, lr=r.lr))


class _TextScorer:
    """``SelectionContext.score`` for text: minus the validation loss per token (so
    higher is better), in eval mode, over windows of ``bptt`` tokens: all of them (at
    most ``--limit``), or the next ``batches`` of a cycling pass over them, from a fresh
    hidden state. The recurrent driver offers no train-mode scoring or fine-tuning."""

    def __init__(self, model: Any, data: torch.Tensor, bptt: int, limit: int | None) -> None:
        self.model, self.data, self.bptt, self.limit = model, data, bptt, limit
        self.starts = list(range(0, data.size(0) - 1, bptt))
        self.next = 0

    @torch.no_grad()
    def __call__(self, batches: int | None = None, train_mode: bool = False) -> float:
        if train_mode:
            raise UsageError("the recurrent search cannot score its supernet with batch statistics")
        if batches is None:
            return -evaluate_text(self.model, self.data, self.bptt, self.limit)
        if self.limit:
            batches = min(batches, self.limit)
        was_training = self.model.training
        self.model.eval()
        hidden = self.model.init_hidden(self.data.size(1))
        total, count = 0.0, 0
        for _ in range(batches):
            x, y = get_batch(self.data, self.starts[self.next], self.bptt)
            self.next = (self.next + 1) % len(self.starts)
            log_prob, hidden = self.model(x, hidden)
            total += float(F.nll_loss(log_prob.view(-1, self.model.ntokens), y, reduction="sum"))
            count += int(y.numel())
        self.model.train(was_training)
        return -total / max(count, 1)
