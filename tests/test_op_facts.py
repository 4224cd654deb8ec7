"""What the passes read off an op's declaration (starts with a ReLU, ends with a BN, has
weights, random, groupable) agrees with the module built from it, for every shipped op
and for ops a user declares, at both strides, in fixed networks and supernets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genolang.nets.supernet import build_search_op
from genolang.ops.build import build_op, flat_layers
from genolang.ops.cnn import FactorizedReduce, Noise
from genolang.spec.check import load_text
from genolang.spec.lookup import load_named
from genolang.spec.ops import OpDef

USER_OPS = """genolang 1
op conv_bn_relu = conv(3, stride) > bn > relu
op relu_conv_3x3 = relu > conv(3, stride) > bn
op wide = relu > conv(1) > conv(3, stride, width=4) > gelu > conv(1) > bn
op grouped = relu > conv(3, stride, groups=2) > bn
op mbconv = relu > conv(1, width=3) > bn > silu > dwconv(5, stride) > bn > tanh > conv(1) > bn
op pool_relu = max_pool(3, stride) > relu
op noisy = noise(stride, std=0.5)
op avg_pad = avg_pool(5, stride, count_pad) > bn(search)
op strided_7 = relu > conv(1x7, stride_w) > conv(7x1, stride_h) > bn
op either = (relu > conv(3, stride) > bn) if strided else identity
"""


def all_ops() -> list[OpDef]:
    out: dict[str, OpDef] = {}
    for space in ("darts_cnn", "nasnet", "amoebanet", "nb201"):
        for op in load_named("space", space).op_defs:
            out[op.name] = op
    out.update(load_text(USER_OPS, "user.geno").ops)
    return list(out.values())


OPS = all_ops()


def first_is_relu(module: nn.Module) -> bool:
    first = flat_layers(module)[0]
    return isinstance(first, (nn.ReLU, FactorizedReduce))


def last_is_bn(module: nn.Module) -> bool:
    return isinstance(flat_layers(module)[-1], (nn.BatchNorm2d, FactorizedReduce))


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
@pytest.mark.parametrize("stride", [1, 2])
def test_facts_match_the_module(op: OpDef, stride: int) -> None:
    fixed = build_op(op, 8, stride, affine=True)
    search = build_search_op(op, 8, stride)
    facts = op.facts(stride)
    assert facts.has_weights == any(p.numel() for p in search.parameters()), "has weights in a supernet"
    assert op.facts(stride, False).has_weights == any(p.numel() for p in fixed.parameters()), "has weights"
    assert op.parametric == any(op.facts(s, False).has_weights for s in (1, 2))
    if not op.is_zero:
        assert op.starts_with_relu(stride) == first_is_relu(fixed), "starts with a ReLU"
        assert op.ends_with_bn(stride, search=False) == last_is_bn(fixed), "ends with a BN"
        assert op.ends_with_bn(stride, search=True) == last_is_bn(search), "ends with a BN in a supernet"
    assert facts.random == any(isinstance(m, Noise) for m in search.modules())
    assert len(facts.layers) == len(flat_layers(search)) or isinstance(flat_layers(search)[0], nn.Identity) or \
        facts.layers == ()
    x = torch.randn(2, 8, 8, 8)
    assert fixed(x).shape == (2, 8, 8 // stride, 8 // stride)  # keeps C channels, divides the map by the stride


def test_ops_that_differ_only_in_depthwise_kernels_share_a_kernel_free_key() -> None:
    by_name = {op.name: op for op in OPS}
    for stride in (1, 2):
        def key(name: str, stride: int = stride) -> object:
            return by_name[name].facts(stride).kernel_free

        assert key("sep_conv_3x3") == key("sep_conv_5x5") == key("sep_conv_7x7") is not None
        assert key("dil_conv_3x3") == key("dil_conv_5x5") is not None
        assert key("sep_conv_3x3") != key("dil_conv_3x3")  # two blocks against one; dilation 1 against 2
    for name in ("max_pool_3x3", "skip_connect", "none", "nor_conv_3x3", "mbconv", "conv_7x1_1x7"):
        assert by_name[name].facts(1).kernel_free is None, name


def test_groupable_and_shareable_follow_the_structure() -> None:
    by_name = {op.name: op for op in OPS}
    for name in ("sep_conv_3x3", "dil_conv_5x5", "nor_conv_3x3", "conv_7x1_1x7", "relu_conv_3x3", "wide", "mbconv",
                 "grouped", "strided_7", "conv_bn_relu"):
        assert by_name[name].facts(1).groupable, name
    for name in ("skip_connect", "max_pool_3x3", "none", "noisy", "pool_relu"):
        assert not by_name[name].facts(1).groupable, name
    assert by_name["either"].facts(2).groupable and not by_name["either"].facts(1).groupable
    for name in ("max_pool_3x3", "avg_pool_3x3", "pool_relu", "avg_pad"):
        assert by_name[name].facts(2).shareable, name
    for name in ("noisy", "sep_conv_3x3", "none", "skip_connect"):
        assert not by_name[name].facts(2).shareable, name
