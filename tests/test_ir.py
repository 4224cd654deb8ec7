"""The cell IR: lowering genotypes and spaces, lint catching broken graphs, the
text and DOT views, and planning a CNN stack from a skeleton."""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import pytest

from conftest import SPECS
from genolang.draw import cell_dot, dot_document
from genolang.ir.graph import CellIR, IRError
from genolang.ir.lower import lower_genotype, lower_space
from genolang.ir.plan import PlanError, plan_cnn
from genolang.spec.check import load
from genolang.spec.checked import GenotypeSpec, NetworkSpec, SpaceSpec


def genotype(name: str) -> GenotypeSpec:
    return load(str(SPECS / "genotypes" / f"{name}.geno")).genotypes[name]


def space(name: str) -> SpaceSpec:
    return load(str(SPECS / "spaces" / f"{name}.geno")).spaces[name]


def network(name: str) -> NetworkSpec:
    return load(str(SPECS / "networks" / f"{name}.geno")).networks[name]


# ---- lowering -------------------------------------------------------------------------

def test_darts_v2_normal_cell() -> None:
    ir = lower_genotype(genotype("darts_v2"))["normal"]
    assert (ir.name, ir.kind, ir.reducer, ir.stride, ir.mixed) == ("normal", "cnn", "concat", 1, False)
    assert ir.inputs == ["c0", "c1"]
    assert ir.nodes == ["n2", "n3", "n4", "n5"]
    assert ir.output_nodes == ["n2", "n3", "n4", "n5"]
    assert ir.order() == ["c0", "c1", "n2", "n3", "n4", "n5", "out"]
    edges = ir.edges()
    assert len(edges) == 8
    assert [e.name for e in edges] == [
        "n2<-c0:sep_conv_3x3", "n2<-c1:sep_conv_3x3", "n3<-c0:sep_conv_3x3", "n3<-c1:sep_conv_3x3",
        "n4<-c1:sep_conv_3x3", "n4<-c0:skip_connect", "n5<-c0:skip_connect", "n5<-n2:dil_conv_3x3"]
    assert [e.slot for e in edges] == [0, 1] * 4
    assert all(e.stride == 1 and not e.mixed for e in edges)


def test_darts_v2_reduce_cell_strides() -> None:
    ir = lower_genotype(genotype("darts_v2"))["reduce"]
    assert ir.stride == 2
    edges = ir.edges()
    assert len(edges) == 8
    for e in edges:
        assert e.stride == (2 if e.src in ("c0", "c1") else 1), e.name
    assert sum(e.stride == 2 for e in edges) == 5


def test_repeated_inputs_are_parallel_edges() -> None:
    ir = lower_genotype(genotype("nasnet_a"))["normal"]
    n5 = ir.in_edges("n5")
    assert [(e.src, e.op, e.slot) for e in n5] == [("c0", "avg_pool_3x3", 0), ("c0", "avg_pool_3x3", 1)]
    assert len(ir.edges()) == 10
    assert ir.output_nodes == ["n2", "n3", "n4", "n5", "n6"]
    reduce = lower_genotype(genotype("nasnet_a"))["reduce"]
    assert reduce.output_nodes == ["n4", "n5", "n6"]


def test_recurrent_genotype() -> None:
    ir = lower_genotype(genotype("enas"))["recurrent"]
    assert (ir.kind, ir.reducer, ir.inputs) == ("rnn", "mean", ["s0"])
    assert ir.nodes == [f"n{k}" for k in range(1, 12)]
    assert ir.output_nodes == ["n2", "n5", "n6", "n9", "n10", "n11"]
    assert [(e.src, e.op) for e in ir.in_edges("n10")] == [("n8", "relu")]
    assert all(len(ir.in_edges(n)) == 1 for n in ir.nodes)


