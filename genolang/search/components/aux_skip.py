"""DARTS-'s supernet transform (Chu et al., ICLR 2021; Meituan-AutoML/DARTS-
``src/search/model_search.py``): an auxiliary skip connection on every mixed edge,
``+ beta * aux(x)``, aux the identity on stride-1 edges and ``FactorizedReduce(C, C)``
without affine parameters (trainable 1x1 convs, trained with the weights) on stride-2
edges; not in the alphas, dropped at derivation.

beta decays per epoch (the original's ``DecayScheduler`` with T_max = the epochs):
``linear`` (the paper's script): beta0 * (T - e) / T for the 0-based epoch e, 1 in the
first epoch, beta0 / T in the last, 0 once the search is over (``set_epoch(T, T)``:
what the selection sees); ``cosine``: beta0 * (1 + cos(pi e / T)) / 2; ``constant``:
beta0 (the original's default without ``--decay``)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from genolang.errors import UsageError
from genolang.search.components import register

DECAYS = ("linear", "cosine", "constant")


def aux_weight(beta: float, decay: str, epoch: int, epochs: int) -> float:
    """The auxiliary skips' weight in 0-based ``epoch`` of ``epochs`` (``epoch >= epochs``: after the search)."""
    if decay == "constant":
        return beta
    e = min(epoch, epochs)
    if decay == "linear":
        return beta * (epochs - e) / epochs
    return beta * (1.0 + math.cos(math.pi * e / epochs)) / 2.0


@register("transform", "aux_skip")
class AuxSkip:
    """An auxiliary skip on every mixed edge, its weight decaying from ``beta`` to 0."""

    def __init__(self, beta: float = 1.0, decay: str = "linear") -> None:
        if decay not in DECAYS:
            raise UsageError(f"transform aux_skip: decay must be one of {', '.join(DECAYS)}, not {decay!r}")
        self.beta = float(beta)
        self.decay = decay
        self.weight = self.beta
        self.model: Any = None

    def supernet_options(self, options: Any) -> Any:
        return dataclasses.replace(options, aux_skip=True)

    def prepare(self, model: Any) -> None:
        options = getattr(model, "options", None)
        if options is None or not getattr(options, "aux_skip", False):
            raise UsageError("transform aux_skip adds a skip connection to a CNN supernet's edges; "
                             f"this {type(model).__name__} has no such edges (use it with a CNN space)")
        self.model = model
        model.aux_weight = self.weight

    def set_epoch(self, epoch: int, epochs: int) -> None:
        self.weight = aux_weight(self.beta, self.decay, epoch, epochs)
        if self.model is not None:
            self.model.aux_weight = self.weight
