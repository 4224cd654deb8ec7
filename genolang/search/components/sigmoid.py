"""FairDARTS's relaxation (Chu, Zhou, Zhang and Li, Fair DARTS, ECCV 2020; official code
xiaomi-automl/FairDARTS ``fairdarts/model_search.py``): every op of an edge is weighted by
its own ``sigmoid(alpha)``, independently, without normalisation, so ops do not compete
for one unit of weight (the "exclusive competition" the paper blames for the collapse to
skip connections). The alphas start at 0 (every weight 0.5), as the official
``_initialize_alphas`` (``torch.zeros``)."""

from __future__ import annotations

import torch

from genolang.search.components import register


@register("relaxation", "sigmoid")
class Sigmoid:
    """w = sigmoid(alpha) per op, not normalised over the edge."""

    one_op_per_edge = False
    selection_name = "sigmoid"  # what the alpha tables of the genotype files show

    def __call__(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(alpha)

    def expected(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(alpha)

    def selection(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(alpha)

    def initial_alphas(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(alpha)
