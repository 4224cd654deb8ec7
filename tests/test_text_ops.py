"""Ops declared in text (specs/ops/) build the modules the Python classes built before:
the same parameter names and counts and bit-identical outputs for the same weights, in
fixed networks and supernets, at both strides, in training and eval mode, with and
without the fused forward the passes use."""

from __future__ import annotations

from typing import cast

import pytest
import torch
from torch import nn

from _reference_ops import reference_op, reference_search_op
from genolang.nets.supernet import build_search_op
from genolang.ops.build import Fusable, build_op
from genolang.spec.lookup import load_named
from genolang.spec.ops import OpDef

pytestmark = pytest.mark.usefixtures("one_thread")

SHIPPED_CNN = ("none", "skip_connect", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7",
               "dil_conv_3x3", "dil_conv_5x5", "conv_7x1_1x7", "nor_conv_1x1", "nor_conv_3x3")


def shipped_ops() -> dict[str, OpDef]:
    out: dict[str, OpDef] = {}
    for space in ("darts_cnn", "nasnet", "amoebanet", "nb201", "darts_rnn"):
        for op in load_named("space", space).op_defs:
            out[op.name] = op
    return out


OPS = shipped_ops()


def randomize(module: nn.Module, seed: int) -> None:
    """Random weights and running statistics (BN weights too, so they matter)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.dtype.is_floating_point:
                t.copy_(torch.rand(t.shape, generator=g) + (0.5 if "var" in name else -0.5))


def same(new: nn.Module, old: nn.Module, stride: int, fused: bool) -> None:
    assert list(new.state_dict()) == list(old.state_dict())  # the same names, in the same order
    randomize(old, 1)
    new.load_state_dict(old.state_dict())
    for train in (True, False):
        new.train(train)
        old.train(train)
        x = torch.randn(4, 8, 8, 8, generator=torch.Generator().manual_seed(2))
        expected = old(x)
        assert torch.equal(new(x), expected)
        if fused and hasattr(old, "forward_fused"):
            scale = torch.tensor(0.3)
            new_f, old_f = cast(Fusable, new), cast(Fusable, old)  # old has forward_fused; new is built like it
            assert torch.equal(new_f.forward_fused(x, True, scale), old_f.forward_fused(x, True, scale))
            if stride in OPS_RELU_FIRST.get(type(old).__name__, (1, 2)):
                r = torch.relu(x)
                assert torch.equal(new_f.forward_fused(r, False, scale), old_f.forward_fused(r, False, scale))
        assert list(new.state_dict()) == list(old.state_dict())
        for key, value in old.state_dict().items():  # running statistics moved alike
            assert torch.equal(new.state_dict()[key], value), key


OPS_RELU_FIRST = {"PoolBN": ()}


@pytest.mark.parametrize("name", SHIPPED_CNN)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("affine", [True, False])
def test_fixed_network_ops_are_the_old_modules(name: str, stride: int, affine: bool) -> None:
    same(build_op(OPS[name], 8, stride, affine), reference_op(name, 8, stride, affine), stride, fused=True)


@pytest.mark.parametrize("name", SHIPPED_CNN)
@pytest.mark.parametrize("stride", [1, 2])
def test_supernet_ops_are_the_old_modules(name: str, stride: int) -> None:
    same(build_search_op(OPS[name], 8, stride), reference_search_op(name, 8, stride), stride, fused=True)


@pytest.mark.parametrize("name", ["tanh", "relu", "sigmoid", "identity"])
def test_recurrent_activations_are_the_old_functions(name: str) -> None:
    from genolang.ops.build import elementwise

    old = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda x: x}[name]
    x = torch.randn(5, 7)
    assert torch.equal(elementwise(OPS[name])(x), old(x))


def test_parameter_counts_are_the_old_ones() -> None:
    for name in SHIPPED_CNN:
        for stride in (1, 2):
            new = sum(p.numel() for p in build_op(OPS[name], 16, stride, True).parameters())
            old = sum(p.numel() for p in reference_op(name, 16, stride, True).parameters())
            assert new == old, (name, stride)
