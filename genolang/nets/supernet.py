"""Supernets from search spaces (DARTS section 2.2): every mixed edge of the cell IR
becomes the softmax(alpha)-weighted sum of its candidate ops.

The module structure is read off the IR (``genolang.ir.lower.lower_space``), never
recomputed: a cell evaluates its IR in order, each node sums its IR in-edges, and the
alpha row of an edge is the edge's ``row``. The optimizing passes (``genolang.passes``,
on by default: ``SupernetOptions``) rewrite the IR (``none`` dropped, one ReLU per node,
pools computed once per node, convs of the same kind grouped into one call, alpha
weights applied as BN scales); this file builds whatever the IR says, so an optimized
and an unoptimized supernet compute the same function with the same parameters.

Modules are named after the unoptimized IR, whatever the passes: ``cells.cell03.nodes.
n4.c1.ops.sep_conv_3x3`` is the ``sep_conv_3x3`` of the mixed edge ``c1 -> n4`` of cell
3 (a grouped call reads its edges' modules where they are), so state dicts and
checkpoints are the same with and without passes; its counterpart in a fixed network
(``genolang.nets.fixed``) is ``cells.cell03.nodes.n4.c1_sep_conv_3x3``. The alphas are
``alphas.<cell type>``, one (edges x ops) tensor per cell type; where an edge chooses
from some of the space's ops only (``edge c0 -> n2 = ...`` in the space), its ``MixedOp``
holds only those and the other entries of its row are masked to weight 0
(``AlphaMixin.edge_weights``).

As in the paper's code: the stem's BatchNorm is affine (the only affine BN of the
supernet, as ``nn.BatchNorm2d``'s default in the original ``model_search.py``); every
other BN (preprocessors, ops) has no affine parameters, every pool is followed by such
a BN, and ``none`` is a zero.

What search methods change (``SupernetOptions``, set by their transforms, and the
relaxation ``AlphaMixin.relaxation``):

* ``partial_channels = K`` (PC-DARTS, Xu et al. 2020): every mixed edge runs its ops
  on the first C/K channels of its input (ops built for C/K channels), concatenates
  the other channels (max-pooled 2x2 on stride-2 edges) and shuffles the channels in K
  groups. Shuffle and concatenation are linear, so a node's sum of such edges is the
  shuffle of [the weighted sum of the edges' ops on their C/K slices, the weighted sum
  of their bypassed channels]: the cell IR and its passes run unchanged on the C/K
  slices (grouped calls, the shared ReLU, the BN-scale fold), and each node adds the
  bypass and shuffles once.
* ``edge_normalization`` (PC-DARTS): extra architecture parameters ``betas.<cell
  type>``, one per edge; each node weights its in-edges by the softmax of their betas
  (``edge_scale``), which multiplies the edge's op weights (and its bypass).
* ``aux_skip`` (DARTS-, Chu et al. 2021): every mixed edge adds ``aux_weight * aux(x)``,
  aux the identity on stride-1 edges and ``FactorizedReduce(C, C)`` without affine
  parameters on stride-2 edges (``cells...nodes.<dst>.<src>.aux``), outside the alphas.
* a relaxation with ``one_op_per_edge`` (GDAS's hard Gumbel-softmax): each edge runs
  only the op its (one-hot) weights select, ``op_k(x) * w[k]``, whatever the passes
  (which batch ops across edges; the sampled path does not use them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from genolang.errors import UsageError
from genolang.ir.alphas import CellAlphas, format_alpha_table
from genolang.ir.graph import CellIR, Edge
from genolang.ir.lower import lower_space
from genolang.ir.plan import CellPlan, NetworkPlan, plan_cnn
from genolang.nets.skeleton import CNNSkeleton, preprocessors
from genolang.ops.build import build_op
from genolang.ops.cnn import FactorizedReduce, Identity
from genolang.ops.grouped import (
    ChannelRuns,
    StatUpdates,
    block_sum,
    blocks_to_interleave,
    clear_caches,
    fused_cat,
    fused_stack,
    grouped_executor,
    link_bn_stats,
    parts_of,
    relu_keep_input,
    shared_executor,
    weighted_mix,
)
from genolang.passes import DEFAULT_PASSES, optimize_cells
from genolang.spec.checked import NetworkSpec, SpaceSpec
from genolang.spec.ops import OpDef

ALPHA_INIT_SCALE = 1e-3  # alphas start as 1e-3 * N(0, 1), as in the paper's code
ALPHAS = "alphas"  # the attribute (and parameter-name prefix) holding the alphas
ALPHA_MASK = "alpha_mask"  # buffer-name prefix of the masks of cell types whose edges choose from some ops only
BETAS = "betas"  # PC-DARTS's edge-normalisation parameters, one per edge (with edge_normalization)


@dataclass(frozen=True)
class SupernetOptions:
    """How a CNN supernet is compiled: the passes run over its cell IR, in order, and
    whether its tensors are channels-last (NHWC in memory; several times faster for the
    depthwise convs of the DARTS ops on the CPU); neither changes what it computes.
    ``cpu_kernels``: on the CPU, the grouped convs run merged kernels as one call per
    kernel size, tile shared-input depthwise convs and run dilated ones on their input's
    phases (faster there, with more but cheaper ops: views, layout copies and smaller
    calls; ``genolang.ops.grouped``); off, the CPU runs the ops a GPU runs. The other
    fields change the supernet itself (search methods' transforms, see the module's
    docstring): ``partial_channels`` K (1: every channel, DARTS), ``edge_normalization``
    (per-node softmax of per-edge betas), ``aux_skip``."""

    passes: tuple[str, ...] = DEFAULT_PASSES
    channels_last: bool = True
    partial_channels: int = 1
    edge_normalization: bool = False
    aux_skip: bool = False
    cpu_kernels: bool = True


NO_OPT = SupernetOptions(passes=(), channels_last=False)  # the supernet exactly as the paper's code builds it


def build_search_op(op: OpDef, channels: int, stride: int) -> nn.Module:
    """The supernet version of an op: batch norms without parameters, ``bn(search)``
    (the BN DARTS puts after a pool in a supernet) included."""
    return build_op(op, channels, stride, affine=False, search=True)


def mixed_edges(ir: CellIR) -> list[Edge]:
    """The mixed edges of an unoptimized cell in alpha-row order (node by node, slot by
    slot)."""
    return [e for e in ir.edges() if e.mixed]


def node_row_ranges(ir: CellIR) -> list[tuple[int, int]]:
    """Per intermediate node of an unoptimized cell, the alpha rows of its in-edges as
    a range ``(start, end)`` (rows run node by node)."""
    out: list[tuple[int, int]] = []
    dst = None
    for row, e in enumerate(mixed_edges(ir)):
        if e.row != row:
            raise UsageError(f"cell '{ir.name}': edge {e.name} is alpha row {e.row}, expected {row}")
        if e.dst != dst:
            out.append((row, row + 1))
            dst = e.dst
        else:
            out[-1] = (out[-1][0], row + 1)
    return out


class MixedOp(nn.Module):
    """One mixed edge: ``sum_k w[col_k] * op_k(x)`` over the edge's candidate ops, where
    ``col_k`` is the op's column in the alpha table (the space's op order). With
    ``aux`` (DARTS-) it also holds the auxiliary skip ``aux``: the identity at stride 1,
    a factorized reduce without affine parameters at stride 2; the cell adds it."""

    def __init__(self, candidates: tuple[OpDef, ...], space_ops: tuple[str, ...], channels: int, stride: int,
                 aux: bool = False) -> None:
        super().__init__()
        self.ops = nn.ModuleDict({op.name: build_search_op(op, channels, stride) for op in candidates})
        self.columns = [space_ops.index(op.name) for op in candidates]
        if aux:
            self.aux: nn.Module | None = Identity() if stride == 1 else FactorizedReduce(channels, channels,
                                                                                          affine=False)
        else:
            self.aux = None

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights``: this edge's row of softmax(alpha), one entry per space op."""
        out = None
        for col, op in zip(self.columns, self.ops.values()):
            h = weights[col] * op(x)
            out = h if out is None else out + h
        assert out is not None
        return out


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """PC-DARTS's shuffle: channels ordered (group, c) become (c, group), i.e. output
    channel ``groups * i + j`` is input channel ``j * (C / groups) + i``; in the same
    memory format."""
    return blocks_to_interleave(x, groups)


