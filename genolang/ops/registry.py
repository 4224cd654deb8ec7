"""The op registry: op name -> builder of its torch module, filled by a decorator.
Every CNN name of ``genolang.spec.opnames`` has a builder here (a test keeps them in step);
``build_cnn_op`` turns an unknown name into a clear error, never a KeyError."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from genolang.errors import GenolangError, did_you_mean
from genolang.ops.cnn import Conv7x1_1x7, DilConv, FactorizedReduce, Identity, ReLUConvBN, SepConv, Zero

Builder = Callable[[int, int, bool], nn.Module]  # (channels, stride, affine) -> module
CNN_OPS: dict[str, Builder] = {}


def register_cnn_op(name: str) -> Callable[[Builder], Builder]:
    """Register a builder ``(C, stride, affine) -> nn.Module`` under ``name``."""
    def deco(fn: Builder) -> Builder:
        if name in CNN_OPS:
            raise ValueError(f"op {name!r} is registered twice")
        CNN_OPS[name] = fn
        return fn

    return deco


class UnknownOpError(GenolangError):
    """An op name no builder is registered for."""


def build_cnn_op(name: str, channels: int, stride: int, affine: bool) -> nn.Module:
    """The module of op ``name`` on ``channels`` channels at ``stride``."""
    try:
        builder = CNN_OPS[name]
    except KeyError:
        raise UnknownOpError(f"no CNN op named '{name}'{did_you_mean(name, CNN_OPS)}; "
                             f"known: {', '.join(CNN_OPS)}") from None
    return builder(channels, stride, affine)


register_cnn_op("none")(lambda C, stride, affine: Zero(stride))
register_cnn_op("skip_connect")(
    lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine))
register_cnn_op("max_pool_3x3")(lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1))
register_cnn_op("avg_pool_3x3")(
    lambda C, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False))


def _sep_conv(k: int) -> Builder:
    return lambda C, stride, affine: SepConv(C, C, k, stride, k // 2, affine)


def _dil_conv(k: int) -> Builder:
    return lambda C, stride, affine: DilConv(C, C, k, stride, k - 1, 2, affine)


def _nor_conv(k: int) -> Builder:
    return lambda C, stride, affine: ReLUConvBN(C, C, k, stride, k // 2, affine)


for _k in (3, 5, 7):
    register_cnn_op(f"sep_conv_{_k}x{_k}")(_sep_conv(_k))
for _k in (3, 5):
    register_cnn_op(f"dil_conv_{_k}x{_k}")(_dil_conv(_k))
register_cnn_op("conv_7x1_1x7")(lambda C, stride, affine: Conv7x1_1x7(C, stride, affine))
for _k in (1, 3):
    register_cnn_op(f"nor_conv_{_k}x{_k}")(_nor_conv(_k))

# Recurrent activations: name -> function on the candidate hidden state.
RNN_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}
