"""One call for an op applied on several edges: the executors behind the ``apply``
nodes of an optimized supernet cell (``genolang.passes``).

An executor holds the edges' own op modules (which stay where the unoptimized supernet
has them, so parameter names, state dicts and checkpoints do not change) and reads
their parameters and buffers at call time (so ``torch.func.functional_call`` and
``.to()`` see through it). Grouped convs concatenate the edges' weights per call; the
weights are small (KiB), the activations they save are not.

* ``GroupedDilConv`` / ``GroupedSepConv``: E edges' ReLU-Conv-BN ops on one input: the
  first depthwise conv is one conv with channel multiplier E (E*C channels), then
  block-diagonal 1x1 convs, one BN over E*C channels (each edge's running statistics
  updated as its own BN would), and the optional alpha scale of each edge on the last.
* ``SharedPoolBN``: a pool and its non-affine BN computed once for E edges.

With ``recompute``, each [ReLU,] depthwise, 1x1, BN block of a grouped conv stores only
its BN's output for the backward (``_ConvBlock``) instead of the ReLU's, the depthwise
conv's and the 1x1's inputs and outputs: the BN's backward runs from its output, and
only a weight gradient computes the depthwise output again."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeGuard, TypeVar, cast, overload

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from genolang.ops.build import flat_layers
from genolang.ops.norm import batch_norm as global_batch_norm

# what a caller knows of a BN scale: True when it has no zero, or (1 / scale, scale ** 2),
# computed without gradient (for the recomputing blocks' backward); False: nothing
Nonzero = bool | tuple[torch.Tensor, torch.Tensor]
MIN_PHASE = 4  # the narrowest phases a dilated conv runs on (_phase_split)
DENSE_POINTWISE_MAX = 64  # E*C up to which a block-diagonal 1x1 runs as one dense matmul
CL = torch.channels_last


class StatUpdates:
    """The running-statistics updates of one supernet cell's forward, made at its end as
    a few multi-tensor ops (one add for every batch-norm counter, one interpolation per
    momentum for the shared pools' means and variances) instead of a few per grouped
    call: ``with StatUpdates():`` around the forward. Nothing reads running statistics
    during a training-mode forward; an exception inside drops the updates."""

    def __init__(self) -> None:
        self.counters: list[torch.Tensor] = []
        self.lerps: dict[float, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        # running variances still to be computed from a batch's invstd: (targets, invstd, eps, n/(n-1), momentum)
        self.variances: list[tuple[list[torch.Tensor], torch.Tensor, float, float, float]] = []

    def lerp(self, targets: list[torch.Tensor], values: list[torch.Tensor], momentum: float) -> None:
        """Move ``targets`` towards ``values`` by ``momentum`` at the end."""
        into = self.lerps.setdefault(momentum, ([], []))
        into[0].extend(targets)
        into[1].extend(values)

    def __enter__(self) -> StatUpdates:
        _STATE.updates.append(self)
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        _STATE.updates.remove(self)
        if kind is None:
            with torch.no_grad():
                if self.counters:
                    torch._foreach_add_(self.counters, 1)
                if self.variances:  # every variance of the cell in three multi-tensor ops
                    variances = _variances([v[1] for v in self.variances], [v[2] for v in self.variances],
                                           [v[3] for v in self.variances])
                    for pending, var in zip(self.variances, variances):
                        self.lerp(pending[0], [var] * len(pending[0]), pending[4])
                for momentum, (targets, values) in self.lerps.items():
                    torch._foreach_lerp_(targets, _like(values, targets), momentum)


class _State(threading.local):
    """Per thread: the open ``StatUpdates`` (innermost last) and ``SharedWeights`` scopes."""

    def __init__(self) -> None:
        self.updates: list[StatUpdates] = []
        self.shared: list[SharedWeights] = []


_STATE = _State()


def _record(add: Callable[[StatUpdates], object]) -> None:
    """Add updates to the open ``StatUpdates`` of this thread, or make them now."""
    if _STATE.updates:
        add(_STATE.updates[-1])
    else:
        with StatUpdates() as now:
            add(now)


def _like(values: list[torch.Tensor], targets: list[torch.Tensor]) -> list[torch.Tensor]:
    """``values`` in their targets' dtypes (batch statistics of an autocast forward are
    in its lower precision; running statistics keep theirs)."""
    if all(v.dtype == t.dtype for v, t in zip(values, targets)):
        return values
    return [v if v.dtype == t.dtype else v.to(t.dtype) for v, t in zip(values, targets)]


def count_batches(bns: Sequence[_BatchNorm]) -> None:
    """Add 1 to the batch counters of ``bns`` (now, or at the end of the open ``StatUpdates``)."""
    counters = _tracked([bn.num_batches_tracked for bn in bns])
    _record(lambda updates: updates.counters.extend(counters))


def lerp_stats(targets: list[torch.Tensor], values: list[torch.Tensor], momentum: float) -> None:
    """``targets[i] += momentum * (values[i] - targets[i])`` (now, or at the end of the open ``StatUpdates``)."""
    _record(lambda updates: updates.lerp(targets, values, momentum))


def _variances(invstds: list[torch.Tensor], eps: list[float], unbias: list[float]) -> list[torch.Tensor]:
    """The unbiased batch variances (1/invstd^2 - eps) * n/(n-1) of several batch norms."""
    out = torch._foreach_pow(invstds, -2)
    torch._foreach_sub_(out, eps)
    torch._foreach_mul_(out, unbias)
    return list(out)


def lerp_variance(targets: list[torch.Tensor], invstd: torch.Tensor, eps: float, n: int, momentum: float) -> None:
    """Move the running variances ``targets`` towards the unbiased variance of a batch of
    ``n`` values per channel whose BN computed ``invstd`` (now, or at the end of the open
    ``StatUpdates``, with the cell's others)."""
    unbias = n / max(n - 1, 1)
    _record(lambda updates: updates.variances.append((targets, invstd, eps, unbias, momentum)))


def _tracked(stats: list[torch.Tensor | None]) -> list[torch.Tensor]:
    """The running statistics (or counters) of batch norms that track them: the grouped
    BNs are alike, and the callers checked the first one's ``track_running_stats``."""
    return cast("list[torch.Tensor]", stats)


def _data_parallel() -> bool:
    """Several ranks run: batch norms must use the global batch (``genolang.run.dist``),
    which the recomputing functions below do not; the plain path does."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=CL) and not x.is_contiguous()


def _dw_plan(k: int, stride: int, padding: int, dilation: int) -> tuple[int, int, int, int]:
    """(subsample, stride, padding, dilation) of a depthwise conv: a stride-s,
    dilation-s conv with 'same' padding reads only every s-th pixel, so it runs as an
    undilated stride-1 conv on ``x[..., ::s, ::s]`` (oneDNN's dilated strided depthwise
    kernels are several times slower on the CPU)."""
    if stride == dilation > 1 and 2 * padding == dilation * (k - 1) and padding % stride == 0:
        return stride, 1, padding // stride, 1
    return 1, stride, padding, dilation


def _subsample(x: torch.Tensor, s: int) -> torch.Tensor:
    sub = x[:, :, ::s, ::s]
    return sub.contiguous(memory_format=CL) if _channels_last(x) else sub.contiguous()


def _stand_in(shape: Sequence[int], like: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` (``like``'s dtype and device) for a
    ``convolution_backward`` argument it reads only the shape of."""
    return torch.empty(tuple(shape), dtype=like.dtype, device=like.device,
                       memory_format=CL if channels_last else torch.contiguous_format)


def tile_channels(x: torch.Tensor, E: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, E*C, H, W), channel e*C + c = channel c: one copy, in x's
    memory format."""
    N, C, H, W = x.shape
    if _channels_last(x):
        return x.permute(0, 2, 3, 1).unsqueeze(3).expand(N, H, W, E, C).reshape(N, H, W, E * C).permute(0, 3, 1, 2)
    return x.unsqueeze(1).expand(N, E, C, H, W).reshape(N, E * C, H, W)


def _sum_tiles(x: torch.Tensor, E: int) -> torch.Tensor:
    """The sum of x's E channel blocks (the gradient of ``tile_channels``), in x's memory
    format."""
    if _channels_last(x):  # summed in memory order, so that the sum stays channels-last
        return x.permute(0, 2, 3, 1).unflatten(3, (E, -1)).sum(3).permute(0, 3, 1, 2)
    return x.unflatten(1, (E, -1)).sum(1)


def _tiles(x: torch.Tensor, k: int, stride: int, padding: int, dilation: int) -> bool:
    """Whether E depthwise convs on one input x run as one multiplier-1 conv on x tiled
    E times (``tiled_depthwise``; with ``cpu_kernels``): on the CPU, when the conv runs
    undilated (``_dw_plan``, ``_phase_split``). oneDNN's kernels for a channel
    multiplier, the alternative, are slow: the forward takes 1-5x the tiling and the
    multiplier-1 conv, the input gradient 2.5-5x the multiplier-1 conv's and a sum
    (16->128 channels, 5x5, 32x32, batch 16: 4.5 ms against 4.3, 13 ms against 5). With
    a dilation the multiplier-1 kernels are the slow ones. Not measured on a GPU: left
    as is there (one conv with channel multiplier E)."""
    return x.device.type == "cpu" and (_dw_plan(k, stride, padding, dilation)[3] == 1
                                       or _phase_split(x, k, stride, padding, dilation) > 1)


def _tiled_conv(x: torch.Tensor, weight: torch.Tensor, E: int, stride: int, padding: int,
                dilation: int) -> torch.Tensor:
    return F.conv2d(tile_channels(x, E), weight, None, stride, padding, dilation, weight.shape[0])


def _tiled_input_grad(grad: torch.Tensor, shape: Sequence[int], weight: torch.Tensor, E: int, stride: int,
                      padding: int, dilation: int) -> torch.Tensor:
    """The input gradient of ``_tiled_conv`` (input ``shape``): the multiplier-1 conv's,
    summed over the tiles. Twice differentiable (``convolution_backward`` is)."""
    N, C, H, W = shape
    like = _stand_in((N, E * C, H, W), grad, _channels_last(grad))
    wide = torch.ops.aten.convolution_backward(grad, like, weight, None, [stride, stride], [padding, padding],
                                               [dilation, dilation], False, [0, 0], E * C,
                                               [True, False, False])[0]
    return _sum_tiles(wide, E)


def _tiled_weight_grad(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, E: int, stride: int,
                       padding: int, dilation: int) -> torch.Tensor:
    """The weight gradient of ``_tiled_conv``, as the one of a conv with channel multiplier
    E on x (the multiplier-1 conv's on the tiled input is 5-10x slower): the gradient's
    channels reordered (e, c) -> (c, e), and the weight gradient's back."""
    C, K = x.shape[1], weight.shape[-1]
    gw = torch.ops.aten.convolution_backward(blocks_to_interleave(grad, E), x, weight, None, [stride, stride],
                                             [padding, padding], [dilation, dilation], False, [0, 0], C,
                                             [False, True, False])[1]
    return gw.view(C, E, K, K).transpose(0, 1).reshape(weight.shape)


class _TiledDepthwise(torch.autograd.Function):
    """``_tiled_conv`` with the gradients above. Twice differentiable."""

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, E: int, stride: int, padding: int,
                dilation: int) -> torch.Tensor:
        return _tiled_conv(x, weight, E, stride, padding, dilation)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.save_for_forward(inputs[0], inputs[1])
        ctx.conv = inputs[2:]

    @staticmethod
    def jvp(ctx: Any, tx: torch.Tensor | None, tw: torch.Tensor | None, *_: Any) -> torch.Tensor:
        """Forward-mode AD: the conv is bilinear in (x, weight)."""
        x, weight = ctx.saved_tensors
        parts = ([] if tx is None else [_tiled_conv(tx, weight, *ctx.conv)]) + (
            [] if tw is None else [_tiled_conv(x, tw, *ctx.conv)])
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        gx = _tiled_input_grad(grad, x.shape, weight, *ctx.conv) if ctx.needs_input_grad[0] else None
        gw = _tiled_weight_grad(grad, x, weight, *ctx.conv) if ctx.needs_input_grad[1] else None
        return gx, gw, None, None, None, None


def tiled_depthwise(x: torch.Tensor, weight: torch.Tensor, E: int, stride: int, padding: int,
                    dilation: int) -> torch.Tensor:
    """E depthwise convs on one input x (C channels) as one: output channel e*C + c is x's
    channel c through weight e*C + c (see ``_tiles``). Under autocast, through autograd
    (whose backward casts; the gradients above would mix dtypes)."""
    if (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
            and not torch.is_autocast_enabled(x.device.type)):
        return cast(torch.Tensor, _TiledDepthwise.apply(x, weight, E, stride, padding, dilation))
    return _tiled_conv(x, weight, E, stride, padding, dilation)


def depthwise(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, dilation: int,
              tiles: int = 0) -> torch.Tensor:
    """A depthwise conv (``groups`` = input channels, any channel multiplier), or with
    ``tiles=E`` E of them on one input (``tiled_depthwise``)."""
    sub, stride, padding, dilation = _dw_plan(weight.shape[-1], stride, padding, dilation)
    x = _subsample(x, sub) if sub > 1 else x
    if tiles > 1:
        return tiled_depthwise(x, weight, tiles, stride, padding, dilation)
    return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])


