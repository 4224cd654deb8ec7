"""``torch.compile`` over the grouped executors (``genolang bench ... --compile``
compiles each supernet cell): their caches (derived weights, constant masks and
statistics) keep no tensor of a traced graph, and compiled they compute what they
compute eagerly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genolang.ops import grouped
from genolang.ops.grouped import GroupedDilConv, SharedWeights, grouped_executor, joined


def _block(k: int, C: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(C, C, k, 1, (k - 1) // 2, groups=C, bias=False),
                         nn.Conv2d(C, C, 1, bias=False), nn.BatchNorm2d(C, affine=False))


@pytest.mark.parametrize("recompute", [False, True], ids=["plain", "recompute"])
def test_a_compiled_grouped_call_computes_the_eager_one(recompute: bool) -> None:
    """Five 3x3 blocks of 16 channels (wider than ``DENSE_POINTWISE_MAX``: a block-diagonal
    1x1 weight times a cached 0/1 mask) in a ``SharedWeights`` scope, as an iteration
    runs them, traced by dynamo: the same outputs and gradients as eagerly, and the
    module-level caches hold no tensor made while tracing."""
    torch.manual_seed(0)
    C, E = 16, 5
    assert E * C > grouped.DENSE_POINTWISE_MAX
    members = [_block(3, C) for _ in range(E)]
    params = [p for m in members for p in m.parameters()]
    run = grouped_executor(members, recompute, False)
    assert isinstance(run, GroupedDilConv)
    x = torch.randn(2, C, 6, 6, requires_grad=True)

    def forward(inp: torch.Tensor) -> torch.Tensor:
        return joined(run(inp, True, None))

    with SharedWeights():
        want = forward(x)
        want_grads = torch.autograd.grad(want.square().sum(), [x, *params])
    grouped._MASKS.clear()
    grouped._CONSTS.clear()
    torch._dynamo.reset()
    try:
        compiled = torch.compile(forward, backend="eager", fullgraph=False)
        with SharedWeights():
            got = compiled(x)
            got_grads = torch.autograd.grad(got.square().sum(), [x, *params])
            assert not run.cache.entries  # nothing cached from inside a traced graph
    finally:
        torch._dynamo.reset()
    assert not grouped._MASKS  # made by forwards only: all of them traced
    with SharedWeights():  # and eagerly after the traced calls, as before them
        assert torch.equal(forward(x), want)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
