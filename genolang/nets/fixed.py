"""Fixed networks from genotypes: each cell is its IR with one op module per edge,
named after the edge (``nodes.n3.c1_sep_conv_3x3``)."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from genolang.ir.graph import CellIR
from genolang.ir.lower import lower_genotype
from genolang.ir.plan import CellPlan, NetworkPlan, plan_cnn
from genolang.nets.skeleton import CNNSkeleton, preprocessors
from genolang.ops.build import build_op
from genolang.ops.cnn import Identity
from genolang.spec.checked import GenotypeSpec, NetworkSpec


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob``, scaling survivors by 1/keep."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


def edge_key(src: str, op: str, taken: set[str]) -> str:
    """``c1_sep_conv_3x3``; a repeated (input, op) pair on one node gets ``_2``, ``_3``."""
    key, n = f"{src}_{op}", 2
    while key in taken:
        key, n = f"{src}_{op}_{n}", n + 1
    taken.add(key)
    return key


class FixedCell(nn.Module):
    """A genotype cell: preprocess both inputs, evaluate nodes in IR order, concatenate
    the output nodes. Drop path applies to every op that is not an identity."""

    def __init__(self, ir: CellIR, cp: CellPlan, affine: bool = True) -> None:
        super().__init__()
        self.pre0, self.pre1 = preprocessors(cp, affine)
        self.inputs = ir.inputs
        self.nodes = nn.ModuleDict()
        self.plan: list[tuple[str, list[tuple[str, str]]]] = []
        for node in ir.nodes:
            ops = nn.ModuleDict()
            wiring = []
            taken: set[str] = set()
            for e in ir.in_edges(node):
                assert e.op is not None
                key = edge_key(e.src, e.op, taken)
                ops[key] = build_op(ir.op(e.op), cp.channels, e.stride, affine)
                wiring.append((key, e.src))
            self.nodes[node] = ops
            self.plan.append((node, wiring))
        self.output = ir.output_nodes

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = {self.inputs[0]: self.pre0(s0), self.inputs[1]: self.pre1(s1)}
        for node, wiring in self.plan:
            ops = cast(nn.ModuleDict, self.nodes[node])  # one ModuleDict per node (__init__)
            total = None
            for key, src in wiring:
                op = ops[key]
                h = op(states[src])
                if self.training and drop_prob > 0.0 and not isinstance(op, Identity):
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states[node] = total
        return torch.cat([states[n] for n in self.output], dim=1)


class FixedCNN(CNNSkeleton):
    """A genotype compiled on a CNN skeleton. ``drop_path_prob`` is set by the trainer."""

    def __init__(self, geno: GenotypeSpec, plan: NetworkPlan, auxiliary: bool = True) -> None:
        irs = lower_genotype(geno)
        super().__init__(plan, lambda cp: FixedCell(irs[cp.cell], cp), affine=True, auxiliary=auxiliary)
        self.genotype = geno
        self.drop_path_prob = 0.0

    def cell_args(self) -> dict[str, tuple[object, ...]]:
        return dict.fromkeys(set(self._cell_types), (self.drop_path_prob,))


def plan_for(geno: GenotypeSpec, network: NetworkSpec, *, in_channels: int, input_size: int,
             classes: int) -> NetworkPlan:
    """Lay out ``network`` for ``geno``: each cell outputs as many node maps as it lists."""
    multipliers = {cell.name: len(cell.output) for cell in geno.cells}
    return plan_cnn(network, multipliers, in_channels=in_channels, input_size=input_size, classes=classes)


def build_fixed_cnn(geno: GenotypeSpec, network: NetworkSpec, *, in_channels: int = 3, input_size: int | None = None,
                    classes: int | None = None, auxiliary: bool = True) -> FixedCNN:
    """Compile a CNN genotype on a CNN skeleton; sizes default to the skeleton's own."""
    size = input_size or network.input_size or (224 if network.stem == "imagenet" else 32)
    n_classes = classes or network.classes or 10
    plan = plan_for(geno, network, in_channels=network.in_channels or in_channels, input_size=size, classes=n_classes)
    return FixedCNN(geno, plan, auxiliary=auxiliary)
