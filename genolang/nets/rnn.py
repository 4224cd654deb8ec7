"""Recurrent models (DARTS section 3.1.2): an embedding, one recurrent cell unrolled
over time, a decoder tied to the embedding, and AWD-LSTM style dropouts.

The cell: x_t and h_{t-1} go through one bias-free linear map to (c0, h0) and
s0 = h + sigmoid(c0) * (tanh(h0) - h). Node i reads one earlier node s_j:
(c, h) = split(s_j W_i), s_i = s_j + sigmoid(c) * (f(h) - s_j). The cell's output (the
new hidden state) is the mean of the output nodes. Variational dropout masks on x and
h are drawn once per sequence; the h mask also applies to every node's input."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from genolang.ir.graph import CellIR
from genolang.ops.build import elementwise
from genolang.spec.checked import NetworkSpec

INIT_RANGE = 0.04


def mask2d(rows: int, cols: int, keep: float, like: torch.Tensor) -> torch.Tensor:
    """A (rows, cols) Bernoulli(keep) mask scaled by 1/keep."""
    return like.new_empty(rows, cols).bernoulli_(keep).div_(keep)


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """One dropout mask per sequence, shared by every time step of ``x`` (T, B, H)."""
    if not training or p == 0.0:
        return x
    mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - p).div_(1 - p)
    return x * mask


def embedded_dropout(embed: nn.Embedding, words: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Drop whole words: zero rows of the embedding matrix with probability ``p``."""
    weight = embed.weight
    if training and p > 0.0:
        mask = weight.new_empty(weight.size(0), 1).bernoulli_(1 - p).div_(1 - p)
        weight = weight * mask
    return F.embedding(words, weight)


