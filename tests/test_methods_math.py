"""The search methods made of relaxations, regularizers and perturbations (issue 13):
DrNAS (Dirichlet relaxation, its KL term), FairDARTS (sigmoid relaxation, zero-one loss,
threshold selection), beta-DARTS (Beta-Decay) and SDARTS-RS (random smoothing). Each
method's defining behaviour, every regularizer's gradient against its closed form, the
supernet passes under each relaxation and perturbation, tiny searches of each preset,
a bit-exact resume, and the recurrent supernet."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from _cli import assert_clean_failure
from _search_util import darts_cnn, tiny_network, write_tiny_cnn, write_tiny_corpus, write_tiny_rnn
from genolang.cli import main
from genolang.ir.alphas import CellAlphas
from genolang.ir.derive import derive_genotype
from genolang.ir.lower import lower_space
from genolang.nets.fixed import build_fixed_cnn
from genolang.nets.supernet import NO_OPT, Supernet, SupernetOptions, build_supernet, mixed_edges
from genolang.nets.supernet_rnn import build_rnn_supernet
from genolang.search.components import ComponentSpec
from genolang.search.components.random_smoothing import clip_rows
from genolang.search.entry import run_search
from genolang.search.method import MethodRun, SelectionContext, method_spec
from genolang.search.recipe import SearchConfig, resolve_recipe
from genolang.search.step import image_iteration
from genolang.spec.check import load, load_text
from genolang.spec.checked import GenotypeSpec, NetworkSpec, SpaceSpec
from genolang.spec.lookup import load_named
from genolang.spec.validate import genotype_problems

pytestmark = pytest.mark.usefixtures("one_thread")

D = torch.float64


def build(kind: str, name: str, **params: Any) -> Any:
    return ComponentSpec.of(kind, name, **params).build()


class Alphas(nn.Module):
    """What a regularizer reads of a supernet: its architecture parameters."""

    def __init__(self, *tables: torch.Tensor) -> None:
        super().__init__()
        self.tables = nn.ParameterList([nn.Parameter(t.clone()) for t in tables])

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.tables)


def two_tables(seed: int = 0, scale: float = 1.5) -> Alphas:
    g = torch.Generator().manual_seed(seed)
    return Alphas(scale * torch.randn(14, 8, generator=g, dtype=D), scale * torch.randn(14, 8, generator=g, dtype=D))


def tiny_supernet(options: SupernetOptions | None = None, seed: int = 0) -> Supernet:
    torch.manual_seed(seed)
    return build_supernet(darts_cnn(), tiny_network(), in_channels=1, input_size=8, classes=10, options=options)


# ---- DrNAS ---------------------------------------------------------------------------

def test_drnas_expected_weights_are_the_normalised_concentrations() -> None:
    relax = build("relaxation", "dirichlet")
    g = torch.Generator().manual_seed(0)
    alpha = 1.5 * torch.randn(3, 5, generator=g, dtype=D)
    beta = F.elu(alpha) + 1
    expected = beta / beta.sum(-1, keepdim=True)
    assert torch.allclose(relax.expected(alpha), expected, rtol=0, atol=1e-15)
    # the mean of many draws converges to it: within 5 standard errors of the Dirichlet's variance
    n = 40_000
    torch.manual_seed(0)
    draws = relax(alpha.expand(n, 3, 5))
    assert draws.shape == (n, 3, 5) and bool((draws >= 0).all())
    assert torch.allclose(draws.sum(-1), torch.ones(n, 3, dtype=D), atol=1e-12)
    b0 = beta.sum(-1, keepdim=True)
    stderr = (beta * (b0 - beta) / (b0 ** 2 * (b0 + 1)) / n).sqrt()
    assert bool(((draws.mean(0) - expected).abs() <= 5 * stderr).all()), (draws.mean(0) - expected) / stderr
    # a fresh sample in every pass; derivation and logs read softmax(alpha), as the official genotype()
    first, second = relax(alpha), relax(alpha)
    assert not torch.equal(first, second)
    assert torch.equal(relax.selection(alpha), F.softmax(alpha, dim=-1))


def test_drnas_samples_carry_the_pathwise_gradient() -> None:
    """d/dalpha E[c . w] by the reparameterised samples is the gradient of c . E[w]."""
    relax = build("relaxation", "dirichlet")
    torch.manual_seed(3)
    alpha = (1.5 * torch.randn(2, 4, dtype=D)).requires_grad_()
    c = torch.randn(2, 4, dtype=D)
    (mc,) = torch.autograd.grad((relax(alpha.expand(20_000, 2, 4)) * c).sum((1, 2)).mean(), alpha)
    (exact,) = torch.autograd.grad((relax.expected(alpha) * c).sum(), alpha)
    assert float((mc - exact).abs().max()) < 5e-3, (mc, exact)
    assert float(exact.abs().max()) > 0.1


def kl_dirichlet(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """KL(Dir(a) || Dir(b)) per row, in closed form."""
    a0, b0 = a.sum(-1), b.sum(-1)
    return (torch.lgamma(a0) - torch.lgamma(a).sum(-1) - torch.lgamma(b0) + torch.lgamma(b).sum(-1)
            + ((a - b) * (torch.digamma(a) - torch.digamma(a0).unsqueeze(-1))).sum(-1))


def kl_dirichlet_grad(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """d KL(Dir(a) || Dir(b)) / d a_j = (a_j - b_j) psi'(a_j) - (a0 - b0) psi'(a0)."""
    a0, b0 = a.sum(-1, keepdim=True), b.sum(-1, keepdim=True)
    return (a - b) * torch.polygamma(1, a) - (a0 - b0) * torch.polygamma(1, a0)


def test_the_dirichlet_kl_and_its_gradient_match_the_closed_form() -> None:
    reg = build("regularizer", "dirichlet_kl", scale=0.01)
    model = two_tables()
    loss = reg.loss(model)
    tables = model.arch_parameters()
    betas = [F.elu(t.detach()) + 1 for t in tables]
    ones = [torch.ones_like(b) for b in betas]
    want = 0.01 * sum(kl_dirichlet(b, o).sum() for b, o in zip(betas, ones))
    assert abs(float(loss.detach()) - float(want)) < 1e-12 * max(1.0, abs(float(want)))
    grads = torch.autograd.grad(loss, tables)
    for t, b, o, g in zip(tables, betas, ones, grads):
        elu_slope = torch.where(t.detach() > 0, torch.ones_like(b), torch.exp(t.detach()))
        assert torch.allclose(g, 0.01 * kl_dirichlet_grad(b, o) * elu_slope, rtol=1e-10, atol=1e-14)
    # at alpha = 0 the concentrations are the anchor's: no divergence, no gradient
    zero = Alphas(torch.zeros(3, 4, dtype=D))
    assert float(reg.loss(zero).detach()) == 0.0


def test_the_kl_term_takes_the_place_of_the_alpha_weight_decay() -> None:
    """DrNAS's default 'l2' is the alpha Adam's weight decay 1e-3 (DARTS's); with its KL
    term that weight decay is 0, as the official Architect sets; a given value wins."""
    plain = resolve_recipe(SearchConfig(space="darts_cnn", method="drnas"), "cnn")
    kl = resolve_recipe(SearchConfig(space="darts_cnn", method="drnas", regularizers=("dirichlet_kl",)), "cnn")
    given = resolve_recipe(SearchConfig(space="darts_cnn", method="drnas", regularizers=("dirichlet_kl",),
                                        arch_weight_decay=5e-4), "cnn")
    assert (plain.arch_weight_decay, kl.arch_weight_decay, given.arch_weight_decay) == (1e-3, 0.0, 5e-4)
    cifar = resolve_recipe(SearchConfig(space="darts_cnn", method="drnas", dataset="cifar10"), "cnn")
    assert (cifar.lr, cifar.lr_min, cifar.arch_lr, cifar.batch_size, cifar.epochs) == (0.1, 0.0, 6e-4, 64, 50)
    digits = resolve_recipe(SearchConfig(space="darts_cnn", method="drnas"), "cnn")
    assert (digits.lr, digits.lr_min, digits.arch_lr) == (0.1, 0.0, 6e-2)  # 4x, 2x the digits rates
    spec = method_spec("drnas")
    assert spec.warmup == 0.4 and spec.relaxation.name == "dirichlet" and spec.regularizers == ()
    assert MethodRun(spec, 50).warmup_epochs == 20


def test_drnas_on_the_recurrent_supernet() -> None:
    """The relaxation acts on the recurrent cell's alphas as on a CNN's: a fresh
    Dirichlet sample per forward pass, with a gradient to the alphas."""
    space = load_named("space", "darts_rnn")
    assert isinstance(space, SpaceSpec)
    torch.manual_seed(0)
    model = build_rnn_supernet(space, NetworkSpec("tiny_rnn", "rnn", "embedding", embedding=8, hidden=8), ntokens=20)
    run = MethodRun(method_spec("drnas"), 2)
    run.prepare(model)
    (alpha,) = model.arch_parameters()
    torch.manual_seed(7)
    weights = model.edge_weights()["recurrent"]
    torch.manual_seed(7)
    assert torch.equal(weights, run.relaxation(alpha))
    assert not torch.equal(model.edge_weights()["recurrent"], model.edge_weights()["recurrent"])
    assert torch.equal(model.selection_weights()["recurrent"], F.softmax(alpha, dim=-1))
    log_prob, _ = model(torch.randint(0, 20, (5, 3)), model.init_hidden(3))
    (grad,) = torch.autograd.grad(log_prob.sum(), [alpha])
    assert float(grad.abs().max()) > 0


# ---- FairDARTS -------------------------------------------------------------------------

def test_fair_darts_weights_are_independent_sigmoids_from_zero() -> None:
    model = tiny_supernet()
    run = MethodRun(method_spec("fair_darts"), 2)
    run.prepare(model)
    for alpha in model.arch_parameters():
        assert torch.equal(alpha, torch.zeros_like(alpha))
    with torch.no_grad():
        model.arch_parameters()[0].normal_(0.0, 2.0)
    for name, w in model.edge_weights().items():
        alpha = model.alpha_dict[name]
        assert torch.equal(w, torch.sigmoid(alpha))  # not normalised: rows do not sum to 1
        assert torch.equal(model.selection_weights()[name], torch.sigmoid(alpha))
    assert not torch.allclose(model.edge_weights()["normal"].sum(-1), torch.ones(14))
    r = resolve_recipe(SearchConfig(space="darts_cnn", method="fair_darts", dataset="cifar10"), "cnn")
    assert (r.lr, r.lr_min, r.arch_lr, r.arch_betas, r.batch_size) == (0.005, 0.001, 3e-3, (0.9, 0.999), 128)
    r = resolve_recipe(SearchConfig(space="darts_cnn", method="fair_darts"), "cnn")
    assert (r.lr, r.arch_lr, r.arch_betas, r.batch_size) == (0.005, 3e-1, (0.9, 0.999), 64)


@pytest.mark.parametrize("form", ["l2", "l1"])
def test_the_zero_one_loss_and_its_gradient_match_the_closed_form(form: str) -> None:
    reg = build("regularizer", "zero_one", form=form)
    model = two_tables(seed=1)
    tables = model.arch_parameters()
    loss = reg.loss(model)
    sig = [torch.sigmoid(t.detach()) for t in tables]
    n = sum(s.numel() for s in sig)
    flat = torch.cat([s.reshape(-1) for s in sig])
    want = -10 * ((flat - 0.5) ** 2).mean() if form == "l2" else -10 * (flat - 0.5).abs().mean()
    assert abs(float(loss - want)) < 1e-14
    for s, g in zip(sig, torch.autograd.grad(loss, tables)):
        outer = 2 * (s - 0.5) if form == "l2" else torch.sign(s - 0.5)
        assert torch.allclose(g, -10 * outer * s * (1 - s) / n, rtol=1e-12, atol=1e-16)
    with pytest.raises(Exception, match="form must be one of l2, l1"):
        build("regularizer", "zero_one", form="l3")


def fair_tables(space: SpaceSpec, chosen: dict[str, dict[tuple[str, str, str], float]]) -> dict[str, CellAlphas]:
    """Selection tables of ``space``: 0.1 everywhere but the given (node, input, op) weights."""
    out = {}
    for name, ir in lower_space(space).items():
        edges = tuple((e.src, e.dst) for e in mixed_edges(ir))
        rows = tuple(tuple(chosen.get(name, {}).get((dst, src, op), 0.1) for op in space.ops) for src, dst in edges)
        out[name] = CellAlphas(name, edges, space.ops, rows)
    return out


NORMAL = {("n2", "c0", "sep_conv_3x3"): 0.9, ("n2", "c1", "skip_connect"): 0.95,
          ("n3", "c0", "max_pool_3x3"): 0.6, ("n3", "c1", "avg_pool_3x3"): 0.5,
          ("n4", "n3", "sep_conv_5x5"): 0.9, ("n4", "c0", "dil_conv_3x3"): 0.86,
          ("n5", "n2", "dil_conv_5x5"): 0.3, ("n5", "c1", "skip_connect"): 0.99}
REDUCE = {("n2", "c0", "max_pool_3x3"): 0.9, ("n2", "c1", "sep_conv_3x3"): 0.9,
          ("n3", "c0", "skip_connect"): 0.9, ("n3", "n2", "dil_conv_3x3"): 0.9,
          ("n4", "c1", "sep_conv_5x5"): 0.9, ("n4", "n3", "avg_pool_3x3"): 0.9,
          ("n5", "n2", "skip_connect"): 0.9, ("n5", "n4", "sep_conv_3x3"): 0.85}


def select(space: SpaceSpec, tables: dict[str, CellAlphas], **params: Any) -> tuple[GenotypeSpec, list[str]]:
    selection = build("selection", "threshold", **params)
    model = SimpleNamespace(cell_alphas=lambda: tables)
    geno = selection.select(SelectionContext(space, model, "found"))
    return geno, selection.notes


def test_fair_darts_threshold_selection_drops_weak_ops_as_the_official_cell_does() -> None:
    """threshold_sparse: the DARTS rule, then only ops at sigmoid >= 0.85. A dropped op
    is a 'none' term; n3, left with nothing, leaves the output, and what reads it is
    'none' too (the official DCOCell skips it); the cell concatenates 3 nodes."""
    space = darts_cnn()
    tables = fair_tables(space, {"normal": NORMAL, "reduce": REDUCE})
    geno, notes = select(space, tables)
    normal = {n.name: n.edges for n in geno.cell("normal").nodes}
    assert normal == {"n2": (("skip_connect", "c1"), ("sep_conv_3x3", "c0")),
                      "n3": (("none", "c0"), ("none", "c1")),
                      "n4": (("none", "n3"), ("dil_conv_3x3", "c0")),
                      "n5": (("skip_connect", "c1"), ("none", "n2"))}
    assert geno.cell("normal").output == ("n2", "n4", "n5")
    assert geno.cell("reduce") == derive_genotype(space, tables, "found").cell("reduce")  # all >= 0.85
    assert genotype_problems(geno) == []  # no error, no warning
    assert notes[0].startswith("selection: FairDARTS's threshold_sparse") and "0.85" in notes[0]
    assert "cell normal: under the threshold, written as 'none': max_pool_3x3(c0) -> n3 0.600" in notes[1]
    assert "dil_conv_5x5(n2) -> n5 0.300" in notes[1]
    assert notes[2].endswith(": n3") and notes[3] == "  cell reduce: every kept op reaches it"
    model = build_fixed_cnn(geno, tiny_network(), in_channels=1, input_size=8, classes=10)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    # below=keep: the DARTS rule's genotype, the ops under the threshold listed
    kept, notes = select(space, tables, below="keep")
    assert kept.cells == derive_genotype(space, tables, "found").cells
    assert "cell normal: under the threshold, kept as the DARTS rule chose them (below=keep): " in notes[1]
    assert "avg_pool_3x3(c1) -> n3 0.500" in notes[1] and "sep_conv_5x5" not in notes[1]


def test_the_threshold_selection_keeps_the_darts_choice_where_it_cannot_drop() -> None:
    # a space without a zero op: nothing to write a dropped op with
    space = load_text("genolang 1\nspace nonone {\n    ops = skip_connect, max_pool_3x3, sep_conv_3x3\n"
                      "    cell normal { nodes = 2 }\n    cell reduce { nodes = 2; stride = 2 }\n}\n",
                      "nonone.geno").spaces["nonone"]
    tables = fair_tables(space, {"normal": {("n2", "c0", "sep_conv_3x3"): 0.5, ("n2", "c1", "skip_connect"): 0.9,
                                            ("n3", "n2", "max_pool_3x3"): 0.9, ("n3", "c0", "skip_connect"): 0.9}})
    geno, notes = select(space, tables)
    assert geno.cells == derive_genotype(space, tables, "found").cells
    assert "kept: space 'nonone' has no zero op to write a dropped one with: sep_conv_3x3(c0) -> n2 0.500" in notes[1]
    # every node under the threshold: nothing would remain of the cell
    geno, notes = select(darts_cnn(), fair_tables(darts_cnn(), {}))
    assert geno.cells == derive_genotype(darts_cnn(), fair_tables(darts_cnn(), {}), "found").cells
    assert "kept: dropping them would leave the cell no node" in notes[1]
    with pytest.raises(Exception, match="below must be one of none, keep"):
        build("selection", "threshold", below="drop")


# ---- beta-DARTS --------------------------------------------------------------------------

def test_beta_decay_gradient_is_lambda_softmax_over_the_edge_count() -> None:
    reg = build("regularizer", "beta_decay")
    model = two_tables(seed=2)
    tables = model.arch_parameters()
    reg.set_epoch(0, 4)
    assert reg.lam == 0.0 and float(reg.loss(model)) == 0.0
    reg.set_epoch(3, 4)
    assert reg.lam == 37.5  # 50 * 3 / 4
    loss = reg.loss(model)
    edges = sum(t.shape[0] for t in tables)  # every cell type's edges together: 28
    want = 37.5 * torch.logsumexp(torch.cat([t.detach() for t in tables]), dim=-1).sum() / edges
    assert abs(float(loss - want)) < 1e-12
    for t, g in zip(tables, torch.autograd.grad(loss, tables)):
        assert torch.allclose(g, 37.5 * F.softmax(t.detach(), dim=-1) / edges, rtol=1e-12, atol=1e-16)
    reg.set_epoch(99, 100)
    assert reg.lam == 49.5  # the paper's 50 * e / 100 in its last epoch
    spec = method_spec("beta_darts")
    assert [r.describe() for r in spec.regularizers] == ["beta_decay(weight=50.0)"]


# ---- SDARTS-RS ---------------------------------------------------------------------------

def test_random_smoothing_clips_rows_as_sdarts() -> None:
    noise = build("perturbation", "random_smoothing")
    noise.set_epoch(0, 50)
    assert noise.eps == pytest.approx(0.03)
    noise.set_epoch(49, 50)
    assert noise.eps == pytest.approx(0.03 + 0.27 * 49 / 50)  # 0.2946, the official last epoch
    rows = torch.tensor([[0.5, -0.2, 1.4, 0.3], [-0.3, -0.1, -0.2, -0.5], [0.2, 0.2, 0.2, 0.2]])
    assert torch.allclose(clip_rows(rows), torch.tensor([[0.5, 0.0, 1.0, 0.3], [0.0, 1.0, 0.0, 0.0],
                                                         [0.25, 0.25, 0.25, 0.25]]) / torch.tensor(
                                                             [[1.8], [1.0], [1.0]]))


def test_random_smoothing_perturbs_the_weight_step_only() -> None:
    """One SDARTS-RS iteration: the architecture step's forward sees softmax(alpha); the
    weight step's sees softmax(alpha) + U(-eps, eps), clipped to [0, 1] and
    renormalised per row (constants: no gradient to the alphas)."""
    model = tiny_supernet()
    run = MethodRun(method_spec("sdarts_rs"), epochs=2)
    run.prepare(model)
    run.start_epoch(2)  # eps = 0.03 + 0.27 / 2
    eps = 0.165
    assert run.perturbation is not None and run.perturbation.eps == pytest.approx(eps)
    seen: list[dict[str, Any]] = []
    real = model.edge_weights

    def spy() -> dict[str, torch.Tensor]:
        rng = torch.get_rng_state()
        clean = {name: F.softmax(model.alpha_dict[name].detach(), dim=-1) for name in model.irs}
        out = real()
        seen.append({"perturbed": model.perturbation is not None, "rng": rng, "clean": clean, "out": out})
        return out

    model.edge_weights = spy  # type: ignore[method-assign]
    weights = model.weight_parameters()
    opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    recipe = SimpleNamespace(order=1, arch_lr=3e-3, arch_betas=(0.5, 0.999), arch_weight_decay=1e-3, hessian="fd")
    architect = run.architect(model, opt, recipe)
    g = torch.Generator().manual_seed(0)
    train = (torch.randn(4, 1, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g))
    valid = (torch.randn(4, 1, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g))
    image_iteration(model, architect, opt, weights, train, valid, 0.025, 5.0, method=run)
    arch, step = seen
    assert not arch["perturbed"] and step["perturbed"] and model.perturbation is None
    for name in model.irs:
        assert torch.equal(arch["out"][name].detach(), arch["clean"][name])
        assert arch["out"][name].requires_grad
    torch.set_rng_state(step["rng"])  # the weight step's draws, replayed
    for name in model.irs:
        clean, out = step["clean"][name], step["out"][name]
        drawn = torch.empty_like(clean).uniform_(-eps, eps)
        assert float(drawn.abs().max()) <= eps
        assert torch.equal(out, clip_rows(clean + drawn))
        assert not out.requires_grad and not torch.equal(out, clean)
        assert bool(((out >= 0) & (out <= 1)).all())
        assert torch.allclose(out.sum(-1), torch.ones(out.shape[0]), atol=1e-6)


# ---- the supernet passes -----------------------------------------------------------------

def outputs(model: Supernet, seed: int, alphas: bool) -> dict[str, torch.Tensor]:
    """Logits, gradients (of the alphas too where ``alphas``) and running statistics of
    one training-mode pass, and eval-mode logits, from the random state ``seed``."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 1, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g)
    torch.manual_seed(seed)
    model.train()
    logits = model(x)
    params = [(n, p) for n, p in model.named_parameters() if alphas or not n.startswith("alphas.")]
    grads = torch.autograd.grad(F.cross_entropy(logits, y), [p for _, p in params])
    out = {"logits": logits.detach(), **{f"grad:{n}": g for (n, _), g in zip(params, grads)}}
    out.update({f"buffer:{n}": b.detach().clone() for n, b in model.state_dict().items() if "running" in n})
    model.eval()
    with torch.no_grad():
        out["eval_logits"] = model(x)
    return out


def test_the_passes_compute_the_unoptimized_supernet_under_each_relaxation_and_perturbation() -> None:
    """Dirichlet samples, sigmoid weights and randomly smoothed weights: the optimized
    supernet (every pass, channels-last) gives the paper's supernet's logits, weight and
    alpha gradients and running statistics (float32 rounding)."""
    models = {"plain": tiny_supernet(NO_OPT, seed=4), "fast": tiny_supernet(SupernetOptions(), seed=4)}
    noise = build("perturbation", "random_smoothing", epsilon_start=0.3)
    cases = [("dirichlet", None, True), ("sigmoid", None, True), ("softmax", noise, False)]
    for relaxation, perturbation, alphas in cases:
        results = {}
        for key, model in models.items():
            model.relaxation = build("relaxation", relaxation)
            model.perturbation = perturbation
            with torch.no_grad():
                for alpha in model.arch_parameters():
                    alpha.copy_(torch.linspace(-1.5, 1.5, alpha.numel()).reshape(alpha.shape))
            results[key] = outputs(model, seed=11, alphas=alphas)
        plain, fast = results["plain"], results["fast"]
        assert plain.keys() == fast.keys()
        assert any(k.startswith("grad:alphas.") for k in plain) == alphas
        for name, want in plain.items():
            err = float((fast[name] - want).abs().max())
            floor = 1e-6 if name.startswith("buffer:") else 0.0
            assert err <= max(1e-4 * float(want.abs().max()), floor), (relaxation, name, err)


# ---- searches ------------------------------------------------------------------------------

def search(tmp: Path, method: str, *args: str, epochs: str = "1", limit: str = "1") -> tuple[int, str, Path, Path]:
    net = write_tiny_cnn(tmp)
    out, run = tmp / f"{method}.geno", tmp / f"run-{method}"
    argv = ["search", "darts_cnn", "--network", str(net), "--epochs", epochs, "--batch-size", "8", "--limit", limit,
            "--method", method, "--out", str(out), "--run-dir", str(run), "--quiet", *args]
    result = CliRunner().invoke(main, argv)
    return result.exit_code, result.output, out, run


@pytest.mark.parametrize("method", ["drnas", "fair_darts", "beta_darts", "sdarts_rs"])
def test_each_method_searches_the_tiny_skeleton(tmp_path: Path, method: str) -> None:
    code, output, out, run = search(tmp_path, method)
    assert code == 0, output
    text = out.read_text(encoding="utf-8")
    assert text.startswith(f"# Found by 'genolang search' ({method}: relaxation ")
    geno = load(str(out)).single("genotype")
    assert [c.name for c in geno.cells] == ["normal", "reduce"]
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["method"] == method and run_json["recipe"]["method"]["name"] == method
    if method == "fair_darts":
        assert "# selection: FairDARTS's threshold_sparse" in text and "# sigmoid alphas at the end" in text
        assert "#   n2 <- c0: none 0.500" in text  # a zero op's alpha has no gradient
    else:
        assert "# softmax alphas at the end" in text


def test_method_options_fail_cleanly(tmp_path: Path) -> None:
    code, output, out, _ = search(tmp_path, "fair_darts", "--set", "zero_one.form=l3")
    assert_clean_failure(code, output, "form must be one of l2, l1", status=2)
    assert not out.exists()
    result = CliRunner().invoke(main, ["search", "--list-methods"])
    assert result.exit_code == 0
    for line in ("drnas: relaxation dirichlet; selection magnitude; warm-up 0.4 of the epochs",
                 ("fair_darts: relaxation sigmoid; regularizer zero_one(form=l2, weight=10.0); "
                  "selection threshold(below=none, threshold=0.85)"),
                 "beta_darts: relaxation softmax; regularizer beta_decay(weight=50.0)",
                 "sdarts_rs: relaxation softmax; perturbation random_smoothing(epsilon=0.3, epsilon_start=0.03)",
                 "dirichlet_kl(scale=0.001, anchor=1.0)", "threshold(threshold=0.85, below=none)"):
        assert line in result.output, line


class Interrupt(Exception):
    pass


def test_a_drnas_search_resumes_bit_identically(tmp_path: Path) -> None:
    """Dirichlet draws in every forward pass and a warm-up (epoch 1 of 2 frozen): the
    resumed run draws what the uninterrupted one drew."""
    net = write_tiny_cnn(tmp_path)
    config = SearchConfig(space="darts_cnn", network=str(net), epochs=2, batch_size=8, limit=1, seed=1,
                          method="drnas", regularizers=("dirichlet_kl",))
    run_search(config, run_dir=tmp_path / "whole", out=tmp_path / "whole.geno")

    def stop_after_first_epoch(p) -> None:  # type: ignore[no-untyped-def]
        if p.kind == "epoch_end" and p.epoch == 1:
            raise Interrupt()

    with pytest.raises(Interrupt):
        run_search(config, run_dir=tmp_path / "parts", out=tmp_path / "parts.geno", progress=stop_after_first_epoch)
    first = torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=True)
    run_search(SearchConfig(space="darts_cnn"), run_dir=tmp_path / "parts", out=tmp_path / "parts.geno", resume=True)
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    parts = torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=True)
    assert whole["epoch"] == parts["epoch"] == 2
    for key, value in whole["model"].items():
        assert torch.equal(value, parts["model"][key]), key
    for pid, state in whole["arch_optimizer"]["state"].items():
        for k, v in state.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(parts["arch_optimizer"]["state"][pid][k])), k
    assert torch.equal(whole["rng"]["torch"], parts["rng"]["torch"])
    # the warm-up froze the alphas in epoch 1; epoch 2 moved them
    assert first["arch_optimizer"]["state"] == {} and whole["arch_optimizer"]["state"] != {}
    assert not torch.equal(first["model"]["alphas.normal"], whole["model"]["alphas.normal"])
    assert (tmp_path / "whole.geno").read_text().replace("genotype whole", "genotype parts") == \
        (tmp_path / "parts.geno").read_text()


def test_sdarts_rs_searches_the_recurrent_space(tmp_path: Path) -> None:
    corpus = write_tiny_corpus(tmp_path / "ptb")
    net = write_tiny_rnn(tmp_path)
    argv = ["search", "darts_rnn", "--network", str(net), "--dataset", "ptb", "--data-dir", str(corpus),
            "--epochs", "1", "--batch-size", "4", "--limit", "2", "--method", "sdarts_rs",
            "--out", str(tmp_path / "rnn.geno"), "--run-dir", str(tmp_path / "r"), "--quiet"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    geno = load(str(tmp_path / "rnn.geno")).single("genotype")
    assert geno.kind == "rnn"
    recipe = json.loads((tmp_path / "r" / "run.json").read_text())["recipe"]
    assert recipe["method"]["perturbation"]["name"] == "random_smoothing"
    assert (recipe["lr"], recipe["arch_lr"]) == (20.0, 3e-3)  # DARTS's recurrent recipe
