"""The compile facade: exact parameter and multiply-add counts, output shapes of every
shipped genotype, kind and size mismatches, self-contained checkpoints, exports."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from _specs import named_genotype, named_network
from genolang.errors import GenolangError, InputError, UsageError
from genolang.ir.plan import PlanError
from genolang.nets.checkpoint import load_model, save_model
from genolang.nets.compile import (
    CompileError,
    DataShape,
    apply_overrides,
    build,
    compile_network,
    data_shape,
    summarize,
)
from genolang.nets.count import count_macs, count_params
from genolang.nets.fixed import FixedCNN
from genolang.nets.rnn import RNNModel
from genolang.spec.checked import GenotypeSpec, NetworkSpec
from genolang.spec.syntax import read_bundle, same_specs, spec_bundle

CNN_GENOTYPES = ("darts_v1", "darts_v2", "nasnet_a", "amoebanet_a")
RNN_GENOTYPES = ("darts_rnn_v1", "darts_rnn_v2", "enas")
CNN_NETWORKS = ("cifar", "cifar_search", "imagenet", "small", "small_search")
RNN_NETWORKS = ("ptb", "ptb_search")

TINY_RNN = """genolang 1

network rnn_tiny {
    stem = embedding
    embedding = 12
    hidden = 12
    dropout = 0.2
    dropout_h = 0.1
    dropout_x = 0.1
    dropout_i = 0.1
    dropout_e = 0.05
}
"""


pytestmark = pytest.mark.usefixtures("one_thread")


def geno(name: str) -> GenotypeSpec:
    return named_genotype(name)


def net(name: str) -> NetworkSpec:
    return named_network(name)


# ---- exact counts ------------------------------------------------------------------

def test_darts_v2_cifar_counts_match_the_original() -> None:
    model = compile_network(geno("darts_v2"), net("cifar"))
    assert count_params(model) == 3_349_342
    assert count_params(model, exclude=()) == 3_825_768


def test_darts_v2_imagenet_params_and_macs() -> None:
    model = compile_network(geno("darts_v2"), net("imagenet"))
    assert count_params(model) == 4_718_752
    assert count_macs(model, torch.randn(1, 3, 224, 224)) == 529_911_552


def test_darts_rnn_v2_on_ptb_has_22_96m_parameters() -> None:
    model = compile_network(geno("darts_rnn_v2"), net("ptb"), ntokens=10_000)
    assert isinstance(model, RNNModel)
    assert count_params(model, exclude=()) == 22_960_000


# Computed once by this code; the cells are built from the same op registry and
# skeleton as DARTS_V2, whose counts match the original implementation exactly.
PINNED_CNN = {
    ("darts_v1", "cifar"): (3_169_414, 3_645_840),
    ("darts_v1", "imagenet"): (4_510_432, 5_771_208),
    ("nasnet_a", "cifar"): (3_830_950, 4_288_944),
    ("nasnet_a", "imagenet"): (5_564_320, 6_800_520),
    ("amoebanet_a", "cifar"): (3_145_078, 3_603_072),
    ("amoebanet_a", "imagenet"): (4_627_360, 5_863_560),
}


@pytest.mark.parametrize("genotype,network", sorted(PINNED_CNN))
def test_pinned_cnn_counts(genotype: str, network: str) -> None:
    model = compile_network(geno(genotype), net(network))
    assert (count_params(model), count_params(model, exclude=())) == PINNED_CNN[genotype, network]


@pytest.mark.parametrize("genotype,expected", [("darts_rnn_v1", 22_960_000), ("enas", 27_295_000)])
def test_pinned_rnn_counts(genotype: str, expected: int) -> None:
    assert count_params(compile_network(geno(genotype), net("ptb")), exclude=()) == expected


def test_summary_of_darts_v2_on_cifar() -> None:
    g, n = geno("darts_v2"), net("cifar")
    shape = data_shape(n)
    s = summarize(build(g, n, shape), g, n, shape)
    assert (s.params, s.params_with_aux, s.macs, s.input_size) == (3_349_342, 3_825_768, 528_359_040, 32)
    assert [c.index for c in s.cells] == list(range(20))
    assert [c.index for c in s.cells if c.reduction] == [6, 13]
    first, last = s.cells[0], s.cells[-1]
    assert (first.c_prev_prev, first.c_prev, first.channels, first.out_channels, first.out_size) == \
        (108, 108, 36, 144, 32)
    assert (last.c_prev_prev, last.c_prev, last.channels, last.out_channels, last.out_size) == (576, 576, 144, 576, 8)
    assert s.aux_cell == 13
    d = s.to_dict()
    assert {"params", "params_with_aux", "macs", "input_size", "cells"} <= set(d)


# ---- shapes of every shipped genotype ----------------------------------------------

@pytest.mark.parametrize("network", ["small", "small_search"])
@pytest.mark.parametrize("genotype", CNN_GENOTYPES)
def test_every_cnn_genotype_runs_on_one_channel_8x8(genotype: str, network: str) -> None:
    n = apply_overrides(net(network), channels=4)
    model = compile_network(geno(genotype), n, in_channels=1, input_size=8, classes=7)
    assert isinstance(model, FixedCNN)
    x = torch.randn(3, 1, 8, 8)
    model.train()
    model.drop_path_prob = 0.2
    logits, aux = model(x, return_aux=True)
    assert logits.shape == (3, 7)
    assert (aux is None) == (n.auxiliary is None)
    if aux is not None:
        assert aux.shape == (3, 7)
    model.eval()
    assert model(x).shape == (3, 7)


@pytest.mark.parametrize("genotype", RNN_GENOTYPES)
def test_every_rnn_genotype_runs_on_a_tiny_skeleton(genotype: str, tmp_path: Path) -> None:
    (tmp_path / "rnn.geno").write_text(TINY_RNN)
    model = compile_network(geno(genotype), net(str(tmp_path / "rnn.geno")), ntokens=30)
    assert isinstance(model, RNNModel)
    words = torch.randint(0, 30, (6, 4))
    log_prob, hidden = model(words, model.init_hidden(4))
    assert log_prob.shape == (6, 4, 30) and hidden.shape == (1, 4, 12)
    assert torch.allclose(log_prob.exp().sum(-1), torch.ones(6, 4), atol=1e-5)


# ---- mismatches ------------------------------------------------------------------------

def test_cnn_genotype_on_recurrent_skeleton_is_a_clear_error() -> None:
    with pytest.raises(CompileError, match="recurrent skeleton"):
        compile_network(geno("darts_v2"), net("ptb"))
    with pytest.raises(CompileError, match="CNN skeleton"):
        compile_network(geno("darts_rnn_v2"), net("cifar"))


def test_skeleton_that_does_not_fit_the_data() -> None:
    with pytest.raises(PlanError, match="even size"):
        compile_network(geno("darts_v2"), net("cifar"), input_size=7)
    with pytest.raises(PlanError, match="auxiliary head"):
        compile_network(geno("darts_v2"), net("cifar"), input_size=4)


def test_data_decides_channels_and_classes() -> None:
    n = net("imagenet")
    assert data_shape(n) == DataShape("cnn", 3, 224, 1000)
    assert data_shape(n, in_channels=1, input_size=64, classes=10) == DataShape("cnn", 1, 64, 10)
    model = compile_network(geno("darts_v2"), apply_overrides(net("small"), channels=4), in_channels=1,
                            input_size=8, classes=3)
    assert isinstance(model, FixedCNN)
    assert model.stem0[0].in_channels == 1 and model.classifier.out_features == 3


def test_overrides_are_checked_again(tmp_path: Path) -> None:
    assert apply_overrides(net("cifar"), layers=8, channels=16).reduction_cells() == (2, 5)
    with pytest.raises(UsageError, match="--layers"):
        apply_overrides(net("ptb"), layers=3)
    (tmp_path / "fixed.geno").write_text(
        "genolang 1\n\nnetwork fixed {\n    stem = cifar\n    layers = 8\n    reduce_at = 2, 5\n}\n")
    with pytest.raises(UsageError, match="reduction at cell 5"):
        apply_overrides(net(str(tmp_path / "fixed.geno")), layers=4)
    tied = apply_overrides(net("ptb"), embedding=64)
    assert (tied.embedding, tied.hidden) == (64, 64)


# ---- spec texts and checkpoints ------------------------------------------------------------

@pytest.mark.parametrize("genotype", CNN_GENOTYPES + RNN_GENOTYPES)
def test_spec_bundle_round_trips(genotype: str) -> None:
    g = geno(genotype)
    for name in (RNN_NETWORKS if g.kind == "rnn" else CNN_NETWORKS):
        n = net(name)
        g2, n2 = read_bundle(spec_bundle(g, n))
        assert g2.cells == g.cells and g2.name == g.name
        assert dataclasses.replace(g2.space, path="") == dataclasses.replace(g.space, path="")
        assert dataclasses.replace(n2, path="") == dataclasses.replace(n, path="")
        assert same_specs((g, n), (g2, n2))
    assert not same_specs((geno("darts_v2"), net("cifar")), (geno("darts_v1"), net("cifar")))


def test_checkpoint_reloads_with_weights_only_and_no_other_file(tmp_path: Path) -> None:
    n = apply_overrides(net("small"), channels=4)
    g = geno("darts_v2")
    shape = DataShape("cnn", 1, 8, 10)
    torch.manual_seed(0)
    model = build(g, n, shape).eval()
    path = tmp_path / "m.pt"
    save_model(path, model, g, n, shape, extra={"note": "test"})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "genolang-model" and "genotype darts_v2" in raw["spec"]
    assert "genotype darts_v2 : darts_cnn {" in raw["genotype_spec"] and "channels = 4" in raw["network_spec"]
    loaded, g2, n2, meta = load_model(path)
    assert (g2.name, n2.name, n2.channels) == ("darts_v2", "small", 4)
    assert meta["data_shape"] == shape and meta["extra"] == {"note": "test"}
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(model(x), loaded.eval()(x))
    assert not list(tmp_path.glob(".*.tmp"))


def test_rnn_checkpoint_round_trip(tmp_path: Path) -> None:
    (tmp_path / "rnn.geno").write_text(TINY_RNN)
    g, n = geno("enas"), net(str(tmp_path / "rnn.geno"))
    model = compile_network(g, n, ntokens=20).eval()
    save_model(tmp_path / "r.pt", model, g, n, DataShape("rnn", ntokens=20))
    loaded, _, _, meta = load_model(tmp_path / "r.pt")
    assert isinstance(model, RNNModel) and isinstance(loaded, RNNModel)
    words = torch.randint(0, 20, (5, 2))
    assert torch.equal(model(words, model.init_hidden(2))[0], loaded.eval()(words, loaded.init_hidden(2))[0])
    assert meta["data_shape"].ntokens == 20


def test_tampered_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    n, g = apply_overrides(net("small_search"), channels=4), geno("darts_v2")
    shape = DataShape("cnn", 1, 8, 10)
    model = build(g, n, shape)
    save_model(tmp_path / "m.pt", model, g, n, shape)
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    bad_spec = dict(state, spec=state["spec"].replace("sep_conv_3x3(c0)", "sep_conv_9x9(c0)", 1))
    torch.save(bad_spec, tmp_path / "bad_spec.pt")  # plain torch.save: no digest, as before digests
    with pytest.raises(InputError, match="does not check"):
        load_model(tmp_path / "bad_spec.pt")
    other = dict(state, spec=spec_bundle(geno("darts_v1"), n))
    torch.save(other, tmp_path / "other.pt")
    with pytest.raises(InputError, match="do not fit"):
        load_model(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="damaged or not a file genolang wrote"):
        load_model(tmp_path / "junk.pt")
    torch.save({"format": "something-else"}, tmp_path / "foreign.pt")
    with pytest.raises(InputError, match="not a genolang model"):
        load_model(tmp_path / "foreign.pt")


# ---- export ----------------------------------------------------------------------------------

def _tiny_cnn() -> tuple[nn.Module, DataShape]:
    n, g = apply_overrides(net("small"), channels=4), geno("darts_v2")
    shape = DataShape("cnn", 1, 8, 10)
    torch.manual_seed(0)
    return build(g, n, shape), shape


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_torchscript_export_matches_eager(tmp_path: Path) -> None:
    from genolang.nets.export import export_model

    model, shape = _tiny_cnn()
    report = export_model(model, shape, "torchscript", tmp_path / "m.ts")
    assert report.max_abs_diff <= 1e-4
    scripted = torch.jit.load(str(tmp_path / "m.ts"))
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(scripted(x), model.eval()(x), atol=1e-5)


def test_onnx_export_matches_pytorch(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="onnx is an optional extra (pip install genolang[onnx])")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is an optional extra (pip install genolang[onnx])")
    from genolang.nets.export import export_model

    model, shape = _tiny_cnn()
    report = export_model(model, shape, "onnx", tmp_path / "m.onnx")
    assert report.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 1, 8, 8)  # another batch size: the batch axis is dynamic
    (got,) = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(got), model.eval()(x), atol=1e-4)


def test_onnx_export_of_a_recurrent_model(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="onnx is an optional extra (pip install genolang[onnx])")
    pytest.importorskip("onnxruntime", reason="onnxruntime is an optional extra (pip install genolang[onnx])")
    from genolang.nets.export import export_model

    (tmp_path / "rnn.geno").write_text(TINY_RNN)
    model = compile_network(geno("darts_rnn_v2"), net(str(tmp_path / "rnn.geno")), ntokens=20)
    report = export_model(model, DataShape("rnn", ntokens=20), "onnx", tmp_path / "r.onnx", seq_len=5)
    assert report.max_abs_diff <= 1e-4


def test_an_op_that_cannot_be_built_is_a_clear_error() -> None:
    from genolang.ops.build import build_op
    from genolang.spec.ops import Layer, OpDef, Seq

    grouped = OpDef("g", Seq((Layer("conv", (3, 3), "hw", groups=3), Layer("bn"))))
    with pytest.raises(GenolangError, match="groups=3 cannot map 8 to 8 channels"):
        build_op(grouped, 8, 1, True)