class _Sum:
    """A node's running sum of (tensor, weight) terms, the weight a tensor, a number or
    None (1): the first two make a new tensor, the rest add in place (autograd keeps no
    sum for the backward)."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.fresh = False

    def add(self, t: torch.Tensor, w: torch.Tensor | float | None) -> None:
        if self.total is None:
            self.total, self.fresh = (t, False) if w is None else (t * w, True)
        elif not self.fresh:
            if w is None:
                self.total = self.total + t
            elif isinstance(w, float):
                self.total = torch.add(self.total, t, alpha=w)
            else:  # not addcmul: its backward scales by its value (1) with two more ops
                self.total = self.total + t * w
            self.fresh = True
        elif w is None:
            self.total.add_(t)
        elif isinstance(w, float):
            self.total.add_(t, alpha=w)
        else:
            self.total.add_(t * w)


def _row_major_strides(shape: torch.Size) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


@dataclass(frozen=True)
class _SourceSum:
    """How a cell sums one source's terms for every node it feeds (``sum_by_source``):
    ``shared`` applies (one result each) weighted by the (nodes x shared) alpha matrix,
    gathered sum segment ``matrix``; ``full`` grouped applies whose part k goes to node
    k, each with its column of weights (a sum segment) or None (BN-scaled); every
    other summed term stays a term of its node (``rest``: the (apply, part) pairs)."""

    nodes: tuple[str, ...]
    shared: tuple[str, ...]
    matrix: int | None
    full: tuple[tuple[str, int | None], ...]
    rest: frozenset[tuple[str, int]]


class SearchCell(nn.Module):
    """A supernet cell: preprocess both inputs (non-affine), evaluate the (possibly
    optimized) IR in order, concatenate the output nodes. With ``partial`` K > 1 the IR
    runs on the first C/K channels of every state and each node adds the bypassed
    channels and shuffles (PC-DARTS); with ``aux`` every edge adds its auxiliary skip
    (DARTS-)."""

    weight_index: torch.Tensor  # a buffer (registered in __init__)

    def __init__(self, ir: CellIR, cp: CellPlan, space_ops: tuple[str, ...], partial: int = 1,
                 aux: bool = False, cpu_kernels: bool = True) -> None:
        super().__init__()
        self.cpu_kernels = cpu_kernels
        if ir.reducer not in ("concat", "last"):
            raise UsageError(f"cell '{ir.name}' reduces its nodes with '{ir.reducer}'; a CNN supernet concatenates "
                             "its output nodes: use 'output = concat'")
        if partial < 1 or cp.channels % partial:
            raise UsageError(f"partial channels 1/{partial}: cell {cp.index} ({cp.cell}) has {cp.channels} channels, "
                             f"which {partial} does not divide; choose a k that divides every cell's channels "
                             "(the skeleton's channels, doubled at each reduction)")
        self.pre0, self.pre1 = preprocessors(cp, affine=False)
        self.inputs = ir.inputs
        self.output = ir.output_nodes
        self.partial = partial
        self.channels = cp.channels // partial  # what the ops see
        self.space_ops = space_ops
        self.zero_ops = frozenset(op for op in space_ops if ir.op(op).is_zero)
        # one MixedOp per alpha row, holding every op the IR computes for that row
        rows: dict[int, tuple[str, str, int]] = {}
        ops: dict[int, set[str]] = {}
        for node in ir.nodes:
            for e in ir.in_edges(node):
                if e.kind == "op" and e.candidates is None:
                    raise UsageError(f"cell '{ir.name}': edge {e.name} is fixed; a supernet needs mixed edges")
                assert e.row is not None
                rows.setdefault(e.row, (ir.origin(e.src), node, e.stride))
                ops.setdefault(e.row, set()).update(e.candidates or (() if e.op is None else (e.op,)))
        self.nodes = nn.ModuleDict()
        # per node, its edges (row, source, stride) in row order: the unoptimized cell
        self.node_rows: dict[str, list[tuple[int, str, int]]] = {}
        for row in sorted(rows):  # node by node, slot by slot: the unoptimized order
            src, dst, stride = rows[row]
            if dst not in self.nodes:
                self.nodes[dst] = nn.ModuleDict()
            into = cast(nn.ModuleDict, self.nodes[dst])
            into[src] = MixedOp(tuple(ir.op(op) for op in space_ops if op in ops[row]), space_ops,
                                self.channels, stride, aux)
            self.node_rows.setdefault(dst, []).append((row, src, stride))
        self.aux = aux
        # the alpha weights the terms multiply by, gathered once per forward: (row, col) -> slot
        self._slots: dict[tuple[int, int], int] = {}
        # the flat alpha-table indices of the BN scales of the scaled applies, one per
        # output channel, in step order (gathered with the slots' weights)
        self._scales: list[list[int]] = []
        # the flat indices of the source sums' weight matrices and columns (PAD: a 0)
        self._mix_segments: list[list[int]] = []
        self._shared_parts: dict[tuple[str, str], int] = {}  # (shared apply, node) -> its part for that node
        self._pad = len(space_ops) * (max(rows) + 1 if rows else 0)  # the index of the 0 appended to the weights
        # whether a grouped call recomputes from a BN scale (``recompute_convs`` after
        # ``scale_bn``): only then does a forward need to know that no scale is zero
        self.recompute_scaled = False
        self.sums = {origin: self._source_sum(ir, origin, applies, nodes, space_ops)
                     for origin, (applies, nodes) in ir.summed_sources().items()}
        self.steps: list[tuple[Any, ...]] = [self._step(ir, n, rows, space_ops) for n in ir.order()
                                             if ir.role(n) not in ("input", "output")]
        segments = self._scales + self._mix_segments
        flat = [i for seg in segments for i in seg] + [row * len(space_ops) + col for row, col in self._slots]
        self._padded = self._pad in flat
        # one index_select gathers every weight a forward uses: the scales, the sums', the slots
        self._gather_sizes = [len(seg) for seg in segments] + [len(self._slots)]
        self._n_scale = sum(len(scale) for scale in self._scales)  # the gathered BN scales come first
        self.register_buffer("weight_index", torch.tensor(flat, dtype=torch.long), persistent=False)
        # the alpha-table entries the BN scales read: the supernet checks them for zeros,
        # for every cell of a type at once (``Supernet.cell_args``)
        entries = sorted({i for scale in self._scales for i in scale})
        self.register_buffer("scale_entries", torch.tensor(entries, dtype=torch.long), persistent=False)
        self._link_bn_stats()
        # the cell's own buffers are index tables it only reads: a forward that must leave
        # the model's state alone (the architect's) need not copy them
        self.constant_buffers = frozenset(self._buffers)

    def _link_bn_stats(self) -> None:
        """Lay the running statistics of the batch norms each grouped call normalises as
        one out as views of one tensor (``link_bn_stats``): the call moves them in place."""
        for step in self.steps:
            if step[0] == "apply" and not step[4]:
                for bns in getattr(step[3], "batch_norms", list)():
                    link_bn_stats(bns)

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> SearchCell:
        """``nn.Module._apply`` (``.to()``, ``.cuda()``, ``.double()``...), then the grouped
        batch norms' statistics linked again: a move replaces each buffer on its own."""
        out = super()._apply(fn, recurse)
        for step in self.steps:  # the derived weights of the old tensors
            if step[0] == "apply":
                clear_caches(step[3])
        self._link_bn_stats()
        self._contiguous_depthwise()
        return out

    def _contiguous_depthwise(self) -> None:
        """Keep depthwise conv weights (C x 1 x K x K) contiguous, also in a channels-last
        supernet (the same bytes either way): a grouped call stacks E of them into its
        (C*E) x 1 x K x K weight as a view instead of a copy."""
        for m in self.modules():
            w = m.weight if isinstance(m, nn.Conv2d) else None
            if w is not None and w.shape[1] == 1 and w.stride() != _row_major_strides(w.shape):
                with torch.no_grad():  # is_contiguous() ignores a size-1 dim's stride; stack does not
                    m.weight.data = w.data.new_empty(w.shape).copy_(w.data)

    def _source_sum(self, ir: CellIR, origin: str, applies: list[str], nodes: list[str],
                    space_ops: tuple[str, ...]) -> _SourceSum:
        g = ir.graph
        index = {n: i for i, n in enumerate(nodes)}
        shared: list[str] = []
        full: list[tuple[str, int | None]] = []
        rest: set[tuple[str, int]] = set()
        matrix: dict[tuple[int, int], int] = {}
        for a in applies:
            d = g.nodes[a]
            terms = sorted((e for _, _, e in g.out_edges(a, data=True)), key=lambda e: e["part"])
            dsts = [v for _, v, _ in sorted(g.out_edges(a, data=True), key=lambda t: t[2]["part"])]
            cols = [t["row"] * len(space_ops) + space_ops.index(t["op"]) for t in terms]
            if d.get("shared"):
                j = len(shared)
                shared.append(a)
                for t, v, col in zip(terms, dsts, cols):
                    matrix[(index[v], j)] = col
                    self._shared_parts[(a, v)] = t["part"]
            elif len(dsts) % len(nodes) == 0 and dsts == nodes * (len(dsts) // len(nodes)):
                # every node once (or once per op of merged kernels, op by op): added whole
                if all(t.get("scaled") for t in terms):
                    full.append((a, None))
                else:
                    full.append((a, len(self._mix_segments)))
                    self._mix_segments.append(cols)
            else:
                rest.update((a, t["part"]) for t in terms)
        m = None
        if shared:
            m = len(self._mix_segments)
            self._mix_segments.append([matrix.get((e, j), self._pad) for e in range(len(nodes))
                                       for j in range(len(shared))])
        return _SourceSum(tuple(nodes), tuple(shared), m, tuple(full), frozenset(rest))

    def _slot(self, row: int, col: int) -> int:
        return self._slots.setdefault((row, col), len(self._slots))

    def _mixed(self, dst: str, src: str) -> MixedOp:
        """The mixed edge ``src -> dst``: ``nodes`` holds a ModuleDict of MixedOps per node."""
        return cast(MixedOp, cast(nn.ModuleDict, self.nodes[dst])[src])

    def _module(self, rows: dict[int, tuple[str, str, int]], row: int, op: str) -> nn.Module:
        src, dst, _ = rows[row]
        return self._mixed(dst, src).ops[op]

    def _step(self, ir: CellIR, n: str, rows: dict[int, tuple[str, str, int]],
              space_ops: tuple[str, ...]) -> tuple[Any, ...]:
        g = ir.graph
        role = ir.role(n)
        if role == "relu":
            (feed,) = [u for u, _ in g.in_edges(n)]
            return ("relu", n, feed)
        if role == "apply":
            d = g.nodes[n]
            (feed,) = [u for u, _ in g.in_edges(n)]
            out_terms = sorted((e for _, _, e in g.out_edges(n, data=True)), key=lambda e: e["part"])
            members = [self._module(rows, t["row"], t["op"]) for t in out_terms]  # merged kernels: ops differ
            scaled = {bool(t.get("scaled")) for t in out_terms}
            if len(scaled) > 1:
                raise UsageError(f"cell '{ir.name}': {n} scales the BN of some of its terms only")
            run = (shared_executor(members) if d.get("shared")
                   else grouped_executor(members, bool(d.get("recompute")), self.cpu_kernels))
            is_scaled = scaled.pop()
            index = None
            if is_scaled:  # each term's weight, repeated for its C output channels
                self.recompute_scaled |= bool(d.get("recompute")) and not d.get("shared")
                index = len(self._scales)
                self._scales.append([t["row"] * len(space_ops) + space_ops.index(t["op"]) for t in out_terms
                                     for _ in range(self.channels)])
            return ("apply", n, feed, run, bool(d.get("shared")), ir.role(feed) != "relu", index, ir.origin(feed))
        terms: list[tuple[Any, ...]] = []
        for e in ir.in_edges(n):
            assert e.row is not None
            if e.summed and (e.src, e.part) not in self.sums[ir.origin(e.src)].rest:
                origin = ir.origin(e.src)
                entry = ("sum", origin, self.sums[origin].nodes.index(n))
                if entry not in terms:
                    terms.append(entry)
                continue
            if e.kind == "term":
                assert e.op is not None and e.part is not None
                slot = None if e.scaled else self._slot(e.row, space_ops.index(e.op))
                terms.append(("part", e.src, e.part, slot))
                continue
            mixed = self._mixed(n, ir.origin(e.src))
            relu = ir.role(e.src) != "relu"
            if relu and not e.scaled and set(e.candidates or ()) == set(mixed.ops):
                terms.append(("mixed", e.src, e.row, mixed))
            else:
                terms.append(("ops", e.src, [(self._slot(e.row, space_ops.index(op)), mixed.ops[op], relu,
                                              op in e.scaled) for op in e.candidates or ()]))
        return ("node", n, terms)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, scale: torch.Tensor | None = None,
                index: torch.Tensor | None = None, aux_weight: float = 0.0,
                nonzero: bool | None = None) -> torch.Tensor:
        """``weights``: the relaxed alphas of this cell type, (edges x ops); ``scale``:
        each edge's normalised beta (edge normalisation) or None; ``index``: the op each
        edge runs (a one-op-per-edge relaxation: only that op is computed) or None;
        ``aux_weight``: the auxiliary skips' weight (with ``aux``); ``nonzero``: whether
        the weights (times the scale) are nonzero at ``scale_entries``, None to check
        here (a device sync). The grouped calls' running-statistics updates are made at
        the end, together (``StatUpdates``)."""
        with StatUpdates():
            return self._forward(s0, s1, weights, scale, index, aux_weight, nonzero)

    def _forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, scale: torch.Tensor | None,
                 index: torch.Tensor | None, aux_weight: float, known_nonzero: bool | None) -> torch.Tensor:
        full = {self.inputs[0]: self.pre0(s0), self.inputs[1]: self.pre1(s1)}
        if scale is not None:
            weights = weights * scale.unsqueeze(-1)
        if index is not None:
            return self._forward_sampled(full, weights, scale, index, aux_weight)
        states = {name: self._slice(t) for name, t in full.items()}  # what the ops read
        results: dict[str, Any] = {}
        # one gather (and one backward) for every weight the steps use, and one check that
        # the BN scales have no zero (which the recomputing executors cannot take)
        flat = weights.reshape(-1)
        if self._padded:  # a 0 for the sums' missing (node, op) entries
            flat = fused_cat([flat, flat.new_zeros(1)])
        gathered = flat.index_select(0, self.weight_index)
        checked = gathered if self._n_scale == gathered.numel() else gathered[:self._n_scale]
        if not self._scales or not self.recompute_scaled:  # nothing divides by a scale
            nonzero = False
        elif known_nonzero is not None:
            nonzero = known_nonzero
        else:
            nonzero = bool((checked != 0).all())
        powers: list[tuple[torch.Tensor, torch.Tensor]] = []
        if nonzero and torch.is_grad_enabled() and checked.requires_grad:
            with torch.no_grad():  # what the recomputing blocks' backward needs of every scale, at once
                sizes = self._gather_sizes[:len(self._scales)]
                powers = list(zip(checked.reciprocal().split(sizes), checked.square().split(sizes)))
        *segments, scalar_part = gathered.split(self._gather_sizes)
        bn_scales, mix = segments[:len(self._scales)], segments[len(self._scales):]
        scalars = scalar_part.unbind(0)
        sums: dict[str, tuple[torch.Tensor, ...]] = {}
        for step in self.steps:
            kind, name = step[0], step[1]
            if kind == "relu":
                states[name] = relu_keep_input(states[step[2]])
            elif kind == "apply":
                _, _, feed, run, shared, relu, index, origin = step
                if shared:
                    results[name] = run(states[feed])
                else:
                    bn_scale = None if index is None else bn_scales[index]  # one weight per output channel
                    keep = None if relu else states[origin]  # the ReLU's input, to store instead of its output
                    facts = powers[index] if powers and index is not None else nonzero
                    results[name] = run(states[feed], relu, bn_scale, keep, facts)
            else:
                total = _Sum()
                for term in step[2]:
                    if term[0] == "sum":
                        _, origin, k = term
                        if origin not in sums:
                            sums[origin] = self._source_sum_forward(self.sums[origin], results, mix)
                        total.add(sums[origin][k], None)
                self._node(step[2], states, results, weights, scalars, total, self.channels)
                full[name] = self._finish(name, total, full, states, scale, aux_weight)
                if self.partial > 1:
                    states[name] = self._slice(full[name])
                else:
                    states[name] = full[name]
        return fused_cat([full[n] for n in self.output], 1)

    def _source_sum_forward(self, plan: _SourceSum, results: dict[str, Any],
                            mix: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """One source's terms summed for each node it feeds (``_SourceSum``): the shared
        results weighted by their alpha matrix in one matrix product (``weighted_mix``),
        plus the full grouped outputs added whole and viewed as (nodes, N, C, H, W); one
        tensor per node, in the memory format of the matrix product's result. Nothing
        is written in place into a view (autograd would record copies)."""
        E = len(plan.nodes)
        outs = [results[a] for a in plan.shared]
        grouped: list[torch.Tensor] = []
        for a, col in plan.full:  # whole (N, k*E*C, H, W) outputs (k ops merged, op by op), or their runs
            pieces = parts_of(results[a])
            if any(t.shape[1] % (E * self.channels) for t in pieces):  # runs not along whole ops: joined
                pieces = (fused_cat(pieces, 1),)
            if col is not None:
                sizes = [t.shape[1] for t in pieces]
                w = mix[col].repeat_interleave(sum(sizes) // mix[col].numel())
                pieces = tuple(t * wt.view(1, -1, 1, 1) for t, wt in zip(pieces, w.split(sizes)))
            grouped.extend(pieces)
        total = None
        if outs:
            assert plan.matrix is not None
            w = mix[plan.matrix].view(E, len(outs))
            if all(all(t is o[0] for t in o) for o in outs):  # one result per apply (training mode)
                total = weighted_mix(w, [o[0] for o in outs])
            else:  # a result per edge (eval mode, data-parallel batch norms): term by term
                by_node = []
                for e in range(E):
                    node = _Sum()
                    for j, o in enumerate(outs):
                        part = self._shared_part(plan, j, e)
                        if part is not None:
                            node.add(o[part], w[e, j])
                    by_node.append(node.total if node.total is not None else torch.zeros_like(outs[0][0]))
                total = fused_stack(by_node, 0)
        if grouped:  # summed over their ops, as (nodes, N, C, H, W)
            g = block_sum(grouped, E, self.channels)
            total = g if total is None else total + g  # the product's result first: its layout wins
        assert total is not None
        return total.unbind(0)

    def _shared_part(self, plan: _SourceSum, j: int, e: int) -> int | None:
        """Which part of shared apply ``j`` of a source sum goes to its ``e``-th node."""
        return self._shared_parts.get((plan.shared[j], plan.nodes[e]))

    def _forward_sampled(self, full: dict[str, torch.Tensor], weights: torch.Tensor, scale: torch.Tensor | None,
                         index: torch.Tensor, aux_weight: float) -> torch.Tensor:
        """GDAS's forward: every edge computes only its selected op, ``op_k(x) * w[k]``
        (w already times the edge's scale); the other ops run not at all."""
        chosen = index.tolist()  # one device sync per cell
        states = {name: self._slice(t) for name, t in full.items()}
        for node, edges in self.node_rows.items():
            total = _Sum()
            for row, src, stride in edges:
                op = self.space_ops[chosen[row]]
                x = states[src]
                modules = self._edge(node, src).ops
                if op in modules:
                    total.add(modules[op](x), weights[row, chosen[row]])
                elif op in self.zero_ops:  # 'none' (dropped from the modules by drop_none): a zero
                    total.add(x[:, :, ::stride, ::stride].mul(0.0), weights[row, chosen[row]])
                else:
                    raise UsageError(f"edge {node}<-{src} has no op {op!r} to run (its alpha selects it)")
            full[node] = self._finish(node, total, full, states, scale, aux_weight)
            states[node] = self._slice(full[node])
        return fused_cat([full[n] for n in self.output], 1)

    def _edge(self, dst: str, src: str) -> MixedOp:
        edge = self.nodes[dst][src]  # type: ignore[index]
        assert isinstance(edge, MixedOp)
        return edge

    def _slice(self, t: torch.Tensor) -> torch.Tensor:
        """The channels the ops of an edge read: all of them, or the first C/K (in the
        tensor's memory format, for the kernels)."""
        if self.partial == 1:
            return t
        part = t[:, : self.channels]
        if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
            return part.contiguous(memory_format=torch.channels_last)
        return part.contiguous()

    def _finish(self, node: str, total: _Sum, full: dict[str, torch.Tensor], states: dict[str, torch.Tensor],
                scale: torch.Tensor | None, aux_weight: float) -> torch.Tensor:
        """A node's state from the sum of its edges' op terms: plus the auxiliary skips
        (DARTS-), and with partial channels the bypassed channels and the shuffle."""
        edges = self.node_rows[node]
        if self.aux and aux_weight != 0.0:
            for row, src, _ in edges:
                aux = self._edge(node, src).aux
                assert aux is not None
                total.add(aux(states[src]), aux_weight if scale is None else scale[row] * aux_weight)
        if self.partial == 1:
            assert total.total is not None, f"node {node} computes nothing"
            return total.total
        bypass = _Sum()
        for row, src, stride in edges:
            rest = full[src][:, self.channels:]
            if stride > 1:
                rest = F.max_pool2d(rest, 2, 2)
            bypass.add(rest, None if scale is None else scale[row])
        assert bypass.total is not None
        ops = total.total
        if ops is None:  # every op of every edge is a zero
            shape = (bypass.total.shape[0], self.channels, *bypass.total.shape[2:])
            ops = bypass.total.new_zeros(shape)
        return channel_shuffle(fused_cat([ops, bypass.total], 1), self.partial)

    @staticmethod
    def _node(terms: list[tuple[Any, ...]], states: dict[str, torch.Tensor], results: dict[str, Any],
              weights: torch.Tensor, scalars: tuple[torch.Tensor, ...], total: _Sum, channels: int) -> None:
        for term in terms:
            kind = term[0]
            if kind == "sum":  # added by the caller
                continue
            if kind == "part":
                _, apply, part, slot = term
                r = results[apply]
                if isinstance(r, (torch.Tensor, ChannelRuns)):  # a grouped call's output: its parts, split once
                    key = f"{apply}/parts"
                    if key not in results:
                        results[key] = r.split(channels, 1)
                    r = results[key]
                total.add(r[part], None if slot is None else scalars[slot])
            elif kind == "mixed":
                total.add(term[3](states[term[1]], weights[term[2]]), None)
            else:
                x = states[term[1]]
                for slot, op, relu, scaled in term[2]:
                    if scaled:
                        total.add(op.forward_fused(x, relu, scalars[slot]), None)
                    elif relu:
                        total.add(op(x), scalars[slot])
                    else:
                        total.add(op.forward_fused(x, False), scalars[slot])


def allowed_ops(space: SpaceSpec, cell: str, edges: list[tuple[str, str]]) -> torch.Tensor | None:
    """(edges x space ops) booleans: which ops each edge of cell type ``cell`` chooses
    from (``CellShape.edge_ops``); None when every edge chooses from all of them."""
    shape = space.cell(cell)
    if not shape.edge_sets:
        return None
    rows = [[op in shape.edge_ops(src, dst, space.ops) for op in space.ops] for src, dst in edges]
    return torch.tensor(rows, dtype=torch.bool)


def softmax_rows(alpha: torch.Tensor) -> torch.Tensor:
    """DARTS's relaxation: each edge's row of alphas through a softmax over its ops."""
    return F.softmax(alpha, dim=-1)


Relaxation = Callable[[torch.Tensor], torch.Tensor]  # an alpha table (edges x ops) -> edge weights


class AlphaMixin:
    """What every supernet offers on top of ``nn.Module``: alphas named by the IR, the
    split between architecture and weight parameters, and the edge weights the cells
    mix their ops with: ``relaxation`` of each alpha table (``softmax_rows`` unless a
    search method sets another, ``genolang.search.method``)."""

    space: SpaceSpec
    irs: dict[str, CellIR]
    relaxation: Relaxation = staticmethod(softmax_rows)
    # set during the weight step by a method that perturbs the edge weights (SDARTS)
    perturbation: Callable[[torch.Tensor], torch.Tensor] | None = None
    named_parameters: Callable[..., Iterator[tuple[str, nn.Parameter]]]  # nn.Module's, in the classes mixing it in
    # set by a selection that fixes edges or evaluates given cells (DARTS-PT's decisions,
    # random search's ranking): (cell type, edge weights) -> the edge weights to use, in
    # every forward pass and in what derivation and the logs read
    projection: Callable[[str, torch.Tensor], torch.Tensor] | None = None

    def _init_alphas(self) -> None:
        """One (edges x space ops) alpha table per cell type, 1e-3 * N(0, 1); where an edge
        chooses from some ops only (``CellShape.edge_ops``), the other entries start at 0
        and an additive mask (0 or -inf, a buffer ``alpha_mask_<cell>`` that checkpoints
        do not store: the space says it) keeps them out of the relaxation."""
        tables = {}
        self._masked: dict[str, str] = {}
        for name, ir in self.irs.items():
            edges = mixed_edges(ir)
            alpha = ALPHA_INIT_SCALE * torch.randn(len(edges), len(self.space.ops))
            allowed = allowed_ops(self.space, name, [(e.src, e.dst) for e in edges])
            if allowed is not None:
                alpha = alpha * allowed
                mask = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))
                self.register_buffer(f"{ALPHA_MASK}_{name}", mask, persistent=False)  # type: ignore[attr-defined]
                self._masked[name] = f"{ALPHA_MASK}_{name}"
            tables[name] = nn.Parameter(alpha)
        setattr(self, ALPHAS, nn.ParameterDict(tables))

    def alpha_mask(self, cell: str) -> torch.Tensor | None:
        """The additive mask of a cell type's alphas (0 where the edge chooses the op,
        -inf elsewhere), or None when every edge chooses from every op."""
        buffer = self._masked.get(cell)
        return None if buffer is None else getattr(self, buffer)

    def _init_betas(self) -> None:
        """PC-DARTS's edge-normalisation parameters: ``betas.<cell type>``, one per
        mixed edge (alpha row), 1e-3 * N(0, 1) as in its code (drawn after the alphas)."""
        self._beta_nodes = {name: node_row_ranges(ir) for name, ir in self.irs.items()}
        tables = {name: nn.Parameter(ALPHA_INIT_SCALE * torch.randn(len(mixed_edges(ir))))
                  for name, ir in self.irs.items()}
        setattr(self, BETAS, nn.ParameterDict(tables))

    @property
    def alpha_dict(self) -> nn.ParameterDict:
        return getattr(self, ALPHAS)

    @property
    def beta_dict(self) -> nn.ParameterDict | None:
        """The betas per cell type, None without edge normalisation."""
        return getattr(self, BETAS, None)

    def arch_parameters(self) -> list[nn.Parameter]:
        """The alphas, one tensor per cell type in the space's cell order, then the
        betas (with edge normalisation) in the same order, as PC-DARTS lists them."""
        alphas = [self.alpha_dict[name] for name in self.irs]
        betas = self.beta_dict
        return alphas + ([betas[name] for name in self.irs] if betas is not None else [])

    def named_weight_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Every parameter that is not an architecture parameter, with its name."""
        for name, p in self.named_parameters():
            if not name.startswith((ALPHAS + ".", BETAS + ".")):
                yield name, p

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not an architecture parameter."""
        return [p for _, p in self.named_weight_parameters()]

    def edge_scale(self, cell: str) -> torch.Tensor | None:
        """What the supernet's transforms scale each edge of ``cell`` by: with edge
        normalisation the softmax of the betas over each node's in-edges (PC-DARTS's
        ``weights2``), one entry per alpha row; None otherwise."""
        betas = self.beta_dict
        if betas is None:
            return None
        b = betas[cell]
        return torch.cat([F.softmax(b[start:end], dim=-1) for start, end in self._beta_nodes[cell]])

    def edge_weights(self) -> dict[str, torch.Tensor]:
        """The relaxed alphas per cell type, (edges x ops): what each edge mixes by in
        this forward pass (a sample, for a stochastic relaxation), perturbed during a
        perturbing method's weight step, projected where a selection fixes edges. An op
        outside its edge's set gets weight exactly 0 and its alpha no gradient, whatever
        the relaxation: its alpha enters as -inf (softmax and sigmoid give 0 there, and
        the softmax normalises over the edge's own ops, as a table of only those would),
        and the relaxed entry is then set to 0 (for relaxations that give -inf something
        else)."""
        out = {name: self._relax_masked(self.relaxation, name) for name in self.irs}
        if self.perturbation is not None:
            out = {name: self.perturbation(w) for name, w in out.items()}
        if self.projection is not None:
            out = {name: self.projection(name, w) for name, w in out.items()}
        return out

    def _relax_masked(self, relax: Callable[[torch.Tensor], torch.Tensor], name: str) -> torch.Tensor:
        alpha = self.alpha_dict[name]
        mask = self.alpha_mask(name)
        if mask is None:
            return relax(alpha)
        return relax(alpha + mask).masked_fill(torch.isneginf(mask), 0.0)

    def selection_weights(self) -> dict[str, torch.Tensor]:
        """The weights derivation and the logs read: the relaxation's deterministic
        weights (its ``selection``: softmax for DARTS; 0 off an edge's own ops), times
        what the supernet's transforms scale the edges by (``edge_scale``: PC-DARTS's
        normalised betas), projected where a selection fixes edges."""
        select = getattr(self.relaxation, "selection", self.relaxation)
        out = {}
        for name in self.irs:
            w = self._relax_masked(select, name)
            scale = self.edge_scale(name)
            out[name] = w if scale is None else w * scale.unsqueeze(-1)
        if self.projection is not None:
            out = {name: self.projection(name, w) for name, w in out.items()}
        return out

    def cell_alphas(self) -> dict[str, CellAlphas]:
        """The structured tables of selection weights: rows named by IR edges, columns by
        ops (0 where an edge does not choose the op; ``allowed`` says which those are)."""
        out = {}
        with torch.no_grad():
            for name, probs in self.selection_weights().items():
                edges = tuple((e.src, e.dst) for e in mixed_edges(self.irs[name]))
                weights = tuple(tuple(float(x) for x in row) for row in probs.detach().double().cpu().tolist())
                shape = self.space.cell(name)
                allowed = (tuple(shape.edge_ops(src, dst, self.space.ops) for src, dst in edges)
                           if shape.edge_sets else ())
                out[name] = CellAlphas(name, edges, tuple(self.space.ops), weights, allowed)
        return out


