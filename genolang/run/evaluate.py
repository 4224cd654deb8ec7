"""Evaluation shared by search and training: loss and accuracy of an image model,
mean negative log-likelihood of a language model, and perplexity."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genolang.data.text import get_batch
from genolang.run import dist


def perplexity(loss: float) -> float:
    """exp(loss); infinite where that overflows."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")


@torch.no_grad()
def evaluate_images(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
                    world: dist.World = dist.SINGLE) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` in eval mode over ``batches`` (this
    rank's share; the sums are reduced across ranks). The model's mode is restored."""
    was_training = model.training
    model.eval()
    loss = correct = seen = 0.0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += float((logits.argmax(1) == y).sum())
        seen += y.numel()
    model.train(was_training)
    loss, correct, seen = dist.reduce_sums([loss, correct, seen], world, device)
    return {"loss": loss / max(seen, 1), "acc": correct / max(seen, 1), "n": int(seen)}


@torch.no_grad()
def evaluate_text(model: Any, data: torch.Tensor, bptt: int, limit: int | None = None) -> float:
    """Mean negative log-likelihood per token of ``data`` (T x B), in eval mode, in
    windows of ``bptt`` (at most ``limit`` of them). The model's mode is restored."""
    was_training = model.training
    model.eval()
    hidden = model.init_hidden(data.size(1))
    total, count = 0.0, 0
    for b, i in enumerate(range(0, data.size(0) - 1, bptt)):
        if limit and b >= limit:
            break
        x, y = get_batch(data, i, bptt)
        log_prob, hidden = model(x, hidden)
        total += float(F.nll_loss(log_prob.view(-1, model.ntokens), y, reduction="sum"))
        count += int(y.numel())
    model.train(was_training)
    return total / max(count, 1)
