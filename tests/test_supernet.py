"""The supernet compiler: structure read off the IR, alphas named by edges and ops,
parameters split cleanly, and a one-hot supernet computing its genotype's function."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _search_util import darts_cnn, tiny_network
from genolang.errors import UsageError
from genolang.ir.lower import lower_genotype, lower_space
from genolang.ir.plan import PlanError
from genolang.nets.fixed import FixedCNN, build_fixed_cnn
from genolang.nets.rnn import build_fixed_rnn
from genolang.nets.supernet import (
    NO_OPT,
    AlphaMixin,
    Supernet,
    SupernetOptions,
    alpha_table,
    build_supernet,
    mixed_edges,
)
from genolang.nets.supernet_rnn import build_rnn_supernet
from genolang.spec.checked import GenotypeSpec, NetworkSpec, SpaceSpec
from genolang.spec.lookup import load_named

pytestmark = pytest.mark.usefixtures("one_thread")


def is_pool_bn(m: nn.Module) -> bool:
    """A pool followed by a BN without parameters: what a supernet makes of DARTS's pools."""
    return (isinstance(m, nn.Sequential) and len(m) == 2 and isinstance(m[0], (nn.MaxPool2d, nn.AvgPool2d))
            and isinstance(m[1], nn.BatchNorm2d) and not m[1].affine)


def tiny_supernet(seed: int = 0, options: SupernetOptions | None = None) -> Supernet:
    torch.manual_seed(seed)
    return build_supernet(darts_cnn(), tiny_network(), in_channels=1, input_size=8, classes=10, options=options)


def test_alphas_are_one_tensor_per_cell_type_rows_edges_columns_ops() -> None:
    model = tiny_supernet()
    names = [n for n, _ in model.named_parameters() if n.startswith("alphas.")]
    assert names == ["alphas.normal", "alphas.reduce"]
    for alpha in model.arch_parameters():
        assert alpha.shape == (14, 8)
        assert 0 < float(alpha.detach().abs().max()) < 0.01  # 1e-3 * N(0, 1)
    tables = model.cell_alphas()
    assert tables["normal"].edges[:3] == (("c0", "n2"), ("c1", "n2"), ("c0", "n3"))
    assert tables["normal"].edge_names[-1] == "n5<-n4"
    assert tables["reduce"].ops == darts_cnn().ops
    for row in tables["normal"].weights:
        assert sum(row) == pytest.approx(1.0)


def test_alpha_table_reads_edge_op_weight() -> None:
    model = tiny_supernet()
    with torch.no_grad():
        model.alpha_dict["normal"].zero_()
        model.alpha_dict["normal"][3, darts_cnn().ops.index("sep_conv_3x3")] = 1.0  # row 3: c1 -> n3
    text = alpha_table(model)
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("n3 <- c1:"))
    assert "sep_conv_3x3 0.280" in line  # e / (e + 7)
    assert "none 0.103" in line
    assert text.splitlines()[0] == "cell normal (softmax over 8 ops per edge)"


def test_arch_and_weight_parameters_are_disjoint_and_complete() -> None:
    model = tiny_supernet()
    arch = {id(p) for p in model.arch_parameters()}
    weights = {id(p) for p in model.weight_parameters()}
    assert arch and weights and not arch & weights
    assert arch | weights == {id(p) for p in model.parameters()}
    assert len(model.weight_parameters()) == len({id(p) for p in model.weight_parameters()})


