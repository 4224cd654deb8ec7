"""DrNAS's Dirichlet regulariser (xiangning-chen/DrNAS ``model_search.py`` ``_get_kl_reg``,
with ``--reg_type kl``): ``scale * sum over every edge of every cell type of
KL(Dir(elu(alpha) + 1) || Dir(anchor))``, the anchor's concentrations all 1 (the uniform
Dirichlet), added to the architecture step's validation loss.

The official default is ``--reg_type l2``: no KL term but the alpha Adam's weight decay
``reg_scale = 1e-3``, which is DARTS's architecture weight decay and genolang's default.
With the KL term the official code sets that weight decay to 0; so does genolang
(``arch_weight_decay`` below: a recipe with this regulariser gets 0 unless told
otherwise)."""

from __future__ import annotations

import torch

from genolang.errors import UsageError
from genolang.search.components import register
from genolang.search.components.dirichlet import concentrations


@register("regularizer", "dirichlet_kl")
class DirichletKL:
    """scale * sum_edges KL(Dir(elu(alpha) + 1) || Dir(anchor, ..., anchor))."""

    arch_weight_decay = 0.0  # replaces the recipe's alpha weight decay, as the official code does

    def __init__(self, scale: float = 1e-3, anchor: float = 1.0) -> None:
        if not anchor > 0:
            raise UsageError(f"regularizer 'dirichlet_kl': the anchor concentration must be positive, not {anchor}")
        self.scale = scale
        self.anchor = anchor

    def loss(self, model: torch.nn.Module) -> torch.Tensor:
        terms = []
        for alpha in model.arch_parameters():  # type: ignore[operator]
            q = torch.distributions.Dirichlet(concentrations(alpha), validate_args=False)
            p = torch.distributions.Dirichlet(torch.full_like(alpha, self.anchor), validate_args=False)
            terms.append(torch.distributions.kl_divergence(q, p).sum())
        return self.scale * torch.stack(terms).sum()
