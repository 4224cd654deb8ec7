"""The optimizing passes over a supernet's cell IR (``genolang.passes``): each pass alone
and all together compute the unoptimized supernet's function (logits, weight and alpha
gradients, running statistics) within 1e-4 relative in float32; the pass manager names
the pass that breaks an invariant; the passes keep parameter names (checkpoints load
across builds)."""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _search_util import darts_cnn
from genolang.draw import cell_dot
from genolang.errors import UsageError
from genolang.ir.graph import CellIR, IRError
from genolang.ir.lower import lower_space
from genolang.nets.supernet import NO_OPT, Supernet, SupernetOptions, build_supernet
from genolang.ops import grouped
from genolang.passes import DEFAULT_PASSES, PASSES, PassError, parse_passes, register_pass, run_passes
from genolang.spec.checked import NetworkSpec, SpaceSpec

pytestmark = pytest.mark.usefixtures("one_thread")

# 4 cells of 4 channels on 16x16 images: normal (16x16), reduce, reduce, normal (4x4):
# strided and dilated convs, factorized reduces, groups of 1 to 4 edges
NET = NetworkSpec("passes_net", "cnn", "cifar", channels=4, layers=4, input_size=16)
RTOL = 1e-4  # of the largest magnitude in the tensor compared
# a running mean is 0.1 x a batch mean of O(1) values that nearly cancel: its float32
# rounding depends on the summation order (memory layout), ~1e-7 whatever its size
BUFFER_ATOL = 1e-6


def supernet(options: SupernetOptions, seed: int = 0, space: SpaceSpec | None = None) -> Supernet:
    """The supernet of ``space`` (DARTS's by default) on ``NET``, seeded."""
    torch.manual_seed(seed)
    model = build_supernet(space or darts_cnn(), NET, in_channels=3, input_size=16, classes=10, options=options)
    with torch.no_grad():  # alphas away from uniform, so every op's weight matters
        for alpha in model.arch_parameters():
            alpha.normal_(0.0, 0.7)
    return model


def text_space(text: str, name: str) -> SpaceSpec:
    """Space ``name`` of the spec ``text``."""
    from genolang.spec.check import load_text

    return load_text(text, f"{name}.geno").spaces[name]


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 3, 16, 16, generator=g), torch.randint(0, 10, (4,), generator=g)


def run_step(model: nn.Module) -> dict[str, torch.Tensor]:
    """Logits, the gradients of every parameter (weights and alphas) of the loss, and
    the running statistics after one training-mode forward; then eval-mode logits."""
    x, y = batch()
    model.train()
    logits = model(x)
    names = [n for n, _ in model.named_parameters()]
    grads = torch.autograd.grad(F.cross_entropy(logits, y), [p for _, p in model.named_parameters()])
    out = {"logits": logits.detach()}
    out.update({f"grad:{n}": g for n, g in zip(names, grads)})
    out.update({f"buffer:{n}": b.detach().clone() for n, b in model.state_dict().items() if "running" in n})
    model.eval()
    with torch.no_grad():
        out["eval_logits"] = model(x)
    return out


