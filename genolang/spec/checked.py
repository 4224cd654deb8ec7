"""Checked specs: the typed, validated meaning of a space, a genotype, a network
skeleton and a search. The checker builds these from the syntax tree; everything downstream
(lowering, building, search) reads these and never the raw tree."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Any, Literal

from genolang.errors import Span
from genolang.spec.ops import OpDef

Kind = Literal["cnn", "rnn"]
Position = int | Fraction


KEEP_ALL = 0  # ``keep = all``: every node reads each earlier node once (NAS-Bench-201)


EdgeSet = tuple[str, str, tuple[str, ...]]  # (source, destination, the ops the edge chooses from)


@dataclass(frozen=True)
class CellShape:
    """A cell type of a space: ``inputs`` input nodes, ``nodes`` intermediate nodes,
    ``keep`` chosen inputs per node (``KEEP_ALL``: one edge from every earlier node),
    outputs combined by ``reducer`` (``concat``, ``mean``, or ``last``: the cell's output
    is its last intermediate node, as in NAS-Bench-201).

    ``edge_sets`` are the edges that choose from some of the space's ops only (``edge c0
    -> n2 = ...`` in the cell's block), in alpha-row order, each set in the space's op
    order and never all of the space's ops; ``edge_ops`` says what any edge allows."""

    name: str
    inputs: int
    nodes: int
    keep: int
    reducer: str = "concat"
    stride: int = 1
    input_prefix: str = "c"  # c0, c1 for CNN cells; s0 (the initial state) for recurrent ones
    edge_sets: tuple[EdgeSet, ...] = ()

    @cached_property
    def _edge_index(self) -> dict[tuple[str, str], tuple[str, ...]]:
        return {(src, dst): ops for src, dst, ops in self.edge_sets}

    def edge_ops(self, src: str, dst: str, space_ops: Sequence[str]) -> tuple[str, ...]:
        """The ops the mixed edge ``src -> dst`` (names as in ``input_names`` and
        ``node_names``) chooses from, in the space's op order: its own set when the cell
        lists one, else every op of the space (``space_ops``). The supernet, the
        derivation, genotype checks and samplers all ask this."""
        return self._edge_index.get((src, dst), tuple(space_ops))

    def sources(self, dst: str) -> tuple[str, ...]:
        """What intermediate node ``dst`` reads in a supernet (its mixed edges, in alpha-row
        order): every input, then every earlier node."""
        position = self.node_names.index(dst)
        return (*self.input_names, *self.node_names[:position])

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(f"{self.input_prefix}{i}" for i in range(self.inputs))

    @property
    def node_names(self) -> tuple[str, ...]:
        """The conventional names of the intermediate nodes (DARTS numbering)."""
        return tuple(f"n{i}" for i in range(self.inputs, self.inputs + self.nodes))

    @property
    def reduction(self) -> bool:
        return self.stride > 1

    @property
    def keeps_all(self) -> bool:
        """True for ``keep = all``: node j reads every earlier node exactly once."""
        return self.keep == KEEP_ALL

    def terms_of(self, position: int) -> int:
        """How many inputs the intermediate node at ``position`` (0-based) sums."""
        return self.inputs + position if self.keeps_all else self.keep


@dataclass(frozen=True)
class DeriveRule:
    """How alphas become a genotype: per node the ``keep`` strongest incoming edges
    (from distinct nodes when ``distinct``), each with its strongest op not in
    ``exclude``; at most ``caps[op]`` edges of ``op`` per cell."""

    exclude: tuple[str, ...] = ("none",)
    distinct: bool = True
    caps: tuple[tuple[str, int], ...] = ()

    def cap(self, op: str) -> int | None:
        for name, limit in self.caps:
            if name == op:
                return limit
        return None


@dataclass(frozen=True)
class SpaceSpec:
    """A checked search space. ``op_defs`` are its ops' checked declarations, in the
    order of ``ops`` (the column order of its alpha tables)."""

    name: str
    kind: Kind
    ops: tuple[str, ...]
    cells: tuple[CellShape, ...]
    derive: DeriveRule
    path: str = "<spec>"
    op_defs: tuple[OpDef, ...] = ()

    def op(self, name: str) -> OpDef:
        """The checked declaration of one of the space's ops."""
        for op in self.op_defs:
            if op.name == name:
                return op
        raise KeyError(f"space {self.name} has no op {name!r}")

    def cell(self, name: str) -> CellShape:
        for cell in self.cells:
            if cell.name == name:
                return cell
        raise KeyError(name)

    def edge_ops(self, cell: str, src: str, dst: str) -> tuple[str, ...]:
        """The ops the edge ``src -> dst`` of cell type ``cell`` chooses from (see
        ``CellShape.edge_ops``)."""
        return self.cell(cell).edge_ops(src, dst, self.ops)

    @property
    def cell_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cells)


@dataclass(frozen=True)
class NodeSpec:
    """An intermediate node of a genotype: the (op, input) pairs it sums."""

    name: str
    edges: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CellGenotype:
    """The discrete choice for one cell type."""

    shape: CellShape
    nodes: tuple[NodeSpec, ...]
    output: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.shape.name

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    def index_of(self, name: str) -> int:
        """DARTS numbering: inputs 0..k-1, then intermediate nodes in order."""
        if name in self.shape.input_names:
            return self.shape.input_names.index(name)
        return self.shape.inputs + self.node_names.index(name)


