"""β-DARTS's Beta-Decay regulariser (Ye, Li, Wang, Li, Wang, Fan and Zhang, β-DARTS, CVPR
2022; official code Sunshine-Ye/Beta-DARTS ``optimizers/darts/architect.py`` ``mlc_loss``):

    L_beta = (1 / |E|) sum_e logsumexp_k alpha_{e,k}

over the edges E of every cell type together (their rows concatenated), added to the
validation loss with a weight rising linearly over the search,
``lambda(e) = weight * e / epochs`` for the 0-based epoch e. Its gradient is
``lambda * softmax(alpha_e) / |E|``: each alpha decays in proportion to its softmax
weight, which keeps the softmax from saturating.

The official ramp is ``0 + 50 * epoch / 100`` with the divisor hard-coded for its
100-epoch NAS-Bench-201 search; genolang divides by the search's epochs, so any length
ramps from 0 to just below ``weight`` (49.5 at epoch 99 of 100, as the official; on a
50-epoch search, 49 at epoch 49 where the hard-coded divisor would give 24.5). The
official code adds the term in its first-order step only; genolang adds it to the
validation loss in both orders. Its DARTS-space script passes a list of the two alpha
tensors to ``logsumexp`` and fails (the repository's issue 1); the mean over the
concatenated rows is the intended fix, and with equal edge counts it is the average of
the per-cell-type means."""

from __future__ import annotations

import torch

from genolang.search.components import register


@register("regularizer", "beta_decay")
class BetaDecay:
    """lambda(e) * mean over edges of logsumexp(alpha_e), lambda(e) = weight * e / epochs."""

    def __init__(self, weight: float = 50.0) -> None:
        self.weight = weight
        self.lam = 0.0

    def set_epoch(self, epoch: int, epochs: int) -> None:
        self.lam = self.weight * epoch / epochs

    def loss(self, model: torch.nn.Module) -> torch.Tensor:
        rows = torch.cat(list(model.arch_parameters()))  # type: ignore[operator]
        return self.lam * torch.logsumexp(rows, dim=-1).mean()
