"""DrNAS's relaxation (Chen, Wang, Cheng, Tang and Hsieh, DrNAS, ICLR 2021; official code
xiangning-chen/DrNAS, ``utils.process_step_vector`` with ``method='dirichlet'``).

Each edge's weights are one sample of ``Dirichlet(elu(alpha) + 1)``: the concentrations
``beta = elu(alpha) + 1`` are positive, and the sample is reparameterised
(``rsample``), so the gradient reaches the alphas along the sample's path. A fresh
sample is drawn in every forward pass (the architecture step's and the weight step's
independently, evaluation's too, as the official ``infer``), one per edge, shared by
all cells of a type. The draws come from torch's global generator, which every
checkpoint keeps.

``expected`` is the mean of the distribution, the normalised concentrations
``beta / sum(beta)``; the genotype and the logs read ``softmax(alpha)``, as the official
``genotype()`` does (``process_step_matrix(alpha, 'softmax', mask)``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genolang.search.components import register


def concentrations(alpha: torch.Tensor) -> torch.Tensor:
    """DrNAS's Dirichlet concentrations ``elu(alpha) + 1`` (positive; 1 at alpha = 0)."""
    return F.elu(alpha) + 1.0


@register("relaxation", "dirichlet")
class Dirichlet:
    """w ~ Dirichlet(elu(alpha) + 1) per edge, a reparameterised sample in every forward pass."""

    one_op_per_edge = False

    def __call__(self, alpha: torch.Tensor) -> torch.Tensor:
        # every leading dimension is a batch of distributions: an (edges x ops) table
        # gives one sample per edge; validation is skipped (elu + 1 is positive by construction)
        return torch.distributions.Dirichlet(concentrations(alpha), validate_args=False).rsample()

    def expected(self, alpha: torch.Tensor) -> torch.Tensor:
        beta = concentrations(alpha)
        return beta / beta.sum(dim=-1, keepdim=True)

    def selection(self, alpha: torch.Tensor) -> torch.Tensor:
        return F.softmax(alpha, dim=-1)
