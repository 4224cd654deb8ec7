"""Edges with their own ops in supernets and searches: each MixedOp holds only its
edge's ops, the other alphas of its row weigh exactly 0 and get no gradient under any
relaxation, the RobustDARTS spaces S1-S4 build with RobustDARTS's parameter counts and
search, the recurrent supernet restricts its activations per edge, and ``noise`` is
RobustDARTS's NoiseOp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from _search_util import TINY_RNN, tiny_network, write_tiny_cnn
from genolang.cli import main
from genolang.ir.lower import lower_space
from genolang.nets.supernet import NO_OPT, SupernetOptions, build_supernet, mixed_edges
from genolang.nets.supernet_rnn import build_rnn_supernet
from genolang.ops.cnn import Noise
from genolang.spec.check import load, load_text
from genolang.spec.checked import GenotypeSpec, NetworkSpec, SpaceSpec
from genolang.spec.lookup import load_named

pytestmark = pytest.mark.usefixtures("one_thread")


def shipped(name: str) -> SpaceSpec:
    space = load_named("space", name)
    assert isinstance(space, SpaceSpec)
    return space


def tiny(space: SpaceSpec, options: SupernetOptions | None = None, seed: int = 0):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    return build_supernet(space, tiny_network(), in_channels=1, input_size=8, classes=10, options=options)


def test_each_mixed_op_holds_only_its_edges_ops() -> None:
    space = shipped("s1")
    for options in (NO_OPT, SupernetOptions()):
        modules = dict(tiny(space, options).named_modules())
        for index, cell in enumerate(("normal", "reduce", "reduce")):
            shape = space.cell(cell)
            for e in mixed_edges(lower_space(space)[cell]):
                mixed = modules[f"cells.cell{index:02d}.nodes.{e.dst}.{e.src}"]
                assert tuple(mixed.ops) == shape.edge_ops(e.src, e.dst, space.ops), (cell, e.name)
    # S3's 'none' has no module (a zero) with the passes
    modules = dict(tiny(shipped("s3")).named_modules())
    assert set(modules["cells.cell00.nodes.n2.c0"].ops) == {"skip_connect", "sep_conv_3x3"}


@pytest.mark.parametrize("name, params", [("s1", 405_146), ("s2", 665_466), ("s3", 665_466), ("s4", 624_506)])
def test_robustdarts_supernets_have_robustdarts_parameter_counts(name: str, params: int) -> None:
    """C=16, 8 cells, CIFAR-10: RobustDARTS's model_search.Network's counts (its stem
    BatchNorm is affine, as DARTS's, whose space counts 1,930,618 here too); the alphas
    are (14 x the space's ops) per cell type."""
    space = shipped(name)
    net = NetworkSpec("cifar_search", "cnn", "cifar", channels=16, layers=8)
    model = build_supernet(space, net, in_channels=3, input_size=32, classes=10)
    assert sum(p.numel() for p in model.weight_parameters()) == params
    assert [tuple(a.shape) for a in model.arch_parameters()] == [(14, len(space.ops))] * 2


def test_masked_alphas_weigh_zero_and_get_no_gradient_under_any_relaxation() -> None:
    space = shipped("s1")
    model = tiny(space)
    mask = {cell: model.alpha_mask(cell) for cell in space.cell_names}
    for cell, alpha in model.alpha_dict.items():
        off = torch.isneginf(mask[cell])
        assert int(off.sum()) == 14 * 4  # 2 of 6 ops per edge
        assert torch.equal(alpha.detach()[off], torch.zeros(int(off.sum())))  # they start at 0
    with torch.no_grad():
        for alpha in model.arch_parameters():
            alpha.normal_(0.0, 3.0)  # masked entries too: they must not matter
    x, y = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 3])
    relaxations = {"softmax": None, "sigmoid": torch.sigmoid, "exp_plus_one": lambda a: a.exp() + 1.0}
    for name, relaxation in relaxations.items():
        if relaxation is not None:
            model.relaxation = relaxation
        weights = model.edge_weights()
        for cell, w in weights.items():
            off = torch.isneginf(mask[cell])
            assert torch.equal(w[off], torch.zeros(int(off.sum()))), name
            assert bool((w[~off] > 0).all()), name
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), model.arch_parameters())
        for cell, g in zip(space.cell_names, grads):
            off = torch.isneginf(mask[cell])
            assert torch.equal(g[off], torch.zeros(int(off.sum()))), name
            assert bool(torch.isfinite(g).all()) and float(g[~off].abs().max()) > 0, name
    # softmax: each edge's row is the softmax of its own alphas, as a (14 x 2) table would be
    model.relaxation = type(model).relaxation
    alpha, w = model.alpha_dict["normal"], model.edge_weights()["normal"]
    own = ~torch.isneginf(mask["normal"])
    compact = F.softmax(alpha.detach()[own].view(14, 2), dim=-1)
    assert torch.equal(w.detach()[own].view(14, 2), compact)
    tables = model.cell_alphas()
    assert tables["normal"].allowed[0] == ("skip_connect", "dil_conv_3x3")
    assert tables["normal"].weight("c0", "n2", "max_pool_3x3") == 0.0
    assert sum(tables["normal"].weights[0]) == pytest.approx(1.0)
    assert model.alpha_mask("normal") is not None and tiny(shipped("s2")).alpha_mask("normal") is None


