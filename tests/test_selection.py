"""Selections that fine-tune or sample (DARTS-PT's perturbation selection, random search
with weight sharing): their defining behaviour on hand-made scores, the sampler's rule
and uniformity, the supernet passes under their edge weights, and tiny searches with
bit-for-bit resume (during DARTS-PT's fine-tuning too)."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from _search_util import darts_cnn, tiny_network, write_tiny_cnn
from genolang.ir.derive import derive_genotype, genotype_terms
from genolang.ir.lower import lower_space
from genolang.nets.supernet import NO_OPT, Supernet, SupernetOptions, build_supernet
from genolang.run.runtime import seed_everything
from genolang.search.components import perturbation as P
from genolang.search.components.perturbation import Perturbation
from genolang.search.components.rank_samples import RankSamples, genotype_of
from genolang.search.components.uniform_paths import CellPaths, UniformPaths, cell_paths, weighted_subset
from genolang.search.entry import run_search
from genolang.search.method import SelectionContext
from genolang.search.recipe import SearchConfig
from genolang.spec.check import load, load_text
from genolang.spec.checked import NetworkSpec, SpaceSpec
from genolang.spec.validate import genotype_problems

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_SPACE = """genolang 1

space tiny {
    ops = none, max_pool_3x3, skip_connect, sep_conv_3x3
    cell normal { nodes = 2 }
    cell reduce { nodes = 2; stride = 2 }
    derive { exclude = none CAPS }
}
"""


def tiny_space(caps: str = "") -> SpaceSpec:
    return load_text(TINY_SPACE.replace("CAPS", caps), "tiny.geno").spaces["tiny"]


def tiny_supernet(space: SpaceSpec, seed: int = 0) -> Supernet:
    torch.manual_seed(seed)
    return build_supernet(space, tiny_network(), in_channels=1, input_size=8, classes=10)


# ---- DARTS-PT ------------------------------------------------------------------------

# the op that matters on each edge of the hand-made score (skip on one edge), and how much
# each input matters: c1 most, then c0, then n2
PREFERRED = {("normal", "n2<-c0"): "skip_connect"}
SOURCE_WEIGHT = {"c0": 1.0, "c1": 2.0, "n2": 0.5}


class HandMade:
    """A selection context whose 'validation accuracy' is a hand-made function of the
    edge weights the supernet would use: the sum over edges of how much the edge's
    input matters times the weight of its preferred op."""

    def __init__(self, space: SpaceSpec, model: Supernet, interval: int) -> None:
        self.space, self.model = space, model
        self.tuned: list[float] = []
        self.epochs: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []
        self.context = SelectionContext(space, model, "found", score=self.score, fine_tune=self.tuned.append,
                                        train_epoch=self.train_epoch, lr=0.025)
        self.context.record = self.records.append

    def score(self, batches: int | None = None, train_mode: bool = False) -> float:
        assert batches is None and train_mode  # the whole split, batch statistics
        total = 0.0
        with torch.no_grad():
            weights = self.model.edge_weights()
        for cell, w in weights.items():
            edges = self.model.cell_alphas()[cell].edges
            for row, (src, dst) in enumerate(edges):
                op = PREFERRED.get((cell, f"{dst}<-{src}"), "sep_conv_3x3")
                total += SOURCE_WEIGHT[src] * float(w[row, self.space.ops.index(op)])
        return total

    def train_epoch(self, state: Mapping[str, Any], planned: int) -> Mapping[str, Any]:
        json.dumps(state)  # plain data, for the checkpoint
        self.epochs.append({"state": dict(state), "planned": planned})
        self.context.epochs_done += 1
        return {"epoch": self.context.epochs_done}


def test_darts_pt_keeps_the_op_that_matters_and_the_inputs_that_matter() -> None:
    space = tiny_space()
    model = tiny_supernet(space)
    hand = HandMade(space, model, interval=2)
    random.seed(0)
    geno = Perturbation(interval=2).select(hand.context)
    assert model.projection is None  # the supernet is left as it was
    for cell in geno.cells:
        nodes = {n.name: set(n.edges) for n in cell.nodes}
        first = "skip_connect" if cell.name == "normal" else "sep_conv_3x3"
        assert nodes["n2"] == {(first, "c0"), ("sep_conv_3x3", "c1")}
        assert nodes["n3"] == {("sep_conv_3x3", "c0"), ("sep_conv_3x3", "c1")}  # n3 <- n2 matters least
    # 5 op decision steps and 1 node step per cell type: 2 epochs after each but the last, 1 after it
    assert hand.tuned == [0.0025]
    assert len(hand.epochs) == 2 * 5 + 1 and {e["planned"] for e in hand.epochs} == {11}
    ops = [r for r in hand.records if r["kind"] == "op"]
    assert len(ops) == 10 and all(r["scores"][r["kept"]] == min(r["scores"].values()) for r in ops)
    assert all("none" not in r["scores"] for r in ops)  # the derive rule's exclusions are never kept
    decisions = [r for r in hand.records if r["kind"] == "node"]
    assert [(r["cell"], r["node"], r["kept"]) for r in decisions] == [("normal", "n3", ["n3<-c0", "n3<-c1"]),
                                                                     ("reduce", "n3", ["n3<-c0", "n3<-c1"])]
    assert decisions[0]["rounds"][0]["removed"] == "n3<-n2"


def test_darts_pt_obeys_the_derive_rule_and_its_caps() -> None:
    space = tiny_space("; cap sep_conv_3x3 = 1")
    model = tiny_supernet(space)
    hand = HandMade(space, model, interval=0)
    random.seed(3)
    geno = Perturbation(interval=0).select(hand.context)
    assert hand.epochs == [] and hand.tuned == [0.0025]  # interval 0: no fine-tuning
    assert all(sum(op == "sep_conv_3x3" for n in c.nodes for op, _ in n.edges) <= 1 for c in geno.cells)
    assert genotype_problems(geno) == []  # not even a warning: the rule's exclusions, distinct inputs, caps
    # the genotype is the decisions
    decided = {}
    for cell in space.cell_names:
        rows = {}
        for r in hand.records:
            if r["cell"] == cell and r["kind"] == "op":
                rows[r["edge"]] = r["kept"]
        decided[cell] = rows
    kept = genotype_terms(geno)
    for cell, terms in kept.items():
        assert all(decided[cell][f"{node}<-{src}"] == op for node, op, src in terms)


def test_darts_pt_decides_in_a_seeded_order() -> None:
    def order(seed: int) -> list[tuple[str, str]]:
        space = tiny_space()
        hand = HandMade(space, tiny_supernet(space), interval=0)
        random.seed(seed)
        Perturbation(interval=0).select(hand.context)
        return [(r["cell"], r.get("edge") or r["node"]) for r in hand.records]

    assert order(5) == order(5)
    assert order(5) != order(6)


# ---- random search with weight sharing -------------------------------------------------

def paths_of(space: SpaceSpec, cell: str = "normal") -> CellPaths:
    return cell_paths(space, SimpleNamespace(irs=lower_space(space)), cell)


def test_sampled_cells_are_one_hot_and_obey_the_derive_rule() -> None:
    space = darts_cnn()
    paths = paths_of(space)
    rng = random.Random(1)
    ops = Counter[str]()
    inputs = Counter[tuple[str, str]]()
    edges = {row: (src, node.name) for node in paths.nodes for row, src in zip(node.rows, node.sources)}
    for i in range(3000):
        terms = paths.sample(rng)
        mask = paths.mask(terms)
        assert mask.shape == (14, 8) and set(mask.unique().tolist()) <= {0.0, 1.0}
        assert (mask.sum(1) <= 1).all() and int(mask[:, space.ops.index("none")].sum()) == 0
        per_node = Counter(edges[row][1] for row, _ in terms)
        assert per_node == {"n2": 2, "n3": 2, "n4": 2, "n5": 2}  # keep = 2 distinct inputs
        ops.update(space.ops[c] for _, c in terms)
        inputs.update(edges[row] for row, _ in terms if edges[row][1] == "n5")
        if i < 20:
            genotype_of(space, {"normal": paths, "reduce": paths_of(space, "reduce")},
                        {"normal": terms, "reduce": paths_of(space, "reduce").sample(rng)}, "g")
    # uniform: 7 ops over 24,000 terms (3,429 each, sd ~54), n5's 5 inputs 2/5 of 3,000 each (1,200, sd ~27)
    assert set(ops) == set(space.ops) - {"none"} and all(abs(n - 24000 / 7) < 250 for n in ops.values())
    assert all(abs(n - 1200) < 120 for n in inputs.values()) and len(inputs) == 5


def test_caps_and_weighted_subsets_are_sampled_exactly() -> None:
    capped = paths_of(tiny_space("; cap sep_conv_3x3 = 1"))
    rng = random.Random(2)
    seen = Counter[int]()
    for _ in range(500):
        terms = capped.sample(rng)
        n_sep = sum(1 for _, c in terms if c == 3)
        assert n_sep <= 1
        seen[n_sep] += 1
    assert seen[0] and seen[1]
    # subsets in proportion to the products of their weights: 2 : 3 : 6 of 11
    counts = Counter(tuple(weighted_subset([1, 2, 3], 2, rng) or ()) for _ in range(11000))
    for subset, want in {(0, 1): 2000, (0, 2): 3000, (1, 2): 6000}.items():
        assert abs(counts[subset] - want) < 250, counts


class Ranked:
    """A context scoring the cell the supernet runs by hand: few batches count its
    sep_conv_3x3 terms, the whole split adds half its skip connections."""

    def __init__(self, space: SpaceSpec, model: Supernet) -> None:
        self.space, self.model = space, model
        self.calls: list[int | None] = []
        self.context = SelectionContext(space, model, "best", score=self.score)

    def cell_counts(self) -> tuple[int, int]:
        with torch.no_grad():
            weights = self.model.edge_weights()
        sep = sum(int(w[:, self.space.ops.index("sep_conv_3x3")].sum()) for w in weights.values())
        skip = sum(int(w[:, self.space.ops.index("skip_connect")].sum()) for w in weights.values())
        return sep, skip

    def score(self, batches: int | None = None, train_mode: bool = False) -> float:
        assert not train_mode
        self.calls.append(batches)
        sep, skip = self.cell_counts()
        return sep if batches is not None else sep + 0.5 * skip


def test_ranking_keeps_the_best_of_hand_scored_samples() -> None:
    space = darts_cnn()
    model = build_supernet(space, tiny_network(), in_channels=1, input_size=8, classes=10)
    ranked = Ranked(space, model)
    random.seed(4)
    geno = RankSamples(samples=30, batches=3, top=5).select(ranked.context)
    assert ranked.calls == [3] * 30 + [None] * 5 and model.projection is None
    # the same draws by hand
    random.seed(4)
    paths = {c: paths_of(space, c) for c in space.cell_names}
    archs = [{c: paths[c].sample(random) for c in space.cell_names} for _ in range(30)]

    def count(arch: dict[str, list[tuple[int, int]]], op: str) -> int:
        return sum(1 for terms in arch.values() for _, c in terms if space.ops[c] == op)

    few = sorted(range(30), key=lambda i: (-count(archs[i], "sep_conv_3x3"), i))[:5]
    best = max(few, key=lambda i: (count(archs[i], "sep_conv_3x3") + 0.5 * count(archs[i], "skip_connect"),
                                   -few.index(i)))
    assert genotype_terms(geno) == genotype_terms(genotype_of(space, paths, archs[best], "x"))
    assert geno.name == "best" and genotype_problems(geno) == []


def test_uniform_paths_samples_in_training_and_replays_its_evaluations() -> None:
    space = darts_cnn()
    model = tiny_supernet(space)
    relax = UniformPaths()
    model.relaxation = relax
    relax.prepare(model)
    random.seed(0)
    before = random.getstate()
    model.eval()
    with torch.no_grad():
        first = [model.edge_weights()["normal"] for _ in range(3)]
    assert random.getstate() == before  # evaluations leave the training draws alone
    assert not torch.equal(first[0], first[1])
    model.train()
    train = model.edge_weights()["normal"]  # a training draw restarts the evaluation sequence
    assert random.getstate() != before and train.shape == (14, 8)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.edge_weights()["normal"], first[0])


# ---- the passes under the selections' edge weights ---------------------------------------

NET = NetworkSpec("passes_net", "cnn", "cifar", channels=4, layers=4, input_size=16)


def one_step(options: SupernetOptions, weights: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_supernet(darts_cnn(), NET, in_channels=3, input_size=16, classes=10, options=options)
    with torch.no_grad():
        for alpha in model.arch_parameters():
            alpha.normal_(0.0, 0.7)
    if weights == "random_ws":
        relax = UniformPaths()
        model.relaxation = relax
        relax.prepare(model)
        random.seed(0)
    else:  # DARTS-PT midway: some edges one-hot, some removed, the rest softmax, one op on trial
        pt = Perturbation()
        pt._cells = P._cells(model.space, model)
        pt._install(model, {"decided": {"normal": {0: 4, 1: -1, 5: 3}, "reduce": {2: 7, 3: -1}}})
        pt._trial = ("normal", 6, 5)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, 16, 16, generator=g), torch.randint(0, 10, (4,), generator=g)
    model.train()
    logits = model(x)
    params = list(model.named_parameters())
    grads: list[torch.Tensor | None] = list(torch.autograd.grad(F.cross_entropy(logits, y), [p for _, p in params],
                                                               allow_unused=True))
    out = {"logits": logits.detach()}
    out.update({f"grad:{n}": torch.zeros_like(p) if g is None else g for (n, p), g in zip(params, grads)})
    out.update({f"buffer:{n}": b.detach().clone() for n, b in model.state_dict().items() if "running" in n})
    return out


@pytest.mark.parametrize("weights", ["random_ws", "darts_pt"])
def test_the_passes_compute_the_same_under_the_selections_weights(weights: str) -> None:
    want = one_step(NO_OPT, weights)
    got = one_step(SupernetOptions(), weights)
    assert got.keys() == want.keys()
    for name, w in want.items():
        scale = float(w.abs().max())
        err = float((got[name].float() - w.float()).abs().max())
        assert err <= max(1e-4 * scale, 1e-6 if name.startswith("buffer:") else 0.0), (name, err, scale)
    if weights == "darts_pt":  # decided edges' alphas get no gradient; undecided ones do
        g = want["grad:alphas.normal"]
        assert float(g[[0, 1, 5]].abs().max()) == 0.0 and float(g[[2, 3, 4]].abs().max()) > 0.0


# ---- tiny searches ------------------------------------------------------------------------

class Interrupt(Exception):
    pass


def stop_at(epoch: int):  # type: ignore[no-untyped-def]
    def progress(p) -> None:  # type: ignore[no-untyped-def]
        if p.kind == "epoch_end" and p.epoch == epoch:
            raise Interrupt()

    return progress


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def same_runs(a: Path, b: Path) -> None:
    """Two run folders hold the same checkpoint, metrics, selection log and genotype."""
    ca, cb = (torch.load(p / "checkpoint.pt", weights_only=True) for p in (a, b))
    assert ca["epoch"] == cb["epoch"]
    for key, value in ca["model"].items():
        assert torch.equal(value, cb["model"][key]), key
    assert ca.get("selection") == cb.get("selection")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_jsonl(a / "metrics.jsonl")) == strip(read_jsonl(b / "metrics.jsonl"))
    for name in ("selection.jsonl", "alphas.jsonl"):
        assert read_jsonl(a / name) == read_jsonl(b / name), name
    assert (a / "genotype.geno").read_text() == (b / "genotype.geno").read_text()


def test_a_darts_pt_search_resumes_bit_for_bit_during_its_fine_tuning(tmp_path: Path) -> None:
    (tmp_path / "tiny.geno").write_text(TINY_SPACE.replace("CAPS", ""))
    net = write_tiny_cnn(tmp_path)
    config = SearchConfig(space=str(tmp_path / "tiny.geno"), network=str(net), epochs=1, batch_size=8, limit=1,
                          method="darts_pt")
    whole = run_search(config, run_dir=tmp_path / "whole")
    metrics = read_jsonl(tmp_path / "whole" / "metrics.jsonl")
    # 1 search epoch, then 5 + 1 decision steps with 1 epoch after each
    assert [m.get("phase", "search") for m in metrics] == ["search"] + ["selection"] * 6
    assert all(m["lr"] == 0.0025 for m in metrics[1:])
    assert len(list((tmp_path / "whole").glob("epoch-*.geno"))) == 7
    log = read_jsonl(tmp_path / "whole" / "selection.jsonl")
    assert [r["kind"] for r in log].count("op") == 10 and [r["kind"] for r in log].count("node") == 2
    assert "DARTS-PT perturbation selection: 10 op decisions" in whole.text
    found = load(str(tmp_path / "whole" / "genotype.geno")).single("genotype")
    assert genotype_problems(found) == []
    # interrupted after the selection's third epoch (epoch 4), resumed with the options left out
    with pytest.raises(Interrupt):
        run_search(config, run_dir=tmp_path / "parts", progress=stop_at(4))
    assert torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=True)["selection"]["step"] == 2
    run_search(SearchConfig(space=str(tmp_path / "tiny.geno")), run_dir=tmp_path / "parts", resume=True)
    same_runs(tmp_path / "whole", tmp_path / "parts")


def test_a_random_ws_search_trains_no_alpha_and_resumes_bit_for_bit(tmp_path: Path) -> None:
    (tmp_path / "tiny.geno").write_text(TINY_SPACE.replace("CAPS", ""))
    net = write_tiny_cnn(tmp_path)
    space = str(tmp_path / "tiny.geno")
    config = SearchConfig(space=space, network=str(net), epochs=2, batch_size=8, limit=2, method="random_ws",
                          params=(("rank_samples.samples", 4), ("rank_samples.top", 2)))
    whole = run_search(config, run_dir=tmp_path / "whole")
    ckpt = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    assert ckpt["arch_optimizer"]["state"] == {}  # no architecture step ever ran
    seed_everything(0)
    network = load(str(net)).single("network")
    assert isinstance(network, NetworkSpec)
    fresh = build_supernet(tiny_space(), network, in_channels=1, input_size=8, classes=10)
    for name in ("normal", "reduce"):
        assert torch.equal(ckpt["model"][f"alphas.{name}"], fresh.alpha_dict[name].detach())
    assert ckpt["recipe"]["grad_clip"] == 5.0  # the paper's 0.25 is for CIFAR-10 only
    log = read_jsonl(tmp_path / "whole" / "selection.jsonl")
    assert [r["kind"] for r in log] == ["sample"] * 4 + ["rescore"] * 2 + ["chosen"]
    chosen = log[-1]
    assert chosen["full_score"] == max(r["full_score"] for r in log if r["kind"] == "rescore")
    assert genotype_problems(whole.genotype) == []
    with pytest.raises(Interrupt):
        run_search(config, run_dir=tmp_path / "parts", progress=stop_at(1))
    run_search(SearchConfig(space=space), run_dir=tmp_path / "parts", resume=True)
    same_runs(tmp_path / "whole", tmp_path / "parts")


def test_derive_on_decided_weights_is_the_decisions() -> None:
    """What DARTS-PT's last step relies on: the derive rule of a space on one-hot and
    zero rows returns exactly the one-hot terms (here for darts_cnn's normal cell)."""
    space = darts_cnn()
    model = tiny_supernet(space)
    pt = Perturbation()
    pt._cells = P._cells(space, model)
    cell = pt._cells[0]
    decided = {}
    for node in ("n2", "n3", "n4", "n5"):
        rows = cell.node_rows(node)
        for i, row in enumerate(rows):
            decided[row] = (4 + i) % 8 if i < 2 else P.REMOVED
    pt._install(model, {"decided": {"normal": decided, "reduce": {}}})
    geno = derive_genotype(space, model.cell_alphas())
    terms = {(n, op, src) for n, op, src in genotype_terms(geno)["normal"]}
    want = {(cell.nodes[r], space.ops[c], cell.edges[r].partition("<-")[2]) for r, c in decided.items()
            if c != P.REMOVED}
    assert terms == want


def test_second_order_is_refused_for_a_method_without_architecture_steps(tmp_path: Path) -> None:
    """random_ws never takes an architecture step: --order 2 would silently be first order
    (a recorded recipe saying otherwise), so the search and the bench refuse it, on a
    fresh run and on a resume."""
    from genolang.bench import BenchConfig, run_bench
    from genolang.errors import UsageError
    from genolang.search.recipe import resolve_recipe

    with pytest.raises(UsageError, match="method 'random_ws' takes none"):
        resolve_recipe(SearchConfig(space="darts_cnn", method="random_ws", order=2), "cnn")
    saved = resolve_recipe(SearchConfig(space="darts_cnn", method="random_ws"), "cnn")
    assert saved.order == 1
    with pytest.raises(UsageError, match="leave the order out"):
        resolve_recipe(SearchConfig(space="darts_cnn", order=2), "cnn", saved=saved)
    assert resolve_recipe(SearchConfig(space="darts_cnn", order=2), "cnn").order == 2  # darts has the step
    with pytest.raises(UsageError, match="takes none"):
        run_bench("search-step", BenchConfig(method="random_ws", order=2, iters=1, warmup=0))