def test_modules_follow_the_ir_and_only_the_stem_bn_is_affine() -> None:
    model = tiny_supernet()
    names = dict(model.named_modules())
    irs = lower_space(darts_cnn())
    for index, cell in ((0, "normal"), (1, "reduce")):
        for e in mixed_edges(irs[cell]):
            for op in e.candidates or ():
                # 'none' has a module only without the drop_none pass (it has no state either way)
                name = f"cells.cell{index:02d}.nodes.{e.dst}.{e.src}.ops.{op}"
                assert (name in names) == (op != "none"), name
    assert is_pool_bn(names["cells.cell00.nodes.n2.c0.ops.max_pool_3x3"])
    assert is_pool_bn(names["cells.cell00.nodes.n2.c0.ops.avg_pool_3x3"])
    # as in the paper's code, the stem's BN is the one affine BN of the supernet
    bns = {name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert [name for name, bn in bns.items() if bn.affine] == ["stem0.1"]
    # the reduction cell's input edges stride, the others do not
    assert names["cells.cell01.nodes.n2.c0.ops.max_pool_3x3"][0].stride == 2
    assert names["cells.cell01.nodes.n3.n2.ops.max_pool_3x3"][0].stride == 1
    out = model(torch.randn(4, 1, 8, 8))
    assert out.shape == (4, 10)


def test_the_darts_search_supernet_has_the_original_codes_weight_count() -> None:
    """quark0/darts model_search.Network(16, 10, 8) has 1,930,618 weights (measured with
    the original code: convs 1,927,952, classifier 2,570, the stem's affine BN 96)."""
    model = build_supernet(darts_cnn(), load_named("network", "cifar_search"),
                           in_channels=3, input_size=32, classes=10, options=NO_OPT)
    assert sum(p.numel() for p in model.weight_parameters()) == 1_930_618
    assert len(model.weight_parameters()) == 1399  # the original's tensor count too
    assert sum(p.numel() for n, p in model.named_weight_parameters() if n.startswith("stem0.1.")) == 96


def test_a_space_op_without_a_declaration_is_a_clear_error() -> None:
    import dataclasses

    space = darts_cnn()
    partial = dataclasses.replace(space, op_defs=tuple(op for op in space.op_defs if op.name != "dil_conv_5x5"))
    with pytest.raises(UsageError, match="no declaration of dil_conv_5x5"):
        build_supernet(partial, tiny_network(), in_channels=1, input_size=8, classes=10)


def test_a_skeleton_with_too_many_reductions_for_the_input_is_a_plan_error() -> None:
    deep = NetworkSpec("deep", "cnn", "cifar", channels=4, layers=4, reduce_at=(0, 1, 2, 3), input_size=8)
    with pytest.raises(PlanError, match="even size"):
        build_supernet(darts_cnn(), deep, in_channels=1, input_size=8, classes=10)


# ---- one-hot supernet == fixed network --------------------------------------------

def one_hot_alphas(model: AlphaMixin, geno: GenotypeSpec) -> None:
    """Each genotype edge gets all of its row's weight on its op; every other edge all
    of it on 'none' (so it adds an exact zero)."""
    ops = model.space.ops
    with torch.no_grad():
        for cell in geno.cells:
            alpha = model.alpha_dict[cell.name]
            alpha.fill_(float("-inf"))
            chosen = {(src, node.name): op for node in cell.nodes for op, src in node.edges}
            for row, e in enumerate(mixed_edges(model.irs[cell.name])):
                alpha[row, ops.index(chosen.get((e.src, e.dst), "none"))] = 0.0


def copy_into_fixed(supernet: Supernet, fixed: FixedCNN) -> None:
    """Supernet op ``cells.cellK.nodes.<dst>.<src>.ops.<op>`` is fixed op
    ``cells.cellK.nodes.<dst>.<src>_<op>`` (same module structure: BN there is affine, left
    at weight 1, bias 0); stem, preprocessors and classifier have the same names. A
    supernet pool's extra BN has no fixed counterpart: it is made the identity in eval
    mode (running mean 0, running variance 1 - eps)."""
    sup = dict(supernet.named_modules())
    with torch.no_grad():
        for name, module in fixed.named_modules():
            parts = name.split(".")
            if len(parts) == 5 and parts[2] == "nodes":  # cells.cellK.nodes.<dst>.<src>_<op>
                src, _, op = parts[4].partition("_")
                source = sup[f"{'.'.join(parts[:4])}.{src}.ops.{op}"]
                if is_pool_bn(source):
                    bn = source[1]
                    bn.running_mean.zero_()
                    bn.running_var.fill_(1.0 - bn.eps)
                    continue
                missing, unexpected = module.load_state_dict(source.state_dict(), strict=False)
                assert not unexpected and all(k.endswith(("weight", "bias")) for k in missing)
        for prefix in ("stem0", "classifier"):
            missing, _ = getattr(fixed, prefix).load_state_dict(getattr(supernet, prefix).state_dict(), strict=False)
        for i, cell in enumerate(fixed.cells.values()):
            for pre in ("pre0", "pre1"):
                getattr(cell, pre).load_state_dict(getattr(supernet.cells[f"cell{i:02d}"], pre).state_dict(),
                                                   strict=False)


@pytest.mark.parametrize("optimized", [True, False], ids=["passes", "no-opt"])
@pytest.mark.parametrize("genotype", ["darts_v2", "darts_v1"])
def test_one_hot_supernet_computes_the_fixed_network(genotype: str, optimized: bool) -> None:
    geno = load_named("genotype", genotype)
    assert isinstance(geno, GenotypeSpec)
    supernet = tiny_supernet(1, None if optimized else NO_OPT)
    # populate every BN's running statistics so copying them is tested too
    supernet.train()
    with torch.no_grad():
        for _ in range(3):
            supernet(torch.randn(8, 1, 8, 8))
    one_hot_alphas(supernet, geno)
    fixed = build_fixed_cnn(geno, tiny_network(), in_channels=1, input_size=8, classes=10, auxiliary=False)
    copy_into_fixed(supernet, fixed)
    supernet.eval()
    fixed.eval()
    x = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        expected = fixed(x)
        got = supernet(x)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5), (got - expected).abs().max()
    assert not torch.allclose(expected, torch.zeros_like(expected))


