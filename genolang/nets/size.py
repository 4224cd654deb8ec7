"""How much memory a network needs, estimated from its plan before anything is
allocated, so that ``--channels 100000`` or ``--input-size 100000`` is refused with the
estimate and the limit instead of a crash minutes later.

The estimate is a *lower bound*: every weighted op of a cell has at least a C x C 1x1
convolution, every node and input of a cell holds at least one C x H x W map, and so
on; a network refused by it cannot be built, and no network that can be built is
refused. The limit is this machine's memory, or ``GENOLANG_MAX_MODEL_GIB``. Torch-free."""

from __future__ import annotations

import os
from dataclasses import dataclass

from genolang.errors import GenolangError
from genolang.ir.plan import NetworkPlan
from genolang.spec.checked import GenotypeSpec, NetworkSpec, SpaceSpec
from genolang.spec.ops import OpDef

GIB = 1 << 30
ENV = "GENOLANG_MAX_MODEL_GIB"


class TooLarge(GenolangError):
    """A network that needs more memory than the limit."""


@dataclass(frozen=True)
class SizeEstimate:
    """At least this many parameters, and floats of activations per example."""

    params: int
    activations: int

    def bytes(self, batch: int = 1, training: bool = False) -> int:
        """Bytes of float32 parameters (with gradients and two optimizer buffers when
        training) and activations for ``batch`` examples (kept for backward when
        training)."""
        factor = 4 if training else 1
        return 4 * (self.params * factor + self.activations * batch * (2 if training else 1))


def memory_limit() -> int:
    """Bytes a network may need: ``GENOLANG_MAX_MODEL_GIB`` when set, else this machine's
    physical memory (unknown: 16 GiB)."""
    value = os.environ.get(ENV, "").strip()
    if value:
        try:
            limit = float(value)
        except ValueError:
            raise GenolangError(f"{ENV}={value!r} is not a number of GiB") from None
        if limit > 0:
            return int(limit * GIB)
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16 * GIB


Edges = dict[str, list[tuple[OpDef | None, bool]]]


def _weighted(op: OpDef | None, stride: int) -> bool:
    # a plugin's structure is unknown: no weights assumed, so the bound stays a lower one
    return op is not None and not op.is_plugin and op.has_weights(stride)


def _op_def(space: SpaceSpec, name: str) -> OpDef | None:
    try:
        return space.op(name)
    except KeyError:
        return None  # not declared with the space: counted as weightless (still a lower bound)


def estimate_cnn(plan: NetworkPlan, edges: Edges, nodes: dict[str, int]) -> SizeEstimate:
    """The lower bound for a CNN stack. ``edges[cell]``: (op, reads an input) for
    every op on every edge of that cell type (a supernet lists every op of an edge);
    ``nodes[cell]``: its intermediate nodes."""
    params = plan.in_channels * plan.stem_channels * 9 + plan.final_channels * plan.classes
    acts = plan.stem_channels * plan.stem_size ** 2
    for cp in plan.cells:
        c, area_in, area_out = cp.channels, cp.in_size ** 2, cp.out_size ** 2
        params += (cp.c_prev_prev + cp.c_prev) * c  # the two preprocessing 1x1 convs
        for op, from_input in edges.get(cp.cell, ()):
            stride = 2 if cp.reduction and from_input else 1
            if _weighted(op, stride):
                params += c * c
        acts += 2 * c * area_in + nodes.get(cp.cell, 0) * c * area_out + cp.out_channels * area_out
    return SizeEstimate(params, acts)


def genotype_edges(geno: GenotypeSpec) -> tuple[Edges, dict[str, int]]:
    """``estimate_cnn``'s edges and nodes of a genotype's cells."""
    edges = {c.name: [(_op_def(geno.space, op), src in c.shape.input_names) for n in c.nodes for op, src in n.edges]
             for c in geno.cells}
    return edges, {c.name: len(c.nodes) for c in geno.cells}


def space_edges(space: SpaceSpec) -> tuple[Edges, dict[str, int]]:
    """``estimate_cnn``'s edges and nodes of a supernet's cells (every op on every edge)."""
    edges: Edges = {}
    defs = [_op_def(space, op) for op in space.ops]
    for shape in space.cells:
        cell: list[tuple[OpDef | None, bool]] = []
        for i in range(shape.nodes):
            cell += [(op, True) for op in defs] * shape.inputs + [(op, False) for op in defs] * i
        edges[shape.name] = cell
    return edges, {s.name: s.nodes for s in space.cells}


def estimate_supernet(space: SpaceSpec, network: NetworkSpec, *, in_channels: int, input_size: int,
                      classes: int) -> SizeEstimate:
    """The lower bound for a space's supernet on a skeleton (raises the plan's error
    when the data cannot flow through it)."""
    from genolang.ir.lower import lower_space
    from genolang.ir.plan import plan_cnn

    multipliers = {name: len(ir.output_nodes) for name, ir in lower_space(space).items()}
    plan = plan_cnn(network, multipliers, in_channels=in_channels, input_size=input_size, classes=classes)
    return estimate_cnn(plan, *space_edges(space))


def estimate_rnn(network: NetworkSpec, nodes: int, ntokens: int) -> SizeEstimate:
    """The lower bound for a recurrent model: embedding, the cell's maps, the decoder."""
    emb, hid = int(network.embedding or 0), int(network.hidden or 0)
    params = ntokens * emb + (emb + hid) * 2 * hid + nodes * hid * 2 * hid + (0 if network.tied else hid * ntokens)
    return SizeEstimate(params, (nodes + 2) * hid + ntokens)


def refuse_too_large(estimate: SizeEstimate, what: str, fix: str, batch: int = 1, training: bool = False) -> None:
    """A ``TooLarge`` error when ``estimate`` needs more than ``memory_limit()``."""
    need, limit = estimate.bytes(batch, training), memory_limit()
    if need <= limit:
        return
    source = f"{ENV}" if os.environ.get(ENV, "").strip() else f"this machine's memory; {ENV} sets another"
    per = f"at batch {batch}" + (", training" if training else "")
    raise TooLarge(f"{what} needs at least {need / GIB:,.1f} GiB ({_count(estimate.params)} parameters, "
                   f"{_count(estimate.activations * batch)} activation values {per}), more than the limit of "
                   f"{limit / GIB:,.1f} GiB ({source}); {fix}")


def _count(n: int) -> str:
    for size, unit in ((10 ** 12, "T"), (10 ** 9, "G"), (10 ** 6, "M"), (10 ** 3, "K")):
        if n >= size:
            return f"{n / size:,.1f}{unit}"
    return str(n)