def test_darts_cnn_supernet_cell() -> None:
    cnn = space("darts_cnn")
    cells = lower_space(cnn)
    assert list(cells) == ["normal", "reduce"]
    for name, ir in cells.items():
        assert ir.mixed and ir.ops == cnn.ops
        edges = ir.edges()
        assert len(edges) == 14  # 2 + 3 + 4 + 5
        assert [len(ir.in_edges(n)) for n in ir.nodes] == [2, 3, 4, 5]
        assert [e.name for e in edges] == [
            "n2<-c0", "n2<-c1",
            "n3<-c0", "n3<-c1", "n3<-n2",
            "n4<-c0", "n4<-c1", "n4<-n2", "n4<-n3",
            "n5<-c0", "n5<-c1", "n5<-n2", "n5<-n3", "n5<-n4"]
        assert all(e.candidates == cnn.ops and e.op is None for e in edges)
        stride = 2 if name == "reduce" else 1
        assert [e.stride for e in edges] == [stride if e.src in ("c0", "c1") else 1 for e in edges]
        assert ir.output_nodes == ["n2", "n3", "n4", "n5"]


def test_darts_rnn_supernet_cell() -> None:
    ir = lower_space(space("darts_rnn"))["recurrent"]
    assert len(ir.edges()) == sum(range(1, 9))  # node k reads s0 and n1..n(k-1)
    assert [e.src for e in ir.in_edges("n3")] == ["s0", "n1", "n2"]
    assert ir.output_nodes == [f"n{k}" for k in range(1, 9)]


# ---- lint -----------------------------------------------------------------------------

def broken(cell: str, change: Callable[[nx.MultiDiGraph[str]], None], geno: str = "darts_v2") -> CellIR:
    ir = lower_genotype(genotype(geno))[cell]
    g = ir.graph.copy()
    change(g)
    return ir.with_graph(g, "break")


def _set(g: nx.MultiDiGraph[str], u: str, v: str, **attrs: object) -> None:
    key = next(iter(g[u][v]))
    g[u][v][key].update(attrs)


def _remove_in_edges(g: nx.MultiDiGraph[str], node: str) -> None:
    g.remove_edges_from([(u, v, k) for u, v, k in g.in_edges(node, keys=True)])


LINT_CASES = [
    ("cycle", "normal", lambda g: g.add_edge("n5", "n2", op="skip_connect", stride=1, slot=2), "graph has a cycle"),
    ("against-order", "normal", lambda g: g.add_edge("n4", "n3", op="skip_connect", stride=1, slot=2),
     "edge n4->n3 goes against the node order"),
    ("no-input", "normal", lambda g: _remove_in_edges(g, "n3"), "node n3 has no input"),
    ("unknown-op", "normal", lambda g: _set(g, "c0", "n2", op="sep_conv_9x9"), "has unknown op 'sep_conv_9x9'"),
    ("wrong-stride-input", "reduce", lambda g: _set(g, "c1", "n3", stride=1),
     "edge n3<-c1:max_pool_3x3 has stride 1, expected 2"),
    ("wrong-stride-node", "normal", lambda g: _set(g, "n2", "n5", stride=2), "has stride 2, expected 1"),
    ("slot-gap", "normal", lambda g: _set(g, "c1", "n2", slot=3), "node n2 has slots [0, 3]"),
    ("op-and-candidates", "normal", lambda g: _set(g, "c1", "n2", candidates=("skip_connect",)),
     "needs exactly one of op / candidates"),
    ("unknown-role", "normal", lambda g: g.nodes["n3"].update(role="mystery"), "node n3 has unknown role 'mystery'"),
    ("no-order", "normal", lambda g: g.nodes["n3"].pop("order"), "node n3 has no order"),
    ("input-with-inputs", "normal", lambda g: g.add_edge("c0", "c1", op="skip_connect", stride=1, slot=0),
     "input c1 has incoming edges"),
    ("output-reads-input", "normal", lambda g: g.add_edge("c0", "out", role="output", slot=4),
     "the output reads c0, which is not an intermediate node"),
    ("output-empty", "normal", lambda g: _remove_in_edges(g, "out"), "the output reduces no node"),
    ("out-has-successor", "normal", lambda g: g.add_node("zz", role="node", order=99) or
     g.add_edge("out", "zz", op="skip_connect", stride=1, slot=0), "'out' has outgoing edges"),
    ("recurrent-two-inputs", "recurrent", lambda g: g.add_edge("n1", "n3", op="relu", stride=1, slot=1),
     "recurrent node n3 has 2 inputs"),
]


