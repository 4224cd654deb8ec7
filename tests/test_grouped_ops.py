"""The autograd functions behind the supernet's grouped calls and source sums
(``genolang.ops.grouped``): gradients equal to autograd's (``gradcheck`` in float64),
twice differentiable (``gradgradcheck``: second-order search with an exact Hessian), in
NCHW and channels-last; and the cell-wide running-statistics updates."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genolang.ops.build import OpSequential
from genolang.ops.grouped import (
    ChannelRuns,
    GroupedDilConv,
    GroupedRuns,
    GroupedSepConv,
    KernelRuns,
    SharedWeights,
    StatUpdates,
    _phase_split,
    _stats,
    block_sum,
    count_batches,
    from_phases,
    grouped_batch_norm,
    grouped_executor,
    joined,
    lerp_stats,
    lerp_variance,
    link_bn_stats,
    pointwise_weight,
    tiled_depthwise,
    to_phases,
    weighted_mix,
)

LAYOUTS = [torch.contiguous_format, torch.channels_last]
# merged kernels in runs of one size (each its own call on the CPU: KernelRuns), with their scales
KERNELS = (3, 3, 5, 5, 3)
SCALES = [0.5, 2.0, 1.5, 0.7, 1.2]


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


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "channels_last"])
def test_block_sum_adds_each_tensors_blocks_and_its_gradients_are_autograds(layout: torch.memory_format) -> None:
    """Grouped outputs of 1 and 2 merged ops for E=3 nodes of C=2 channels: summed over
    their blocks, as (E, N, C, H, W)."""
    g = torch.Generator().manual_seed(2)
    E, C = 3, 2
    ts = [torch.randn(2, k * E * C, 3, 2, generator=g, dtype=torch.float64).contiguous(memory_format=layout)
          .requires_grad_() for k in (2, 1, 2)]
    out = block_sum(ts, E, C)
    assert out.shape == (E, 2, C, 3, 2)
    want = torch.stack([t.reshape(2, -1, E, C, 3, 2).sum(1) for t in ts]).sum(0).transpose(0, 1)
    assert torch.allclose(out, want, rtol=0, atol=1e-12)
    grads = torch.autograd.grad(out.unbind(0)[1].sum(), ts)
    for t, gt in zip(ts, grads):
        assert gt.shape == t.shape and gt.is_contiguous(memory_format=layout)
    assert torch.autograd.gradcheck(lambda *t: block_sum(t, E, C), tuple(ts))
    assert torch.autograd.gradgradcheck(lambda *t: block_sum(t, E, C), tuple(ts))


def _weight(block: nn.Sequential, i: int) -> torch.Tensor:
    w = block[i].weight
    assert isinstance(w, torch.Tensor)
    return w


def _dil_block(k: int, dilation: int, stride: int, C: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(C, C, k, stride, dilation * (k - 1) // 2, dilation, groups=C, bias=False),
                         nn.Conv2d(C, C, 1, bias=False), nn.BatchNorm2d(C, affine=False))


def _assert_computes_each_member(out: torch.Tensor, members: list[nn.Sequential], x: torch.Tensor) -> None:
    """``out`` (a grouped call's joined output on x) is each member run on x on its own,
    concatenated, and so are its gradients for x and for the members' parameters."""
    want = torch.cat([m(x) for m in members], 1)
    assert torch.allclose(out, want, rtol=0, atol=1e-10)
    params = [p for m in members for p in m.parameters()]
    got = torch.autograd.grad((out * out.detach().cos()).sum(), [x, *params])
    expected = torch.autograd.grad((want * want.detach().cos()).sum(), [x, *params])
    for a, b in zip(got, expected):
        assert torch.allclose(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("recompute", [False, True], ids=["plain", "recompute"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("cpu_kernels", [False, True], ids=["padded", "by-kernel"])
def test_a_grouped_call_of_several_kernel_sizes_computes_each_edge(stride: int, recompute: bool,
                                                                   cpu_kernels: bool) -> None:
    """Blocks of 5x5, 3x3 and 5x5 kernels (dilation 2; two blocks each, the second
    unstrided) as one grouped call: the 3x3 kernels zero-padded to 5x5 (on the CPU,
    without the CPU kernels) or one call per kernel size (``KernelRuns``), the same
    outputs, input gradient and weight gradients as each block run on its own."""
    torch.manual_seed(0)
    members = [nn.Sequential(_dil_block(k, 2, stride), _dil_block(k, 2, 1)).double() for k in (5, 3, 5)]
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    run = grouped_executor(members, recompute, cpu_kernels)
    assert isinstance(run, KernelRuns) == cpu_kernels
    out = joined(run(x, True, None))
    _assert_computes_each_member(out, members, x)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "channels_last"])
@pytest.mark.parametrize("recompute", [False, True], ids=["plain", "recompute"])
@pytest.mark.parametrize(("dilation", "stride", "size"), [(1, 1, 8), (1, 2, 8), (2, 1, 8), (3, 1, 12), (2, 1, 7),
                                                          (2, 2, 8), (2, 1, 4), (2, 1, 2)])
def test_the_cpu_kernels_compute_what_the_gpu_kernels_do(layout: torch.memory_format, recompute: bool,
                                                         dilation: int, stride: int, size: int) -> None:
    """``cpu_kernels``: merged kernels as one call per kernel size (``KernelRuns``),
    tiled shared-input depthwise convs, dilated convs on their input's phases (dilation
    2 and 3; not on a 7x7 input, which 2 does not divide, nor on 4x4 and 2x2, whose
    phases would be too small): the same outputs, gradients and running statistics as
    without them, in the same memory format, and as each block run on its own."""
    outs, grads, stats = [], [], []
    for cpu_kernels in (True, False):
        torch.manual_seed(0)
        members = [nn.Sequential(_dil_block(k, dilation, stride, C=4), _dil_block(k, dilation, 1, C=4)).double()
                   for k in KERNELS]
        members = [m.to(memory_format=layout) for m in members]
        x = torch.randn(3, 4, size, size, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
        run = grouped_executor(members, recompute, cpu_kernels)
        assert isinstance(run, (KernelRuns, GroupedSepConv)) and isinstance(run, KernelRuns) == cpu_kernels
        for bns in run.batch_norms():  # as the supernet lays them out: moved in place, by runs on the CPU
            link_bn_stats(bns)
        out = joined(run(x, True, torch.tensor(SCALES, dtype=torch.float64)))
        params = [p for m in members for p in m.parameters()]
        grads.append(torch.autograd.grad((out * out.detach().cos()).sum(), [x, *params]))
        outs.append(out)
        stats.append([t.clone() for m in members for t in m.buffers()])
        scale = torch.tensor(SCALES, dtype=torch.float64).repeat_interleave(4).view(1, -1, 1, 1)
        torch.manual_seed(0)
        plain = [nn.Sequential(_dil_block(k, dilation, stride, C=4), _dil_block(k, dilation, 1, C=4)).double()
                 for k in KERNELS]
        assert torch.allclose(out, torch.cat([m(x) for m in plain], 1) * scale, rtol=0, atol=1e-10)
    assert torch.allclose(outs[0], outs[1], rtol=0, atol=1e-10)
    assert outs[0].is_contiguous(memory_format=layout)
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=0, atol=1e-10)
    for a, b in zip(*stats):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_a_run_of_linked_statistics_moves_in_place() -> None:
    """The running statistics of a range of linked batch norms (a run of a merged call,
    ``KernelRuns``) are a view of the linked tensor: moved in place, not copied."""
    bns = [nn.BatchNorm2d(3, affine=False) for _ in range(4)]
    link_bn_stats(bns)
    means = [_stat(bn, "running_mean") for bn in bns]
    mean, var, copied = _stats(bns[1:3])
    assert not copied and mean.data_ptr() == means[1].data_ptr() and mean.shape == (6,)
    assert var.data_ptr() == _stat(bns[1], "running_var").data_ptr() and var.shape == (6,)
    x = torch.randn(2, 6, 4, 4)
    grouped_batch_norm(x, bns[1:3])
    for m, part in zip(means[1:3], x.split(3, 1)):
        assert torch.allclose(m, 0.1 * part.mean((0, 2, 3)), atol=1e-6)
    assert torch.equal(means[0], torch.zeros(3)) and torch.equal(means[3], torch.zeros(3))
    assert _stats(bns[1:2] + bns[3:])[2]  # not consecutive: copied


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "channels_last"])
def test_the_cpu_kernels_are_twice_differentiable(layout: torch.memory_format) -> None:
    """A tiled depthwise conv and a dilated block on phases under ``gradcheck`` and
    ``gradgradcheck`` (second-order search with an exact Hessian)."""
    torch.manual_seed(0)
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    w = torch.randn(6, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    for stride in (1, 2):
        def tiled(x: torch.Tensor, w: torch.Tensor, stride: int = stride) -> torch.Tensor:
            return tiled_depthwise(x, w, 3, stride, 1, 1)

        want = torch.cat([F.conv2d(x, w[e * 2:(e + 1) * 2], None, stride, 1, 1, 2) for e in range(3)], 1)
        assert torch.allclose(tiled(x, w), want, rtol=0, atol=1e-12)
        assert torch.autograd.gradcheck(tiled, (x, w))
        assert torch.autograd.gradgradcheck(tiled, (x, w))
    members = [_dil_block(k, 2, 1, C=2).double() for k in (3, 5)]
    run = grouped_executor(members, True)
    assert torch.autograd.gradgradcheck(lambda x: joined(run(x, True, None)), (x,))


def test_phases_are_a_layout_of_the_input() -> None:
    for layout in LAYOUTS:
        x = torch.randn(2, 3, 6, 9).contiguous(memory_format=layout)
        p = to_phases(x, 3)
        assert p.shape == (18, 3, 2, 3) and p.is_contiguous(memory_format=layout)
        assert torch.equal(p[(1 * 3 + 2) * 2 + 1], x[1, :, 1::3, 2::3])
        assert torch.equal(from_phases(p, 3, layout == torch.channels_last), x)
        assert from_phases(p, 3, layout == torch.channels_last).is_contiguous(memory_format=layout)
    assert _phase_split(torch.randn(2, 3, 6, 9), 3, 1, 3, 3) == 1  # 2-pixel phases: too small
    assert _phase_split(torch.randn(1, 2, 12, 15), 3, 1, 3, 3) == 3
    assert _phase_split(torch.randn(1, 2, 10, 16), 7, 1, 6, 2) == 1  # phases narrower than k-1
    assert _phase_split(torch.randn(1, 2, 12, 16), 3, 1, 2, 2) == 2


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")  # torch's forward_ad itself
def test_the_tiled_conv_has_forward_mode_gradients() -> None:
    """Forward-mode AD (``torch.autograd.forward_ad``) through a grouped call that tiles
    its depthwise conv (without recompute): the same tangents as without the CPU kernels."""
    import torch.autograd.forward_ad as fa

    torch.manual_seed(0)
    x, t = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.randn(2, 3, 8, 8, dtype=torch.float64)
    got = []
    for cpu_kernels in (True, False):
        torch.manual_seed(1)
        run = grouped_executor([_dil_block(k, 1, 1).double() for k in (3, 5)], False, cpu_kernels)
        with fa.dual_level():
            got.append(fa.unpack_dual(joined(run(fa.make_dual(x, t), True, None))))
    assert torch.allclose(got[0].primal, got[1].primal, rtol=0, atol=1e-12)
    assert got[0].tangent is not None and got[1].tangent is not None
    assert torch.allclose(got[0].tangent, got[1].tangent, rtol=0, atol=1e-12)


def test_grouped_runs_join_the_calls_of_each_run() -> None:
    """Members that no one executor takes (a conv stack next to a separable conv):
    one grouped call per run of copies, outputs joined along channels, per-channel BN
    scales split between them."""
    torch.manual_seed(0)
    stack = OpSequential(nn.ReLU(), nn.Conv2d(3, 3, 3, 1, 1, bias=False), nn.BatchNorm2d(3, affine=False))
    members = [stack, _dil_block(3, 1, 1), _dil_block(3, 1, 1)]
    run = grouped_executor(members)
    assert isinstance(run, GroupedRuns) and run.sizes == [1, 2]
    x = torch.randn(2, 3, 6, 6)
    scale = torch.rand(9) + 0.5
    out = joined(run(x, True, scale))
    want = torch.cat([m(x) for m in members], 1) * scale.view(1, -1, 1, 1)
    assert torch.allclose(out, want, atol=1e-5)
    assert len(run.batch_norms()) == 2


def _stat(bn: nn.BatchNorm2d, name: str) -> torch.Tensor:
    t = getattr(bn, name)
    assert isinstance(t, torch.Tensor)
    return t


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
    count_batches(bns)  # outside (none is left open): at once
    assert all(_batches(bn) == 2 for bn in bns)


def test_running_variances_from_the_batch_invstd() -> None:
    """The shared pools' running variances: the unbiased batch variance, from the BN's
    invstd, moved by the momentum, for every pool of a cell at its end."""
    x = torch.randn(4, 3, 5, 5)
    _, _, invstd = torch.native_batch_norm(x, None, None, None, None, True, 0.0, 1e-5)
    targets = [torch.ones(3), torch.full((3,), 2.0)]
    with StatUpdates():
        lerp_variance(targets, invstd, 1e-5, 100, 0.1)
        assert torch.equal(targets[0], torch.ones(3))  # not yet
    var = x.var(dim=(0, 2, 3), unbiased=True)
    for start, t in zip((1.0, 2.0), targets):
        assert torch.allclose(t, start + 0.1 * (var - start), atol=1e-5)


@pytest.mark.parametrize(("kernels", "cpu_kernels", "key"), [((3, 5, 3), False, "first"), ((3, 3, 3), True, "blocks")],
                         ids=["padded", "tiled"])
def test_a_grouped_call_derives_its_weights_once_while_they_are_unchanged(
        kernels: tuple[int, ...], cpu_kernels: bool, key: str) -> None:
    """``SharedWeights``: inside the scope a second forward at the same weights reuses
    the stacked (padded, or tiled on the CPU) weights (and both backwards give each
    forward's gradients); an in-place update, a change of ``requires_grad`` or a forward
    without gradients makes or keeps none stale; outside a scope, and after it, nothing
    is kept (a copy of the executor's modules is a plain deep copy)."""
    import copy

    torch.manual_seed(0)
    members = [_dil_block(k, 1, 1).double() for k in kernels]
    run = grouped_executor(members, recompute=True, cpu_kernels=cpu_kernels)
    assert isinstance(run, GroupedDilConv)
    params = [_weight(m, 1) for m in members] + [_weight(m, 2) for m in members]

    def plain(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(x) for m in members], 1)

    x1, x2 = (torch.randn(2, 3, 6, 6, dtype=torch.float64) for _ in range(2))
    run(x1, True, None)
    assert not run.cache.entries  # no scope: derived on every forward
    with SharedWeights():
        _check_the_cache(run, members, params, plain, x1, x2, key)
    assert not run.cache.entries
    with SharedWeights():
        with SharedWeights():
            run(x1, True, None)
        assert run.cache.entries  # kept until the outermost scope ends
    assert not run.cache.entries
    copy.deepcopy(members)
    with SharedWeights():
        run(x1, True, None)
    with torch.no_grad():  # no version bump (as a fused optimizer step makes none): nothing is kept to go stale
        _weight(members[2], 1).data.mul_(2.0)
    with SharedWeights():
        assert torch.allclose(run(x1, True, None), plain(x1), rtol=0, atol=1e-10)


