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
``alphas.<cell type>``, one (edges x ops) tensor per cell type.

As in the paper: BatchNorm has no affine parameters anywhere in the supernet (stem,
preprocessors, ops), every pool is followed by such a BN, and ``none`` is a zero."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

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
from genolang.ops.grouped import grouped_executor, relu_keep_input, shared_executor
from genolang.passes import DEFAULT_PASSES, optimize_cells
from genolang.spec.checked import NetworkSpec, SpaceSpec
from genolang.spec.ops import OpDef

ALPHA_INIT_SCALE = 1e-3  # alphas start as 1e-3 * N(0, 1), as in the paper's code
ALPHAS = "alphas"  # the attribute (and parameter-name prefix) holding the alphas


@dataclass(frozen=True)
class SupernetOptions:
    """How a CNN supernet is compiled: the passes run over its cell IR, in order, and
    whether its tensors are channels-last (NHWC in memory; several times faster for the
    depthwise convs of the DARTS ops on the CPU). Neither changes what it computes."""

    passes: tuple[str, ...] = DEFAULT_PASSES
    channels_last: bool = True


NO_OPT = SupernetOptions(passes=(), channels_last=False)  # the supernet exactly as the paper's code builds it


def build_search_op(op: OpDef, channels: int, stride: int) -> nn.Module:
    """The supernet version of an op: batch norms without parameters, ``bn(search)``
    (the BN DARTS puts after a pool in a supernet) included."""
    return build_op(op, channels, stride, affine=False, search=True)


def mixed_edges(ir: CellIR) -> list[Edge]:
    """The mixed edges of an unoptimized cell in alpha-row order (node by node, slot by
    slot)."""
    return [e for e in ir.edges() if e.mixed]


class MixedOp(nn.Module):
    """One mixed edge: ``sum_k w[col_k] * op_k(x)`` over the edge's candidate ops, where
    ``col_k`` is the op's column in the alpha table (the space's op order)."""

    def __init__(self, candidates: tuple[OpDef, ...], space_ops: tuple[str, ...], channels: int, stride: int) -> None:
        super().__init__()
        self.ops = nn.ModuleDict({op.name: build_search_op(op, channels, stride) for op in candidates})
        self.columns = [space_ops.index(op.name) for op in candidates]

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights``: this edge's row of softmax(alpha), one entry per space op."""
        out = None
        for col, op in zip(self.columns, self.ops.values()):
            h = weights[col] * op(x)
            out = h if out is None else out + h
        assert out is not None
        return out


