"""Today's op modules as the code built them before ops were declared in text (copied
from genolang/ops/cnn.py and ops/registry.py at commit eeb537d), kept only as the
reference that tests/test_text_ops.py compares the text-declared ops against."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from genolang.ops.cnn import batch_norm


class ReLUConvBN(nn.Sequential):
    """ReLU, a KxK conv, BN: the preprocessing of cell inputs and NAS-Bench-201 convs."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward_fused(self, x: torch.Tensor, relu: bool = True, scale: torch.Tensor | None = None) -> torch.Tensor:
        return batch_norm(cast(nn.BatchNorm2d, self[2]), self[1](self[0](x) if relu else x), scale)


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

    def forward_fused(self, x: torch.Tensor, relu: bool = True, scale: torch.Tensor | None = None) -> torch.Tensor:
        return batch_norm(cast(nn.BatchNorm2d, self[3]), self[2](self[1](self[0](x) if relu else x)), scale)


class SepConv(nn.Sequential):
    """Two dilation-1 ``DilConv`` blocks; the stride applies to the first only."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )

    def forward_fused(self, x: torch.Tensor, relu: bool = True, scale: torch.Tensor | None = None) -> torch.Tensor:
        first, second = cast(DilConv, self[0]), cast(DilConv, self[1])
        return second.forward_fused(first.forward_fused(x, relu), True, scale)


class Conv7x1_1x7(nn.Sequential):
    """ReLU, a 1x7 conv then a 7x1 conv (each striding along its own axis), BN."""

    def __init__(self, c: int, stride: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(c, c, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )

    def forward_fused(self, x: torch.Tensor, relu: bool = True, scale: torch.Tensor | None = None) -> torch.Tensor:
        return batch_norm(cast(nn.BatchNorm2d, self[3]), self[2](self[1](self[0](x) if relu else x)), scale)


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

    def forward_fused(self, x: torch.Tensor, relu: bool = True, scale: torch.Tensor | None = None) -> torch.Tensor:
        if not relu:
            raise ValueError("a pool does not start with a ReLU")
        return batch_norm(cast(nn.BatchNorm2d, self[1]), self[0](x), scale)


def reference_op(name: str, C: int, stride: int, affine: bool) -> nn.Module:
    """The registry of those modules, by op name, as it was."""
    if name == "none":
        return Zero(stride)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(C, C, affine)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name.startswith("sep_conv_"):
        k = int(name[-1])
        return SepConv(C, C, k, stride, k // 2, affine)
    if name.startswith("dil_conv_"):
        k = int(name[-1])
        return DilConv(C, C, k, stride, k - 1, 2, affine)
    if name == "conv_7x1_1x7":
        return Conv7x1_1x7(C, stride, affine)
    if name.startswith("nor_conv_"):
        k = int(name[-1])
        return ReLUConvBN(C, C, k, stride, k // 2, affine)
    raise KeyError(name)


def reference_search_op(name: str, C: int, stride: int) -> nn.Module:
    op = reference_op(name, C, stride, affine=False)
    return PoolBN(op, C) if "pool" in name else op
