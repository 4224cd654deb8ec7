"""The architect: the alpha half of DARTS's bilevel optimisation (paper section 2.3,
equations 6-8).

* First order: grad_alpha L_val(w, alpha) at the current weights.
* Second order: one unrolled weight step
      w' = w - xi * (momentum * buf + grad_w L_train(w, alpha) + wd * w)
  exactly the next step of the weight optimizer (SGD with its momentum buffers and
  weight decay, as the original code does; no gradient clipping; with Nesterov
  momentum, d + momentum * (momentum * buf + d) for d = grad + wd * w, as torch's SGD),
  with xi the current weight learning rate; then
      grad_alpha L_val(w', alpha) - xi * H v,    v = grad_w' L_val(w', alpha),
  where H v = grad^2_{alpha,w} L_train(w, alpha) v is either the central finite
  difference [grad_alpha L_train(w+) - grad_alpha L_train(w-)] / (2 eps) with
  w+- = w +- eps v and eps = 0.01 / ||v|| (``mode='fd'``, the paper's), or computed
  exactly by differentiating through the unrolled step (``mode='exact'``, double
  backward; used by tests to check the finite difference).

A caveat measured on small supernets (tests/test_architect.py): at the paper's radius
the finite difference is not a good estimate of the exact product. A weight step of norm
0.01 moves many ReLU (and max-pool) inputs across their kinks, where grad_alpha L_train
jumps, so the difference quotient can be off by more than the product's own size; with a
radius of 1e-5 (float64) it agrees with the double-backward product to ~1e-9. The
default stays the paper's, for fidelity; ``fd_radius`` changes it.

No second network is built: the model is evaluated at w', w+ and w- with
``torch.func.functional_call`` and a dict of weight tensors; the alphas stay the
model's own parameters. Gradients are taken with ``torch.autograd.grad`` for exactly the
tensors needed, so the architecture step never writes a weight's ``.grad``.

Batch-norm statistics: every forward of the architecture step runs in training mode
(batch statistics, as in the original) with the running statistics of every training
batch norm taken away (``None``, substituted by name), so the step neither reads nor
moves the running mean and variance, without a copy of them per forward (batch norm in
training mode computes the same outputs and gradients, bit for bit, with and without
running statistics). A batch norm in evaluation mode reads its own statistics and
moves nothing; any other buffer is run on a copy, except those its module lists in
``constant_buffers`` (index tables it only reads). The original's unrolled model is
a fresh copy whose buffers are thrown away too; unlike the original, the first-order
forward and the two finite-difference forwards here also leave the real model's
running statistics alone, so those track the weight steps' training batches only.
Where the model draws random numbers in its forward (the recurrent model's dropout
masks), the two finite-difference forwards draw the same ones, so the difference
measures the change of weights and not of masks.

Data-parallel runs pass ``reduce``, which averages a list of gradients across ranks in
place: every gradient the step uses (the train gradient of the unrolled step, the
validation gradients at w', the two finite-difference gradients, the first-order
gradient) is averaged before it is used, so each rank computes the step of one process
holding the global batch, and the alphas stay identical on every rank."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from genolang.ops.norm import GlobalBatchNorm
from genolang.run.graphs import CannotCapture, capturing

# An objective gets ``call`` (runs the model, with substituted weights where asked) and
# returns a scalar loss: e.g. ``lambda call: F.cross_entropy(call(x), y)``. ``call``
# returns what the model returns (Any, as nn.Module's __call__ does).
Call = Callable[..., Any]
Objective = Callable[[Call], torch.Tensor]
# Averages gradients across data-parallel ranks, in place (``genolang.run.dist``).
Reduce = Callable[[list[torch.Tensor]], None]

FD_RADIUS = 0.01  # eps = FD_RADIUS / ||v||, the original's r = 1e-2


class SearchModel(Protocol):
    """What the architect needs of a supernet (``genolang.nets.supernet.AlphaMixin``)."""

    def arch_parameters(self) -> list[nn.Parameter]: ...
    def named_weight_parameters(self) -> Iterator[tuple[str, nn.Parameter]]: ...


@dataclass(frozen=True)
class ArchitectConfig:
    """The alpha optimizer (Adam) and the order of the approximation."""

    order: int = 1
    lr: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 1e-3
    mode: str = "fd"  # second order: 'fd' (finite difference, the paper's) or 'exact'
    fd_radius: float = FD_RADIUS  # eps = fd_radius / ||v||
    # Adam's step counter on the device, its bias corrections computed there: a step that
    # waits for nothing, which a CUDA graph can capture (``genolang.run.graphs``)
    capturable: bool = False

    def __post_init__(self) -> None:
        if self.order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, not {self.order}")
        if self.mode not in ("fd", "exact"):
            raise ValueError(f"mode must be 'fd' or 'exact', not {self.mode!r}")


class Architect:
    """Updates a supernet's alphas; ``weight_optimizer`` is the SGD of its weights, whose
    learning rate, momentum buffers and weight decay the unrolled step uses."""

    def __init__(self, model: nn.Module, weight_optimizer: torch.optim.Optimizer, config: ArchitectConfig,
                 reduce: Reduce | None = None, regularize: Callable[[], torch.Tensor] | None = None) -> None:
        self.model = model
        self.reduce: Reduce = reduce or (lambda grads: None)
        # a term on the architecture parameters alone, added to the validation loss (regularizers)
        self.regularize = regularize
        self.config = config
        self.weight_optimizer = weight_optimizer
        supernet = cast(SearchModel, model)  # a supernet: the nn.Module that functional_call runs
        self.alphas: list[nn.Parameter] = supernet.arch_parameters()
        self.named_weights: list[tuple[str, nn.Parameter]] = list(supernet.named_weight_parameters())
        self.optimizer = torch.optim.Adam(self.alphas, lr=config.lr, betas=config.betas,
                                          weight_decay=config.weight_decay, capturable=config.capturable)
        # whether the model's forward drew random numbers the last time the two
        # finite-difference passes ran uncaptured (None: not run yet); see _same_randomness
        self.forward_draws: bool | None = None

    # -- evaluating the model at other weights ------------------------------------
    def _loss(self, objective: Objective, weights: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``objective`` on the model with ``weights`` substituted (by name) and its
        buffers as ``step_buffers`` says (running statistics neither read in training
        mode nor moved)."""
        buffers = step_buffers(self.model)
        params = dict(weights or {})

        def call(*args: object, **kwargs: object) -> Any:
            # a None buffer is substituted as None (torch's stubs say Tensor only)
            return functional_call(self.model, (params, cast(dict[str, torch.Tensor], buffers)), args, kwargs)

        return objective(call)

    # -- the gradient --------------------------------------------------------------
    def alpha_gradients(self, valid: Objective, train: Objective | None = None,
                        eta: float | None = None) -> list[torch.Tensor]:
        """The architecture gradient, one tensor per alpha: first order from ``valid``
        alone; second order needs the ``train`` objective and the weight lr ``eta``. The
        regularizers' term (``regularize``) is added to the validation loss."""
        if self.regularize is not None:
            plain, regularize = valid, self.regularize

            def valid(call: Call) -> torch.Tensor:
                return plain(call) + regularize()
        if self.config.order == 1:
            # a cell type no cell of the skeleton uses (one cell, a reduction) gets a zero gradient
            grads = [_zero_if_none(g, a) for g, a in zip(
                torch.autograd.grad(self._loss(valid), self.alphas, allow_unused=True), self.alphas)]
            self.reduce(grads)
            return grads
        if train is None or eta is None:
            raise ValueError("a second-order step needs the train objective and the weight learning rate")
        if self.config.mode == "exact":
            return self._exact_unrolled(valid, train, eta)
        return self._fd_unrolled(valid, train, eta)

    def step(self, valid: Objective, train: Objective | None = None, eta: float | None = None) -> torch.Tensor:
        """One Adam step on the alphas; returns the alpha gradients' global norm."""
        grads = self.alpha_gradients(valid, train, eta)
        self.optimizer.zero_grad(set_to_none=True)
        for alpha, g in zip(self.alphas, grads):
            alpha.grad = g.detach()
        self.optimizer.step()
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))

    # -- second order --------------------------------------------------------------
    def _hyper(self) -> tuple[float, float, bool]:
        group = self.weight_optimizer.param_groups[0]
        return (float(group.get("momentum", 0.0)), float(group.get("weight_decay", 0.0)),
                bool(group.get("nesterov", False)))

    def _moment(self, p: torch.Tensor, momentum: float) -> torch.Tensor:
        state = self.weight_optimizer.state.get(p, {})
        buf = state.get("momentum_buffer") if momentum else None
        return buf * momentum if buf is not None else torch.zeros_like(p)

    def unrolled_weights(self, train: Objective, eta: float, create_graph: bool = False) -> dict[str, torch.Tensor]:
        """w' = w - eta * (momentum * buf + grad_w L_train + wd * w), by name. With
        ``create_graph`` w' stays a function of the alphas (for the exact mode). Without,
        the update runs as multi-tensor (``torch._foreach_*``) ops over all weights at
        once, with the same arithmetic as the per-tensor expression."""
        momentum, wd, nesterov = self._hyper()
        names = [n for n, _ in self.named_weights]
        weights = [p for _, p in self.named_weights]
        grads = [_zero_if_none(g, w) for g, w in zip(
            torch.autograd.grad(self._loss(train), weights, create_graph=create_graph, allow_unused=True), weights)]
        if not create_graph:
            self.reduce(grads)
            return dict(zip(names, self._unrolled_foreach(list(weights), grads, eta, momentum, wd, nesterov)))
        out = {}
        for name, w, g in zip(names, weights, grads):
            d = g + wd * w.detach()
            step = self._moment(w, momentum).detach() + d  # the momentum buffer after this step
            if nesterov:  # torch's SGD(nesterov=True) steps by d + momentum * buffer
                step = d + momentum * step
            out[name] = w.detach() - eta * step
        return out

    def _unrolled_foreach(self, weights: list[torch.Tensor], grads: list[torch.Tensor], eta: float,
                          momentum: float, wd: float, nesterov: bool) -> list[torch.Tensor]:
        """The unrolled weights as leaves that require gradients: ``unrolled_weights``'s
        formula, each of its element-wise steps one ``torch._foreach_*`` op over every
        weight (a weight without a momentum buffer yet takes the buffer as zero, as the
        optimizer's first step does)."""
        state = self.weight_optimizer.state
        with torch.no_grad():
            d = list(torch._foreach_add(grads, list(torch._foreach_mul(weights, wd)))) if wd else list(grads)
            steps = list(d)
            if momentum:
                have = [i for i, w in enumerate(weights) if state.get(w, {}).get("momentum_buffer") is not None]
                if have:
                    bufs = [state[weights[i]]["momentum_buffer"] for i in have]
                    moved = torch._foreach_add(list(torch._foreach_mul(bufs, momentum)), [d[i] for i in have])
                    for i, t in zip(have, moved):
                        steps[i] = t
            if nesterov:
                steps = list(torch._foreach_add(d, list(torch._foreach_mul(steps, momentum))))
            new = list(torch._foreach_sub(weights, list(torch._foreach_mul(steps, eta))))
        for t in new:
            t.requires_grad_(True)
        return new

    def _fd_unrolled(self, valid: Objective, train: Objective, eta: float) -> list[torch.Tensor]:
        w_prime = self.unrolled_weights(train, eta)
        names = list(w_prime)
        grads = torch.autograd.grad(self._loss(valid, w_prime), [*self.alphas, *w_prime.values()],
                                    allow_unused=True)
        d_alpha = [_zero_if_none(g, a) for g, a in zip(grads[: len(self.alphas)], self.alphas)]
        v_list = [_zero_if_none(g, w_prime[n]) for n, g in zip(names, grads[len(self.alphas):])]
        self.reduce([*d_alpha, *v_list])
        v = dict(zip(names, v_list))
        hv = self.hessian_vector_product(train, v)
        return [g - eta * h for g, h in zip(d_alpha, hv)]

    def hessian_vector_product(self, train: Objective, v: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """grad^2_{alpha,w} L_train(w) v by the central finite difference at the current
        weights w, with eps = fd_radius / ||v|| (0.01 / ||v||, the paper's, by default)."""
        names, vs = list(v), list(v.values())
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(vs)))
        # eps as a device tensor: no host sync; v = 0 gives eps = 0, w+ = w- and a zero product
        eps = torch.where(norm > 0, self.config.fd_radius / norm, torch.zeros_like(norm))
        divisor = 2 * torch.where(norm > 0, eps, torch.ones_like(eps))
        current = dict(self.named_weights)
        with torch.no_grad():  # w +- eps v, one multi-tensor op each
            ws: list[torch.Tensor] = [current[n] for n in names]
            step = list(torch._foreach_mul(vs, eps))
            plus = dict(zip(names, torch._foreach_add(ws, step)))
            minus = dict(zip(names, torch._foreach_sub(ws, step)))
        with _same_randomness(self._device(), self.forward_draws) as replay:
            g_plus = torch.autograd.grad(self._loss(train, plus), self.alphas, allow_unused=True)
            drew = replay()  # None while captured: what the uncaptured steps found stands
            self.forward_draws = self.forward_draws if drew is None else drew
            g_minus = torch.autograd.grad(self._loss(train, minus), self.alphas, allow_unused=True)
        diff = [(_zero_if_none(p, a) - _zero_if_none(m, a)) / divisor
                for p, m, a in zip(g_plus, g_minus, self.alphas)]
        self.reduce(diff)
        return diff

    def exact_hessian_vector_product(self, train: Objective, v: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """grad^2_{alpha,w} L_train(w) v by double backward (for tests)."""
        weights = [p for _, p in self.named_weights]
        # with allow_unused, torch.autograd.grad gives None for an unused input (its stubs say Tensor)
        grads: tuple[torch.Tensor | None, ...] = torch.autograd.grad(self._loss(train), weights, create_graph=True,
                                                                     allow_unused=True)
        dot = sum((g * v[n]).sum() for (n, _), g in zip(self.named_weights, grads) if g is not None)
        assert isinstance(dot, torch.Tensor)  # some weight has a gradient
        return [_zero_if_none(g, a) for g, a in
                zip(torch.autograd.grad(dot, self.alphas, allow_unused=True), self.alphas)]

    def _exact_unrolled(self, valid: Objective, train: Objective, eta: float) -> list[torch.Tensor]:
        """d/d alpha of L_val(w'(alpha), alpha), differentiating through the unrolled step."""
        w_prime = self.unrolled_weights(train, eta, create_graph=True)
        grads = torch.autograd.grad(self._loss(valid, w_prime), self.alphas, allow_unused=True)
        return [_zero_if_none(g, a) for g, a in zip(grads, self.alphas)]

    def _device(self) -> torch.device:
        return self.alphas[0].device

    # -- checkpoints ---------------------------------------------------------------
    def state_dict(self) -> dict[str, object]:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


BN_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def step_buffers(model: nn.Module) -> dict[str, torch.Tensor | None]:
    """The buffers to substitute (by name) in a forward of ``model`` that must leave its
    state alone: ``None`` for the running statistics of every batch norm in training
    mode (it normalises by the batch's statistics either way, and has nothing to move),
    a copy of every other buffer but those its module declares read-only in
    ``constant_buffers``; a batch norm in evaluation mode reads its own statistics and
    writes nothing, so they are not substituted."""
    out: dict[str, torch.Tensor | None] = {}
    for prefix, module in model.named_modules():
        own = module._buffers
        if not own:
            continue
        is_bn = isinstance(module, _BatchNorm) or (
            isinstance(module, GlobalBatchNorm) and module.track_running_stats)
        constant = getattr(module, "constant_buffers", ())
        for name, b in own.items():
            if b is None or name in constant:
                continue
            if is_bn and name in BN_STATISTICS:
                if module.training:
                    out[f"{prefix}.{name}" if prefix else name] = None
            else:
                out[f"{prefix}.{name}" if prefix else name] = b.clone()
    return out


def _zero_if_none(g: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if g is None else g


@contextlib.contextmanager
def _same_randomness(device: torch.device, draws: bool | None = None) -> Iterator[Callable[[], bool | None]]:
    """Yields ``replay``, which rewinds the generator of ``device`` to where it was on
    entry and says whether the pass before it drew random numbers; on exit the
    generator continues from where the last pass left it.

    While the step is captured in a CUDA graph (``genolang.run.graphs``) the generator's
    state can be neither read nor rewound: nothing is, and ``replay`` says None. That
    is right for a forward that draws no random numbers (DARTS's); one that does (a
    sampled relaxation, dropout, a perturbation), as ``draws`` says its uncaptured
    warm-up steps found, cannot be captured: the two passes would draw different
    numbers, and the difference would measure them and not the change of weights."""
    if capturing(device):
        if draws:
            raise CannotCapture("the model's forward draws random numbers, and the second-order step's two "
                               "finite-difference passes must draw the same ones, which a captured graph cannot "
                               "rewind to: run without --cuda-graphs, or at --order 1 (no finite-difference "
                               "passes) if the method's first-order step waits for nothing")
        yield lambda: None
        return
    cuda = device.type == "cuda"
    saved = torch.cuda.get_rng_state(device) if cuda else torch.get_rng_state()

    def replay() -> bool:
        now = torch.cuda.get_rng_state(device) if cuda else torch.get_rng_state()
        if cuda:
            torch.cuda.set_rng_state(saved, device)
        else:
            torch.set_rng_state(saved)
        # a CPU byte tensor either way (a CUDA generator's is its seed and offset): compared as bytes,
        # dispatching nothing
        return bool(now.numpy().tobytes() != saved.numpy().tobytes())

    yield replay
