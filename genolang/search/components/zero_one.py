"""FairDARTS's zero-one loss (xiaomi-automl/FairDARTS ``fairdarts/separate_loss.py``):
``-weight * mean((sigmoid(alpha) - 0.5)^2)`` over every entry of every cell type's alphas
(the official ``ConvSeparateLoss`` on the concatenated normal and reduce sigmoids, the
default ``--sep_loss l2``), or with ``form=l1`` ``-weight * mean(|sigmoid(alpha) - 0.5|)``
(``TriSeparateLoss``). It pushes every op's weight away from 0.5, towards 0 or 1, so the
supernet's weights mean what the final selection's threshold reads. ``weight`` 10 is the
official ``--aux_loss_weight`` default.

The mean runs over the entries of the space's ops, ``none`` included when the space has
it (FairDARTS's space has no ``none``: with it, a column whose weight never moves from
0.5 adds to the count, so the effective weight is 7/8 of the official on the DARTS space;
``--set zero_one.weight=11.43`` restores it)."""

from __future__ import annotations

import torch

from genolang.errors import UsageError
from genolang.search.components import register

FORMS = ("l2", "l1")


@register("regularizer", "zero_one")
class ZeroOne:
    """-weight * mean((sigmoid(alpha) - 0.5)^2) (form l2) or -weight * mean|sigmoid(alpha) - 0.5| (l1)."""

    def __init__(self, weight: float = 10.0, form: str = "l2") -> None:
        if form not in FORMS:
            raise UsageError(f"regularizer 'zero_one': form must be one of {', '.join(FORMS)}, not {form!r}")
        self.weight = weight
        self.form = form

    def loss(self, model: torch.nn.Module) -> torch.Tensor:
        alphas = model.arch_parameters()  # type: ignore[operator]
        gap = torch.cat([torch.sigmoid(a).reshape(-1) for a in alphas]) - 0.5
        distance = gap.pow(2).mean() if self.form == "l2" else gap.abs().mean()
        return -self.weight * distance
