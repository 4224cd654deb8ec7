"""GDAS's relaxation (Dong and Yang, CVPR 2019; D-X-Y/AutoDL-Projects
``search_model_gdas*.py``): the hard, straight-through Gumbel-softmax.

Each forward pass draws, per cell type (shared by every cell of that type), per edge,
``probs = softmax((log_softmax(alpha) + g) / tau)`` with Gumbel noise
``g = -log(Exp(1))``, and mixes the edge by ``one_hot(argmax probs) - probs.detach() +
probs``: one-hot in value, the gradient of the softmax. A draw with an infinite or NaN
value is drawn again. The supernet runs only each edge's selected op
(``one_op_per_edge``; ``genolang.nets.supernet``: ``op_k(x) * w[k]``, as GDAS's DARTS-space
``MixedOp.forward_gdas``). On the recurrent space every activation is still computed,
weighted by the one-hot weights (the gradient reaches every alpha of an edge).

tau falls linearly from ``tau_max`` in the first epoch to ``tau_min`` in the last:
``tau_max - (tau_max - tau_min) * e / (T - 1)`` (0-based e; a one-epoch search keeps
tau_max; after the search, tau_min). The expected weights are softmax(alpha) (the
Gumbel-max trick: P(argmax = k) = softmax(alpha)_k whatever tau); derivation and the
logs read softmax(alpha) too."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genolang.errors import UsageError
from genolang.search.components import register


@register("relaxation", "gumbel")
class Gumbel:
    """Hard straight-through Gumbel-softmax samples, one op per edge, tau annealed."""

    one_op_per_edge = True

    def __init__(self, tau_max: float = 10.0, tau_min: float = 0.1) -> None:
        if not 0.0 < tau_min <= tau_max:
            raise UsageError(f"relaxation gumbel: need 0 < tau_min <= tau_max, got tau_min={tau_min}, "
                             f"tau_max={tau_max}")
        self.tau_max, self.tau_min = float(tau_max), float(tau_min)
        self.tau = self.tau_max

    def set_epoch(self, epoch: int, epochs: int) -> None:
        if epochs <= 1:
            self.tau = self.tau_max if epoch < epochs else self.tau_min
            return
        e = min(epoch, epochs - 1)
        self.tau = self.tau_max - (self.tau_max - self.tau_min) * e / (epochs - 1)

    def __call__(self, alpha: torch.Tensor) -> torch.Tensor:
        while True:
            gumbels = -torch.empty_like(alpha).exponential_().log()
            probs = F.softmax((alpha.log_softmax(dim=-1) + gumbels) / self.tau, dim=-1)
            if not (torch.isinf(gumbels).any() or torch.isinf(probs).any() or torch.isnan(probs).any()):
                break
        one_hot = torch.zeros_like(probs).scatter_(-1, probs.argmax(-1, keepdim=True), 1.0)
        return one_hot - probs.detach() + probs

    def expected(self, alpha: torch.Tensor) -> torch.Tensor:
        return F.softmax(alpha, dim=-1)

    def selection(self, alpha: torch.Tensor) -> torch.Tensor:
        return F.softmax(alpha, dim=-1)
