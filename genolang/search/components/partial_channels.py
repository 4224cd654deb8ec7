"""PC-DARTS's supernet transform (Xu et al., ICLR 2020; yuhuixu1993/PC-DARTS
``model_search.py``): partial channel connections and edge normalisation.

Every mixed edge runs its ops on the first C/K channels of its input (a fixed slice, no
random choice: the shuffle moves other channels there over depth), concatenates the
other channels (max-pooled 2x2 on stride-2 edges) and shuffles the channels in K
groups; each node sums its edges weighted by the softmax of their betas over that
node's in-edges. The betas (one per edge, 1e-3 * N(0, 1)) are architecture parameters
trained by the same Adam, and derivation multiplies each edge's op weights by its
normalised beta before the DARTS rule (``AlphaMixin.edge_scale``). The supernet does
the work (``genolang.nets.supernet``, ``SupernetOptions.partial_channels``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from genolang.errors import UsageError
from genolang.search.components import register


@register("transform", "partial_channels")
class PartialChannels:
    """Ops on 1/k of each edge's channels (k = 4, PC-DARTS's CIFAR-10 value; 2 on
    ImageNet), with per-node edge normalisation (``edge_norm``)."""

    def __init__(self, k: int = 4, edge_norm: bool = True) -> None:
        if isinstance(k, bool) or k != int(k) or k < 1:
            raise UsageError(f"transform partial_channels: k is the channel proportion 1/k, a whole number of at "
                             f"least 1; got {k!r}")
        self.k = int(k)
        self.edge_norm = edge_norm

    def supernet_options(self, options: Any) -> Any:
        return dataclasses.replace(options, partial_channels=self.k,
                                   edge_normalization=options.edge_normalization or self.edge_norm)

    def prepare(self, model: Any) -> None:
        options = getattr(model, "options", None)
        if options is None or getattr(options, "partial_channels", None) != self.k:
            raise UsageError("transform partial_channels splits the channels of a CNN supernet's edges; "
                             f"this {type(model).__name__} has none to split (use it with a CNN space)")
