"""Where a search method plugs in: how alphas become the weights each edge mixes its
ops by (the relaxation), how the alphas are updated (the architecture step) and how
the final cell is chosen (the selection). DARTS is softmax, the architect of
``genolang.search.architect`` (first or second order) and derivation by magnitude
(``genolang.ir.derive``); the drivers (``search.images``, ``search.text``) only call
these three."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from genolang.ir.derive import derive_genotype
from genolang.nets.supernet import Relaxation, softmax_rows
from genolang.run import dist
from genolang.search.architect import Architect, ArchitectConfig
from genolang.search.recipe import Recipe
from genolang.spec.checked import GenotypeSpec, SpaceSpec


@dataclass(frozen=True)
class Method:
    """A search method's components."""

    name: str
    relaxation: Relaxation = softmax_rows

    def prepare(self, model: Any) -> None:
        """Give the supernet this method's relaxation."""
        model.relaxation = self.relaxation

    def architect(self, model: torch.nn.Module, weight_optimizer: torch.optim.Optimizer, recipe: Recipe,
                  world: dist.World = dist.SINGLE) -> Architect:
        """The architecture step: Adam on the alphas with the recipe's gradient order;
        under torchrun every gradient it uses is averaged across ranks."""
        config = ArchitectConfig(recipe.order, recipe.arch_lr, recipe.arch_betas, recipe.arch_weight_decay)
        return Architect(model, weight_optimizer, config, reduce=lambda grads: dist.all_reduce_mean_(grads, world))

    def select(self, space: SpaceSpec, model: Any, name: str) -> GenotypeSpec:
        """The genotype the model's alphas select (by magnitude, under the space's derive rule)."""
        return derive_genotype(space, model.cell_alphas(), name)


DARTS = Method("darts")
METHODS: dict[str, Method] = {DARTS.name: DARTS}
