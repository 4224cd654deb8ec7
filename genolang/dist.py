"""Data-parallel runs under torchrun: process-group set-up from the environment,
gradient all-reduce, batch norm over the global batch, sharded sample order, and the
rule that only rank 0 writes files.

Outside torchrun every function here is a cheap no-op, so the loops call them
unconditionally and a one-process run is the world-size-1 case of the same code."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
import torch.distributed as dist
from torch import nn

from genolang.errors import GenolangError
from genolang.runtime import pick_device

DEFAULT_TIMEOUT_S = 120.0


class DistError(GenolangError):
    """A collective failed: a peer died, timed out or the network broke."""


@dataclass(frozen=True)
class World:
    """This process's place in the job."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


SINGLE = World()


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(device: torch.device) -> World:
    """Join the process group torchrun describes (nccl on CUDA, gloo on CPU); outside
    torchrun, a world of one. The timeout (``GENOLANG_DIST_TIMEOUT`` seconds, default
    120) bounds how long a rank waits for a dead peer."""
    if not launched_by_torchrun():
        return SINGLE
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if size == 1:
        return World(rank, size, local_rank, None)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        timeout = datetime.timedelta(seconds=float(os.environ.get("GENOLANG_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))
        kwargs = {"device_id": torch.device("cuda", local_rank)} if backend == "nccl" else {}
        try:
            dist.init_process_group(backend, timeout=timeout, **kwargs)  # type: ignore[arg-type]
        except Exception as err:  # noqa: BLE001 - rendezvous failures of every kind
            raise DistError(f"rank {rank}: could not join the process group ({err})") from None
    return World(rank, size, local_rank, backend)


def device_for(world: World, device: torch.device) -> torch.device:
    """One GPU per process: rank r on a machine takes ``cuda:LOCAL_RANK``."""
    if device.type == "cuda" and world.distributed:
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return device


def join(device: str) -> tuple[World, torch.device]:
    """``init`` and ``device_for`` for a device name (auto, cpu, cuda[:N]): the world
    this process belongs to and the device it runs on."""
    chosen = pick_device(device)
    world = init(chosen)
    return world, device_for(world, chosen)


def is_main_process() -> bool:
    """Rank 0, or not launched by torchrun (readable before the group is joined)."""
    return int(os.environ.get("RANK", "0")) == 0


def data_parallel(model: nn.Module, world: World, device: torch.device, global_bn: bool = True) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when there are several ranks (the
    model itself otherwise). ``global_bn`` normalises over the global batch (exactly one
    process's step with the whole batch); without it each rank uses its own batch's
    statistics, which costs no communication but changes the numbers."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if global_bn:
        globalize_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    # GlobalBatchNorm keeps the running statistics equal on every rank: no buffer broadcast
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=not global_bn)


def shard(order: Sequence[int], world: World) -> list[int]:
    """This rank's share of a sample order: positions r, r+W, ... (padded by repeating
    the first samples to a multiple of W)."""
    items = list(order)
    if not world.distributed or not items:
        return items
    total = -(-len(items) // world.size) * world.size
    items += items[: total - len(items)]
    return items[world.rank::world.size]


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _fail(world: World, what: str, err: Exception) -> DistError:
    return DistError(f"rank {world.rank}: {what} failed; another rank probably died or timed out ({err})")


def all_reduce_mean_(tensors: Sequence[torch.Tensor], world: World) -> None:
    """Average tensors across ranks in place, as one flat bucket."""
    if not world.distributed or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    try:
        dist.all_reduce(flat)
    except Exception as err:  # noqa: BLE001
        raise _fail(world, "gradient all-reduce", err) from None
    flat.div_(world.size)
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t))
        offset += n


def all_reduce_grads_(params: Iterable[torch.Tensor], world: World) -> None:
    """Average the ``.grad`` of ``params`` across ranks (missing grads count as zero)."""
    if not world.distributed:
        return
    ps = list(params)
    for p in ps:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    all_reduce_mean_([p.grad for p in ps], world)  # type: ignore[misc]


def reduce_sums(values: Sequence[float], world: World, device: torch.device) -> list[float]:
    """Sum Python numbers across ranks (metric totals and counts)."""
    if not world.distributed:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    try:
        dist.all_reduce(t)
    except Exception as err:  # noqa: BLE001
        raise _fail(world, "metric reduction", err) from None
    return [float(v) for v in t.tolist()]


def broadcast_(tensors: Sequence[torch.Tensor], world: World, src: int = 0) -> None:
    """Copy rank ``src``'s tensors to every rank."""
    if not world.distributed:
        return
    try:
        for t in tensors:
            dist.broadcast(t, src)
    except Exception as err:  # noqa: BLE001
        raise _fail(world, "broadcast", err) from None


def barrier(world: World) -> None:
    if world.distributed:
        try:
            dist.barrier()
        except Exception as err:  # noqa: BLE001
            raise _fail(world, "barrier", err) from None


def gather_objects(obj: object, world: World) -> list[object]:
    """Every rank's ``obj`` (on every rank), in rank order."""
    if not world.distributed:
        return [obj]
    out: list[object] = [None] * world.size
    try:
        dist.all_gather_object(out, obj)
    except Exception as err:  # noqa: BLE001
        raise _fail(world, "gather", err) from None
    return out


def broadcast_object(obj: object, world: World, src: int = 0) -> object:
    """Rank ``src``'s ``obj`` on every rank (e.g. a run folder named after the time)."""
    if not world.distributed:
        return obj
    box = [obj]
    try:
        dist.broadcast_object_list(box, src)
    except Exception as err:  # noqa: BLE001
        raise _fail(world, "broadcast", err) from None
    return box[0]


def shard_order(n: int, seed: int, epoch: int, world: World, shuffle: bool = True) -> torch.Tensor:
    """This rank's sample order for an epoch: a permutation drawn from (seed, epoch),
    padded to a multiple of the world size, rank r taking positions r, r+W, r+2W, ...
    The union of the ranks' i-th batches is then positions [i*W*B, (i+1)*W*B) of the
    permutation, which is exactly the i-th batch of a one-process run with batch W*B."""
    if shuffle:
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(n, generator=g)
    else:
        order = torch.arange(n)
    total = -(-n // world.size) * world.size
    if total > n:
        order = torch.cat([order, order[: total - n]])
    return order[world.rank::world.size]


class _AllReduceSum(torch.autograd.Function):
    """Sum across ranks; the gradient of a sum is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx: object, t: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = t.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = grad.clone()
        dist.all_reduce(out)
        return out


class GlobalBatchNorm(nn.Module):
    """Batch norm whose batch statistics are those of the global batch across ranks
    (differentiably all-reduced), so a data-parallel step computes what one process
    with the whole batch computes. With one process it is ordinary batch norm. Works
    on CPU (gloo) and CUDA, unlike ``nn.SyncBatchNorm``, which needs a GPU."""

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
