"""The table of operations: every fact about an op is declared here once, without
importing torch, so checking a spec stays fast. ``genolang.ops`` registers a torch
module for every CNN name here, and the passes read the facts (does it start with a
ReLU, end with a BN, have parameters); ``tests/test_op_facts.py`` builds every op and
checks each fact against the module's structure."""

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
    relu_first: tuple[int, ...] = ()  # the strides at which the op begins with a ReLU of its input
    bn_last: tuple[int, ...] = ()  # the strides at which it ends with a batch norm
    search_bn: bool = False  # in a supernet, followed by a BN without affine parameters (pools)
    weights_at: tuple[int, ...] | None = None  # the strides at which it has weights (None: all if parametric)

    def has_weights(self, stride: int = 1) -> bool:
        """Whether the op has learnable weights at ``stride`` (a factorized reduce does)."""
        return stride in self.weights_at if self.weights_at is not None else self.parametric

    @property
    def is_zero(self) -> bool:
        return self.family == "zero"


_ANY_STRIDE = (1, 2)


def _table(*ops: OpName) -> dict[str, OpName]:
    return {op.name: op for op in ops}


OPS: dict[str, OpName] = _table(
    OpName("none", "any", "zero", summary="no connection: zeros (of the strided shape)"),
    OpName("skip_connect", "cnn", "identity", parametric=True, summary="identity; factorized reduce at stride 2",
           relu_first=(2,), bn_last=(2,), weights_at=(2,)),
    OpName("max_pool_3x3", "cnn", "pool", 3, summary="3x3 max pool, padding 1", search_bn=True),
    OpName("avg_pool_3x3", "cnn", "pool", 3, summary="3x3 average pool, padding 1, count excludes padding",
           search_bn=True),
    *(OpName(f"sep_conv_{k}x{k}", "cnn", "sep_conv", k, True, f"2 x [ReLU, depthwise {k}x{k}, 1x1, BN]",
             _ANY_STRIDE, _ANY_STRIDE) for k in (3, 5, 7)),
    *(OpName(f"dil_conv_{k}x{k}", "cnn", "dil_conv", k, True, f"ReLU, depthwise {k}x{k} dilation 2, 1x1, BN",
             _ANY_STRIDE, _ANY_STRIDE) for k in (3, 5)),
    OpName("conv_7x1_1x7", "cnn", "conv", 7, True, "ReLU, 1x7 conv, 7x1 conv, BN", _ANY_STRIDE, _ANY_STRIDE),
    *(OpName(f"nor_conv_{k}x{k}", "cnn", "conv", k, True, f"ReLU, {k}x{k} conv, BN (NAS-Bench-201)",
             _ANY_STRIDE, _ANY_STRIDE) for k in (1, 3)),
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
    """Whether op ``name`` at ``stride`` begins with a ReLU of its input: such ops may
    read a ReLU computed once for several of them (``relu(relu(x)) == relu(x)``)."""
    return stride in OPS[name].relu_first


def ends_with_bn(name: str, stride: int = 1, search: bool = True) -> bool:
    """Whether op ``name`` at ``stride`` ends with a batch norm (in a supernet, also the
    BN that follows a pool): its alpha weight can scale that BN."""
    op = OPS[name]
    return stride in op.bn_last or (search and op.search_bn)