class _Sum:
    """A node's running sum of (tensor, weight) terms: the first two make a new tensor,
    the rest add in place (autograd keeps no sum for the backward)."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.fresh = False

    def add(self, t: torch.Tensor, w: torch.Tensor | None) -> None:
        if self.total is None:
            self.total, self.fresh = (t, False) if w is None else (t * w, True)
        elif not self.fresh:
            self.total = self.total + t if w is None else torch.addcmul(self.total, t, w)
            self.fresh = True
        elif w is None:
            self.total.add_(t)
        else:
            self.total.addcmul_(t, w)


class SearchCell(nn.Module):
    """A supernet cell: preprocess both inputs (non-affine), evaluate the (possibly
    optimized) IR in order, concatenate the output nodes."""

    def __init__(self, ir: CellIR, cp: CellPlan, space_ops: tuple[str, ...]) -> None:
        super().__init__()
        if ir.reducer not in ("concat", "last"):
            raise UsageError(f"cell '{ir.name}' reduces its nodes with '{ir.reducer}'; a CNN supernet concatenates "
                             "its output nodes: use 'output = concat'")
        self.pre0, self.pre1 = preprocessors(cp, affine=False)
        self.inputs = ir.inputs
        self.output = ir.output_nodes
        self.channels = cp.channels
        # one MixedOp per alpha row, holding every op the IR computes for that row
        rows: dict[int, tuple[str, str, int]] = {}
        ops: dict[int, set[str]] = {}
        for node in ir.nodes:
            for e in ir.in_edges(node):
                if e.kind == "op" and e.candidates is None:
                    raise UsageError(f"cell '{ir.name}': edge {e.name} is fixed; a supernet needs mixed edges")
                assert e.row is not None
                rows.setdefault(e.row, (ir.origin(e.src), node, e.stride))
                ops.setdefault(e.row, set()).update(e.candidates or (e.op,))  # type: ignore[arg-type]
        self.nodes = nn.ModuleDict()
        for row in sorted(rows):  # node by node, slot by slot: the unoptimized order
            src, dst, stride = rows[row]
            if dst not in self.nodes:
                self.nodes[dst] = nn.ModuleDict()
            self.nodes[dst][src] = MixedOp(tuple(ir.op(op) for op in space_ops if op in ops[row]), space_ops,
                                           cp.channels, stride)
        # the alpha weights the terms multiply by, gathered once per forward: (row, col) -> slot
        self._slots: dict[tuple[int, int], int] = {}
        self.steps: list[tuple[Any, ...]] = [self._step(ir, n, rows, space_ops) for n in ir.order()
                                             if ir.role(n) not in ("input", "output")]
        flat = [row * len(space_ops) + col for row, col in self._slots]
        self.register_buffer("weight_index", torch.tensor(flat, dtype=torch.long), persistent=False)
        # the cell's own buffers are index tables it only reads: a forward that must leave
        # the model's state alone (the architect's) need not copy them
        self.constant_buffers = frozenset(self._buffers)

    def _slot(self, row: int, col: int) -> int:
        return self._slots.setdefault((row, col), len(self._slots))

    def _module(self, rows: dict[int, tuple[str, str, int]], row: int, op: str) -> nn.Module:
        src, dst, _ = rows[row]
        return self.nodes[dst][src].ops[op]  # type: ignore[index,no-any-return]

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
            terms = sorted((e for _, _, e in g.out_edges(n, data=True)), key=lambda e: e["part"])
            members = [self._module(rows, t["row"], d["op"]) for t in terms]
            scaled = {bool(t.get("scaled")) for t in terms}
            if len(scaled) > 1:
                raise UsageError(f"cell '{ir.name}': {n} scales the BN of some of its terms only")
            index = f"rows_{len(self._buffers)}"
            self.register_buffer(index, torch.tensor([t["row"] for t in terms]), persistent=False)
            run = (shared_executor(members) if d.get("shared")
                   else grouped_executor(members, bool(d.get("recompute"))))
            return ("apply", n, feed, run, bool(d.get("shared")), ir.role(feed) != "relu",
                    space_ops.index(d["op"]), index, scaled.pop(), ir.origin(feed))
        terms: list[tuple[Any, ...]] = []
        for e in ir.in_edges(n):
            assert e.row is not None
            if e.kind == "term":
                assert e.op is not None and e.part is not None
                slot = None if e.scaled else self._slot(e.row, space_ops.index(e.op))
                terms.append(("part", e.src, e.part, slot))
                continue
            mixed = self.nodes[n][ir.origin(e.src)]
            relu = ir.role(e.src) != "relu"
            if relu and not e.scaled and set(e.candidates or ()) == set(mixed.ops):
                terms.append(("mixed", e.src, e.row, mixed))
            else:
                terms.append(("ops", e.src, [(self._slot(e.row, space_ops.index(op)), mixed.ops[op], relu,
                                              op in e.scaled) for op in e.candidates or ()]))
        return ("node", n, terms)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights``: softmax(alpha) of this cell type, (edges x ops)."""
        states = {self.inputs[0]: self.pre0(s0), self.inputs[1]: self.pre1(s1)}
        results: dict[str, Any] = {}
        scalars: tuple[torch.Tensor, ...] | None = None
        for step in self.steps:
            kind, name = step[0], step[1]
            if kind == "relu":
                states[name] = relu_keep_input(states[step[2]])
            elif kind == "apply":
                _, _, feed, run, shared, relu, col, index, scaled, origin = step
                if shared:
                    results[name] = run(states[feed])
                else:
                    scale = weights[:, col].index_select(0, getattr(self, index)) if scaled else None
                    keep = None if relu else states[origin]  # the ReLU's input, to store instead of its output
                    results[name] = run(states[feed], relu, scale, keep).split(self.channels, dim=1)
            else:
                if scalars is None:  # one gather (and one backward) for every weight the terms use
                    scalars = weights.reshape(-1).index_select(0, self.weight_index).unbind(0)
                states[name] = self._node(step[2], states, results, weights, scalars)
        return torch.cat([states[n] for n in self.output], dim=1)

    @staticmethod
    def _node(terms: list[tuple[Any, ...]], states: dict[str, torch.Tensor], results: dict[str, Any],
              weights: torch.Tensor, scalars: tuple[torch.Tensor, ...]) -> torch.Tensor:
        total = _Sum()
        for term in terms:
            kind = term[0]
            if kind == "part":
                _, apply, part, slot = term
                total.add(results[apply][part], None if slot is None else scalars[slot])
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
        assert total.total is not None
        return total.total


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
    relaxation: Relaxation = staticmethod(softmax_rows)  # type: ignore[assignment]
    # set during the weight step by a method that perturbs the edge weights (SDARTS)
    perturbation: Callable[[torch.Tensor], torch.Tensor] | None = None

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

    def edge_weights(self) -> dict[str, torch.Tensor]:
        """The relaxed alphas per cell type, (edges x ops): what each edge mixes by in
        this forward pass (a sample, for a stochastic relaxation), perturbed during a
        perturbing method's weight step."""
        out = {name: self.relaxation(self.alpha_dict[name]) for name in self.irs}
        if self.perturbation is not None:
            out = {name: self.perturbation(w) for name, w in out.items()}
        return out

    def selection_weights(self) -> dict[str, torch.Tensor]:
        """The weights derivation and the logs read: the relaxation's deterministic
        weights (its ``selection``: softmax for DARTS), times what the supernet's
        transforms scale the edges by (``edge_scale``: PC-DARTS's normalised betas)."""
        select = getattr(self.relaxation, "selection", self.relaxation)
        out = {name: select(self.alpha_dict[name]) for name in self.irs}
        scale = getattr(self, "edge_scale", None)
        if scale is not None:
            out = {name: w * scale(name).unsqueeze(-1) for name, w in out.items()}
        return out

    def cell_alphas(self) -> dict[str, CellAlphas]:
        """The structured tables of selection weights: rows named by IR edges, columns by ops."""
        out = {}
        with torch.no_grad():
            for name, probs in self.selection_weights().items():
                edges = tuple((e.src, e.dst) for e in mixed_edges(self.irs[name]))
                weights = tuple(tuple(float(x) for x in row) for row in probs.detach().double().cpu().tolist())
                out[name] = CellAlphas(name, edges, tuple(self.space.ops), weights)
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
        CNNSkeleton.__init__(self, plan, lambda cp: SearchCell(optimized[cp.cell], cp, space.ops), affine=False,
                             auxiliary=False)
        self.space = space
        self.options = options
        self.irs = {name: irs[name] for name in space.cell_names}
        self.optimized_irs = optimized
        self._init_alphas()
        if options.channels_last:
            self.to(memory_format=torch.channels_last)

    def cell_args(self) -> dict[str, tuple[object, ...]]:
        return {name: (w,) for name, w in self.edge_weights().items()}

    def forward(self, x: torch.Tensor, return_aux: bool = False):  # type: ignore[no-untyped-def]
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