def _check_the_cache(run: GroupedDilConv, members: list[nn.Sequential], params: list[torch.Tensor],
                     plain: Callable[[torch.Tensor], torch.Tensor], x1: torch.Tensor, x2: torch.Tensor,
                     key: str) -> None:
    out1 = run(x1, True, None)
    derived = run.cache.entries[key][2]
    out2 = run(x2, True, None)
    assert run.cache.entries[key][2] is derived  # made once, for both forwards
    for x, out in ((x1, out1), (x2, out2)):
        grads = torch.autograd.grad(out.square().sum(), params)
        expected = torch.autograd.grad(plain(x).square().sum(), params)
        for a, b in zip(grads, expected):
            assert torch.allclose(a, b, rtol=0, atol=1e-10)
    with torch.no_grad():
        _weight(members[1], 1).add_(0.5)  # as an optimizer step does
        run(x1, True, None)  # no gradients: nothing derived is kept
        assert run.cache.entries[key][2] is derived
    assert torch.allclose(run(x1, True, None), plain(x1), rtol=0, atol=1e-10)
    assert run.cache.entries[key][2] is not derived
    frozen = _weight(members[0], 2)
    frozen.requires_grad_(False)
    run(x1, True, None)  # derived without a graph to the frozen weight
    frozen.requires_grad_(True)
    (got,) = torch.autograd.grad(run(x1, True, None).square().sum(), [frozen])
    (want,) = torch.autograd.grad(plain(x1).square().sum(), [frozen])
    assert torch.allclose(got, want, rtol=0, atol=1e-10)


