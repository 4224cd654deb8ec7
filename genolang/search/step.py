"""One DARTS iteration, as ``genolang search`` runs it and ``genolang bench
search-step`` times it: an architecture step on a batch of the alpha half (with a batch
of the weight half for second order), then a weight step on that training batch."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genolang.ops.grouped import SharedWeights
from genolang.run import dist
from genolang.search.architect import Architect
from genolang.search.method import MethodRun

Batch = tuple[torch.Tensor, torch.Tensor]


def weight_step(loss: torch.Tensor, weights: list[nn.Parameter], optimizer: torch.optim.Optimizer, clip: float,
                world: dist.World = dist.SINGLE) -> None:
    """Gradients for the weights only (alphas get none), averaged across ranks, the
    gradient norm clipped at ``clip``, one step of ``optimizer`` (the drivers make it
    with ``foreach=True``: multi-tensor kernels, a few ops per step instead of a few
    per weight tensor, on the CPU as on CUDA)."""
    grads: tuple[torch.Tensor | None, ...] = torch.autograd.grad(loss, weights, allow_unused=True)
    # a fused optimizer (torch 2.14, CPU) reads a gradient laid out otherwise than its
    # weight (a channels-last conv's) element by element in memory order: lay it out alike
    fused = bool(getattr(optimizer, "defaults", {}).get("fused"))
    for p, g in zip(weights, grads):
        if fused and g is not None and g.stride() != p.stride():
            g = torch.empty_like(p).copy_(g)
        p.grad = g
    dist.all_reduce_grads_(weights, world)
    torch.nn.utils.clip_grad_norm_(weights, clip, foreach=True)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def image_iteration(model: nn.Module, architect: Architect, weight_optimizer: torch.optim.Optimizer,
                    weights: list[nn.Parameter], train: Batch, valid: Batch, lr: float, clip: float,
                    world: dist.World = dist.SINGLE,
                    method: MethodRun | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One iteration on image batches: the architecture step (first order on ``valid``;
    second order also unrolls a weight step on ``train`` at learning rate ``lr``), then
    the weight step on ``train`` (``method`` may skip the first during its warm-up, run
    them in the other order, and perturb the weights the second sees). Returns the
    training loss, its logits and the norm of the alpha gradient, None without an
    architecture step (device tensors: reading them waits for the device)."""
    x, y = train
    xv, yv = valid

    def valid_loss(call: Callable[..., Any]) -> torch.Tensor:
        return F.cross_entropy(call(xv), yv)

    def train_loss(call: Callable[..., Any]) -> torch.Tensor:
        return F.cross_entropy(call(x), y)

    arch = method is None or method.arch_step_due()
    weight_first = method is not None and method.spec.step_order == "weight_first"
    norm = None

    def phase() -> contextlib.AbstractContextManager[None]:
        return method.weight_phase() if method is not None else contextlib.nullcontext()

    # the architecture step and the weight step's forward run at the same weights: the
    # grouped calls derive theirs once (dropped before the weight optimizer steps)
    with SharedWeights():
        if arch and not weight_first:
            norm = architect.step(valid_loss, train_loss if architect.config.order == 2 else None, lr)
        with phase():
            logits = model(x)
            loss = F.cross_entropy(logits, y)
    with phase():
        weight_step(loss, weights, weight_optimizer, clip, world)
    if arch and weight_first:
        norm = architect.step(valid_loss, train_loss if architect.config.order == 2 else None, lr)
    return loss, logits, norm
