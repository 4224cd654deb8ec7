"""The modules of primitives that are more than one torch layer (``genolang.ops.build``
builds ops from them and from torch's own layers): identity, zero of the strided shape,
Gaussian noise, DARTS's factorized reduce, and a batch norm whose affine scale can be
multiplied by an op's alpha weight (``batch_norm``).

``forward_fused(x, relu, scale)``, used by optimized supernets (``genolang.passes``):
``relu=False`` when the input is already ReLU'd (one ReLU shared by several ops),
``scale`` a scalar tensor (the op's alpha weight) applied as the scale of the final BN,
which saves a multiply and keeps the product out of autograd's saved tensors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from genolang.ops.norm import BatchNormLike


def batch_norm(bn: BatchNormLike, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """``bn(x) * scale`` in one batch norm call: ``nn.BatchNorm``'s forward with its
    (affine) weight and bias multiplied by ``scale`` (a scalar tensor or None). Over the
    global batch when data-parallel ranks run (``genolang.ops.norm.batch_norm``)."""
    from genolang.ops.norm import batch_norm as global_batch_norm

    if scale is None:
        return bn(x)
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:
            factor = 1.0 / float(bn.num_batches_tracked)
    use_batch = bn.training or (bn.running_mean is None and bn.running_var is None)
    track = not bn.training or bn.track_running_stats
    # contiguous: with a stride-0 weight and channels-last input, BN's double backward is wrong (torch 2.14)
    s = scale.expand(bn.num_features).contiguous()
    weight = s if bn.weight is None else bn.weight * s
    bias = None if bn.bias is None else bn.bias * s
    return global_batch_norm(x, bn.running_mean if track else None, bn.running_var if track else None, weight, bias,
                             use_batch, factor, bn.eps)


class Identity(nn.Module):
    """``skip_connect`` at stride 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """``none``: zeros of the (strided) output shape."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


SMALL_CHANNELS = 8  # below this, FactorizedReduce runs its strided convs as unstrided ones (see _halves)


class FactorizedReduce(nn.Module):
    """Halve the spatial size without losing pixels: ReLU, two stride-2 1x1 convs (the
    second on the input shifted by one pixel) to C/2 channels each, concat, BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"factorized reduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self._halves(self.relu(x)))

    def forward_fused(self, x: torch.Tensor, relu: bool = True, scale: torch.Tensor | None = None) -> torch.Tensor:
        return batch_norm(self.bn, self._halves(self.relu(x) if relu else x), scale)

    def _halves(self, x: torch.Tensor) -> torch.Tensor:
        if 1 < x.shape[1] < SMALL_CHANNELS:
            # torch 2.14's CPU backward of a stride-2 1x1 conv's weight corrupts the heap
            # for 2 to 7 input channels (PC-DARTS's C/K slices): the same products as
            # stride-1 convs on the pixels the strided ones read
            w1, w2 = self.conv_1.weight, self.conv_2.weight
            return torch.cat([F.conv2d(x[:, :, ::2, ::2], w1), F.conv2d(x[:, :, 1::2, 1::2], w2)], dim=1)
        return torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1)


class Noise(nn.Module):
    """Gaussian noise (``mean``, ``std``) of the (strided) input's shape, in training
    and evaluation alike (RobustDARTS's ``noise`` op)."""

    def __init__(self, stride: int, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.stride, self.mean, self.std = stride, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shaped = x if self.stride == 1 else x[:, :, :: self.stride, :: self.stride]
        return torch.empty_like(shaped).normal_(self.mean, self.std)
