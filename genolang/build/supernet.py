"""Supernets from search spaces (DARTS section 2.2): every mixed edge of the cell IR
becomes the softmax(alpha)-weighted sum of its candidate ops.

The module structure is read off the IR (``genolang.ir.lower.lower_space``), never
recomputed: a cell evaluates its nodes in IR order, each node sums its IR in-edges,
each mixed edge builds one module per op in the edge's ``candidates``, and the alpha row
of an edge is its position among the cell's mixed edges. An optimizing pass that
rewrites the IR (fewer candidates, shared modules) therefore changes the supernet
without touching this file's forward path.

Modules are named after the IR: ``cells.cell03.nodes.n4.c1.ops.sep_conv_3x3`` is the
``sep_conv_3x3`` of the mixed edge ``c1 -> n4`` of cell 3; its counterpart in a fixed
network (``genolang.build.fixed``) is ``cells.cell03.nodes.n4.c1_sep_conv_3x3``. The
alphas are ``alphas.<cell type>``, one (edges x ops) tensor per cell type.

As in the paper: BatchNorm has no affine parameters anywhere in the supernet (stem,
preprocessors, ops), every pool is followed by such a BN, and ``none`` is a zero."""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from genolang.build.skeleton import CNNSkeleton, preprocessors
from genolang.errors import UsageError
from genolang.ir.alphas import CellAlphas, format_alpha_table
from genolang.ir.graph import CellIR, Edge
from genolang.ir.lower import lower_space
from genolang.ir.network import CellPlan, NetworkPlan, plan_cnn
from genolang.model import NetworkSpec, SpaceSpec
from genolang.opnames import OPS
from genolang.ops.cnn import PoolBN
from genolang.ops.registry import CNN_OPS, build_cnn_op

ALPHA_INIT_SCALE = 1e-3  # alphas start as 1e-3 * N(0, 1), as in the paper's code
ALPHAS = "alphas"  # the attribute (and parameter-name prefix) holding the alphas


def build_search_op(name: str, channels: int, stride: int) -> nn.Module:
    """The supernet version of op ``name``: non-affine BN, pools followed by a
    non-affine BN (``PoolBN``)."""
    op = build_cnn_op(name, channels, stride, affine=False)
    if OPS[name].family == "pool":
        return PoolBN(op, channels)
    return op


def mixed_edges(ir: CellIR) -> list[Edge]:
    """The mixed edges of a cell in alpha-row order (node by node, slot by slot)."""
    return [e for e in ir.edges() if e.mixed]


class MixedOp(nn.Module):
    """One mixed edge: ``sum_k w[col_k] * op_k(x)`` over the edge's candidate ops, where
    ``col_k`` is the op's column in the alpha table (the space's op order)."""

    def __init__(self, candidates: tuple[str, ...], space_ops: tuple[str, ...], channels: int, stride: int) -> None:
        super().__init__()
        self.ops = nn.ModuleDict({name: build_search_op(name, channels, stride) for name in candidates})
        self.columns = [space_ops.index(name) for name in candidates]

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights``: this edge's row of softmax(alpha), one entry per space op."""
        out = None
        for col, op in zip(self.columns, self.ops.values()):
            h = weights[col] * op(x)
            out = h if out is None else out + h
        assert out is not None
        return out