@pytest.mark.parametrize("cell,change,message", [c[1:] for c in LINT_CASES], ids=[c[0] for c in LINT_CASES])
def test_lint_catches_broken_graphs(cell: str, change: Callable[[nx.MultiDiGraph[str]], None], message: str) -> None:
    ir = broken(cell, change, "darts_rnn_v2" if cell == "recurrent" else "darts_v2")
    with pytest.raises(IRError) as info:
        ir.lint()
    assert message in str(info.value)
    assert str(info.value).startswith(f"cell {cell}: ")


def test_lint_passes_on_sound_graphs_and_records_passes() -> None:
    ir = broken("normal", lambda g: None)
    assert ir.lint() is ir
    assert ir.passes == ("break",)
    assert "passes: break" in ir.header()


def test_lint_rejects_a_fixed_edge_in_a_mixed_cell() -> None:
    ir = lower_space(space("darts_cnn"))["normal"]
    g = ir.graph.copy()
    key = next(iter(g["c0"]["n2"]))
    g["c0"]["n2"][key].update(op="skip_connect", candidates=None)
    with pytest.raises(IRError, match="is fixed in a mixed cell"):
        ir.with_graph(g, "fix one edge").lint()


# ---- text and DOT ---------------------------------------------------------------------

def test_dump() -> None:
    cells = lower_genotype(genotype("darts_v2"))
    assert cells["normal"].dump().splitlines() == [
        "cell normal (cnn; stride 1; concat)",
        "  c0 = input",
        "  c1 = input",
        "  n2 = sep_conv_3x3(c0) + sep_conv_3x3(c1)",
        "  n3 = sep_conv_3x3(c0) + sep_conv_3x3(c1)",
        "  n4 = sep_conv_3x3(c1) + skip_connect(c0)",
        "  n5 = skip_connect(c0) + dil_conv_3x3(n2)",
        "  out = concat(n2, n3, n4, n5)",
    ]
    reduce = cells["reduce"].dump()
    assert "  n3 = skip_connect(n2) + max_pool_3x3(c1, stride=2)" in reduce.splitlines()
    supernet = lower_space(space("darts_cnn"))["reduce"].dump().splitlines()
    assert supernet[0].startswith("cell reduce (cnn; stride 2; concat; mixed over 8 ops: none, max_pool_3x3")
    assert supernet[-2] == ("  n5 = mixed[8](c0, stride=2) + mixed[8](c1, stride=2) + mixed[8](n2) + mixed[8](n3) + "
                            "mixed[8](n4)")
    rnn = lower_genotype(genotype("darts_rnn_v1"))["recurrent"].dump().splitlines()
    assert rnn[:3] == ["cell recurrent (rnn; stride 1; mean)", "  s0 = input", "  n1 = relu(s0)"]
    assert rnn[-1] == "  out = mean(n1, n2, n3, n4, n5, n6, n7, n8)"


def test_to_dot() -> None:
    cells = lower_genotype(genotype("darts_v2"))
    dot = cell_dot(cells["normal"])
    lines = [line.strip() for line in dot.splitlines()]
    assert lines[0] == "digraph genolang {" and lines[-1] == "}"
    assert 'label="cell normal";' in lines
    assert 'c0 [shape=box, style=filled, fillcolor="#d8e8f8", label="c0"];' in lines
    assert 'n2 [shape=circle, style=filled, fillcolor="#f8f0c8", label="n2"];' in lines
    assert 'out [shape=box, style=filled, fillcolor="#d8f0d8", label="concat"];' in lines
    assert 'n2 -> n5 [label="dil_conv_3x3"];' in lines
    assert "n5 -> out [style=dashed];" in lines
    assert sum("->" in line for line in lines) == 8 + 4
    reduce = cell_dot(cells["reduce"], "my reduce")
    assert 'label="my reduce";' in reduce
    assert 'c1 -> n3 [label="max_pool_3x3 /2"];' in reduce
    assert dot.endswith("}\n")


def test_dot_document_with_clusters() -> None:
    cells = lower_genotype(genotype("darts_v2"))
    dot = dot_document([("darts_v2.normal", cells["normal"]), ("darts_v2.reduce", cells["reduce"])])
    lines = [line.strip() for line in dot.splitlines()]
    assert "subgraph cluster_0 {" in lines and "subgraph cluster_1 {" in lines
    assert 'label="darts_v2.reduce";' in lines
    assert 'k0_c0 -> k0_n2 [label="sep_conv_3x3"];' in lines
    assert 'k1_c0 -> k1_n2 [label="max_pool_3x3 /2"];' in lines
    assert dot.count("{") == dot.count("}")