@dataclass(frozen=True)
class GenotypeSpec:
    """A checked genotype with its space."""

    name: str
    space: SpaceSpec
    cells: tuple[CellGenotype, ...]
    path: str = "<spec>"

    def cell(self, name: str) -> CellGenotype:
        for cell in self.cells:
            if cell.name == name:
                return cell
        raise KeyError(name)

    @property
    def kind(self) -> Kind:
        return self.space.kind


@dataclass(frozen=True)
class NetworkSpec:
    """A checked network skeleton. CNN fields apply when ``kind == 'cnn'``, the
    recurrent ones when ``kind == 'rnn'``; ``None`` means "from the data"."""

    name: str
    kind: Kind
    stem: str
    path: str = "<spec>"
    # CNN skeletons
    channels: int = 16
    layers: int = 8
    stem_multiplier: int = 3
    reduce_at: tuple[Position, ...] = (Fraction(1, 3), Fraction(2, 3))
    auxiliary: Position | None = None
    auxiliary_weight: float = 0.4
    drop_path: float = 0.0
    label_smoothing: float = 0.0
    input_size: int | None = None
    in_channels: int | None = None
    classes: int | None = None
    # recurrent skeletons
    embedding: int = 300
    hidden: int = 300
    dropout: float = 0.75
    dropout_h: float = 0.25
    dropout_x: float = 0.75
    dropout_i: float = 0.2
    dropout_e: float = 0.1
    tied: bool = True
    vocab: int | None = None

    def replace(self, **changes: object) -> NetworkSpec:
        """A copy with some fields changed (``None`` values are ignored)."""
        # Any: dataclasses.replace checks the names and mypy cannot tie a value to its field here
        kept: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **kept)

    def reduction_cells(self) -> tuple[int, ...]:
        """Indices of the reduction cells for this skeleton's number of layers."""
        return tuple(sorted({resolve_position(p, self.layers) for p in self.reduce_at}))

    def auxiliary_cell(self) -> int | None:
        """Index of the cell whose output feeds the auxiliary head, if any."""
        if self.auxiliary is None:
            return None
        return resolve_position(self.auxiliary, self.layers)


def resolve_position(position: Position, layers: int) -> int:
    """A cell index from an absolute index or a fraction of the depth (floor, as the
    original DARTS code's ``layers // 3`` and ``2 * layers // 3``)."""
    if isinstance(position, Fraction):
        return (position.numerator * layers) // position.denominator
    return int(position)


def without_paths(spec: SpaceSpec | GenotypeSpec | NetworkSpec) -> SpaceSpec | GenotypeSpec | NetworkSpec:
    """The same spec with the files it came from forgotten (for comparing contents)."""
    if isinstance(spec, GenotypeSpec):
        return dataclasses.replace(spec, path="", space=dataclasses.replace(spec.space, path=""))
    return dataclasses.replace(spec, path="")


def same_content(a: SpaceSpec | GenotypeSpec | NetworkSpec, b: SpaceSpec | GenotypeSpec | NetworkSpec) -> bool:
    """Whether two specs say the same thing, wherever each was read from."""
    return without_paths(a) == without_paths(b)


Setting = int | float | str | bool  # a component hyperparameter's value

# The fields of a search declaration a search reads (``SearchSpec``), in their canonical
# order; with the method's parts and settings after them.
SEARCH_FIELDS = ("network", "dataset", "data_dir", "method", "relaxation", "transforms", "regularizers",
                 "perturbation", "selection", "warmup", "step_order", "order", "hessian", "epochs", "batch_size",
                 "seed", "lr", "lr_min", "momentum", "weight_decay", "grad_clip", "arch_lr", "arch_weight_decay",
                 "train_portion", "bptt", "augment", "sync_bn", "limit")


@dataclass(frozen=True)
class SearchSpec:
    """A checked search declaration: the space searched and what the search is made
    of. ``None`` means "the default" (of the data set, of the method). ``network`` is a
    skeleton's name or the absolute path of its file; ``data_dir`` an absolute path;
    ``settings`` the components' hyperparameters as ("component.parameter", value),
    in source order. ``spans`` maps a field (or ``set:component.parameter``) to where it
    was written, so what only a search can check (the method's names) is reported at
    its line and column."""

    name: str
    space: SpaceSpec
    path: str = "<spec>"
    network: str | None = None
    dataset: str | None = None
    data_dir: str | None = None
    method: str | None = None
    relaxation: str | None = None
    transforms: tuple[str, ...] | None = None
    regularizers: tuple[str, ...] | None = None
    perturbation: str | None = None
    selection: str | None = None
    warmup: float | None = None
    step_order: str | None = None
    order: int | None = None
    hessian: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    lr: float | None = None
    lr_min: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    arch_lr: float | None = None
    arch_weight_decay: float | None = None
    train_portion: float | None = None
    bptt: int | None = None
    augment: bool | None = None
    sync_bn: bool | None = None
    limit: int | None = None
    settings: tuple[tuple[str, Setting], ...] = ()
    spans: tuple[tuple[str, Span | None], ...] = dataclasses.field(default=(), compare=False, repr=False)

    def span(self, key: str) -> Span | None:
        """Where ``key`` (a field, or ``set:component.parameter``) was written."""
        return dict(self.spans).get(key)

    def given(self) -> dict[str, object]:
        """The fields written in the declaration (not None)."""
        return {k: getattr(self, k) for k in SEARCH_FIELDS if getattr(self, k) is not None}