class RecurrentCellBase(nn.Module):
    """What fixed and search cells share: the input map W0, per-node maps, the masks
    and the unrolling over time. Subclasses define ``step(x, h, x_mask, h_mask)``, one
    time step returning the new hidden state."""

    step: Callable[..., torch.Tensor]  # (x, h, x_mask, h_mask, *step_args) -> new h: defined by every subclass

    def __init__(self, ninp: int, nhid: int, dropout_h: float, dropout_x: float, node_names: list[str]) -> None:
        super().__init__()
        self.nhid, self.dropout_h, self.dropout_x = nhid, dropout_h, dropout_x
        self.w0 = nn.Parameter(torch.empty(ninp + nhid, 2 * nhid).uniform_(-INIT_RANGE, INIT_RANGE))
        self.ws = nn.ParameterDict({
            n: nn.Parameter(torch.empty(nhid, 2 * nhid).uniform_(-INIT_RANGE, INIT_RANGE)) for n in node_names
        })

    def init_state(self, x: torch.Tensor, h: torch.Tensor, x_mask: torch.Tensor | None,
                   h_mask: torch.Tensor | None) -> torch.Tensor:
        if x_mask is not None and h_mask is not None:
            xh = torch.cat([x * x_mask, h * h_mask], dim=-1)
        else:
            xh = torch.cat([x, h], dim=-1)
        c0, h0 = torch.split(xh.mm(self.w0), self.nhid, dim=-1)
        return h + c0.sigmoid() * (h0.tanh() - h)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor,
                *step_args: object) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs`` (T, B, ninp), ``hidden`` (1, B, nhid) -> outputs (T, B, nhid), last
        hidden. ``step_args`` go to every ``step`` (a search cell's softmax weights)."""
        batch = inputs.size(1)
        x_mask: torch.Tensor | None
        h_mask: torch.Tensor | None
        if self.training:
            x_mask = mask2d(batch, inputs.size(2), 1 - self.dropout_x, inputs)
            h_mask = mask2d(batch, self.nhid, 1 - self.dropout_h, inputs)
        else:
            x_mask = h_mask = None
        h = hidden[0]
        outs = []
        for t in range(inputs.size(0)):
            h = self.step(inputs[t], h, x_mask, h_mask, *step_args)
            outs.append(h)
        stacked = torch.stack(outs)
        return stacked, stacked[-1].unsqueeze(0)


class FixedRecurrentCell(RecurrentCellBase):
    """A genotype's recurrent cell: each node reads the one earlier node its IR edge names."""

    def __init__(self, ir: CellIR, ninp: int, nhid: int, dropout_h: float, dropout_x: float) -> None:
        super().__init__(ninp, nhid, dropout_h, dropout_x, ir.nodes)
        self.s0 = ir.inputs[0]
        self.wiring = []
        for node in ir.nodes:
            (edge,) = ir.in_edges(node)
            assert edge.op is not None
            self.wiring.append((node, edge.src, elementwise(ir.op(edge.op))))
        self.output = ir.output_nodes

    def step(self, x: torch.Tensor, h: torch.Tensor, x_mask: torch.Tensor | None,
             h_mask: torch.Tensor | None) -> torch.Tensor:
        states = {self.s0: self.init_state(x, h, x_mask, h_mask)}
        for node, src, activation in self.wiring:
            prev = states[src]
            inp = prev * h_mask if h_mask is not None else prev
            c, hh = torch.split(inp.mm(self.ws[node]), self.nhid, dim=-1)
            states[node] = prev + c.sigmoid() * (activation(hh) - prev)
        return torch.stack([states[n] for n in self.output], -1).mean(-1)


class RNNModel(nn.Module):
    """Embedding, dropouts, one recurrent cell, decoder tied to the embedding. The
    forward pass returns log-probabilities (T, B, ntokens) and the new hidden state."""

    def __init__(self, cell: RecurrentCellBase, ntokens: int, network: NetworkSpec) -> None:
        super().__init__()
        self.ntokens, self.ninp, self.nhid = ntokens, network.embedding, network.hidden
        self.network = network
        self.dropout, self.dropout_i, self.dropout_e = network.dropout, network.dropout_i, network.dropout_e
        self.encoder = nn.Embedding(ntokens, network.embedding)
        self.cell = cell
        self.decoder = nn.Linear(network.hidden, ntokens)
        if network.tied:
            self.decoder.weight = self.encoder.weight
        self.encoder.weight.data.uniform_(-INIT_RANGE, INIT_RANGE)
        self.decoder.bias.data.zero_()
        if not network.tied:
            self.decoder.weight.data.uniform_(-INIT_RANGE, INIT_RANGE)

    def cell_args(self) -> tuple[object, ...]:
        """Extra arguments for the cell, computed once per forward pass (a supernet's
        softmax weights); none for a fixed cell."""
        return ()

    def init_hidden(self, batch: int) -> torch.Tensor:
        return self.encoder.weight.new_zeros(1, batch, self.nhid)

    def forward(self, words: torch.Tensor, hidden: torch.Tensor,
                return_h: bool = False) -> tuple[torch.Tensor, ...]:
        """``words`` (T, B). With ``return_h`` also the raw and dropped cell outputs
        (for activation regularisation)."""
        emb = embedded_dropout(self.encoder, words, self.dropout_e, self.training)
        emb = locked_dropout(emb, self.dropout_i, self.training)
        raw, new_hidden = self.cell(emb, hidden, *self.cell_args())
        out = locked_dropout(raw, self.dropout, self.training)
        logits = self.decoder(out.view(-1, self.nhid))
        log_prob = F.log_softmax(logits, dim=-1).view(words.size(0), words.size(1), self.ntokens)
        if return_h:
            return log_prob, new_hidden, raw, out
        return log_prob, new_hidden


def build_fixed_rnn(ir: CellIR, network: NetworkSpec, ntokens: int | None = None) -> RNNModel:
    """Compile a recurrent genotype cell on a recurrent skeleton."""
    vocab = ntokens or network.vocab or 10000
    cell = FixedRecurrentCell(ir, network.embedding, network.hidden, network.dropout_h, network.dropout_x)
    return RNNModel(cell, vocab, network)
