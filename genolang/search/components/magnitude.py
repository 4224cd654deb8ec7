"""DARTS's selection: per node the strongest incoming edges by their strongest op not
excluded (the space's derive rule, ``genolang.ir.derive``), on the relaxation's
selection weights."""

from __future__ import annotations

from typing import Any

from genolang.ir.derive import derive_genotype
from genolang.search.components import register
from genolang.spec.checked import GenotypeSpec


@register("selection", "magnitude")
class Magnitude:
    """The genotype the trained alphas select."""

    fine_tunes = False

    def select(self, context: Any) -> GenotypeSpec:
        return derive_genotype(context.space, context.model.cell_alphas(), context.name)