class _Stack(torch.autograd.Function):
    """``torch.stack`` (``dim`` >= 0) whose backward is one ``unbind`` instead of one
    ``select`` per tensor (autograd's own); twice differentiable (the unbind is recorded
    when a graph of the backward is asked for)."""

    @staticmethod
    def forward(dim: int, *tensors: torch.Tensor) -> torch.Tensor:
        return torch.stack(tensors, dim)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.dim = inputs[0]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return None, *grad.unbind(ctx.dim)


class _Cat(torch.autograd.Function):
    """``torch.cat`` (``dim`` >= 0) whose backward is one ``split_with_sizes`` instead
    of one ``slice`` per tensor (autograd's own); twice differentiable."""

    @staticmethod
    def forward(dim: int, *tensors: torch.Tensor) -> torch.Tensor:
        return torch.cat(tensors, dim)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.dim = inputs[0]
        ctx.sizes = [t.shape[ctx.dim] for t in inputs[1:]]
        ctx.shapes = [tuple(t.shape) for t in inputs[1:]]
        ctx.like = (output.dtype, output.device)  # not the output itself: a reference cycle

    @staticmethod
    def jvp(ctx: Any, _: Any, *tangents: torch.Tensor | None) -> torch.Tensor:
        """Forward-mode AD: the tangents joined (zeros for an input without one)."""
        dtype, device = ctx.like
        return torch.cat([torch.zeros(shape, dtype=dtype, device=device) if t is None else t
                          for shape, t in zip(ctx.shapes, tangents)], ctx.dim)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return None, *grad.split_with_sizes(ctx.sizes, ctx.dim)


def _memory_order(t: torch.Tensor) -> tuple[int, ...]:
    """The permutation of a stack of (N, C, H, W) tensors (dims 0..4) into its memory
    order: (J, N, H, W, C) for channels-last tensors, the identity otherwise."""
    return (0, 1, 3, 4, 2) if t.dim() == 5 and _channels_last(t[0]) else tuple(range(t.dim()))


def _inverse(order: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(range(len(order)), key=order.__getitem__))


