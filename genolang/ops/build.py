"""Checked ops (``genolang.spec.ops.OpDef``) to torch modules.

The module nests as the op's body does (``genolang.spec.ops.instantiate``): a sequence of
several parts or a repeat is an ``OpSequential`` (an ``nn.Sequential``, so parameter
names read ``0.1.weight``: part 0, layer 1), a part on its own is its layer's module.
DARTS's ``sep_conv_3x3`` (``2 * (relu > dwconv(3, stride) > conv(1) > bn)``) is thus two
sequences of ReLU, depthwise conv, 1x1 conv and BN, with the parameter names and the
arithmetic of the original code's ``SepConv``. Batch norms are affine in fixed networks
and without parameters in supernets (``affine``); ``bn(search)`` exists in supernets only.

Ops from plugins are built by their entry point's factory ``(C, stride, affine)``."""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

from genolang.errors import GenolangError
from genolang.ops.cnn import FactorizedReduce, Identity, Noise, Zero, batch_norm
from genolang.spec.ops import Group, OpDef, Placed, Unit, leaves
from genolang.spec.plugins import GROUP


class OpBuildError(GenolangError):
    """An op that cannot be built for these channels (or a plugin that fails)."""


class Fusable(Protocol):
    """A layer with ``forward_fused(x, relu, scale)`` (``OpSequential``, ``FactorizedReduce``)."""

    def forward_fused(self, x: torch.Tensor, relu: bool = True,
                      scale: torch.Tensor | None = None) -> torch.Tensor: ...


class OpSequential(nn.Sequential):
    """The layers of an op in sequence. ``forward_fused(x, relu, scale)`` is its forward
    without its first ReLU (``relu=False``: the input is ReLU'd already, shared by
    several ops) and with ``scale`` (a scalar tensor, the op's alpha weight) as the scale
    of its final batch norm; ``forward_fused(x)`` equals ``forward(x)``."""

    def forward_fused(self, x: torch.Tensor, relu: bool = True, scale: torch.Tensor | None = None) -> torch.Tensor:
        parts = list(self)
        for i, part in enumerate(parts):
            first, last = i == 0, i == len(parts) - 1
            skip_relu = first and not relu
            scale_here = scale if last else None
            if skip_relu and isinstance(part, nn.ReLU):
                continue
            if skip_relu or scale_here is not None:
                if isinstance(part, nn.BatchNorm2d) and not skip_relu:
                    x = batch_norm(part, x, scale_here)
                elif hasattr(part, "forward_fused"):
                    x = cast(Fusable, part).forward_fused(x, not skip_relu, scale_here)
                else:
                    raise ValueError(f"cannot fuse {type(part).__name__} into an op's first or last layer")
            else:
                x = part(x)
        return x


_ACTIVATION_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=False), "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU,
    "silu": nn.SiLU, "identity": Identity,
}
_ACTIVATION_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "gelu": F.gelu, "silu": F.silu,
    "identity": lambda x: x,
}


def _stride(s: tuple[int, int]) -> int | tuple[int, int]:
    return s[0] if s[0] == s[1] else s


