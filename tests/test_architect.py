"""The architect: first-order gradients equal plain autograd, the unrolled step is the
weight optimizer's next step, and the finite-difference second-order gradient matches
the exact one (double backward through the unrolled step)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from _search_util import darts_cnn, tiny_network
from genolang.bench import count_aten_ops
from genolang.nets.supernet import Supernet, build_supernet
from genolang.passes import DEFAULT_PASSES
from genolang.search.architect import Architect, ArchitectConfig, Objective

pytestmark = pytest.mark.usefixtures("one_thread")


Batch = tuple[torch.Tensor, torch.Tensor]


def setup(order: int = 1, mode: str = "fd", dtype: torch.dtype = torch.float32, seed: int = 0,
          fd_radius: float = 0.01) -> tuple[Supernet, torch.optim.SGD, Architect, list[Batch]]:
    torch.manual_seed(seed)
    model = build_supernet(darts_cnn(), tiny_network(), in_channels=1, input_size=8, classes=10).to(dtype)
    with torch.no_grad():  # alphas away from uniform, so every term matters
        for a in model.arch_parameters():
            a.normal_(0.0, 0.5)
    opt = torch.optim.SGD(model.weight_parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    arch = Architect(model, opt, ArchitectConfig(order=order, mode=mode, fd_radius=fd_radius))
    g = torch.Generator().manual_seed(seed + 1)
    batches = [(torch.randn(6, 1, 8, 8, generator=g, dtype=dtype), torch.randint(0, 10, (6,), generator=g))
               for _ in range(3)]
    return model, opt, arch, batches


def objective(x: torch.Tensor, y: torch.Tensor) -> Objective:
    return lambda call: F.cross_entropy(call(x), y)  # call runs the supernet: logits


def sgd_step(model: Supernet, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    weights = model.weight_parameters()
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights)
    for p, g in zip(weights, grads):
        p.grad = g
    opt.step()
    opt.zero_grad(set_to_none=True)


def test_first_order_gradient_equals_autograd_backward() -> None:
    model, _, arch, batches = setup()
    xv, yv = batches[0]
    ours = arch.alpha_gradients(objective(xv, yv))
    assert all(p.grad is None for p in model.parameters())  # alpha-only gradients
    F.cross_entropy(model(xv), yv).backward()
    for g, alpha in zip(ours, model.arch_parameters()):
        assert alpha.grad is not None
        assert torch.allclose(g, alpha.grad, rtol=1e-5, atol=1e-7)
        assert float(g.abs().max()) > 0


def test_an_architect_step_moves_only_the_alphas_and_no_running_statistic() -> None:
    model, _, arch, batches = setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    arch.step(objective(*batches[0]))
    after = model.state_dict()
    for name, value in before.items():
        changed = not torch.equal(value, after[name])
        assert changed == name.startswith("alphas."), name
    assert all(p.grad is None for p in model.weight_parameters())
    group = arch.optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (3e-4, (0.5, 0.999), 1e-3)


def test_the_unrolled_weights_are_the_optimizers_next_step() -> None:
    model, opt, arch, batches = setup(order=2)
    sgd_step(model, opt, *batches[2])  # fill the momentum buffers
    x, y = batches[1]
    eta = opt.param_groups[0]["lr"]
    unrolled = arch.unrolled_weights(objective(x, y), eta)
    sgd_step(model, opt, x, y)
    for name, p in model.named_weight_parameters():
        assert torch.allclose(unrolled[name], p, rtol=1e-5, atol=1e-6), name


def test_finite_difference_second_order_matches_the_exact_gradient() -> None:
    """float64, radius 1e-5 (the smooth regime; see the architect's note on the paper's
    0.01): the whole second-order gradient agrees with double backward through the
    unrolled step to 1e-6 relative to its norm (measured ~1e-9)."""
    grads = {}
    for mode in ("fd", "exact"):
        model, opt, arch, batches = setup(order=2, mode=mode, dtype=torch.float64, fd_radius=1e-5)
        sgd_step(model, opt, *batches[2])
        eta = opt.param_groups[0]["lr"]
        grads[mode] = arch.alpha_gradients(objective(*batches[0]), objective(*batches[1]), eta)
    first = setup(order=1, dtype=torch.float64)
    for fd, exact in zip(grads["fd"], grads["exact"]):
        scale = float(exact.norm())
        assert scale > 0
        assert float((fd - exact).norm()) <= 1e-6 * scale
    # and the second-order term is not negligible here: it changes the gradient
    model, opt, arch, batches = first
    sgd_step(model, opt, *batches[2])
    g1 = arch.alpha_gradients(objective(*batches[0]))
    assert any(float((a - b).norm()) > 1e-3 * float(b.norm()) for a, b in zip(g1, grads["exact"]))


def test_finite_difference_hessian_vector_product_matches_double_backward() -> None:
    """The product alone, along a random direction: 1e-6 relative at radius 1e-5."""
    model, _, arch, batches = setup(order=2, dtype=torch.float64, fd_radius=1e-5)
    g = torch.Generator().manual_seed(7)
    v = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in model.named_weight_parameters()}
    train = objective(*batches[1])
    fd = arch.hessian_vector_product(train, v)
    exact = arch.exact_hessian_vector_product(train, v)
    for a, b in zip(fd, exact):
        assert float((a - b).norm()) <= 1e-6 * float(b.norm())


def test_a_second_order_step_leaves_weights_and_their_gradients_alone() -> None:
    model, opt, arch, batches = setup(order=2)
    before = {n: p.detach().clone() for n, p in model.named_weight_parameters()}
    stats = {n: b.clone() for n, b in model.named_buffers()}
    arch.step(objective(*batches[0]), objective(*batches[1]), opt.param_groups[0]["lr"])
    for n, p in model.named_weight_parameters():
        assert torch.equal(p, before[n]) and p.grad is None
    for n, b in model.named_buffers():
        assert torch.equal(b, stats[n])


def test_second_order_needs_the_train_objective() -> None:
    _, _, arch, batches = setup(order=2)
    with pytest.raises(ValueError, match="second-order"):
        arch.alpha_gradients(objective(*batches[0]))


def _host_syncs(run: Callable[[], object]) -> int:
    """How often ``run`` reads a device value on the host (``.item()``, ``bool(t)``...):
    each is a wait for the device on a GPU, and none may happen inside a CUDA graph."""
    _, syncs = count_aten_ops(run)
    return syncs.total()


def test_a_supernet_forward_waits_for_the_device_once() -> None:
    """One check of every cell's BN scales for zeros per forward, not one per cell."""
    model, _, _, batches = setup()
    assert len(model.cells) > 2
    assert _host_syncs(lambda: model(batches[0][0])) == 1


