"""SDARTS-RS's random smoothing (Chen and Hsieh, Stabilizing Differentiable Architecture
Search via Perturbation-based Regularization, ICML 2020; official code
xiangning-chen/SmoothDARTS ``sota/cnn/train_search.py``, ``attacker/perturb.py``
``Random_alpha`` and ``model_search.py`` ``clip``).

During the weight step only, every edge's weights (DARTS: softmax(alpha)) get uniform
noise, ``w + U(-eps, eps)`` elementwise, drawn afresh at every step and shared by all
cells of a type; then each row is clipped: clamped to [0, 1], its largest entry (taken
before the clamp) set to 1 if the clamp left it all zeros, divided by its sum. The
architecture step runs on the clean weights. ``eps`` rises linearly over the search,
``epsilon_start + (epsilon - epsilon_start) * e / epochs`` for the 0-based epoch e
(official: 0.03 to 0.3, reaching 0.2946 in epoch 49 of 50).

The perturbed weights are constants of the weight step (the official code writes them
into ``alpha.data``): no gradient reaches the alphas through them."""

from __future__ import annotations

import torch

from genolang.errors import UsageError
from genolang.search.components import register


def clip_rows(w: torch.Tensor) -> torch.Tensor:
    """SDARTS's ``clip``: each row clamped to [0, 1], an all-zero row's argmax (before
    the clamp) set to 1, then divided by its sum."""
    top = torch.nn.functional.one_hot(w.argmax(dim=-1), w.shape[-1]).bool()
    clamped = w.clamp(0.0, 1.0)
    empty = clamped.sum(dim=-1, keepdim=True) == 0
    clamped = torch.where(empty & top, torch.ones_like(clamped), clamped)
    return clamped / clamped.sum(dim=-1, keepdim=True)


@register("perturbation", "random_smoothing")
class RandomSmoothing:
    """w + U(-eps, eps), rows clipped to [0, 1] and renormalised; eps from epsilon_start to epsilon."""

    def __init__(self, epsilon: float = 0.3, epsilon_start: float = 0.03) -> None:
        if epsilon < 0 or epsilon_start < 0:
            raise UsageError(f"perturbation 'random_smoothing': epsilon and epsilon_start must not be negative "
                             f"(got {epsilon} and {epsilon_start})")
        self.epsilon = epsilon
        self.epsilon_start = epsilon_start
        self.eps = epsilon_start

    def set_epoch(self, epoch: int, epochs: int) -> None:
        self.eps = self.epsilon_start + (self.epsilon - self.epsilon_start) * epoch / epochs

    def __call__(self, weights: torch.Tensor) -> torch.Tensor:
        w = weights.detach()
        noise = torch.empty_like(w).uniform_(-self.eps, self.eps)
        return clip_rows(w + noise)