def test_stat_updates_belong_to_their_thread() -> None:
    """A cell's deferred statistics updates go to the ``StatUpdates`` of the thread that
    runs it, not to one another thread opened since (whose error drops its own)."""
    bn = nn.BatchNorm2d(2)
    started, release = threading.Event(), threading.Event()

    def other() -> None:
        try:
            with StatUpdates():
                started.set()
                release.wait(10)
                raise RuntimeError("this thread's forward fails")
        except RuntimeError:
            pass

    thread = threading.Thread(target=other)
    with StatUpdates():
        thread.start()
        started.wait(10)
        count_batches([bn])
        release.set()
        thread.join()
    assert _batches(bn) == 1


def test_channel_runs_split_only_within_each_run() -> None:
    """``ChannelRuns.split``: the joined output's blocks when the size divides every run;
    otherwise an error (a block across two runs would need a copy)."""
    runs = ChannelRuns((torch.randn(1, 6, 2, 2), torch.randn(1, 4, 2, 2)))
    joined_out = torch.cat(runs.parts, 1)
    assert all(torch.equal(a, b) for a, b in zip(runs.split(2), joined_out.split(2, 1)))
    with pytest.raises(ValueError, match="within each run"):
        runs.split(4)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "channels_last"])
def test_a_recomputing_block_on_phases_keeps_its_input_not_a_phase_copy(layout: torch.memory_format) -> None:
    """A dilated block run on its input's phases (``_phase_split``) with ``recompute``
    keeps for its backward the input itself and the BN's output on the phases, no phase
    copy of the input (the saved tensors counted with ``saved_tensors_hooks``), and its
    gradients are autograd's."""
    torch.manual_seed(0)
    members = [_dil_block(3, 2, 1, C=4).double().to(memory_format=layout) for _ in range(2)]
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    assert _phase_split(x, 3, 1, 2, 2) == 2
    run = grouped_executor(members, True, True)
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = joined(run(x, True, None))
    big = [t for t in saved if t.numel() >= x.numel()]
    inputs = [t for t in big if t.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()]
    phased = [t for t in big if t.shape[0] == 4 * x.shape[0]]
    assert len(inputs) == 1 and len(phased) == 1 and len(big) == 2  # x, and the BN's output (E*C channels)
    assert phased[0].shape == (8, 8, 4, 4)
    assert out.is_contiguous(memory_format=layout)
    _assert_computes_each_member(out, members, x)
