"""The autograd functions behind the supernet's grouped calls and source sums
(``genolang.ops.grouped``): gradients equal to autograd's (``gradcheck`` in float64),
twice differentiable (``gradgradcheck``: second-order search with an exact Hessian), in
NCHW and channels-last; and the cell-wide running-statistics updates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genolang.ops.grouped import StatUpdates, count_batches, lerp_stats, pointwise_weight, weighted_mix

LAYOUTS = [torch.contiguous_format, torch.channels_last]


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "channels_last"])
def test_weighted_mix_is_the_weighted_sum_and_its_gradients_are_autograds(layout: torch.memory_format) -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ts = [torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64).contiguous(memory_format=layout)
          .requires_grad_() for _ in range(3)]
    out = weighted_mix(w, ts)
    assert out.shape == (4, 2, 5, 3, 4)
    want = torch.stack([torch.stack([w[e, j] * ts[j] for j in range(3)]).sum(0) for e in range(4)])
    assert torch.allclose(out, want, rtol=0, atol=1e-12)
    if layout == torch.channels_last:  # each node's slice keeps the memory format
        assert out[1].is_contiguous(memory_format=torch.channels_last)
    assert torch.autograd.gradcheck(lambda w, *t: weighted_mix(w, t), (w, *ts))
    assert torch.autograd.gradgradcheck(lambda w, *t: weighted_mix(w, t), (w, *ts))


def test_weighted_mix_gives_only_the_gradients_asked_for() -> None:
    w = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    ts = [torch.randn(1, 2, 2, 2, dtype=torch.float64) for _ in range(2)]
    (gw,) = torch.autograd.grad(weighted_mix(w, ts).sum(), [w])
    assert torch.allclose(gw, torch.stack([t.sum() for t in ts]).expand(2, 2))


@pytest.mark.parametrize("interleaved", [0, 3], ids=["blocks", "interleaved"])
def test_block_diagonal_pointwise_weights_and_their_gradients(interleaved: int) -> None:
    g = torch.Generator().manual_seed(1)
    weights = [torch.randn(2, 4, 1, 1, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    mode, dense = pointwise_weight(weights, interleaved)
    assert mode == "dense" and dense.shape == (6, 12, 1, 1)
    m = dense.view(3, 2, 4, 3) if interleaved else dense.view(3, 2, 3, 4)  # (e, o, c, e') or (e, o, e', c)
    for e in range(3):
        for f in range(3):
            block = m[e, :, :, f] if interleaved else m[e, :, f, :]
            assert torch.equal(block, weights[e][:, :, 0, 0] if e == f else torch.zeros(2, 4, dtype=torch.float64))

    def build(*ws: torch.Tensor) -> torch.Tensor:
        return pointwise_weight(list(ws), interleaved)[1]

    assert torch.autograd.gradcheck(build, tuple(weights))
    assert torch.autograd.gradgradcheck(build, tuple(weights))


def _batches(bn: nn.BatchNorm2d) -> int:
    assert bn.num_batches_tracked is not None
    return int(bn.num_batches_tracked)


def _mean(bn: nn.BatchNorm2d) -> torch.Tensor:
    assert bn.running_mean is not None
    return bn.running_mean


def test_stat_updates_happen_at_the_end_and_not_after_an_error() -> None:
    bns = [nn.BatchNorm2d(2) for _ in range(3)]
    mean = torch.ones(2)
    with StatUpdates():
        count_batches(bns)
        lerp_stats([_mean(bn) for bn in bns], [mean] * 3, 0.5)
        assert all(_batches(bn) == 0 for bn in bns)  # not yet
    assert all(_batches(bn) == 1 for bn in bns)
    assert all(torch.equal(_mean(bn), torch.full((2,), 0.5)) for bn in bns)
    with pytest.raises(RuntimeError), StatUpdates():
        count_batches(bns)
        raise RuntimeError("the forward failed")
    assert all(_batches(bn) == 1 for bn in bns)
    assert not StatUpdates.active
    count_batches(bns)  # outside: at once
    assert all(_batches(bn) == 2 for bn in bns)
