"""Two ops genolang's primitives cannot say, as plugin factories.

``squeeze_excite``: a squeeze-and-excitation block (Hu et al., CVPR 2018) after a 3x3
conv: global average pool, two 1x1 convs, a sigmoid gate per channel. ``biased_conv_3x3``:
a 3x3 conv with a bias (genolang's convs have none), then a batch norm. Each maps
N x C x H x W to N x C x ceil(H/stride) x ceil(W/stride)."""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, stride: int, affine: bool, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.conv = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels, affine=affine)
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(torch.relu(x)))
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(y.mean((2, 3), keepdim=True)))))
        return y * gate


def squeeze_excite(channels: int, stride: int, affine: bool) -> nn.Module:
    return SqueezeExcite(channels, stride, affine)


def biased_conv_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=True),
                         nn.BatchNorm2d(channels, affine=affine))
