"""The table of operation names: what each op is, without importing torch, so checking
a spec stays fast. ``genolang.ops`` registers a torch module for every name here; a
test keeps the two in step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Domain = Literal["cnn", "rnn", "any"]


@dataclass(frozen=True)
class OpName:
    """An op's static facts: its domain, whether it has weights, and its family."""

    name: str
    domain: Domain
    family: str  # zero | identity | pool | sep_conv | dil_conv | conv | activation
    kernel: int | None = None
    parametric: bool = False
    summary: str = ""

    @property
    def is_zero(self) -> bool:
        return self.family == "zero"


def _table(*ops: OpName) -> dict[str, OpName]:
    return {op.name: op for op in ops}


OPS: dict[str, OpName] = _table(
    OpName("none", "any", "zero", summary="no connection: zeros (of the strided shape)"),
    OpName("skip_connect", "cnn", "identity", summary="identity; factorized reduce at stride 2"),
    OpName("max_pool_3x3", "cnn", "pool", 3, summary="3x3 max pool, padding 1"),
    OpName("avg_pool_3x3", "cnn", "pool", 3, summary="3x3 average pool, padding 1, count excludes padding"),
    OpName("sep_conv_3x3", "cnn", "sep_conv", 3, True, "2 x [ReLU, depthwise 3x3, 1x1, BN]"),
    OpName("sep_conv_5x5", "cnn", "sep_conv", 5, True, "2 x [ReLU, depthwise 5x5, 1x1, BN]"),
    OpName("sep_conv_7x7", "cnn", "sep_conv", 7, True, "2 x [ReLU, depthwise 7x7, 1x1, BN]"),
    OpName("dil_conv_3x3", "cnn", "dil_conv", 3, True, "ReLU, depthwise 3x3 dilation 2, 1x1, BN"),
    OpName("dil_conv_5x5", "cnn", "dil_conv", 5, True, "ReLU, depthwise 5x5 dilation 2, 1x1, BN"),
    OpName("conv_7x1_1x7", "cnn", "conv", 7, True, "ReLU, 1x7 conv, 7x1 conv, BN"),
    OpName("nor_conv_1x1", "cnn", "conv", 1, True, "ReLU, 1x1 conv, BN (NAS-Bench-201)"),
    OpName("nor_conv_3x3", "cnn", "conv", 3, True, "ReLU, 3x3 conv, BN (NAS-Bench-201)"),
    OpName("tanh", "rnn", "activation", summary="recurrent node with tanh"),
    OpName("relu", "rnn", "activation", summary="recurrent node with ReLU"),
    OpName("sigmoid", "rnn", "activation", summary="recurrent node with sigmoid"),
    OpName("identity", "rnn", "activation", summary="recurrent node with the identity"),
)


def op_names(domain: Domain | None = None) -> list[str]:
    """Names of the ops usable in ``domain`` (all of them when None)."""
    if domain is None:
        return list(OPS)
    return [n for n, op in OPS.items() if op.domain in (domain, "any")]


def starts_with_relu(name: str, stride: int = 1) -> bool:
    """Whether op ``name`` at ``stride`` begins with a ReLU of its input (ReLU-Conv-BN ops,
    and ``skip_connect`` at stride 2, a factorized reduce): such ops may read a ReLU
    computed once for several of them (``relu(relu(x)) == relu(x)``)."""
    op = OPS[name]
    return op.family in ("sep_conv", "dil_conv", "conv") or (op.family == "identity" and stride != 1)


def ends_with_bn(name: str, stride: int = 1, search: bool = True) -> bool:
    """Whether op ``name`` ends with a batch norm (ReLU-Conv-BN ops, a factorized reduce,
    and in a supernet the pools' BN): its alpha weight can scale that BN."""
    op = OPS[name]
    return (op.family in ("sep_conv", "dil_conv", "conv") or (op.family == "identity" and stride != 1)
            or (search and op.family == "pool"))