def alpha_table(model: AlphaMixin, digits: int = 3) -> str:
    """The softmax alphas of a supernet, one line per edge:
    ``n3 <- c1: none 0.081  ...  sep_conv_3x3 0.310 ...``."""
    return format_alpha_table(model.cell_alphas(), digits)


class Supernet(AlphaMixin, CNNSkeleton):
    """A CNN search space compiled on a CNN skeleton (no auxiliary head). ``irs`` are
    the space's cells as lowered (the alpha tables' rows); ``optimized_irs`` what the
    cells run, after ``options.passes``."""

    def __init__(self, space: SpaceSpec, plan: NetworkPlan, irs: dict[str, CellIR] | None = None,
                 options: SupernetOptions | None = None) -> None:
        options = options if options is not None else SupernetOptions()
        irs = irs if irs is not None else lower_space(space)
        optimized = optimize_cells({name: irs[name] for name in space.cell_names}, options.passes)
        # the stem's BN is affine, as in the paper's code (nn.BatchNorm2d's default)
        CNNSkeleton.__init__(self, plan, lambda cp: SearchCell(optimized[cp.cell], cp, space.ops,
                                                               options.partial_channels, options.aux_skip,
                                                               options.cpu_kernels),
                             affine=True, auxiliary=False)
        self.space = space
        self.options = options
        self.irs = {name: irs[name] for name in space.cell_names}
        self.optimized_irs = optimized
        self._init_alphas()
        if options.edge_normalization:
            self._init_betas()
        # DARTS-'s auxiliary skip weight, set per epoch by its transform (genolang.search.components.aux_skip)
        self.aux_weight = 1.0
        if options.channels_last:
            self.to(memory_format=torch.channels_last)

    def cell_args(self) -> dict[str, tuple[object, ...]]:
        """Per cell type: the relaxed alphas, the edges' scale (edge normalisation), the
        op each edge runs (a one-op-per-edge relaxation, whatever the passes: they batch
        ops across edges, the sampled path runs each edge's one op) and the auxiliary
        skips' weight."""
        sampled = bool(getattr(self.relaxation, "one_op_per_edge", False))
        aux = self.aux_weight if self.options.aux_skip else 0.0
        out: dict[str, tuple[object, ...]] = {}
        checks = []
        for name, w in self.edge_weights().items():
            index = w.detach().argmax(-1) if sampled else None
            scale = self.edge_scale(name)
            out[name] = (w, scale, index, aux)
            entries = self._scale_entries(name)
            if not sampled and entries is not None and entries.numel():
                scaled = w if scale is None else w * scale.unsqueeze(-1)
                checks.append(scaled.detach().reshape(-1).index_select(0, entries))
        # one device sync per forward, not one per cell: whether any BN scale is 0 (the
        # recomputing blocks cannot run from a zero scale; the cells then take the plain path)
        nonzero = bool((torch.cat(checks) != 0).all()) if checks else None
        return {name: (*args, nonzero) for name, args in out.items()}

    def _scale_entries(self, cell: str) -> torch.Tensor | None:
        """The alpha-table entries the BN scales of cell type ``cell`` read (every cell
        of a type reads the same ones); None where no grouped call recomputes from them
        (without ``recompute_convs``: a forward then makes no device sync)."""
        for c, kind in zip(self.cells.values(), self._cell_types):
            if kind == cell:
                return cast(torch.Tensor, c.scale_entries) if c.recompute_scaled else None
        return None

    def forward(self, x: torch.Tensor,
                return_aux: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        if self.options.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return super().forward(x, return_aux)


def check_space_ops(space: SpaceSpec) -> None:
    """A CNN supernet is built from a CNN space whose ops are all declared."""
    if space.kind != "cnn":
        raise UsageError(f"space '{space.name}' ({space.path}) is recurrent; build it with "
                         "genolang.nets.supernet_rnn.build_rnn_supernet")
    missing = [op for op in space.ops if op not in {d.name for d in space.op_defs}]
    if missing:
        raise UsageError(f"space '{space.name}' ({space.path}) has no declaration of {', '.join(missing)}; "
                         "check it with 'genolang check'")


def build_supernet(space: SpaceSpec, network: NetworkSpec, *, in_channels: int, input_size: int,
                   classes: int, options: SupernetOptions | None = None) -> Supernet:
    """Compile ``space`` on the CNN skeleton ``network`` for data of the given shape,
    with ``options`` (default: every pass, channels-last). Raises ``UsageError`` for ops
    without a module and ``PlanError`` when the skeleton does not fit the data (too
    many reductions for the input size)."""
    check_space_ops(space)
    irs = lower_space(space)
    multipliers = {name: len(ir.output_nodes) for name, ir in irs.items()}
    plan = plan_cnn(network, multipliers, in_channels=in_channels, input_size=input_size, classes=classes)
    return Supernet(space, plan, irs, options)