NO_RECOMPUTE = tuple(p for p in DEFAULT_PASSES if p != "recompute_convs")


@pytest.mark.parametrize("order", [1, 2])
def test_an_iteration_without_recompute_convs_never_waits_for_the_device(order: int) -> None:
    """Without ``recompute_convs`` nothing divides by an alpha weight, so no forward
    checks them for zeros: a whole search iteration (architecture step, weight step,
    both optimizers, gradient clipping) makes no host sync, as a CUDA graph needs. The
    default passes make one per forward (the count fails if the skip is lost)."""
    from genolang.nets.supernet import SupernetOptions
    from genolang.search.step import image_iteration

    counts = {}
    for passes in (NO_RECOMPUTE, DEFAULT_PASSES):
        torch.manual_seed(0)
        model = build_supernet(darts_cnn(), tiny_network(), in_channels=1, input_size=8, classes=10,
                               options=SupernetOptions(passes=passes))
        weights = model.weight_parameters()
        opt = torch.optim.SGD(weights, lr=0.05, momentum=0.9, weight_decay=3e-4, foreach=True)
        arch = Architect(model, opt, ArchitectConfig(order=order))
        g = torch.Generator().manual_seed(1)
        train, valid = [(torch.randn(6, 1, 8, 8, generator=g), torch.randint(0, 10, (6,), generator=g))
                        for _ in range(2)]

        def run() -> None:
            image_iteration(model, arch, opt, weights, train, valid, 0.05, 5.0)  # noqa: B023 (called at once)

        run()  # the optimizers' state made
        counts[passes] = _host_syncs(run)
    assert counts[NO_RECOMPUTE] == 0
    assert counts[DEFAULT_PASSES] == (2 if order == 1 else 5)  # one per forward


def test_the_finite_difference_product_does_not_wait_for_the_device() -> None:
    """eps = 0.01 / ||v|| stays a device tensor: only the product's two forwards sync."""
    model, _, arch, batches = setup(order=2)
    v = {n: torch.randn_like(p) for n, p in model.named_weight_parameters()}
    assert _host_syncs(lambda: arch.hessian_vector_product(objective(*batches[1]), v)) == 2
    zero = {n: torch.zeros_like(p) for n, p in model.named_weight_parameters()}
    assert all(float(h.abs().max()) == 0.0 for h in arch.hessian_vector_product(objective(*batches[1]), zero))


@pytest.mark.parametrize(("order", "kernels"), [(1, "foreach"), (1, "fused"), (2, "foreach")])
def test_iterations_of_the_optimized_supernet_follow_the_unoptimized_one(order: int, kernels: str) -> None:
    """Two search iterations (architecture step, weight step) on the optimized supernet
    (its grouped calls derive their stacked and padded weights once per iteration, for
    the architecture step and the weight step's forward: ``SharedWeights``) move the
    weights and alphas as on the unoptimized supernet, in float64; also with a fused
    SGD, whose in-place step bumps no version counter."""
    from genolang.nets.supernet import NO_OPT
    from genolang.search.step import image_iteration

    def run(options: object) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        kwargs = {} if options is None else {"options": options}
        model = build_supernet(darts_cnn(), tiny_network(), in_channels=1, input_size=8, classes=10,
                               **kwargs).double()  # type: ignore[arg-type]
        with torch.no_grad():
            for a in model.arch_parameters():
                a.normal_(0.0, 0.5)
        weights = model.weight_parameters()
        opt = torch.optim.SGD(weights, lr=0.05, momentum=0.9, weight_decay=3e-4, **{kernels: True})
        arch = Architect(model, opt, ArchitectConfig(order=order))
        g = torch.Generator().manual_seed(1)
        for _ in range(2):  # the second at the weights the first's steps moved
            train, valid = [(torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64),
                             torch.randint(0, 10, (6,), generator=g)) for _ in range(2)]
            image_iteration(model, arch, opt, weights, train, valid, 0.05, 5.0)
        return {n: p.detach().clone() for n, p in model.named_parameters()}

    fast, plain = run(None), run(NO_OPT)
    assert fast.keys() == plain.keys()
    for name, want in plain.items():
        assert torch.allclose(fast[name], want, rtol=0, atol=1e-9), name
