"""Data-parallel runs under torchrun: process-group set-up from the environment,
gradient all-reduce, batch norm over the global batch, sharded sample order, and the
rule that only rank 0 writes files.

Outside torchrun every function here is a cheap no-op, so the loops call them
unconditionally and a one-process run is the world-size-1 case of the same code."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from genolang.errors import GenolangError
from genolang.run.runtime import pick_device

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
        from genolang.ops.norm import globalize_batchnorm

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