class _Mix(torch.autograd.Function):
    """``out[e] = sum_j w[e, j] * tensors[j]``: the (E x J) weights ``w`` times J tensors
    of one shape as one matrix product over their memory, returned as an (E, *shape)
    tensor in the tensors' memory format. Keeps the inputs (alive anyway: a cell's pools
    and nodes) for the backward instead of their stacked copy, and stacks them again
    there only for the weights' gradient. Twice differentiable (a graph of the backward
    is recorded when asked for)."""

    @staticmethod
    def forward(w: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack(tensors, 0)
        order = _memory_order(stacked)
        mem = stacked.permute(order)
        out = torch.mm(w, mem.reshape(len(tensors), -1)).view(w.shape[0], *mem.shape[1:])
        return out.permute(_inverse(order))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        w, *tensors = ctx.saved_tensors
        order = _memory_order(grad)
        g = grad.permute(order)
        g2 = g.reshape(w.shape[0], -1)
        gw = None
        if ctx.needs_input_grad[0]:
            stacked = torch.stack(tensors, 0).permute(order).reshape(len(tensors), -1)
            gw = torch.mm(g2, stacked.t())
        if not any(ctx.needs_input_grad[1:]):
            return gw, *(None for _ in tensors)
        gt = torch.mm(w.t(), g2).view(len(tensors), *g.shape[1:]).permute(_inverse(order))
        return gw, *gt.unbind(0)


def weighted_mix(w: torch.Tensor, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``out[e] = sum_j w[e, j] * tensors[j]`` for an (E x J) ``w`` and J (N, C, H, W)
    tensors of one shape: one matrix product (``_Mix``), the result (E, N, C, H, W) in
    the tensors' memory format."""
    if (torch.is_grad_enabled() and (w.requires_grad or any(t.requires_grad for t in tensors))
            and not torch.is_autocast_enabled(w.device.type)):  # its backward would mix autocast's dtypes
        return cast(torch.Tensor, _Mix.apply(w, *tensors))
    return _Mix.forward(w, *tensors)  # plain ops, recorded by autograd when gradients are on


def fused_stack(tensors: Sequence[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """``torch.stack(tensors, dim)`` with one op for its backward (a grouped call's
    weights: a few per call)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return cast(torch.Tensor, _Stack.apply(dim, *tensors))
    return torch.stack(list(tensors), dim)


def fused_cat(tensors: Sequence[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """``torch.cat(tensors, dim)`` with one op for its backward."""
    if len(tensors) > 1 and torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return cast(torch.Tensor, _Cat.apply(dim, *tensors))
    return torch.cat(list(tensors), dim)


class _BlockSum(torch.autograd.Function):
    """The sum of (N, k*E*C, H, W) tensors (channel blocks ordered (k, e, c), k
    possibly differing between tensors) over their k blocks, returned as (E, N, C, H, W):
    the grouped calls of a source, each with the parts of k merged ops, summed for its E
    nodes. Its backward is the output's gradient repeated k times along channels, in
    the inputs' memory format: one tensor per k, handed to every input with that k.
    Twice differentiable (a graph of the backward is recorded when asked for)."""

    @staticmethod
    def forward(E: int, C: int, *tensors: torch.Tensor) -> torch.Tensor:
        by_k: dict[int, torch.Tensor] = {}
        for t in tensors:
            k = t.shape[1] // (E * C)
            by_k[k] = by_k[k] + t if k in by_k else t
        total = None
        for k, t in by_k.items():
            n, _, h, w = t.shape
            r = t if k == 1 else t.view(n, k, E * C, h, w).sum(1)
            total = r if total is None else total + r
        assert total is not None
        n, _, h, w = total.shape
        return total.view(n, E, C, h, w).transpose(0, 1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.shapes = [tuple(t.shape) for t in inputs[2:]]
        ctx.channels_last = [_channels_last(t) for t in inputs[2:]]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        E, n, C, h, w = grad.shape
        g = grad.transpose(0, 1)  # (N, E, C, H, W)
        made: dict[tuple[int, bool], torch.Tensor] = {}
        out: list[torch.Tensor | None] = [None, None]
        for shape, cl in zip(ctx.shapes, ctx.channels_last):
            k = shape[1] // (E * C)
            if (k, cl) not in made:
                if cl:  # (N, H, W, k*E, C) in memory, viewed as channels-last (N, k*E*C, H, W)
                    m = g.permute(0, 3, 4, 1, 2)
                    m = (torch.cat([m] * k, 3) if k > 1 else m.contiguous()).view(n, h, w, k * E * C)
                    made[(k, cl)] = m.permute(0, 3, 1, 2)
                else:
                    m = torch.cat([g] * k, 1) if k > 1 else g.contiguous()
                    made[(k, cl)] = m.view(n, k * E * C, h, w)
            out.append(made[(k, cl)])
        return tuple(out)


def block_sum(tensors: Sequence[torch.Tensor], E: int, C: int) -> torch.Tensor:
    """``_BlockSum``: (N, k*E*C, H, W) tensors summed over their k blocks, as (E, N, C, H, W)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return cast(torch.Tensor, _BlockSum.apply(E, C, *tensors))
    return _BlockSum.forward(E, C, *tensors)


_CONSTS: dict[tuple[float, tuple[int, ...], torch.device, torch.dtype], torch.Tensor] = {}


def _constant(value: float, like: torch.Tensor) -> torch.Tensor:
    """A tensor of ``value`` shaped as ``like`` (a batch norm's per-channel statistics),
    made once per (value, shape, device, dtype): the backward passes below hand them
    to ``native_batch_norm_backward``, which only reads them."""
    key = (value, tuple(like.shape), like.device, like.dtype)
    t = _CONSTS.get(key)
    if t is None:
        with torch.no_grad():
            t = torch.full(like.shape, value, dtype=like.dtype, device=like.device)
        if not torch.compiler.is_compiling():  # a traced graph's tensors stay inside it
            _CONSTS[key] = t
    return t


_MASKS: dict[tuple[int, bool, torch.device, torch.dtype], torch.Tensor] = {}


def _block_mask(E: int, interleaved: bool, like: torch.Tensor) -> torch.Tensor:
    """The 0/1 mask that lays E stacked blocks out block-diagonally (``pointwise_weight``):
    a constant, made once per (E, layout, device, dtype)."""
    key = (E, interleaved, like.device, like.dtype)
    mask = _MASKS.get(key)
    if mask is None:
        with torch.no_grad():
            eye = torch.eye(E, dtype=like.dtype, device=like.device)
            mask = eye.view(E, 1, 1, 1, E) if interleaved else eye.view(E, 1, E, 1)
        if not torch.compiler.is_compiling():  # as in _constant
            _MASKS[key] = mask
    return mask


def pointwise_weight(weights: Sequence[torch.Tensor], interleaved: int = 0) -> tuple[str, torch.Tensor]:
    """The block-diagonal 1x1 convs ``weights`` (each ``C_out x C_in x 1 x 1``) as one
    conv weight for ``pointwise_apply``: a dense ``E*C_out x E*C_in`` 1x1 conv (zeros off
    the blocks: the wasted multiplies are cheaper than a grouped conv for small blocks)
    when the blocks are small or the input channels interleaved, else the grouped conv's
    weight. With ``interleaved=E`` the input channels are ordered (c, e), as a depthwise
    conv with multiplier E makes them, instead of (e, c): the dense weight's columns
    are ordered so, and the activations need no shuffle. A few ops on the weights
    (stack, mask, view), one conv on the activations."""
    E = len(weights)
    c_in = weights[0].shape[1]
    if E == 1:
        return "dense", weights[0]
    if interleaved or E * c_in <= DENSE_POINTWISE_MAX:
        if torch.is_grad_enabled() and any(w.requires_grad for w in weights):
            return "dense", cast(torch.Tensor, _BlockDiagonal.apply(bool(interleaved), *weights))
        return "dense", _BlockDiagonal.forward(bool(interleaved), *weights)
    return "grouped", fused_cat(weights)


class _BlockDiagonal(torch.autograd.Function):
    """E (C_out x C_in x 1 x 1) weights as one dense block-diagonal 1x1 conv weight (see
    ``pointwise_weight``): the stacked weights times a constant 0/1 mask. Its backward
    takes the gradient's diagonal blocks (a view) and unbinds them: two ops where the
    multiply's backward needs a multiply, a sum and an unbind. Twice differentiable."""

    @staticmethod
    def forward(interleaved: bool, *weights: torch.Tensor) -> torch.Tensor:
        E = len(weights)
        c_out, c_in = weights[0].shape[:2]
        stacked = torch.stack(weights)  # (E, C_out, C_in, 1, 1)
        if interleaved:  # (e, o, c, e'): columns (c, e')
            return (stacked * _block_mask(E, True, stacked)).view(E * c_out, c_in * E, 1, 1)
        mat = stacked.view(E, c_out, 1, c_in) * _block_mask(E, False, stacked)  # (e, o, e', c)
        return mat.view(E * c_out, E * c_in, 1, 1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.interleaved = inputs[0]
        ctx.shape = tuple(inputs[1].shape)
        ctx.E = len(inputs) - 1

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        E, (c_out, c_in, kh, kw) = ctx.E, ctx.shape
        if ctx.interleaved:  # rows (e, o), columns (c, e'): the blocks e == e'
            blocks = grad.reshape(E, c_out, c_in, E, kh, kw).diagonal(0, 0, 3)  # (o, c, 1, 1, e)
        else:  # rows (e, o), columns (e', c)
            blocks = grad.reshape(E, c_out, E, c_in, kh, kw).diagonal(0, 0, 2)  # (o, c, 1, 1, e)
        return None, *blocks.unbind(-1)


def pointwise_apply(x: torch.Tensor, mode: str, weight: torch.Tensor, interleaved: int = 0) -> torch.Tensor:
    """Apply a ``pointwise_weight`` to ``x``: one 1x1 conv (grouped in the grouped
    mode, whose input channels are never interleaved)."""
    return F.conv2d(x, weight, None, 1, 0, 1, x.shape[1] // weight.shape[1])


def pointwise(x: torch.Tensor, weights: Sequence[torch.Tensor], interleaved: int = 0) -> torch.Tensor:
    """Block-diagonal 1x1 convs: input channel block e (``C_in`` channels) through
    ``weights[e]`` to output block e (see ``pointwise_weight``)."""
    mode, weight = pointwise_weight(weights, interleaved)
    return pointwise_apply(x, mode, weight, interleaved)


def _swap_channel_groups(x: torch.Tensor, A: int) -> torch.Tensor:
    """Channels ordered (a, b) with ``A`` values of a -> ordered (b, a), in the same
    memory format."""
    N, AB, H, W = x.shape
    B = AB // A
    if _channels_last(x):
        y = x.permute(0, 2, 3, 1).reshape(N, H, W, A, B).transpose(3, 4).contiguous()
        return y.view(N, H, W, B * A).permute(0, 3, 1, 2)
    return x.view(N, A, B, H, W).transpose(1, 2).reshape(N, B * A, H, W)


def interleave_to_blocks(x: torch.Tensor, E: int) -> torch.Tensor:
    """Channels ordered (c, e) -> (e, c), in the same memory format."""
    return _swap_channel_groups(x, x.shape[1] // E)


def blocks_to_interleave(x: torch.Tensor, E: int) -> torch.Tensor:
    """Channels ordered (e, c) -> (c, e), in the same memory format."""
    return _swap_channel_groups(x, E)


def channel_scale(scale: torch.Tensor, E: int, C: int) -> torch.Tensor:
    """E edges' scales (one each, or already one per channel: E*C) as one per channel."""
    return scale if scale.numel() == E * C else scale.repeat_interleave(C)


def grouped_batch_norm(x: torch.Tensor, bns: Sequence[_BatchNorm], scale: torch.Tensor | None = None) -> torch.Tensor:
    """``cat([bn_e(x_e) * scale_e])`` for channel blocks x_e of ``x`` in one call; each
    BN's running statistics move as they would on its own."""
    bn0 = bns[0]
    C = bn0.num_features
    weight = None if scale is None else channel_scale(scale, len(bns), C)
    if bn0.affine:
        w = torch.cat([bn.weight for bn in bns])
        b = torch.cat([bn.bias for bn in bns])
        weight, bias = (w, b) if weight is None else (w * weight, b * weight)
    else:
        bias = None
    if not bn0.track_running_stats or bn0.running_mean is None:  # batch statistics, nothing to move
        return global_batch_norm(x, None, None, weight, bias, True, 0.0, bn0.eps)
    if bn0.training:
        return _train_bn(x, bns, weight, bias)
    mean, var = (bn0.running_mean, bn0.running_var) if len(bns) == 1 else _stats(bns)[:2]
    return F.batch_norm(x, mean, var, weight, bias, False, 0.0, bn0.eps)


def _flat_stats(stats: list[torch.Tensor]) -> torch.Tensor | None:
    """The one tensor the E running statistics ``stats`` are consecutive views of, in
    order (``link_bn_stats`` lays them out so): the whole flat tensor, or the range of it
    they cover (a run of a merged call's members, ``KernelRuns``); None when they are
    not: then a grouped BN concatenates them and copies the result back."""
    base = stats[0]._base
    if base is None or base.dim() != 1:
        return None
    start = offset = stats[0].storage_offset() - base.storage_offset()
    for t in stats:
        if t._base is not base or t.storage_offset() - base.storage_offset() != offset or t.dim() != 1:
            return None
        offset += t.numel()
    return base if offset - start == base.numel() else base.narrow(0, start, offset - start)


def link_bn_stats(bns: Sequence[_BatchNorm]) -> None:
    """Make the running means (and variances) of the batch norms ``bns``, which a
    grouped call normalises as one, consecutive views of one tensor, values kept: the
    grouped BN then moves them in place, without concatenating and copying back. Idempotent;
    after a move to another device (``Module._apply``) call it again."""
    if len(bns) < 2 or not all(bn.track_running_stats and bn.running_mean is not None for bn in bns):
        return
    for name in ("running_mean", "running_var"):
        stats = _tracked([getattr(bn, name) for bn in bns])
        if _flat_stats(stats) is not None or len({(t.device, t.dtype) for t in stats}) > 1:
            continue
        with torch.no_grad():
            flat = torch.cat([t.reshape(-1) for t in stats])
        offset = 0
        for bn, t in zip(bns, stats):
            bn._buffers[name] = flat[offset:offset + t.numel()].view(t.shape)
            offset += t.numel()


def _stats(bns: Sequence[_BatchNorm]) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """The running mean and variance of E grouped batch norms as one tensor each, and
    whether those are copies (to be split back after the BN moved them)."""
    means = _tracked([bn.running_mean for bn in bns])
    variances = _tracked([bn.running_var for bn in bns])
    mean, var = _flat_stats(means), _flat_stats(variances)
    if mean is not None and var is not None:
        return mean, var, False
    return torch.cat(means), torch.cat(variances), True


def _copy_back(bns: Sequence[_BatchNorm], mean: torch.Tensor, var: torch.Tensor) -> None:
    with torch.no_grad():
        C = bns[0].num_features
        torch._foreach_copy_(_tracked([bn.running_mean for bn in bns]), list(mean.split(C)))
        torch._foreach_copy_(_tracked([bn.running_var for bn in bns]), list(var.split(C)))


def _train_bn(x: torch.Tensor, bns: Sequence[_BatchNorm], weight: torch.Tensor | None,
              bias: torch.Tensor | None) -> torch.Tensor:
    bn0 = bns[0]
    if bn0.momentum is None:
        raise ValueError("grouped batch norm needs a momentum (cumulative averages are not grouped)")
    count_batches(bns)
    if len(bns) == 1:
        return global_batch_norm(x, bn0.running_mean, bn0.running_var, weight, bias, True, bn0.momentum, bn0.eps)
    mean, var, copied = _stats(bns)
    out = global_batch_norm(x, mean, var, weight, bias, True, bn0.momentum, bn0.eps)
    if copied:
        _copy_back(bns, mean, var)
    return out


M = TypeVar("M")


def _same(members: Sequence[M], what: Callable[[M], object]) -> None:
    values = {repr(what(m)) for m in members}
    if len(values) > 1:
        raise ValueError(f"grouped ops differ in {values}")


class _ReLU(torch.autograd.Function):
    """ReLU that keeps its input for the backward instead of its output (the same mask;
    the input, a node of the cell, is kept alive by other ops anyway)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return F.relu(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad, x, 0)


def relu_keep_input(x: torch.Tensor) -> torch.Tensor:
    """``relu(x)``, storing ``x`` rather than the result for the backward."""
    return _ReLU.apply(x) if torch.is_grad_enabled() and x.requires_grad else F.relu(x)


def _grad_node(t: torch.Tensor) -> Any:
    """The autograd node ``t``'s gradient goes to (None when it needs none)."""
    if not t.requires_grad:
        return None
    return t.grad_fn if t.grad_fn is not None else torch.autograd.graph.get_gradient_edge(t).node


def _engine_needs(node: Any) -> bool:
    """Whether the running backward pass uses a gradient for the input whose node is
    ``node`` (an architecture step asks for no weight gradient; computing them anyway
    costs as much as the rest)."""
    if node is None:
        return False
    try:
        return bool(torch._C._will_engine_execute_node(node))
    except RuntimeError:  # a leaf during autograd.grad: cannot tell
        return True


def _pointwise_backward(gz: torch.Tensor, h: torch.Tensor | None, mode: str, weight: torch.Tensor,
                        interleaved: int, h_shape: tuple[int, ...], channels_last: bool, need_h: bool,
                        need_w: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of ``pointwise_apply`` for its input (``h``, needed only for the
    weight's gradient) and weight: one convolution backward."""
    if h is None:
        h = _stand_in(h_shape, gz, channels_last)
    gh, gw, _ = torch.ops.aten.convolution_backward(gz, h, weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0],
                                                    h_shape[1] // weight.shape[1], [need_h, need_w, False])
    return gh, gw


class _ConvBlock(torch.autograd.Function):
    """[ReLU ->] depthwise conv -> 1x1 convs -> batch norm without running parameters
    (training mode, optionally scaled per channel by ``weight``: the alpha weights).
    Keeps for the backward only the input, the weights, the BN's output y and its batch
    statistics: the BN's backward runs from y (y = weight * (z - mean) * invstd), the
    1x1's input gradient needs only its weight, and only a weight gradient makes it
    compute the depthwise output again. Twice differentiable: when a graph of the
    backward is asked for, the block is recomputed with autograd. ``phases`` d > 1: the
    convs and the BN run on the input's d*d phases (``_phase_split``), the phase layout
    made inside, so the input kept is x itself (or ``keep``), not a phase copy of it; the
    output and the input gradient are in x's layout."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dw: torch.Tensor, pw: torch.Tensor, weight: torch.Tensor | None,
                running_mean: torch.Tensor | None, running_var: torch.Tensor | None, spec: tuple[Any, ...],
                keep: torch.Tensor | None, weight_powers: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        relu_in, stride, padding, dilation, mode, interleaved, momentum, eps, tiles, phases = spec
        h = depthwise(_phase_input(x, relu_in, phases), dw, stride, padding, dilation, tiles)
        h_shape = tuple(h.shape)
        z = pointwise_apply(h, mode, pw, interleaved)
        del h  # each freed as soon as it is read (a grouped call's are E blocks wide)
        out, mean, invstd = torch.native_batch_norm(z, weight, None, running_mean, running_var, True, momentum, eps)
        del z
        # ``keep``: x's pre-ReLU source (x == relu(keep)), kept alive by others: store it
        # instead of x and apply the ReLU again when x is needed
        ctx.save_for_backward(x if keep is None else keep, dw, pw, weight, out, mean, invstd)
        ctx.spec = spec
        ctx.kept = keep is not None
        ctx.weight_powers = weight_powers  # 1/weight and weight**2, computed once per cell (no gradient)
        ctx.nodes = (_grad_node(x), _grad_node(dw), _grad_node(pw),
                     None if weight is None else _grad_node(weight))
        ctx.shapes = (h_shape, _channels_last(x))
        if phases > 1:
            return from_phases(out, phases, ctx.shapes[1])
        # a view returned, the BN's output saved: a saved output costs a detach when saved
        # and another when unpacked, a view one op in all
        return out.view(out.shape)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, dw, pw, weight, out, mean, invstd = ctx.saved_tensors
        relu_in, stride, padding, dilation, mode, interleaved, _, eps, tiles, phases = ctx.spec
        if ctx.kept:  # the ReLU'd input again, from its source
            x = F.relu(x)
        if phases > 1:  # in the layout of the BN's output
            grad = to_phases(grad, phases)
        if torch.is_grad_enabled():  # double backward: recompute the block with autograd
            return _ConvBlock._backward_with_graph(ctx, grad, x, dw, pw, weight, mean, invstd)
        need_x, need_dw, need_pw, need_w = (need and _engine_needs(node) for need, node in
                                            zip(ctx.needs_input_grad[:4], ctx.nodes))
        h_shape, channels_last = ctx.shapes
        # a gradient that is a channel range of a wider one (``GroupedRuns``'s outputs
        # joined) made dense first: the BN's backward is 2-3x slower on a strided one
        grad = grad.contiguous(memory_format=CL if channels_last else torch.contiguous_format)
        # The BN's backward from its output y = w x^: given input y, mean 0, invstd 1/w and
        # weight invstd w^2, native_batch_norm_backward recovers x^ = y / w and computes
        # invstd w (g - mean(g) - x^ mean(g x^)) for the input, sum(g x^) for w.
        if weight is None:
            bn_weight, inv = invstd, _constant(1.0, invstd)
        elif ctx.weight_powers is not None:
            inv, square = ctx.weight_powers
            bn_weight = invstd * square
        else:
            bn_weight, inv = invstd * weight * weight, weight.reciprocal()
        gz, gw, _ = torch.ops.aten.native_batch_norm_backward(grad, out, bn_weight, None, None,
                                                              _constant(0.0, invstd), inv, True, eps,
                                                              [True, bool(need_w), False])
        sub, s_, p_, d_ = _dw_plan(dw.shape[-1], stride, padding, dilation)
        block_in: list[torch.Tensor] = []

        def conv_input() -> torch.Tensor:  # what the depthwise conv read: ReLU'd, on phases, subsampled
            if not block_in:
                r = _phase_input(x, relu_in, phases)
                block_in.append(_subsample(r, sub) if sub > 1 else r)
            return block_in[0]

        h = depthwise(conv_input(), dw, s_, p_, d_, tiles) if need_pw else None
        gh, gpw = _pointwise_backward(gz, h, mode, pw, interleaved, h_shape, channels_last, need_x or need_dw,
                                      need_pw)
        del h, gz  # freed before the next gradients are made (a grouped call's are E blocks wide)
        gx = gdw = None
        if need_x or need_dw:
            assert gh is not None  # _pointwise_backward computes it when need_x or need_dw (need_h)
            if need_dw:
                inp = conv_input()
            else:  # the input gradient reads only the input's shape
                n, c, hh, ww = x.shape[0] * phases * phases, x.shape[1], x.shape[2] // phases, x.shape[3] // phases
                shape = (n, c, -(-hh // sub), -(-ww // sub))
                inp = _stand_in(shape, x, channels_last)
            gh = gh.contiguous(memory_format=CL if channels_last else torch.contiguous_format)
            gr: torch.Tensor | None
            if tiles > 1:
                gr = _tiled_input_grad(gh, inp.shape, dw, tiles, s_, p_, d_) if need_x else None
                gdw = _tiled_weight_grad(gh, inp, dw, tiles, s_, p_, d_) if need_dw else None
            else:
                gr, gdw, _ = torch.ops.aten.convolution_backward(gh, inp, dw, None, [s_, s_], [p_, p_], [d_, d_],
                                                                 False, [0, 0], x.shape[1], [need_x, need_dw, False])
            del gh, inp
            block_in.clear()
            if need_x:
                assert gr is not None  # computed when need_x
                if phases > 1:
                    gr = from_phases(gr, phases, channels_last)
                if sub > 1:
                    full = torch.zeros_like(x)
                    full[:, :, ::sub, ::sub] = gr
                    gr = full
                gx = torch.ops.aten.threshold_backward(gr, x, 0) if relu_in else gr
        return gx, gdw, gpw, gw if need_w else None, None, None, None, None, None

    @staticmethod
    def _backward_with_graph(ctx: Any, grad: torch.Tensor, x: torch.Tensor, dw: torch.Tensor, pw: torch.Tensor,
                             weight: torch.Tensor | None, mean: torch.Tensor,
                             invstd: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        relu_in, stride, padding, dilation, mode, interleaved, _, eps, tiles, phases = ctx.spec
        z = pointwise_apply(depthwise(_phase_input(x, relu_in, phases), dw, stride, padding, dilation, tiles), mode,
                            pw, interleaved)
        need_w = ctx.needs_input_grad[3] and weight is not None
        gz, gw, _ = torch.ops.aten.native_batch_norm_backward(grad, z, weight, None, None, mean, invstd, True, eps,
                                                              [True, bool(need_w), False])
        needs = ctx.needs_input_grad[:3]
        wanted = [t for t, need in zip((x, dw, pw), needs) if need]
        got = iter(torch.autograd.grad(z, wanted, gz, create_graph=True) if wanted else ())
        return (*(next(got) if need else None for need in needs), gw if need_w else None, None, None, None, None,
                None)


def _phase_input(x: torch.Tensor, relu: bool, d: int) -> torch.Tensor:
    """What a block's depthwise conv reads: x, ReLU'd if ``relu``, on its d*d phases if d > 1."""
    r = F.relu(x) if relu else x
    return to_phases(r, d) if d > 1 else r


def _phase_split(x: torch.Tensor, k: int, stride: int, padding: int, dilation: int) -> int:
    """d when a depthwise conv runs on x's d*d phases (``to_phases``): on the CPU, for
    a stride-1 'same' conv of dilation d > 1 whose padding and x's size are multiples
    of d, and whose phases are at least 4 and k-1 pixels wide, else 1 (smaller phases
    are mostly padding, and d*d times the batch of them is slower than the dilated
    conv: 0.7x at d=8 on 16x16). Output pixel (i, j) of such a conv reads only input pixels
    of its own phase (i mod d, j mod d), so it is an undilated conv on each phase; the
    1x1 convs and the batch norm after it are per pixel (the batch norm's statistics
    are over the same values). oneDNN's dilated depthwise backward is 3-7x slower than
    the undilated one on the phases plus the two layout copies. Not measured on a GPU:
    left as is."""
    d = dilation
    if (x.device.type == "cpu" and x.dim() == 4 and stride == 1 and d > 1 and 2 * padding == d * (k - 1)
            and padding % d == 0 and x.shape[2] % d == 0 and x.shape[3] % d == 0
            and min(x.shape[2], x.shape[3]) // d >= max(MIN_PHASE, k - 1)):
        return d
    return 1


def to_phases(x: torch.Tensor, d: int) -> torch.Tensor:
    """(N, C, H, W) -> (d*d*N, C, H/d, W/d): phase (r, s) = ``x[:, :, r::d, s::d]`` is
    batch block r*d + s; one copy, in x's memory format."""
    N, C, H, W = x.shape
    if _channels_last(x):
        y = x.permute(0, 2, 3, 1).reshape(N, H // d, d, W // d, d, C).permute(2, 4, 0, 1, 3, 5)
        return y.reshape(d * d * N, H // d, W // d, C).permute(0, 3, 1, 2)
    return x.reshape(N, C, H // d, d, W // d, d).permute(3, 5, 0, 1, 2, 4).reshape(d * d * N, C, H // d, W // d)


def from_phases(y: torch.Tensor, d: int, channels_last: bool) -> torch.Tensor:
    """The inverse of ``to_phases``: one copy, channels-last or not as told (y's own
    strides may not tell: a 1-channel tensor is both)."""
    B, C, h, w = y.shape
    N = B // (d * d)
    if channels_last:
        x = y.permute(0, 2, 3, 1).reshape(d, d, N, h, w, C).permute(2, 3, 0, 4, 1, 5)
        return x.reshape(N, h * d, w * d, C).permute(0, 3, 1, 2)
    return y.reshape(d, d, N, C, h, w).permute(2, 3, 4, 0, 5, 1).reshape(N, C, h * d, w * d)


def conv_block(x: torch.Tensor, dw: torch.Tensor, pw_weights: Sequence[torch.Tensor], bns: Sequence[_BatchNorm],
               scale: torch.Tensor | None, relu_in: bool, stride: int, padding: int, dilation: int,
               interleaved: int, recompute: bool, keep: torch.Tensor | None = None,
               nonzero: Nonzero = False, prepared: tuple[str, torch.Tensor] | None = None,
               tiles: int = 0, phases: bool = False) -> torch.Tensor:
    """``grouped_batch_norm(pointwise(depthwise(relu(x))), scale)``. With ``recompute``
    (in training mode, with gradients) through ``_ConvBlock``, which stores only the
    BN's output for the backward (and ``keep``, with ``x == relu(keep)``, instead of x).
    A scale with a zero (an alpha at minus infinity) takes the plain path: the BN's
    output would not give back its input. ``prepared``: ``pointwise_weight(pw_weights,
    interleaved)``, made already. ``tiles=E``: x is the input of E blocks, whose depthwise
    weights ``dw`` are stacked (``tiled_depthwise``). With ``phases`` a dilated conv may
    run on the input's phases (``_phase_split``)."""
    d = _phase_split(x, dw.shape[-1], stride, padding, dilation) if phases else 1
    bn0 = bns[0]
    mode, pw = prepared if prepared is not None else pointwise_weight(pw_weights, interleaved)
    if (not recompute or not torch.is_grad_enabled() or not bn0.training or bn0.affine
            or not bn0.track_running_stats or bn0.momentum is None or _data_parallel()
            or torch.is_autocast_enabled(x.device.type)  # its backward recomputes outside autocast
            or (scale is not None and not nonzero and not bool((scale != 0).all()))):
        if d > 1:  # on the phases, through autograd
            return from_phases(conv_block(to_phases(x, d), dw, pw_weights, bns, scale, relu_in, 1, padding // d, 1,
                                          interleaved, False, None, nonzero, (mode, pw), tiles), d, _channels_last(x))
        h = depthwise(F.relu(x) if relu_in else x, dw, stride, padding, dilation, tiles)
        return grouped_batch_norm(pointwise_apply(h, mode, pw, interleaved), bns, scale)
    weight = None if scale is None else channel_scale(scale, len(bns), bn0.num_features)
    # running statistics taken away (the architect's forwards): batch statistics, nothing to move
    moving = bn0.running_mean is not None
    if moving:
        count_batches(bns)
    one = len(bns) == 1 or not moving
    copied = False
    if one:
        mean, var = bn0.running_mean, bn0.running_var
    else:
        mean, var, copied = _stats(bns)
    if d > 1:  # an undilated conv on the phases, made inside _ConvBlock
        stride, padding, dilation = 1, padding // d, 1
    out = _ConvBlock.apply(x, dw, pw, weight, mean, var,
                           (relu_in, stride, padding, dilation, mode, interleaved, bn0.momentum, bn0.eps, tiles, d),
                           None if relu_in else keep,
                           nonzero if isinstance(nonzero, tuple) and weight is not None
                           and nonzero[0].shape == weight.shape else None)
    if copied:
        assert mean is not None and var is not None  # concatenated above
        _copy_back(bns, mean, var)
    return out


class _DilBlock(Protocol):
    """A member of ``GroupedDilConv``: ``nn.Sequential(ReLU, depthwise Conv2d, 1x1 Conv2d,
    BatchNorm2d)``, as ``_is_dil_block`` checks."""

    @overload
    def __getitem__(self, i: Literal[0]) -> nn.ReLU: ...
    @overload
    def __getitem__(self, i: Literal[1, 2]) -> nn.Conv2d: ...
    @overload
    def __getitem__(self, i: Literal[3]) -> nn.BatchNorm2d: ...


class _SepBlocks(Protocol):
    """A member of ``GroupedSepConv``: an ``nn.Sequential`` of ``_DilBlock`` s."""

    def __getitem__(self, i: int) -> _DilBlock: ...
    def __len__(self) -> int: ...


class SharedWeights:
    """``with SharedWeights():`` around forwards that run the model at the same weights
    (a first-order iteration's architecture step and its weight step's forward, before
    the weight optimizer steps): inside, each grouped call derives its stacked, padded
    and block-diagonal weights once (``WeightCache``); at the end of the outermost scope
    every derived weight is dropped. Nothing may change the weights inside the scope
    but through autograd-visible in-place ops (each entry is also checked against its
    parameters' version counters: a change through ``.data`` or a fused optimizer's
    step is not seen), and a copy of the model (``deepcopy``) is made outside it;
    outside a scope, grouped calls derive their weights on every forward."""

    def __init__(self) -> None:
        self.caches: list[WeightCache] = []

    def __enter__(self) -> SharedWeights:
        _STATE.shared.append(self)
        return self

    def __exit__(self, *_: object) -> None:
        _STATE.shared.remove(self)
        for cache in self.caches:  # only the outermost scope holds any (WeightCache.get)
            cache.clear()
        self.caches = []


class WeightCache:
    """The weights a grouped call derives from its parameters (stacked, padded,
    block-diagonal), kept inside a ``SharedWeights`` scope for its next forward while it
    reads the same parameter tensors, unchanged. Each entry is checked against its
    parameters' identity, version counter, storage and ``requires_grad``; only with
    gradients on (outside inference mode); one entry per kind. The derived weight's
    graph is used again by the next backward: its ops keep no tensor for their
    backward."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[list[torch.Tensor], tuple[object, ...], Any]] = {}

    def get(self, kind: str, sources: Sequence[torch.Tensor], build: Callable[[], M]) -> M:
        if (not _STATE.shared or not torch.is_grad_enabled() or torch.is_inference_mode_enabled()
                or torch.compiler.is_compiling()):  # a traced graph keeps no tensor outside it
            return build()
        try:
            stamp = tuple((t._version, t.data_ptr(), t.requires_grad) for t in sources)
        except RuntimeError:  # an inference or functorch tensor: no version counter
            return build()
        hit = self.entries.get(kind)
        if hit is not None and hit[1] == stamp and len(hit[0]) == len(sources) and all(
                a is b for a, b in zip(hit[0], sources)):
            return cast(M, hit[2])
        out = build()
        if not self.entries:  # dropped at the end of the outermost scope
            _STATE.shared[0].caches.append(self)
        self.entries[kind] = (list(sources), stamp, out)
        return out

    def clear(self) -> None:
        self.entries.clear()


def clear_caches(executor: object) -> None:
    """Drop the derived weights an executor keeps (``WeightCache``), if it keeps any."""
    clear = getattr(executor, "clear_caches", None)
    if clear is not None:
        clear()


class GroupedDilConv:
    """E blocks of ReLU, depthwise KxK, 1x1 conv and BN (DARTS's ``dil_conv``, half a
    ``sep_conv``) on one input (not ReLU'd when ``relu``); returns the E outputs along
    channels, edge by edge."""

    def __init__(self, members: Sequence[_DilBlock], recompute: bool = False, cpu_kernels: bool = True) -> None:
        _same(members, lambda m: (m[1].stride, m[1].dilation, m[2].weight.shape))
        self.members = list(members)
        self.recompute = recompute
        self.cpu_kernels = cpu_kernels  # tiled depthwise convs and dilated ones on phases, on the CPU
        dw = members[0][1]
        assert not isinstance(dw.padding, str)  # 'same' and 'valid' fail _is_dil_block's padding[0] == padding[1]
        self.stride, self.padding, self.dilation = dw.stride[0], dw.padding[0], dw.dilation[0]
        # merged kernels (``merge_kernels``): odd kernels with 'same' padding, each
        # zero-padded to the largest (the input's padding grown to match)
        self.kernel = max(m[1].kernel_size[0] for m in members)
        if any(m[1].kernel_size[0] != self.kernel for m in members):
            for m in members:
                k, pad = m[1].kernel_size[0], m[1].padding
                assert not isinstance(pad, str)  # as above
                if k % 2 == 0 or pad[0] != self.dilation * (k - 1) // 2:
                    raise ValueError(f"merged depthwise kernels need odd sizes and 'same' padding; got kernel {k}, "
                                     f"padding {pad[0]}, dilation {self.dilation}")
            self.padding = self.dilation * (self.kernel - 1) // 2
        # runs of consecutive members with one kernel size: (start, end, kernel)
        self.cache = WeightCache()
        self.runs: list[tuple[int, int, int]] = []
        for i, m in enumerate(members):
            k = m[1].kernel_size[0]
            if self.runs and self.runs[-1][2] == k:
                self.runs[-1] = (self.runs[-1][0], i + 1, k)
            else:
                self.runs.append((i, i + 1, k))

    def _depthwise_weight(self, stacked: bool) -> torch.Tensor:
        """The members' depthwise weights as one: stacked along dim 1 (a channel
        multiplier: (C, E, K, K)) or concatenated along dim 0 ((E*C, 1, K, K)), each run
        of one kernel size joined, then zero-padded to the largest, then the runs joined."""
        join = (lambda ws: fused_stack(ws, 1)) if stacked else fused_cat
        parts = []
        for start, end, k in self.runs:
            w = join([m[1].weight for m in self.members[start:end]])
            p = (self.kernel - k) // 2
            parts.append(F.pad(w, [p, p, p, p]) if p else w)
        return parts[0] if len(parts) == 1 else fused_cat(parts, 1 if stacked else 0)

    def batch_norms(self) -> list[list[_BatchNorm]]:
        """The batch norms each grouped BN call normalises as one, edge by edge."""
        return [[m[3] for m in self.members]]

    def clear_caches(self) -> None:
        self.cache.clear()

    def __call__(self, x: torch.Tensor, relu: bool, scale: torch.Tensor | None,
                 keep: torch.Tensor | None = None, nonzero: Nonzero = False) -> torch.Tensor:
        """``scale``: one per edge or one per output channel; ``nonzero``: the caller
        checked that it has no zero."""
        return self.first(x, relu, scale, keep, nonzero)

    def first(self, x: torch.Tensor, relu: bool, scale: torch.Tensor | None,
              keep: torch.Tensor | None = None, nonzero: Nonzero = False) -> torch.Tensor:
        """The shared-input stage: one depthwise conv with channel multiplier E, or one on
        the input tiled E times (``_tiles``)."""
        ms = self.members
        E, C = len(ms), x.shape[1]
        w0 = ms[0][1].weight
        dws, pws = [m[1].weight for m in ms], [m[2].weight for m in ms]
        if E > 1 and self.cpu_kernels and _tiles(x, self.kernel, self.stride, self.padding, self.dilation):
            dw = self.cache.get("blocks", dws, lambda: self._depthwise_weight(False))
            pw = self.cache.get("blocks 1x1", pws, lambda: pointwise_weight(pws, 0))
            return conv_block(x, dw, pws, [m[3] for m in ms], scale, relu, self.stride, self.padding,
                              self.dilation, 0, self.recompute, keep, nonzero, pw, E, True)
        dw = w0.view(w0.shape) if E == 1 else self.cache.get(
            "first", dws, lambda: self._depthwise_weight(True).reshape(C * E, 1, self.kernel, self.kernel))
        interleaved = E if E > 1 else 0
        pw = self.cache.get("first 1x1", pws, lambda: pointwise_weight(pws, interleaved))
        return conv_block(x, dw, pws, [m[3] for m in ms], scale, relu, self.stride, self.padding, self.dilation,
                          interleaved, self.recompute, keep, nonzero, pw, phases=self.cpu_kernels)

    def blocks(self, x: torch.Tensor, scale: torch.Tensor | None, nonzero: Nonzero = False) -> torch.Tensor:
        """The per-edge stage: ReLU, then input block e (of E*C channels) through edge e."""
        ms = self.members
        dws, pws = [m[1].weight for m in ms], [m[2].weight for m in ms]
        dw = self.cache.get("blocks", dws, lambda: self._depthwise_weight(False))
        pw = self.cache.get("blocks 1x1", pws, lambda: pointwise_weight(pws, 0))
        return conv_block(x, dw, pws, [m[3] for m in ms], scale, True, self.stride, self.padding, self.dilation, 0,
                          self.recompute, None, nonzero, pw, phases=self.cpu_kernels)


class GroupedSepConv:
    """E sequences of such blocks (DARTS's ``sep_conv``: two) on one input: the first
    block grouped with a channel multiplier, the others block by block."""

    def __init__(self, members: Sequence[_SepBlocks], recompute: bool = False, cpu_kernels: bool = True) -> None:
        self.stages = [GroupedDilConv([m[i] for m in members], recompute, cpu_kernels) for i in range(len(members[0]))]

    def batch_norms(self) -> list[list[_BatchNorm]]:
        return [bns for stage in self.stages for bns in stage.batch_norms()]

    def clear_caches(self) -> None:
        for stage in self.stages:
            stage.clear_caches()

    def __call__(self, x: torch.Tensor, relu: bool, scale: torch.Tensor | None,
                 keep: torch.Tensor | None = None, nonzero: Nonzero = False) -> torch.Tensor:
        x = self.stages[0].first(x, relu, None, keep)
        for i, stage in enumerate(self.stages[1:], 1):
            last = i == len(self.stages) - 1
            x = stage.blocks(x, scale if last else None, nonzero if last else False)
        return x


class GroupedConvStack:
    """E copies of any stack of convs (activations, batch norms and pools between them;
    only activations before the first conv) on one input: the leading activations once,
    the first conv as one conv producing E blocks of channels (its weights concatenated;
    a grouped first conv reads E copies of the input), every later conv as one conv with
    E times its groups, every batch norm as one over all blocks (each edge's running
    statistics moved as its own). Returns the E outputs along channels, edge by edge."""

    def __init__(self, members: Sequence[nn.Module], recompute: bool = False) -> None:
        self.layers = [flat_layers(m) for m in members]
        _same(members, _structure)

    def batch_norms(self) -> list[list[_BatchNorm]]:
        return [cast("list[_BatchNorm]", [layers[j] for layers in self.layers])
                for j, layer in enumerate(self.layers[0]) if isinstance(layer, _BatchNorm)]

    def __call__(self, x: torch.Tensor, relu: bool, scale: torch.Tensor | None,
                 keep: torch.Tensor | None = None, nonzero: Nonzero = False) -> torch.Tensor:
        E = len(self.layers)
        first = self.layers[0]
        i = 0
        while not isinstance(first[i], nn.Conv2d):  # the leading activations, on the shared input
            if relu or i > 0 or not isinstance(first[i], nn.ReLU):
                x = first[i](x)
            i += 1
        # every member's layers are laid out as the first one's (checked in __init__)
        convs = cast("list[nn.Conv2d]", [layers[i] for layers in self.layers])
        c0 = convs[0]
        weight = fused_cat([c.weight for c in convs])
        if c0.groups == 1:
            y = F.conv2d(x, weight, None, c0.stride, c0.padding, c0.dilation, 1)
        else:
            y = F.conv2d(tile_channels(x, E), weight, None, c0.stride, c0.padding, c0.dilation, c0.groups * E)
        last = len(first) - 1
        for j in range(i + 1, len(first)):
            mods = [layers[j] for layers in self.layers]
            m0 = mods[0]
            if isinstance(m0, nn.Conv2d):
                w = fused_cat([m.weight for m in cast("list[nn.Conv2d]", mods)])
                y = F.conv2d(y, w, None, m0.stride, m0.padding, m0.dilation, m0.groups * E)
            elif isinstance(m0, _BatchNorm):
                y = grouped_batch_norm(y, cast("list[_BatchNorm]", mods), scale if j == last else None)
            else:  # an activation or a pool: the same on every channel block
                y = m0(y)
        if scale is not None and not isinstance(first[last], _BatchNorm):
            raise ValueError("a grouped conv stack can scale only a final batch norm")
        return y


def _is_dil_block(m: object) -> TypeGuard[_DilBlock]:
    """ReLU, a depthwise conv (channel multiplier 1), a 1x1 conv, BN (an
    ``nn.Sequential`` or a list of the four): what ``GroupedDilConv`` runs."""
    if not isinstance(m, (nn.Sequential, list)) or len(m) != 4:
        return False
    relu, dw, pw, bn = m
    return (isinstance(relu, nn.ReLU) and isinstance(dw, nn.Conv2d) and dw.groups == dw.in_channels == dw.out_channels
            and dw.stride[0] == dw.stride[1] and dw.padding[0] == dw.padding[1]
            and dw.kernel_size[0] == dw.kernel_size[1]
            and isinstance(pw, nn.Conv2d) and pw.kernel_size == (1, 1) and pw.groups == 1 and pw.stride == (1, 1)
            and isinstance(bn, nn.BatchNorm2d))


def grouped_executor(members: Sequence[nn.Module], recompute: bool = False,
                     cpu_kernels: bool = True) -> Callable[..., torch.Tensor | ChannelRuns]:
    """The fastest executor for E copies of one groupable op (``OpFacts.groupable``), or
    of ops that differ only in their depthwise kernel sizes (``merge_kernels``): the
    hand-tuned ones for DARTS's ``dil_conv`` and ``sep_conv`` structures, the general
    conv stack otherwise. ``cpu_kernels``: on the CPU, the former run merged kernels as
    one call per kernel size (``KernelRuns``), tile shared-input depthwise convs
    (``_tiles``) and run dilated ones on phases (``_phase_split``); the same results, by
    other kernels (and more, cheaper ops)."""
    merged = _dil_executor(members, recompute, cpu_kernels)
    if merged is not None:
        runs = (merged if isinstance(merged, GroupedDilConv) else merged.stages[0]).runs
        if len(runs) == 1 or not cpu_kernels:
            return merged
        return KernelRuns(merged, GroupedRuns([_one_structure(members[a:b], recompute, cpu_kernels)
                                               for a, b, _ in runs], [b - a for a, b, _ in runs]))
    structures: list[list[nn.Module]] = []
    for b in members:
        if structures and _structure(structures[-1][0]) == _structure(b):
            structures[-1].append(b)
        else:
            structures.append([b])
    if len(structures) == 1:
        return GroupedConvStack(members, recompute)
    return GroupedRuns([_one_structure(run, recompute, cpu_kernels) for run in structures],
                       [len(run) for run in structures])


def _dil_executor(members: Sequence[nn.Module], recompute: bool,
                  cpu_kernels: bool) -> GroupedDilConv | GroupedSepConv | None:
    """``GroupedDilConv`` or ``GroupedSepConv`` of ``members`` when they are such blocks."""
    if all(_is_dil_block(b) for b in members):
        return GroupedDilConv(cast("Sequence[_DilBlock]", members), recompute, cpu_kernels)
    blocks = [_dil_blocks(b) for b in members]
    if all(b is not None and len(b) == len(blocks[0] or ()) for b in blocks):
        chains = cast("list[list[_DilBlock]]", blocks)
        if len(chains[0]) == 1:
            return GroupedDilConv([c[0] for c in chains], recompute, cpu_kernels)
        return GroupedSepConv(chains, recompute, cpu_kernels)
    return None


def _one_structure(members: Sequence[nn.Module], recompute: bool, cpu_kernels: bool) -> Callable[..., torch.Tensor]:
    """The executor of copies of one op, or of such blocks of one kernel size."""
    return _dil_executor(members, recompute, cpu_kernels) or GroupedConvStack(members, recompute)


def _dil_blocks(m: nn.Module) -> list[_DilBlock] | None:
    """``m``'s layers (however nested) as ``_is_dil_block`` blocks, the op's stride on
    the first only (``GroupedSepConv``); None when they are not."""
    if isinstance(m, nn.Sequential) and len(m) > 0 and all(_is_dil_block(b) for b in m):
        blocks: list[Any] = list(m)
    else:
        layers = flat_layers(m)
        if not layers or len(layers) % 4:
            return None
        blocks = [layers[i:i + 4] for i in range(0, len(layers), 4)]
    if all(_is_dil_block(b) for b in blocks) and all(b[1].stride == (1, 1) for b in blocks[1:]):
        return cast("list[_DilBlock]", blocks)
    return None


def _structure(m: nn.Module) -> list[str]:
    return [repr(layer) for layer in flat_layers(m)]


class GroupedRuns:
    """Merged ops (``merge_kernels``) laid out otherwise than ``GroupedDilConv`` and
    ``GroupedSepConv`` read them: each run of copies of one op as its own grouped call,
    the outputs concatenated along channels (the same result, without the merge's
    savings)."""

    def __init__(self, runs: Sequence[Callable[..., torch.Tensor]], sizes: Sequence[int]) -> None:
        self.runs, self.sizes = list(runs), list(sizes)

    def batch_norms(self) -> list[list[_BatchNorm]]:
        return [bns for run in self.runs for bns in getattr(run, "batch_norms", list)()]

    def clear_caches(self) -> None:
        for run in self.runs:
            clear_caches(run)

    def __call__(self, x: torch.Tensor, relu: bool, scale: torch.Tensor | None,
                 keep: torch.Tensor | None = None, nonzero: Nonzero = False) -> torch.Tensor:
        return fused_cat(self.outputs(x, relu, scale, keep, nonzero), 1)

    def outputs(self, x: torch.Tensor, relu: bool, scale: torch.Tensor | None,
                keep: torch.Tensor | None = None, nonzero: Nonzero = False) -> list[torch.Tensor]:
        """Each run's output (channels of its edges), in order."""
        per = 0 if scale is None else scale.numel() // sum(self.sizes)  # one per edge, or per output channel
        split = [n * per for n in self.sizes]
        scales = [None] * len(self.runs) if scale is None else list(scale.split(split))
        facts: list[Nonzero] = ([*zip(nonzero[0].split(split), nonzero[1].split(split))]
                                if isinstance(nonzero, tuple) else [nonzero] * len(self.runs))
        return [run(x, relu, sc, keep, f) for run, sc, f in zip(self.runs, scales, facts)]


class KernelRuns:
    """Merged ops (``merge_kernels``: kernels zero-padded to the largest) as one call on
    a GPU, and on the CPU one call per kernel size (``GroupedRuns``), the outputs returned
    unjoined (``ChannelRuns``): oneDNN's 3x3 depthwise kernels are 3-4x faster than its 5x5 ones (forward
    and input gradient), 4-10x for the weight gradient (64 channels at 32x32 down to 256
    at 8x8, batch 16), so a 3x3 kernel padded to 5x5 costs far more there than the launches
    it saves. The same results. The runs' batch norms are consecutive ranges of the merged
    call's linked statistics (``link_bn_stats``, ``_flat_stats``), moved in place by either."""

    def __init__(self, merged: GroupedDilConv | GroupedSepConv, runs: GroupedRuns) -> None:
        self.merged, self.runs = merged, runs

    def batch_norms(self) -> list[list[_BatchNorm]]:
        return self.merged.batch_norms()

    def clear_caches(self) -> None:
        self.merged.clear_caches()
        self.runs.clear_caches()

    def __call__(self, x: torch.Tensor, relu: bool, scale: torch.Tensor | None,
                 keep: torch.Tensor | None = None, nonzero: Nonzero = False) -> torch.Tensor | ChannelRuns:
        """The merged call's output, or on the CPU the runs' outputs (``ChannelRuns``)."""
        if x.device.type != "cpu":
            return self.merged(x, relu, scale, keep, nonzero)
        return ChannelRuns(tuple(self.runs.outputs(x, relu, scale, keep, nonzero)))


@dataclass(frozen=True)
class ChannelRuns:
    """A grouped call's output as its runs' outputs (``KernelRuns`` on the CPU), to be
    read as if joined along channels, without the copy: a consumer takes the parts
    (``split``) or each run's output whole (``parts``). Their gradients stay dense (a
    channel range of a joined channels-last gradient is strided)."""

    parts: tuple[torch.Tensor, ...]

    def split(self, size: int, dim: int = 1) -> list[torch.Tensor]:
        """The joined output's channel blocks of ``size`` (``dim`` 1; each within one run)."""
        if dim != 1 or any(t.shape[1] % size for t in self.parts):
            raise ValueError(f"a grouped call's runs split along channels into blocks within each run; "
                             f"got size {size} for runs of {[t.shape[1] for t in self.parts]} channels")
        return [b for t in self.parts for b in t.split(size, 1)]


def joined(out: torch.Tensor | ChannelRuns) -> torch.Tensor:
    """A grouped call's output as one tensor (``ChannelRuns`` joined along channels)."""
    return out if isinstance(out, torch.Tensor) else fused_cat(out.parts, 1)


def parts_of(out: torch.Tensor | ChannelRuns) -> tuple[torch.Tensor, ...]:
    """A grouped call's output as one or more tensors along channels."""
    return out.parts if isinstance(out, ChannelRuns) else (out,)


class SharedStateless:
    """An op without weights, batch norms or randomness computed once for E edges."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        self.members = list(members)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.members[0](x)] * len(self.members)


def shared_executor(members: Sequence[nn.Module]) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """The executor for E copies of one shareable op (``OpFacts.shareable``): a pool and
    its BN (``SharedPoolBN``), or a stateless op."""
    m = members[0]
    if isinstance(m, nn.Sequential) and len(m) == 2 and isinstance(m[0], (nn.MaxPool2d, nn.AvgPool2d)) and \
            isinstance(m[1], nn.BatchNorm2d):
        return SharedPoolBN(cast("Sequence[_PoolThenBN]", members))  # the members are copies of m
    return SharedStateless(members)


class _PoolBN(torch.autograd.Function):
    """A pool, then a batch norm without parameters or running statistics (training
    mode). Keeps only the pool's input (a node of the cell, alive anyway) and the BN's
    output x^ for the backward: the BN's backward runs from x^, a max pool's indices are
    found again. Returns x^ and the batch mean and invstd, for the running statistics
    (``lerp_variance``). Twice differentiable (recomputed with autograd when a graph of
    the backward is asked for)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, pool: nn.Module, eps: float) -> tuple[torch.Tensor, ...]:
        z = pool(x)
        out, mean, invstd = torch.native_batch_norm(z, None, None, None, None, True, 0.0, eps)
        ctx.save_for_backward(x, out, mean, invstd)
        ctx.pool, ctx.eps, ctx.pooled_shape = pool, eps, tuple(z.shape)
        # not the saved tensors themselves (see _ConvBlock)
        out, mean, invstd = out.view(out.shape), mean.view(mean.shape), invstd.view(invstd.shape)
        ctx.mark_non_differentiable(mean, invstd)
        ctx.set_materialize_grads(False)  # no zeros made for the statistics' (absent) gradients
        return out, mean, invstd

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor | None, *_: Any) -> tuple[torch.Tensor | None, ...]:
        x, out, mean, invstd = ctx.saved_tensors
        pool = ctx.pool
        if grad is None:  # nothing reached the pooled output
            return None, None, None
        if torch.is_grad_enabled():  # double backward: recompute with autograd
            z = pool(x)
            gz = torch.ops.aten.native_batch_norm_backward(grad, z, None, None, None, mean, invstd, True, ctx.eps,
                                                           [True, False, False])[0]
            return torch.autograd.grad(z, x, gz, create_graph=True)[0], None, None
        zero, one = _constant(0.0, invstd), _constant(1.0, invstd)
        gz = torch.ops.aten.native_batch_norm_backward(grad, out, invstd, None, None, zero, one, True, ctx.eps,
                                                       [True, False, False])[0]
        k, s, p = pool.kernel_size, pool.stride, pool.padding
        if isinstance(pool, nn.MaxPool2d):
            _, idx = torch.ops.aten.max_pool2d_with_indices(x, [k, k], [s, s], [p, p], [pool.dilation] * 2,
                                                            pool.ceil_mode)
            gx = torch.ops.aten.max_pool2d_with_indices_backward(gz, x, [k, k], [s, s], [p, p], [pool.dilation] * 2,
                                                                 pool.ceil_mode, idx)
        else:
            gx = torch.ops.aten.avg_pool2d_backward(gz, x, [k, k], [s, s], [p, p], pool.ceil_mode,
                                                    pool.count_include_pad, pool.divisor_override)
        return gx, None, None


class _PoolThenBN(Protocol):
    """A member of ``SharedPoolBN``: ``nn.Sequential(pool, BatchNorm2d)``."""

    @overload
    def __getitem__(self, i: Literal[0]) -> nn.Module: ...
    @overload
    def __getitem__(self, i: Literal[1]) -> nn.BatchNorm2d: ...


class SharedPoolBN:
    """A pool and its BN without parameters computed once for E edges.
    Training mode: one pool, one BN (batch statistics: the same for every edge), and
    each edge's running statistics moved as its own BN would move them. Eval mode: one
    pool, each edge's BN with its own running statistics."""

    def __init__(self, members: Sequence[_PoolThenBN]) -> None:
        _same(members, lambda m: repr(m[0]))
        self.members = list(members)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        pool = self.members[0][0]
        bns = [m[1] for m in self.members]
        bn0 = bns[0]
        if (not bn0.training or bn0.affine or not bn0.track_running_stats or bn0.momentum is None
                or not isinstance(pool, (nn.MaxPool2d, nn.AvgPool2d)) or not isinstance(pool.kernel_size, int)
                or _data_parallel()):
            pooled = pool(x)
            return [bn(pooled) for bn in bns]
        if torch.is_grad_enabled() and x.requires_grad:
            out, mean, invstd = _PoolBN.apply(x, pool, bn0.eps)
        else:
            out, mean, invstd = _PoolBN.forward(_NoCtx(), x, pool, bn0.eps)
        if bn0.running_mean is not None:  # None: taken away (the architect's forwards), nothing to move
            m = bn0.momentum
            lerp_stats(_tracked([bn.running_mean for bn in bns]), [mean] * len(bns), m)
            lerp_variance(_tracked([bn.running_var for bn in bns]), invstd, bn0.eps, out.numel() // out.shape[1], m)
            count_batches(bns)
        return [out] * len(bns)


class _NoCtx:
    """A stand-in for a Function's ctx when no backward is recorded."""

    def save_for_backward(self, *tensors: torch.Tensor) -> None:
        pass

    def mark_non_differentiable(self, *tensors: torch.Tensor) -> None:
        pass

    def set_materialize_grads(self, value: bool) -> None:
        pass
