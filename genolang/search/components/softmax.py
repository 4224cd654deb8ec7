"""DARTS's relaxation: each edge's alphas through a softmax over its ops."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genolang.search.components import register


@register("relaxation", "softmax")
class Softmax:
    """w = softmax(alpha) per edge, in every forward pass."""

    one_op_per_edge = False

    def __call__(self, alpha: torch.Tensor) -> torch.Tensor:
        return F.softmax(alpha, dim=-1)

    def expected(self, alpha: torch.Tensor) -> torch.Tensor:
        return F.softmax(alpha, dim=-1)

    def selection(self, alpha: torch.Tensor) -> torch.Tensor:
        return F.softmax(alpha, dim=-1)

    def set_epoch(self, epoch: int, epochs: int) -> None:
        pass