def test_the_recurrent_supernet_mixes_each_edges_own_activations() -> None:
    """A recurrent space whose edges choose some activations computes what the same
    space without the edges computes with -inf alphas off each edge's set."""
    text = """genolang 1
space r {
    ops = none, tanh, relu, sigmoid, identity
    cell recurrent {
        nodes = 3
        edge s0 -> n1 = tanh, relu
        edge n1 -> n2 = identity
        edge n1 -> n3 = none, sigmoid
        edge n2 -> n3 = relu, sigmoid
    }
}
"""
    restricted = load_text(text, "r.geno").spaces["r"]
    full = load_text(text.replace("edge ", "# edge "), "r.geno").spaces["r"]
    net = load_text(TINY_RNN, "tiny_rnn.geno").networks["tiny_rnn"]
    torch.manual_seed(0)
    a = build_rnn_supernet(restricted, net, ntokens=20)
    b = build_rnn_supernet(full, net, ntokens=20)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        a.alpha_dict["recurrent"].normal_(0.0, 1.0)
        b.alpha_dict["recurrent"].copy_(a.alpha_dict["recurrent"] + a.alpha_mask("recurrent"))
    a.eval()
    b.eval()
    tokens = torch.randint(0, 20, (5, 2), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out_a, out_b = a(tokens, a.init_hidden(2))[0], b(tokens, b.init_hidden(2))[0]
    assert float((out_a - out_b).abs().max()) <= 1e-6 * float(out_b.abs().max())
    # n3 reads s0 (every op), n1 (none, sigmoid) and n2 (relu, sigmoid); 'none' computes nothing
    node, sources, acts = a.cell.wiring[2]
    assert (node, sources) == ("n3", ["s0", "n1", "n2"])
    subsets = {restricted.ops[col]: None if buf is None else getattr(a.cell, buf).tolist() for col, _, buf in acts}
    assert subsets == {"tanh": [0], "relu": [0, 2], "sigmoid": None, "identity": [0]}


def test_noise_is_robustdarts_noise_op() -> None:
    """NoiseOp(stride, 0, 1): N(0, 1) of x[:, :, ::stride, ::stride]'s shape, fresh in
    evaluation too, whatever the input's values."""
    space = shipped("s4")
    model = tiny(space)
    (noise,) = [m for m in model.modules() if isinstance(m, Noise)][:1]
    x = torch.randn(2, 3, 7, 7)
    strided = Noise(2)
    strided.eval()
    torch.manual_seed(3)
    got = strided(x)
    torch.manual_seed(3)
    want = torch.empty(2, 3, 4, 4).normal_(0.0, 1.0)
    assert torch.equal(got, want)
    assert not torch.equal(strided(x), strided(x))  # a new draw each call, in eval mode too
    assert (noise.mean, noise.std) == (0.0, 1.0)


def search(tmp: Path, space: str) -> tuple[GenotypeSpec, Path]:
    net = write_tiny_cnn(tmp)
    argv = ["search", space, "--network", str(net), "--epochs", "1", "--batch-size", "8", "--limit", "2",
            "--out", str(tmp / "found.geno"), "--run-dir", str(tmp / "run"), "--quiet"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    geno = load(str(tmp / "found.geno")).single("genotype")
    assert isinstance(geno, GenotypeSpec)
    return geno, tmp / "run"


def test_a_tiny_search_of_s1_keeps_every_edge_in_its_pair(tmp_path: Path) -> None:
    geno, run = search(tmp_path, "s1")
    space = shipped("s1")
    for cell in geno.cells:
        for node, dst in zip(cell.nodes, cell.shape.node_names):
            assert len(node.edges) == 2
            for op, src in node.edges:
                assert op in space.edge_ops(cell.name, src, dst), (cell.name, op, src, dst)
    text = (tmp_path / "found.geno").read_text(encoding="utf-8")
    assert "(softmax over each edge's own ops: 2 of 6)" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("#   n2 <- c0: "))
    assert line.count(" 0.") == 2 and "skip_connect" in line and "dil_conv_3x3" in line  # the pair only
    record = json.loads((run / "alphas.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert record["cells"]["reduce"]["allowed"][0] == ["max_pool_3x3", "avg_pool_3x3"]
    from genolang.report.run import load_run

    assert load_run(run).final_alphas["normal"].allowed[13] == ("dil_conv_3x3", "dil_conv_5x5")


def test_a_tiny_search_of_s4_may_keep_noise(tmp_path: Path) -> None:
    geno, _ = search(tmp_path, "s4")
    assert {op for c in geno.cells for n in c.nodes for op, _ in n.edges} <= {"noise", "sep_conv_3x3"}
    assert lower_space(geno.space)["normal"].ops == ("noise", "sep_conv_3x3")


def test_the_heatmap_leaves_ops_off_an_edge_blank(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from genolang.report.plots import heatmap_figure, trajectory_figure
    from genolang.report.run import load_run

    # a run folder of a restricted space, as a search writes it (alphas.jsonl only matters)
    space = shipped("s1")
    model = tiny(space)
    run = tmp_path / "run"
    run.mkdir()
    record = {"epoch": 1, "cells": {c: t.to_json() for c, t in model.cell_alphas().items()}}
    (run / "alphas.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 1.0}) + "\n", encoding="utf-8")
    (run / "run.json").write_text(json.dumps({"space_name": "s1"}), encoding="utf-8")
    r = load_run(run)
    heat = heatmap_figure(r)
    normal = next(ax for ax in heat.axes if ax.get_title() == "cell normal")
    texts = [t.get_text() for t in normal.texts]
    assert len(texts) == 14 * 6 and texts.count("-") == 14 * 4
    traj = trajectory_figure(r, "reduce")
    visible = [ax for ax in traj.axes if ax.get_visible()]
    # each panel: the edge's two ops and its uniform line (1/2: a 2-op edge's coin toss)
    assert len(visible) == 14 and all(len(ax.lines) == 3 for ax in visible)
    assert all(ax.lines[0].get_ydata()[0] == pytest.approx(0.5) for ax in visible)