def _layer(placed: Placed, c_in: int, channels: int, affine: bool, op: str) -> tuple[nn.Module, int]:
    """One layer's module and its output channels."""
    layer, stride = placed.layer, placed.stride
    prim = layer.prim
    if prim in _ACTIVATION_MODULES:
        return _ACTIVATION_MODULES[prim](), c_in
    if prim in ("conv", "dwconv"):
        c_out = channels * layer.width if prim == "conv" else c_in * layer.width
        groups = c_in if prim == "dwconv" else layer.groups
        if c_in % groups or c_out % groups:
            raise OpBuildError(f"op '{op}': a conv with groups={groups} cannot map {c_in} to {c_out} channels "
                               f"(C = {channels}); choose groups that divide the channels")
        kernel = layer.kernel if layer.kernel[0] != layer.kernel[1] else layer.kernel[0]
        padding = layer.padding if layer.padding[0] != layer.padding[1] else layer.padding[0]
        return nn.Conv2d(c_in, c_out, kernel, stride=_stride(stride), padding=padding, dilation=layer.dilation,
                         groups=groups, bias=False), c_out
    if prim == "bn":
        return nn.BatchNorm2d(c_in, affine=affine), c_in
    if prim == "max_pool":
        return nn.MaxPool2d(layer.kernel[0], stride=_stride(stride), padding=layer.kernel[0] // 2), c_in
    if prim == "avg_pool":
        return nn.AvgPool2d(layer.kernel[0], stride=_stride(stride), padding=layer.kernel[0] // 2,
                            count_include_pad=layer.count_pad), c_in
    if prim == "zero":
        return Zero(stride[0]), c_in
    if prim == "noise":
        return Noise(stride[0], layer.mean, layer.std), c_in
    if prim == "factorized_reduce":
        if channels % 2:
            raise OpBuildError(f"op '{op}': factorized_reduce needs an even number of channels, got {channels}")
        return FactorizedReduce(c_in, channels, affine), channels
    raise OpBuildError(f"op '{op}': no module for primitive {prim!r}")


def _module(unit: Unit, c_in: int, channels: int, affine: bool, op: str) -> tuple[nn.Module, int]:
    if isinstance(unit, Placed):
        return _layer(unit, c_in, channels, affine, op)
    if not unit.parts:
        return Identity(), c_in
    modules = []
    for part in unit.parts:
        module, c_in = _module(part, c_in, channels, affine, op)
        modules.append(module)
    return OpSequential(*modules), c_in


def build_op(op: OpDef, channels: int, stride: int, affine: bool, search: bool = False) -> nn.Module:
    """The module of ``op`` on ``channels`` channels at ``stride``: in a fixed network
    (``affine`` batch norms) or in a supernet (``search``: ``bn(search)`` included)."""
    if op.plugin is not None:
        return _plugin(op, channels, stride, affine)
    module, c_out = _module(op.unit(stride, search), channels, channels, affine, op.name)
    if c_out != channels:  # the checker refuses such ops; a module must never be built wrong
        raise OpBuildError(f"op '{op.name}' maps {channels} channels to {c_out}")
    return module


def _plugin(op: OpDef, channels: int, stride: int, affine: bool) -> nn.Module:
    eps = [ep for ep in metadata.entry_points(group=GROUP) if ep.name == op.name and ep.value == op.plugin]
    if not eps:
        raise OpBuildError(f"op '{op.name}' came from the plugin entry point {op.plugin!r}, which is no longer "
                           "installed; install the package that provides it")
    try:
        factory: Any = eps[0].load()
        module = factory(channels, stride, affine)
    except Exception as err:  # noqa: BLE001 - a plugin's own failure, reported as such
        raise OpBuildError(f"op '{op.name}': the plugin's factory {op.plugin} failed: {type(err).__name__}: "
                           f"{str(err)[:300]}") from None
    if not isinstance(module, nn.Module):
        raise OpBuildError(f"op '{op.name}': the plugin's factory {op.plugin} returned a {type(module).__name__}, "
                           "not a torch.nn.Module")
    return module


def elementwise(op: OpDef) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function of an elementwise op (a recurrent node's activation)."""
    if not op.elementwise:
        raise OpBuildError(f"op '{op.name}' is not an elementwise activation")
    fns = [_ACTIVATION_FUNCTIONS[p.layer.prim] for p in leaves(op.unit(1)) if p.layer.prim != "zero"]
    if len(fns) == 1:
        return fns[0]

    def composed(x: torch.Tensor) -> torch.Tensor:
        for fn in fns:
            x = fn(x)
        return x

    return composed


def flat_layers(module: nn.Module) -> list[nn.Module]:
    """The layer modules of a built op in order (nested sequences flattened), matching
    ``OpFacts.layers``."""
    if isinstance(module, OpSequential):
        return [leaf for part in module for leaf in flat_layers(part)]
    return [module]


__all__ = ["Group", "OpBuildError", "OpSequential", "build_op", "elementwise", "flat_layers"]
