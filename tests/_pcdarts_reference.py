"""An independent, compact PC-DARTS search forward written from the paper's description
(Xu et al., "PC-DARTS: Partial Channel Connections for Memory-Efficient Architecture
Search", ICLR 2020, section 3 and its Algorithm): it reads genolang's modules (stem,
preprocessors, each edge's op modules, classifier) and its alphas and betas, and wires
them the paper's way, edge by edge, with none of the supernet's machinery:

* an edge takes the first C/K channels of its input, mixes its ops on them with
  softmax(alpha), concatenates the other channels (max-pooled 2x2 where the edge
  halves the map), and shuffles the channels in K groups;
* a node is the sum of its in-edges, each weighted by the softmax of the betas over
  that node's in-edges;
* a cell concatenates its intermediate nodes; the network is stem, cells, global
  average pooling, linear classifier.

``forward`` returns the logits and every cell's output (for a module-by-module check)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Channel shuffle: split the channels into ``groups`` groups, interleave them."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def edge(x: torch.Tensor, ops: list[tuple[torch.Tensor, Any]], stride: int, k: int) -> torch.Tensor:
    """One partially connected edge: ``ops`` are (weight, module or None for a zero)."""
    c = x.shape[1] // k
    part, rest = x[:, :c], x[:, c:]
    mixed = None
    for w, op in ops:
        out = op(part) if op is not None else part[:, :, ::stride, ::stride] * 0.0
        mixed = w * out if mixed is None else mixed + w * out
    assert mixed is not None
    if mixed.shape[2] != x.shape[2]:
        rest = F.max_pool2d(rest, 2, 2)
    return shuffle(torch.cat([mixed, rest], dim=1), k)


def cell_forward(cell: Any, s0: torch.Tensor, s1: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor,
                 space_ops: tuple[str, ...], nodes: list[str], inputs: list[str], stride: int,
                 k: int) -> torch.Tensor:
    weights = F.softmax(alpha, dim=-1)
    states = {inputs[0]: cell.pre0(s0), inputs[1]: cell.pre1(s1)}
    order = list(inputs)
    row = 0
    for node in nodes:
        sources = list(order)
        b = F.softmax(beta[row:row + len(sources)], dim=-1)
        total = None
        for j, src in enumerate(sources):
            modules = cell.nodes[node][src].ops
            ops = [(weights[row + j, col], modules[name] if name in modules else None)
                   for col, name in enumerate(space_ops)]
            h = b[j] * edge(states[src], ops, stride if src in inputs else 1, k)
            total = h if total is None else total + h
        assert total is not None
        states[node] = total
        order.append(node)
        row += len(sources)
    return torch.cat([states[n] for n in nodes], dim=1)


def forward(model: Any, x: torch.Tensor, k: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The PC-DARTS network of ``model``'s modules and architecture parameters."""
    s0 = s1 = model.stem0(x)
    outs = []
    for cell, kind in zip(model.cells.values(), model._cell_types):
        ir = model.irs[kind]
        s0, s1 = s1, cell_forward(cell, s0, s1, model.alphas[kind], model.betas[kind], model.space.ops,
                                  list(ir.nodes), list(ir.inputs), ir.stride, k)
        outs.append(s1)
    return model.classifier(torch.flatten(F.adaptive_avg_pool2d(s1, 1), 1)), outs