def assert_close(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    for name, want in expected.items():
        have = got[name]
        scale = float(want.abs().max())
        err = float((have.float() - want.float()).abs().max())
        floor = BUFFER_ATOL if name.startswith("buffer:") else 0.0
        assert err <= max(RTOL * scale, floor), f"{name}: max error {err:.3g} against max {scale:.3g}"


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    return run_step(supernet(NO_OPT))


CASES = [(name,) for name in DEFAULT_PASSES] + [
    ("group_convs", "recompute_convs"),
    ("share_relu", "group_convs", "recompute_convs"),
    ("share_relu", "group_convs", "scale_bn"),
    # source sums over grouped outputs that carry no BN scale (each weighted by its column)
    ("share_param_free", "group_convs", "sum_by_source"),
    # merged kernels reading the node itself (their own ReLU), and summed without a BN scale
    ("group_convs", "merge_kernels"),
    ("share_relu", "share_param_free", "group_convs", "merge_kernels", "recompute_convs", "sum_by_source"),
    DEFAULT_PASSES,
]


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("passes", CASES, ids=["+".join(c) for c in CASES])
def test_a_pass_computes_the_unoptimized_supernet(passes: tuple[str, ...], channels_last: bool,
                                                  reference: dict[str, torch.Tensor]) -> None:
    assert_close(run_step(supernet(SupernetOptions(passes, channels_last))), reference)


USER_SPACE = """genolang 1
op relu_conv_3x3 = relu > conv(3, stride) > bn
op conv_bn_relu = conv(3, stride) > bn > relu
op mbconv = relu > conv(1, width=3) > bn > silu > dwconv(5, stride) > bn > conv(1) > bn
op grouped = relu > conv(3, stride, groups=2) > bn
op pool_relu = max_pool(3, stride) > relu
op strided_7 = relu > conv(1x7, stride_w) > conv(7x1, stride_h) > bn
op either = (relu > dwconv(3, stride) > conv(1) > bn) if strided else identity
space user {
    ops = none, skip_connect, relu_conv_3x3, conv_bn_relu, mbconv, grouped, pool_relu, strided_7, either, sep_conv_3x3
    cell normal { nodes = 3 }
    cell reduce { nodes = 3; stride = 2 }
}
"""


def user_supernet(options: SupernetOptions, seed: int = 0) -> Supernet:
    return supernet(options, seed, text_space(USER_SPACE, "user"))


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_the_passes_serve_user_declared_ops(channels_last: bool) -> None:
    """A user's ops get the shared ReLU, the BN-scale fold, grouped convs (the general
    conv-stack executor) and shared pools from their structure, and the optimized
    supernet computes what the unoptimized one does."""
    torch.set_num_threads(1)
    expected = run_step(user_supernet(NO_OPT))
    model = user_supernet(SupernetOptions(DEFAULT_PASSES, channels_last))
    ir = model.optimized_irs["normal"]
    applied = {op for n in ir.order() if ir.role(n) == "apply"
               for op in ir.graph.nodes[n].get("ops", (ir.graph.nodes[n]["op"],))}
    assert {"relu_conv_3x3", "conv_bn_relu", "mbconv", "grouped", "strided_7", "pool_relu"} <= applied
    assert any(ir.role(n) == "relu" for n in ir.order())
    assert_close(run_step(model), expected)


EDGE_SPACE = """genolang 1
space edges {
    ops = none, max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5
    cell normal {
        nodes = 3
        edge c0 -> n2 = skip_connect, sep_conv_3x3
        edge c1 -> n2 = max_pool_3x3, sep_conv_3x3, dil_conv_5x5
        edge c1 -> n3 = none, avg_pool_3x3
        edge n2 -> n3 = none
        edge n2 -> n4 = sep_conv_5x5
        edge n3 -> n4 = sep_conv_3x3, sep_conv_5x5, skip_connect
    }
    cell reduce {
        nodes = 3
        stride = 2
        edge c0 -> n2 = skip_connect, max_pool_3x3
        edge c1 -> n2 = dil_conv_3x3
        edge c0 -> n3 = sep_conv_3x3, dil_conv_3x3, avg_pool_3x3
        edge n2 -> n4 = none, skip_connect
    }
}
"""


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_the_passes_serve_edges_with_their_own_ops(channels_last: bool) -> None:
    """Groups and shared pools of different sizes per node (an op on some edges of a
    node only), edges of one op or of 'none' alone, strided factorized reduces next to
    pools: the optimized supernet computes the unoptimized one, and the alphas of ops
    off an edge get no gradient in either."""
    space = text_space(EDGE_SPACE, "edges")

    def build(options: SupernetOptions) -> Supernet:
        return supernet(options, space=space)

    torch.set_num_threads(1)
    expected = run_step(build(NO_OPT))
    model = build(SupernetOptions(DEFAULT_PASSES, channels_last))
    lines = model.optimized_irs["normal"].dump().splitlines()
    # c1's sep_conv_3x3 is on n2's and n4's edges, not on n3's, its sep_conv_5x5 on one
    # edge (merged: one call); n2's one ReLU op keeps its own ReLU; the edge n2 -> n3 has
    # only 'none', which stays
    assert ("  sep_conv_3x3+sep_conv_5x5(relu(c1)) = sep_conv_3x3 x2 + sep_conv_5x5 x1 grouped of relu(c1)"
            in lines)
    assert "  sep_conv_5x5(n2) = sep_conv_5x5 x1 grouped of n2" in lines
    assert next(line for line in lines if line.startswith("  n3 = ")).endswith(" + mixed[1](n2)")
    got = run_step(model)
    assert_close(got, expected)
    for cell in space.cell_names:
        mask = model.alpha_mask(cell)
        assert mask is not None  # the cells have per-edge op sets
        off = torch.isneginf(mask)
        assert torch.equal(got[f"grad:alphas.{cell}"][off], torch.zeros(int(off.sum())))
        assert torch.equal(expected[f"grad:alphas.{cell}"][off], torch.zeros(int(off.sum())))


KERNEL_SPACE = """genolang 1
op flat_3 = relu > dwconv(3, stride) > conv(1) > bn > relu > dwconv(3) > conv(1) > bn
op flat_7 = relu > dwconv(7, stride) > conv(1) > bn > relu > dwconv(7) > conv(1) > bn
op dil3_3 = relu > dwconv(3, stride, dilation=3) > conv(1) > bn
op dil3_5 = relu > dwconv(5, stride, dilation=3) > conv(1) > bn
space kernels {
    ops = none, skip_connect, flat_3, dil3_5, flat_7, sep_conv_7x7, dil3_3, sep_conv_3x3
    cell normal { nodes = 3 }
    cell reduce { nodes = 3; stride = 2 }
}
"""


@pytest.mark.parametrize("cpu_kernels", [False, True], ids=["padded", "by-kernel"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_merged_kernels_compute_the_unoptimized_supernet(channels_last: bool, cpu_kernels: bool) -> None:
    """Ops that differ only in their depthwise kernel sizes run as one grouped call
    (``merge_kernels``), kernels zero-padded to the largest (on the CPU with its kernels:
    one call per kernel size, ``KernelRuns``): 3x3 and 7x7 separable convs, nested as
    blocks or written flat (the same layers; smallest kernels first); 3x3 and 5x5 convs
    of dilation 3 (strided in the reduce cell). The optimized supernet computes the
    unoptimized one."""
    space = text_space(KERNEL_SPACE, "kernels")

    def build(options: SupernetOptions) -> Supernet:
        return supernet(options, space=space)

    torch.set_num_threads(1)
    expected = run_step(build(NO_OPT))
    model = build(SupernetOptions(DEFAULT_PASSES, channels_last, cpu_kernels=cpu_kernels))
    for cell in ("normal", "reduce"):
        lines = model.optimized_irs[cell].dump().splitlines()
        stride = ", stride=2" if cell == "reduce" else ""
        seps = ("flat_3+sep_conv_3x3+flat_7+sep_conv_7x7(relu(c0)) = "
                "flat_3 x3 + sep_conv_3x3 x3 + flat_7 x3 + sep_conv_7x7 x3")
        for merged in (seps, "dil3_3+dil3_5(relu(c0)) = dil3_3 x3 + dil3_5 x3"):
            assert f"  {merged} grouped of relu(c0){stride}" in lines, merged
    assert_close(run_step(model), expected)


def test_grouped_1x1_convs_as_grouped_convolutions(monkeypatch: pytest.MonkeyPatch,
                                                   reference: dict[str, torch.Tensor]) -> None:
    """Blocks too wide for a dense matmul run as grouped convs (with a channel shuffle
    after a depthwise conv with multiplier E): force that path on the small net."""
    monkeypatch.setattr(grouped, "DENSE_POINTWISE_MAX", 0)
    for channels_last in (False, True):
        assert_close(run_step(supernet(SupernetOptions(DEFAULT_PASSES, channels_last))), reference)


def test_the_passes_rewrite_the_ir_as_documented() -> None:
    cells = lower_space(darts_cnn())
    ir = run_passes(cells["normal"], DEFAULT_PASSES)
    assert ir.passes == DEFAULT_PASSES
    lines = ir.dump().splitlines()
    assert ("passes: drop_none, share_relu, share_param_free, group_convs, merge_kernels, scale_bn, "
            "recompute_convs, sum_by_source") in lines[0]
    assert "  relu(c0) = relu of c0" in lines
    assert "  max_pool_3x3(c0) = max_pool_3x3 x4 once of c0" in lines
    # the two sep_convs (and the two dil_convs) differ only in their depthwise kernels: one call
    assert "  sep_conv_3x3+sep_conv_5x5(relu(c0)) = sep_conv_3x3 x4 + sep_conv_5x5 x4 grouped of relu(c0)" in lines
    # n4 feeds only n5: its ops form groups of one (merged in pairs), its pools applies of
    # one; only the identity (skip_connect) stays on the mixed edge
    assert "  dil_conv_3x3+dil_conv_5x5(relu(n4)) = dil_conv_3x3 x1 + dil_conv_5x5 x1 grouped of relu(n4)" in lines
    assert "  max_pool_3x3(n4) = max_pool_3x3 x1 once of n4" in lines
    n5 = next(line for line in lines if line.startswith("  n5 = "))
    assert "max_pool_3x3(n4)[0]" in n5 and "mixed[1](n4)" in n5 and "none" not in n5
    # every source feeding two or more nodes is summed once for all of them (its identity
    # shared too); n4 feeds only n5 and keeps its terms
    assert ("  sum(c0) = skip_connect(c0) + avg_pool_3x3(c0) + max_pool_3x3(c0) + "
            "dil_conv_3x3+dil_conv_5x5(relu(c0)) + sep_conv_3x3+sep_conv_5x5(relu(c0)) into n2, n3, n4, n5") in lines
    assert "  skip_connect(c0) = skip_connect x4 once of c0" in lines
    assert "  n3 = sum(c0)[1] + sum(c1)[1] + sum(n2)[0]" in lines
    assert n5.startswith("  n5 = sum(c0)[3] + sum(c1)[3] + sum(n2)[2] + sum(n3)[1] + ")
    assert not any(line.startswith("  sum(n4)") for line in lines)
    reduce = run_passes(cells["reduce"], DEFAULT_PASSES).dump().splitlines()
    assert ("  dil_conv_3x3+dil_conv_5x5(relu(c1)) = dil_conv_3x3 x4 + dil_conv_5x5 x4 grouped of relu(c1), stride=2"
            in reduce)
    # every (row, op) but 'none' is still computed, once
    terms = ir.terms()
    assert terms == {(r, op) for r, op in cells["normal"].terms() if op != "none"}
    assert "digraph" in cell_dot(ir) and "sep_conv_3x3+sep_conv_5x5" in cell_dot(ir)


def test_drop_none_keeps_an_edge_that_has_only_none() -> None:
    ir = lower_space(darts_cnn())["normal"]
    g = ir.graph.copy()
    key = next(iter(g["c0"]["n2"]))
    g["c0"]["n2"][key]["candidates"] = ("none",)
    out = run_passes(ir.with_graph(g, "test"), ("drop_none",))
    assert out.graph["c0"]["n2"][key]["candidates"] == ("none",)


# ---- the pass manager ----------------------------------------------------------------

@pytest.fixture
def broken_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register passes that break the IR in two ways, for one test."""
    monkeypatch.setattr("genolang.passes.manager.PASSES", dict(PASSES))

    @register_pass("relu_everything", "a bug: every op reads a shared ReLU, pools too")
    def relu_everything(ir: CellIR) -> nx.MultiDiGraph[str]:
        g = ir.graph.copy()
        g.add_node("relu(c0)", role="relu", origin="c0", order=0.5)
        g.add_edge("c0", "relu(c0)", role="feed")
        for _, v, k, d in list(g.out_edges("c0", keys=True, data=True)):
            if d.get("candidates"):
                g.remove_edge("c0", v, k)
                g.add_edge("relu(c0)", v, **d)
        return g

    @register_pass("lose_a_term", "a bug: forgets max_pool_3x3 on the first edge")
    def lose_a_term(ir: CellIR) -> nx.MultiDiGraph[str]:
        g = ir.graph.copy()
        key = next(iter(g["c0"]["n2"]))
        d = g["c0"]["n2"][key]
        d["candidates"] = tuple(op for op in d["candidates"] if op != "max_pool_3x3")
        return g


def test_a_pass_that_breaks_an_invariant_is_named(broken_pass: None) -> None:
    ir = lower_space(darts_cnn())["normal"]
    with pytest.raises(PassError) as info:
        run_passes(ir, ("drop_none", "relu_everything", "share_relu"))
    message = str(info.value)
    assert message.startswith("pass 'relu_everything' broke cell normal: ")
    assert "which does not start with a ReLU" in message
    assert info.value.pass_name == "relu_everything" and isinstance(info.value, IRError)


def test_a_pass_that_loses_a_term_is_named(broken_pass: None) -> None:
    ir = lower_space(darts_cnn())["normal"]
    with pytest.raises(PassError, match=r"pass 'lose_a_term' broke cell normal: the cell computes other terms "
                                        r"than before; lost row 0 max_pool_3x3"):
        run_passes(ir, ("share_relu", "lose_a_term"))


def test_lint_checks_the_roles_the_passes_add() -> None:
    ir = run_passes(lower_space(darts_cnn())["normal"], DEFAULT_PASSES)

    def broken(change: Callable[[nx.MultiDiGraph[str]], object]) -> str:
        g = ir.graph.copy()
        change(g)
        with pytest.raises(IRError) as info:
            ir.with_graph(g, "test").lint()
        return str(info.value)

    assert "shares one result of sep_conv_3x3, which has parameters" in broken(
        lambda g: g.nodes["sep_conv_3x3+sep_conv_5x5(relu(c0))"].update(shared=True, recompute=False))
    assert "has parts [0, 1, 2, 3, 4, 5, 6, 9]" in broken(
        lambda g: next(d for _, v, d in g.out_edges("sep_conv_3x3+sep_conv_5x5(relu(c0))", data=True)
                       if v == "n5" and d["part"] == 7).update(part=9))
    assert "has stride 2, expected 1" in broken(lambda g: g.nodes["max_pool_3x3(c0)"].update(stride=2))
    assert "sep_conv_3x3 of edge n3<-c0 (row 2) is computed twice" in broken(
        lambda g: g.add_edge("relu(c0)", "n3", candidates=("sep_conv_3x3",), stride=1, slot=0, row=2))
    merged = "sep_conv_3x3+sep_conv_5x5(relu(c0))"
    assert "merges sep_conv_3x3 and dil_conv_3x3, which differ in more than their depthwise kernel sizes" in broken(
        lambda g: g.nodes[merged].update(ops=("sep_conv_3x3", "dil_conv_3x3")))
    assert "has its parts out of op order" in broken(
        lambda g: [d.update(part=(d["part"] + 4) % 8) for _, _, d in g.out_edges(merged, data=True)])
    assert "has a term of 'max_pool_3x3', which it does not apply" in broken(
        lambda g: next(d for _, _, d in g.out_edges(merged, data=True)).update(op="max_pool_3x3"))
    assert "alpha row 2 is the edge n3<-c0 and also n3<-c1" in broken(
        lambda g: g.add_edge("relu(c1)", "n3", candidates=("sep_conv_5x5",), stride=1, slot=0, row=2))


def test_pass_lists_are_checked() -> None:
    assert parse_passes("drop-none, share_relu") == ("drop_none", "share_relu")
    assert parse_passes("") == ()
    with pytest.raises(UsageError, match="no pass named 'share_rel'; did you mean 'share_relu'"):
        parse_passes("share_rel")
    with pytest.raises(UsageError, match="name 2 is empty"):
        parse_passes("drop_none,,share_relu")
    with pytest.raises(UsageError, match="name 1 is empty"):
        parse_passes(",")
    with pytest.raises(UsageError, match="'drop_none' is given twice"):
        parse_passes("drop_none,share_relu,drop-none")


# ---- parameters and checkpoints --------------------------------------------------------

def test_parameters_and_state_dicts_are_the_same_with_and_without_passes() -> None:
    plain, fast = supernet(NO_OPT, seed=3), supernet(SupernetOptions(), seed=3)
    assert [n for n, _ in plain.named_parameters()] == [n for n, _ in fast.named_parameters()]
    assert plain.state_dict().keys() == fast.state_dict().keys()
    for (name, a), b in zip(plain.state_dict().items(), fast.state_dict().values()):
        assert torch.equal(a, b), name  # same seed, same initial weights, whatever the layout
    # a checkpoint of one loads into the other, and they then agree
    other = supernet(SupernetOptions(), seed=4)
    other.load_state_dict(plain.state_dict())
    assert_close(run_step(other), run_step(plain))


def test_the_optimized_supernet_trains_under_autocast() -> None:
    """CPU bfloat16 autocast: a training step of the optimized supernet runs (its
    recomputing blocks and source sums take their plain paths), its weight and alpha
    gradients are finite, and the running statistics stay float32."""
    torch.set_num_threads(1)
    model = supernet(SupernetOptions(DEFAULT_PASSES, True))
    x, y = batch()
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x), y)
    grads: tuple[torch.Tensor | None, ...] = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    assert all(g is None or bool(torch.isfinite(g).all()) for g in grads)
    assert all(b.dtype == torch.float32 for n, b in model.state_dict().items() if "running" in n)


def test_kernels_far_apart_are_not_merged() -> None:
    """A merged call pads a kernel's side at most ``MAX_GROWTH`` (3) times: 1x1 merges
    with 3x3, 11x11 and 13x13 with each other, not with those."""
    text = """genolang 1
op k1 = relu > dwconv(1, stride) > conv(1) > bn
op k3 = relu > dwconv(3, stride) > conv(1) > bn
op k11 = relu > dwconv(11, stride) > conv(1) > bn
op k13 = relu > dwconv(13, stride) > conv(1) > bn
space far {
    ops = k13, k3, k11, k1
    cell normal { nodes = 2 }
    cell reduce { nodes = 2; stride = 2 }
}
"""
    space = text_space(text, "far")
    lines = run_passes(lower_space(space)["normal"], DEFAULT_PASSES).dump().splitlines()
    assert "  k1+k3(relu(c0)) = k1 x2 + k3 x2 grouped of relu(c0)" in lines
    assert "  k11+k13(relu(c0)) = k11 x2 + k13 x2 grouped of relu(c0)" in lines
