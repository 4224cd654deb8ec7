"""Each op's facts are declared once (``genolang.spec.opnames``); this checks every one of
them against the torch module the registry builds, at both strides, in fixed networks
and supernets, and that the passes' executors cover the op families they group."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genolang.nets.supernet import build_search_op
from genolang.ops.grouped import GROUPED_OPS, SHARED_OPS
from genolang.ops.registry import CNN_OPS, RNN_ACTIVATIONS, build_cnn_op
from genolang.passes.group_convs import GROUPED_FAMILIES
from genolang.passes.share_param_free import SHARED_FAMILIES
from genolang.spec.opnames import OPS, ends_with_bn, op_names, starts_with_relu

CNN = op_names("cnn")


def leaves(module: nn.Module) -> list[nn.Module]:
    """The modules that compute, in the order a sequential op runs them."""
    children = list(module.children())
    if not children:
        return [module]
    if isinstance(module, nn.Sequential):
        return [leaf for child in children for leaf in leaves(child)]
    return [module]  # a module with its own forward (factorized reduce): judged as a whole


def first_is_relu(module: nn.Module) -> bool:
    first = leaves(module)[0]
    return isinstance(first, nn.ReLU) or isinstance(getattr(first, "relu", None), nn.ReLU)


def last_is_bn(module: nn.Module) -> bool:
    last = leaves(module)[-1]
    return isinstance(last, nn.BatchNorm2d) or isinstance(getattr(last, "bn", None), nn.BatchNorm2d)


def test_every_name_has_a_module_and_no_module_lacks_a_name() -> None:
    assert set(CNN_OPS) == {n for n, op in OPS.items() if op.domain in ("cnn", "any")}
    assert set(RNN_ACTIVATIONS) == {n for n, op in OPS.items() if op.domain == "rnn"}


@pytest.mark.parametrize("name", CNN)
@pytest.mark.parametrize("stride", [1, 2])
def test_facts_match_the_module(name: str, stride: int) -> None:
    fixed = build_cnn_op(name, 8, stride, affine=True)
    search = build_search_op(name, 8, stride)
    op = OPS[name]
    assert op.has_weights(stride) == any(p.numel() for p in fixed.parameters()), "has weights"
    assert op.has_weights(stride) == any(p.numel() for p in search.parameters()), "has weights in a supernet"
    assert op.parametric == any(OPS[name].has_weights(s) for s in (1, 2))
    if name != "none":
        assert starts_with_relu(name, stride) == first_is_relu(fixed), "starts with a ReLU"
        assert ends_with_bn(name, stride, search=False) == last_is_bn(fixed), "ends with a BN"
        assert ends_with_bn(name, stride, search=True) == last_is_bn(search), "ends with a BN in a supernet"
    x = torch.randn(2, 8, 8, 8)
    assert fixed(x).shape == (2, 8, 8 // stride, 8 // stride)  # keeps C channels, divides the map by the stride
    if op.kernel is not None and op.family != "pool":
        convs = [m for m in fixed.modules() if isinstance(m, nn.Conv2d)]
        assert max(max(m.kernel_size) for m in convs) == op.kernel, "kernel"


def test_the_executors_cover_the_families_the_passes_group() -> None:
    assert set(GROUPED_FAMILIES) <= set(GROUPED_OPS)
    assert set(SHARED_FAMILIES) <= set(SHARED_OPS)
    assert all(not op.has_weights(s) for op in OPS.values() if op.family in SHARED_FAMILIES for s in (1, 2))