class SearchCell(nn.Module):
    """A supernet cell: preprocess both inputs (non-affine), evaluate the IR's nodes in
    order, each the sum of its mixed in-edges, concatenate the output nodes."""

    def __init__(self, ir: CellIR, cp: CellPlan, space_ops: tuple[str, ...]) -> None:
        super().__init__()
        if ir.reducer not in ("concat", "last"):
            raise UsageError(f"cell '{ir.name}' reduces its nodes with '{ir.reducer}'; a CNN supernet concatenates "
                             "its output nodes: use 'output = concat'")
        self.pre0, self.pre1 = preprocessors(cp, affine=False)
        self.inputs = ir.inputs
        row = {(e.src, e.dst): i for i, e in enumerate(mixed_edges(ir))}
        self.nodes = nn.ModuleDict()
        self.plan: list[tuple[str, list[tuple[str, int]]]] = []
        for node in ir.nodes:
            edges = nn.ModuleDict()
            wiring = []
            for e in ir.in_edges(node):
                if e.candidates is None:
                    raise UsageError(f"cell '{ir.name}': edge {e.name} is fixed; a supernet needs mixed edges")
                edges[e.src] = MixedOp(e.candidates, space_ops, cp.channels, e.stride)
                wiring.append((e.src, row[(e.src, e.dst)]))
            self.nodes[node] = edges
            self.plan.append((node, wiring))
        self.output = ir.output_nodes

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights``: softmax(alpha) of this cell type, (edges x ops)."""
        states = {self.inputs[0]: self.pre0(s0), self.inputs[1]: self.pre1(s1)}
        for node, wiring in self.plan:
            edges = self.nodes[node]
            total = None
            for src, row in wiring:
                h = edges[src](states[src], weights[row])
                total = h if total is None else total + h
            states[node] = total  # type: ignore[assignment]
        return torch.cat([states[n] for n in self.output], dim=1)


class AlphaMixin:
    """What every supernet offers on top of ``nn.Module``: alphas named by the IR, the
    split between architecture and weight parameters, and the softmax tables."""

    space: SpaceSpec
    irs: dict[str, CellIR]

    def _init_alphas(self) -> None:
        tables = {}
        for name, ir in self.irs.items():
            rows = len(mixed_edges(ir))
            tables[name] = nn.Parameter(ALPHA_INIT_SCALE * torch.randn(rows, len(self.space.ops)))
        setattr(self, ALPHAS, nn.ParameterDict(tables))

    @property
    def alpha_dict(self) -> nn.ParameterDict:
        return getattr(self, ALPHAS)  # type: ignore[no-any-return]

    def arch_parameters(self) -> list[nn.Parameter]:
        """The alphas, one tensor per cell type in the space's cell order."""
        return [self.alpha_dict[name] for name in self.irs]

    def named_weight_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Every parameter that is not an alpha, with its name."""
        for name, p in self.named_parameters():  # type: ignore[attr-defined]
            if not name.startswith(ALPHAS + "."):
                yield name, p

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not an alpha."""
        return [p for _, p in self.named_weight_parameters()]

    def softmax_weights(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) per cell type, row-wise."""
        return {name: F.softmax(self.alpha_dict[name], dim=-1) for name in self.irs}

    def cell_alphas(self) -> dict[str, CellAlphas]:
        """The structured softmax tables: rows named by IR edges, columns by ops."""
        out = {}
        with torch.no_grad():
            for name, probs in self.softmax_weights().items():
                edges = tuple((e.src, e.dst) for e in mixed_edges(self.irs[name]))
                weights = tuple(tuple(float(x) for x in row) for row in probs.detach().double().cpu().tolist())
                out[name] = CellAlphas(name, edges, tuple(self.space.ops), weights)
        return out


def alpha_table(model: AlphaMixin, digits: int = 3) -> str:
    """The softmax alphas of a supernet, one line per edge:
    ``n3 <- c1: none 0.081  ...  sep_conv_3x3 0.310 ...``."""
    return format_alpha_table(model.cell_alphas(), digits)


class Supernet(AlphaMixin, CNNSkeleton):
    """A CNN search space compiled on a CNN skeleton (no auxiliary head)."""

    def __init__(self, space: SpaceSpec, plan: NetworkPlan, irs: dict[str, CellIR] | None = None) -> None:
        irs = irs if irs is not None else lower_space(space)
        CNNSkeleton.__init__(self, plan, lambda cp: SearchCell(irs[cp.cell], cp, space.ops), affine=False,
                             auxiliary=False)
        self.space = space
        self.irs = {name: irs[name] for name in space.cell_names}
        self._init_alphas()

    def cell_args(self) -> dict[str, tuple[object, ...]]:
        return {name: (w,) for name, w in self.softmax_weights().items()}


def check_space_ops(space: SpaceSpec) -> None:
    """Every op of a CNN space needs a registered module; say which do not."""
    if space.kind != "cnn":
        raise UsageError(f"space '{space.name}' ({space.path}) is recurrent; build it with "
                         "genolang.build.supernet_rnn.build_rnn_supernet")
    missing = [op for op in space.ops if op not in CNN_OPS]
    if missing:
        raise UsageError(f"space '{space.name}' ({space.path}) uses op{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(missing)} with no CNN module registered; remove "
                         f"{'them' if len(missing) > 1 else 'it'} from 'ops' or register a builder with "
                         "genolang.ops.register_cnn_op")


def build_supernet(space: SpaceSpec, network: NetworkSpec, *, in_channels: int, input_size: int,
                   classes: int) -> Supernet:
    """Compile ``space`` on the CNN skeleton ``network`` for data of the given shape.
    Raises ``UsageError`` for ops without a module and ``PlanError`` when the skeleton
    does not fit the data (too many reductions for the input size)."""
    check_space_ops(space)
    irs = lower_space(space)
    multipliers = {name: len(ir.output_nodes) for name, ir in irs.items()}
    plan = plan_cnn(network, multipliers, in_channels=in_channels, input_size=input_size, classes=classes)
    return Supernet(space, plan, irs)
