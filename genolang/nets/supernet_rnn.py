"""The recurrent supernet (DARTS section 3.1.2 and its search code): one recurrent cell
whose every node i takes the softmax-weighted sum over all earlier states s_j and all
activations f of the space (``none`` contributes nothing):

    (c, h) = split(s_j W_i)               (s_j masked by the h-dropout mask in training)
    s_i    = sum_j sum_f alpha[row(i, j), f] * (s_j + sigmoid(c) * (f(h) - s_j))

s0 and every node pass through one shared ``BatchNorm1d(nhid, affine=False)``; the cell
output is the mean of the IR's output nodes. Rows are the IR's mixed edges, in order;
the alpha is ``alphas.<cell>`` of shape (sum_{i=1..n} i, ops)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from genolang.errors import UsageError
from genolang.ir.graph import CellIR
from genolang.ir.lower import lower_space
from genolang.nets.rnn import RecurrentCellBase, RNNModel
from genolang.nets.supernet import AlphaMixin, mixed_edges
from genolang.ops.build import elementwise
from genolang.spec.checked import NetworkSpec, SpaceSpec


class SearchRecurrentCell(RecurrentCellBase):
    """The DARTS recurrent search cell, wired by a mixed cell IR."""

    def __init__(self, ir: CellIR, space_ops: tuple[str, ...], ninp: int, nhid: int, dropout_h: float,
                 dropout_x: float) -> None:
        super().__init__(ninp, nhid, dropout_h, dropout_x, ir.nodes)
        self.bn = nn.BatchNorm1d(nhid, affine=False)
        self.s0 = ir.inputs[0]
        row = {(e.src, e.dst): i for i, e in enumerate(mixed_edges(ir))}
        # per node: its sources, the alpha rows of those edges (a buffer, so it follows
        # the model's device), and the (column, activation) pairs that contribute
        # (column, activation, which of the node's sources have it: None for all of them)
        self.wiring: list[tuple[str, list[str], list[tuple[int, Callable[[torch.Tensor], torch.Tensor],
                                                      str | None]]]] = []
        for node in ir.nodes:
            edges = ir.in_edges(node)
            if any(e.candidates is None for e in edges):
                raise UsageError(f"cell '{ir.name}': node {node} needs mixed edges")
            acts = []
            for op in space_ops:  # an edge may choose from some of the ops only (its candidates)
                having = [j for j, e in enumerate(edges) if op in (e.candidates or ())]
                if not having or ir.op(op).is_zero:
                    continue
                subset = None
                if len(having) < len(edges):
                    subset = f"sources_{node}_{op}"
                    self.register_buffer(subset, torch.tensor(having), persistent=False)
                acts.append((space_ops.index(op), elementwise(ir.op(op)), subset))
            self.register_buffer(f"rows_{node}", torch.tensor([row[(e.src, e.dst)] for e in edges]),
                                 persistent=False)
            self.wiring.append((node, [e.src for e in edges], acts))
        # the rows_* buffers are index tables the cell only reads (see SearchCell)
        self.constant_buffers = frozenset(self._buffers)
        self.output = ir.output_nodes

    def step(self, x: torch.Tensor, h: torch.Tensor, x_mask: torch.Tensor | None, h_mask: torch.Tensor | None,
             weights: torch.Tensor) -> torch.Tensor:
        """One time step; ``weights`` is softmax(alpha), (edges x ops)."""
        states = {self.s0: self.bn(self.init_state(x, h, x_mask, h_mask))}
        for node, sources, acts in self.wiring:
            prev = torch.stack([states[s] for s in sources])  # (J, B, H)
            inp = prev * h_mask if h_mask is not None else prev
            ch = inp.reshape(-1, self.nhid).mm(self.ws[node]).view(len(sources), -1, 2 * self.nhid)
            c, hh = torch.split(ch, self.nhid, dim=-1)
            c = c.sigmoid()
            rows = getattr(self, f"rows_{node}")
            total = torch.zeros_like(prev[0])
            for col, activation, subset in acts:
                if subset is None:
                    w = weights[rows, col].view(-1, 1, 1)  # (J, 1, 1)
                    total = total + (w * (prev + c * (activation(hh) - prev))).sum(0)
                else:  # only the sources whose edge chooses this activation
                    j = getattr(self, subset)
                    p, cj = prev.index_select(0, j), c.index_select(0, j)
                    w = weights[rows.index_select(0, j), col].view(-1, 1, 1)
                    total = total + (w * (p + cj * (activation(hh.index_select(0, j)) - p))).sum(0)
            states[node] = self.bn(total)
        return torch.stack([states[n] for n in self.output], -1).mean(-1)


class RNNSupernet(AlphaMixin, RNNModel):
    """A recurrent space compiled on a recurrent skeleton: ``RNNModel`` with a search
    cell and one alpha tensor."""

    cell: SearchRecurrentCell

    def __init__(self, space: SpaceSpec, network: NetworkSpec, ntokens: int,
                 irs: dict[str, CellIR] | None = None) -> None:
        irs = irs if irs is not None else lower_space(space)
        if len(irs) != 1:
            raise UsageError(f"space '{space.name}' has {len(irs)} cell types; a recurrent model has one cell")
        (ir,) = irs.values()
        cell = SearchRecurrentCell(ir, space.ops, network.embedding, network.hidden, network.dropout_h,
                                   network.dropout_x)
        RNNModel.__init__(self, cell, ntokens, network)
        self.space = space
        self.irs = dict(irs)
        self.cell_name = ir.name
        self._init_alphas()

    def cell_args(self) -> tuple[object, ...]:
        return (self.edge_weights()[self.cell_name],)


def build_rnn_supernet(space: SpaceSpec, network: NetworkSpec, ntokens: int) -> RNNSupernet:
    """Compile a recurrent space on a recurrent skeleton (``stem = embedding``)."""
    if space.kind != "rnn":
        raise UsageError(f"space '{space.name}' ({space.path}) is a CNN space; build it with "
                         "genolang.nets.supernet.build_supernet")
    if network.kind != "rnn":
        raise UsageError(f"network '{network.name}' ({network.path}) is a CNN skeleton; a recurrent space needs "
                         "'stem = embedding' (e.g. --network ptb_search)")
    missing = [op.name for op in space.op_defs if not op.is_zero and not op.elementwise]
    if missing:
        raise UsageError(f"space '{space.name}' ({space.path}) uses {', '.join(missing)}, which "
                         + ("are not elementwise activations" if len(missing) > 1 else
                            "is not an elementwise activation")
                         + "; a recurrent node's op must be one (e.g. 'op swish = silu')")
    return RNNSupernet(space, network, ntokens)