# ---- network planning ---------------------------------------------------------------

def test_plan_cifar() -> None:
    plan = plan_cnn(network("cifar"), {"normal": 4, "reduce": 4}, in_channels=3, input_size=32, classes=10)
    assert len(plan.cells) == 20
    assert [c.index for c in plan.cells if c.reduction] == [6, 13]
    assert [c.cell for c in plan.cells].count("reduce") == 2
    assert {c.channels for c in plan.cells[:6]} == {36}
    assert {c.channels for c in plan.cells[6:13]} == {72}
    assert {c.channels for c in plan.cells[13:]} == {144}
    assert plan.stem_channels == 108 and plan.stem_size == 32
    first = plan.cells[0]
    assert (first.c_prev_prev, first.c_prev, first.channels, first.out_channels) == (108, 108, 36, 144)
    after = plan.cells[7]
    assert after.reduction_prev and not after.reduction
    assert (after.c_prev_prev, after.c_prev) == (144, 288)
    assert [c.out_size for c in (plan.cells[5], plan.cells[6], plan.cells[13])] == [32, 16, 8]
    assert (plan.aux_cell, plan.aux_size, plan.aux_channels) == (13, 8, 576)
    assert (plan.final_channels, plan.final_size) == (576, 8)


def test_plan_small_search_on_8x8() -> None:
    plan = plan_cnn(network("small_search"), {"normal": 4, "reduce": 4}, in_channels=1, input_size=8, classes=10)
    assert [c.reduction for c in plan.cells] == [False, True, False, True, False]
    assert [c.out_size for c in plan.cells] == [8, 4, 4, 2, 2]
    assert [c.channels for c in plan.cells] == [8, 16, 16, 32, 32]
    assert plan.aux_cell is None and plan.aux_size is None
    assert plan.final_size == 2


def test_plan_imagenet() -> None:
    plan = plan_cnn(network("imagenet"), {"normal": 4, "reduce": 4}, in_channels=3, input_size=224, classes=1000)
    assert plan.stem_size == 28
    assert plan.cells[0].reduction_prev
    assert [c.index for c in plan.cells if c.reduction] == [4, 9]
    assert plan.final_size == 7 and plan.aux_cell == 9 and plan.aux_size == 7


def test_plan_rejects_an_odd_map_at_a_reduction() -> None:
    with pytest.raises(PlanError) as info:
        plan_cnn(network("cifar_search"), {"normal": 4, "reduce": 4}, in_channels=3, input_size=7, classes=10)
    message = str(info.value)
    assert "reduction cell 2 gets a 7x7 map" in message
    assert "even size" in message and "(now 7)" in message
    assert "network 'cifar_search'" in message


def test_plan_rejects_a_tiny_auxiliary_map() -> None:
    with pytest.raises(PlanError, match=r"auxiliary head after cell 13 sees a 1x1 map"):
        plan_cnn(network("cifar"), {"normal": 4, "reduce": 4}, in_channels=1, input_size=4, classes=10)


def test_plan_needs_the_cell_names_and_a_cnn() -> None:
    with pytest.raises(PlanError, match="the cell types are: normal"):
        plan_cnn(network("cifar"), {"normal": 4}, in_channels=3, input_size=32, classes=10)
    with pytest.raises(PlanError, match="is a recurrent skeleton"):
        plan_cnn(network("ptb"), {"normal": 4, "reduce": 4}, in_channels=3, input_size=32, classes=10)


def test_plan_uses_the_concat_width() -> None:
    amoeba = lower_genotype(genotype("amoebanet_a"))
    mult = {name: len(ir.output_nodes) for name, ir in amoeba.items()}
    assert mult == {"normal": 3, "reduce": 3}
    plan = plan_cnn(network("cifar"), mult, in_channels=3, input_size=32, classes=10)
    assert plan.cells[0].out_channels == 3 * 36
    assert plan.final_channels == 3 * 144
