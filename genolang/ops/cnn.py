"""The convolutional building blocks of DARTS (ReLU-Conv-BN order, bias-free convs).

``affine`` is False in supernets (BatchNorm without learnable scale and shift) and True
in fixed networks.

Ops that start with a ReLU or end with a BN also offer ``forward_fused(x, relu, scale)``,
used by optimized supernets (``genolang.passes``): ``relu=False`` when the input is
already ReLU'd (one ReLU shared by several ops), ``scale`` a scalar tensor (the op's
alpha weight) applied as the scale of the final BN, which saves a multiply and keeps
the product out of autograd's saved tensors. ``forward_fused(x)`` equals ``forward(x)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
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


class ReLUConvBN(nn.Sequential):
    """ReLU, a KxK conv, BN: the preprocessing of cell inputs and NAS-Bench-201 convs."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    @property
    def bn(self) -> BatchNormLike:  # an nn.BatchNorm2d, or the GlobalBatchNorm replacing it
        return cast("BatchNormLike", self[2])

    def forward_fused(self, x: torch.Tensor, relu: bool = True, scale: torch.Tensor | None = None) -> torch.Tensor:
        return batch_norm(self.bn, self[1](self[0](x) if relu else x), scale)


class DilConv(nn.Sequential):
    """ReLU, depthwise KxK conv with dilation, 1x1 conv, BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    # The parts by role (the modules stay numbered children: state-dict keys do not change).
    @property
    def depthwise(self) -> nn.Conv2d:
        return cast(nn.Conv2d, self[1])

    @property
    def pointwise(self) -> nn.Conv2d:
        return cast(nn.Conv2d, self[2])

    @property
    def bn(self) -> BatchNormLike:  # an nn.BatchNorm2d, or the GlobalBatchNorm replacing it
        return cast("BatchNormLike", self[3])

    def forward_fused(self, x: torch.Tensor, relu: bool = True, scale: torch.Tensor | None = None) -> torch.Tensor:
        return batch_norm(self.bn, self.pointwise(self.depthwise(self[0](x) if relu else x)), scale)


class SepConv(nn.Sequential):
    """Two dilation-1 ``DilConv`` blocks; the stride applies to the first only."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )

    @property
    def first(self) -> DilConv:
        return cast(DilConv, self[0])

    @property
    def second(self) -> DilConv:
        return cast(DilConv, self[1])

    def forward_fused(self, x: torch.Tensor, relu: bool = True, scale: torch.Tensor | None = None) -> torch.Tensor:
        return self.second.forward_fused(self.first.forward_fused(x, relu), True, scale)


class Conv7x1_1x7(nn.Sequential):
    """ReLU, a 1x7 conv then a 7x1 conv (each striding along its own axis), BN."""

    def __init__(self, c: int, stride: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(c, c, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )

    @property
    def bn(self) -> BatchNormLike:  # an nn.BatchNorm2d, or the GlobalBatchNorm replacing it
        return cast("BatchNormLike", self[3])

    def forward_fused(self, x: torch.Tensor, relu: bool = True, scale: torch.Tensor | None = None) -> torch.Tensor:
        return batch_norm(self.bn, self[2](self[1](self[0](x) if relu else x)), scale)


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
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))

    def forward_fused(self, x: torch.Tensor, relu: bool = True, scale: torch.Tensor | None = None) -> torch.Tensor:
        if relu:
            x = self.relu(x)
        return batch_norm(self.bn, torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1), scale)


class PoolBN(nn.Sequential):
    """A pool followed by a BN without affine parameters (pools in supernets)."""

    def __init__(self, pool: nn.Module, c: int) -> None:
        super().__init__(pool, nn.BatchNorm2d(c, affine=False))

    @property
    def pool(self) -> nn.Module:
        return self[0]

    @property
    def bn(self) -> BatchNormLike:  # an nn.BatchNorm2d, or the GlobalBatchNorm replacing it
        return cast("BatchNormLike", self[1])

    def forward_fused(self, x: torch.Tensor, relu: bool = True, scale: torch.Tensor | None = None) -> torch.Tensor:
        if not relu:
            raise ValueError("a pool does not start with a ReLU")
        return batch_norm(self.bn, self.pool(x), scale)