# ---- recurrent ---------------------------------------------------------------------

def tiny_rnn_network() -> NetworkSpec:
    return NetworkSpec("tiny_rnn", "rnn", "embedding", embedding=8, hidden=8, dropout_e=0.0)


def test_recurrent_supernet_shapes_and_parameters() -> None:
    space = load_named("space", "darts_rnn")
    assert isinstance(space, SpaceSpec)
    torch.manual_seed(0)
    model = build_rnn_supernet(space, tiny_rnn_network(), ntokens=20)
    (alpha,) = model.arch_parameters()
    assert alpha.shape == (sum(range(1, 9)), 5)
    assert [n for n, _ in model.named_parameters() if n.startswith("alphas")] == ["alphas.recurrent"]
    arch, weights = {id(p) for p in model.arch_parameters()}, {id(p) for p in model.weight_parameters()}
    assert not arch & weights and arch | weights == {id(p) for p in model.parameters()}
    assert not model.cell.bn.affine
    words = torch.randint(0, 20, (5, 3))
    log_prob, hidden = model(words, model.init_hidden(3))
    assert log_prob.shape == (5, 3, 20) and hidden.shape == (1, 3, 8)
    assert "n3 <- n1: none" in alpha_table(model)


def test_one_hot_recurrent_supernet_computes_the_fixed_cell() -> None:
    space = load_named("space", "darts_rnn")
    geno = load_named("genotype", "darts_rnn_v2")
    assert isinstance(space, SpaceSpec)
    assert isinstance(geno, GenotypeSpec)
    torch.manual_seed(0)
    supernet = build_rnn_supernet(space, tiny_rnn_network(), ntokens=20)
    one_hot_alphas(supernet, geno)
    fixed = build_fixed_rnn(lower_genotype(geno)["recurrent"], tiny_rnn_network(), ntokens=20)
    fixed.load_state_dict({k: v for k, v in supernet.state_dict().items()
                           if not k.startswith(("alphas", "cell.bn"))})
    assert supernet.cell.bn.running_var is not None
    with torch.no_grad():  # the shared BN made the identity in eval mode
        supernet.cell.bn.running_var.fill_(1.0 - supernet.cell.bn.eps)
    supernet.eval()
    fixed.eval()
    words = torch.randint(0, 20, (6, 2))
    with torch.no_grad():
        got, h_got = supernet(words, supernet.init_hidden(2))
        expected, h_expected = fixed(words, fixed.init_hidden(2))
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(h_got, h_expected, atol=1e-5)


@pytest.mark.parametrize("channels", [2, 6, 8])
def test_a_factorized_reduce_of_few_channels_computes_the_strided_convs(channels: int) -> None:
    """Below 8 channels the two stride-2 1x1 convs run as stride-1 convs on the pixels
    they read (torch 2.14's CPU weight gradient of such a strided conv corrupts the heap
    for 2 to 7 input channels: PC-DARTS's C/K slices): the same values and gradients."""
    from genolang.ops.cnn import FactorizedReduce

    torch.manual_seed(0)
    fr = FactorizedReduce(channels, channels, affine=False).double()
    for memory_format in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(3, channels, 8, 8, dtype=torch.float64).contiguous(memory_format=memory_format)
        x.requires_grad_(True)
        got = fr(x)
        relu = torch.relu(x)
        # what the strided convs compute, as matrix products (the strided conv itself is the bug)
        w1, w2 = (w.flatten(1) for w in (fr.conv_1.weight, fr.conv_2.weight))
        strided = torch.cat([torch.einsum("oc,nchw->nohw", w1, relu[:, :, 0::2, 0::2]),
                             torch.einsum("oc,nchw->nohw", w2, relu[:, :, 1::2, 1::2])], 1)
        want = torch.nn.functional.batch_norm(strided, None, None, training=True)
        assert torch.allclose(got, want, atol=1e-12)
        g = torch.randn_like(got)
        params = [x, fr.conv_1.weight, fr.conv_2.weight]
        for a, b in zip(torch.autograd.grad(got, params, g), torch.autograd.grad(want, params, g)):
            assert torch.allclose(a, b, atol=1e-12)
