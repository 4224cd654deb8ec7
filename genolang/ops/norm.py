"""Batch norm over the global batch of a data-parallel run: under torchrun with several
ranks, the batch statistics are all-reduced (differentiably), so N processes compute
what one process with N times the batch computes; with one process it is exactly
``F.batch_norm``. ``GlobalBatchNorm`` is the module, ``batch_norm`` the functional form
that fused and grouped ops call."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.distributed as dist
from torch import nn


class BatchNormLike(Protocol):
    """What the functional batch norms (fused and grouped ops) read of a BN module:
    ``nn.BatchNorm1d/2d``, or the ``GlobalBatchNorm`` that replaces them in
    data-parallel runs."""

    @property
    def training(self) -> bool: ...
    @property
    def num_features(self) -> int: ...
    @property
    def eps(self) -> float: ...
    @property
    def momentum(self) -> float | None: ...
    @property
    def affine(self) -> bool: ...
    @property
    def track_running_stats(self) -> bool: ...
    @property
    def weight(self) -> torch.Tensor | None: ...
    @property
    def bias(self) -> torch.Tensor | None: ...
    @property
    def running_mean(self) -> torch.Tensor | None: ...
    @property
    def running_var(self) -> torch.Tensor | None: ...
    @property
    def num_batches_tracked(self) -> torch.Tensor | None: ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class _AllReduceSum(torch.autograd.Function):
    """Sum across ranks; the gradient of a sum is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx: object, t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


class GlobalBatchNorm(nn.Module):
    """Batch norm whose batch statistics are those of the global batch across ranks
    (differentiably all-reduced), so a data-parallel step computes what one process
    with the whole batch computes. With one process it is ordinary batch norm. Works
    on CPU (gloo) and CUDA, unlike ``nn.SyncBatchNorm``, which needs a GPU."""

    running_mean: torch.Tensor | None  # buffers when tracking running statistics, else None
    running_var: torch.Tensor | None
    num_batches_tracked: torch.Tensor | None

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = bn.num_features, bn.eps, bn.momentum
        self.affine, self.track_running_stats = bn.affine, bn.track_running_stats
        self.weight, self.bias = bn.weight, bn.bias
        if bn.track_running_stats:
            self.register_buffer("running_mean", bn.running_mean)
            self.register_buffer("running_var", bn.running_var)
            self.register_buffer("num_batches_tracked", bn.num_batches_tracked)
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                       self.training or self.running_mean is None, self.momentum, self.eps)
        if self.training and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        return y


def batch_norm(x: torch.Tensor, running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
               weight: torch.Tensor | None, bias: torch.Tensor | None, training: bool, momentum: float | None,
               eps: float) -> torch.Tensor:
    """``F.batch_norm`` whose training statistics are those of the global batch when
    several ranks run (differentiably all-reduced); exactly ``F.batch_norm`` otherwise.
    Modules that normalise with the functional form (fused or grouped ops) call this so
    data-parallel runs stay equal to one process with the global batch."""
    synced = training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if not synced:
        return nn.functional.batch_norm(x, running_mean, running_var, weight, bias, training,
                                        0.0 if momentum is None else momentum, eps)
    ad_all_reduce = _AllReduceSum.apply
    dims = [0, *range(2, x.dim())]
    shape = [1, -1, *([1] * (x.dim() - 2))]
    count = torch.tensor([x.numel() / x.size(1)], dtype=x.dtype, device=x.device)
    summed = ad_all_reduce(torch.cat([x.sum(dims), count]))
    n = summed[-1]
    mean = summed[:-1] / n
    centred = x - mean.view(shape)
    var = ad_all_reduce(centred.pow(2).sum(dims)) / n
    y = centred * torch.rsqrt(var + eps).view(shape)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            m = momentum if momentum is not None else 0.1
            running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            running_var.mul_(1 - m).add_(var.detach() * n / max(float(n) - 1, 1.0), alpha=m)
    return y


def globalize_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d/2d in ``module`` by ``GlobalBatchNorm`` (sharing its
    parameters and buffers, so state-dict keys are unchanged)."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            setattr(module, name, GlobalBatchNorm(child))
        else:
            globalize_batchnorm(child)
    return module
