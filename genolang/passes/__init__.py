"""Optimizing passes over a supernet's cell IR, and the pass manager that runs them.

Each pass is one module: a function from a ``CellIR`` to a new graph, registered with
``register_pass`` (``genolang.passes.manager``). ``run_passes`` applies passes in order, records each in the IR's
``passes``, lints after each, and checks that the cell still computes the same (alpha
row, op) terms (only ``none``, a zero, may go); a broken invariant raises ``PassError``
naming the pass. The passes are torch-free: they rewrite names and edges, and the
supernet compiler (``genolang.nets.supernet``) builds whatever the IR says.

Passes, in their default order:

* ``drop_none``: ``none`` leaves every mixed edge (its alpha column stays in the
  softmax; only its zero tensor and multiply disappear).
* ``share_relu``: one ``relu`` node per node whose ops start with a ReLU; those ops read
  it and skip their own ReLU.
* ``share_param_free``: a parameter-free op (a pool and its non-affine BN) reading the
  same node at the same stride on several edges is computed once (an ``apply`` node
  with ``shared``), each edge weighting the one result.
* ``group_convs``: the same conv op on several edges that read the same node (or its
  shared ReLU) runs as one grouped call (an ``apply`` node).
* ``merge_kernels``: the grouped calls of one feed whose ops differ only in their
  depthwise kernel sizes (``sep_conv_3x3`` and ``sep_conv_5x5``) run as one, the smaller
  kernels zero-padded to the largest.
* ``scale_bn``: an op's alpha weight becomes the scale of its final BN instead of a
  multiply of its output.
* ``recompute_convs``: grouped convs keep only their input for the backward and
  recompute their depthwise convs there (less memory, a little more time).
* ``sum_by_source``: each source's terms are summed once for all the nodes it feeds
  (identity ops shared too): one matrix product and a few adds per source instead of
  a multiply and an add per (edge, op) term.
"""

from __future__ import annotations

from genolang.passes import (
    drop_none,
    group_convs,
    merge_kernels,
    recompute_convs,
    scale_bn,
    share_param_free,
    share_relu,
    sum_by_source,
)
from genolang.passes.manager import PASSES, Pass, PassError, optimize_cells, parse_passes, register_pass, run_passes

# The default order, declared here (not the import order): each pass relies on the ones
# before it (share_relu before group_convs reads the shared ReLU; scale_bn folds the alpha
# weights of what group_convs built; recompute_convs marks the grouped calls; sum_by_source
# sums the terms of every apply node the others made).
DEFAULT_PASSES: tuple[str, ...] = (
    drop_none.NAME, share_relu.NAME, share_param_free.NAME, group_convs.NAME, merge_kernels.NAME, scale_bn.NAME,
    recompute_convs.NAME, sum_by_source.NAME,
)

__all__ = ["DEFAULT_PASSES", "PASSES", "Pass", "PassError", "optimize_cells", "parse_passes", "register_pass",
           "run_passes"]
