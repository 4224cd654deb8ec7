"""The syntax tree: one frozen dataclass per construct of the grammar, each with the
span it came from (None for trees built in code, such as a derived genotype).

Spans do not take part in equality, so a tree printed and parsed again compares equal
to the tree it was printed from."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from genolang.errors import Span

FORMAT_VERSION = 1


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Name:
    """An identifier where it was written."""

    text: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Kernel:
    """A kernel size written ``HxW`` (``1x7``): rows, then columns."""

    height: int
    width: int

    def __str__(self) -> str:
        return f"{self.height}x{self.width}"


@dataclass(frozen=True)
class Text:
    """A quoted string, ``"data/cifar10"``: paths in a search declaration. It holds
    neither a quote, a backslash nor a line break."""

    text: str

    def __str__(self) -> str:
        return f'"{self.text}"'


# What a ``Value`` holds.
ValueData = int | float | Fraction | str | Kernel | Text


@dataclass(frozen=True)
class Value:
    """A property value: an int, a float, a fraction such as ``2/3``, a word, a quoted
    string (``Text``) or (in an op body) a kernel size such as ``1x7``."""

    value: ValueData
    span: Span | None = _span()

    @property
    def is_word(self) -> bool:
        return isinstance(self.value, str)


@dataclass(frozen=True)
class Prop:
    """``key = v1, v2`` or, with a qualifier, ``cap skip_connect = 2``."""

    key: Name
    values: tuple[Value, ...]
    qualifier: Name | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class EdgeDecl:
    """``edge c0 -> n2 = skip_connect, dil_conv_3x3`` in a cell of a space: the ops the
    mixed edge from ``src`` into ``dst`` chooses from (some of the space's ops)."""

    src: Name
    dst: Name
    ops: tuple[Name, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class CellDecl:
    """A cell type of a search space: ``cell normal { inputs = 2 ... }``, with the
    edges that choose from their own ops."""

    name: Name
    props: tuple[Prop, ...]
    span: Span | None = _span()
    edges: tuple[EdgeDecl, ...] = ()
    items: tuple[Prop | EdgeDecl, ...] = field(default=(), compare=False, repr=False)

    def ordered_items(self) -> tuple[Prop | EdgeDecl, ...]:
        """Properties and edges in source order (properties first for trees built in code)."""
        return self.items or (*self.props, *self.edges)


@dataclass(frozen=True)
class Derive:
    """The derivation rule of a search space: ``derive { exclude = none ... }``."""

    props: tuple[Prop, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Space:
    """``space NAME { ops = ...; cell ...; derive {...} }``."""

    name: Name
    props: tuple[Prop, ...]
    cells: tuple[CellDecl, ...]
    derive: Derive | None = None
    span: Span | None = _span()
    items: tuple[Prop | CellDecl | Derive, ...] = field(default=(), compare=False, repr=False)

    def ordered_items(self) -> tuple[Prop | CellDecl | Derive, ...]:
        """Items in source order (canonical order for trees built in code)."""
        if self.items:
            return self.items
        tail: tuple[Derive, ...] = (self.derive,) if self.derive is not None else ()
        return (*self.props, *self.cells, *tail)


@dataclass(frozen=True)
class Term:
    """``op(input)``: one incoming edge of a node."""

    op: Name
    input: Name
    span: Span | None = _span()


@dataclass(frozen=True)
class Node:
    """``n2 = op(c0) + op(c1)``."""

    name: Name
    terms: tuple[Term, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Range:
    """``n1..n8`` in an output list: the nodes from ``start`` to ``end`` in cell order."""

    start: Name
    end: Name
    span: Span | None = _span()


@dataclass(frozen=True)
class Output:
    """``out = concat(n2, n3)`` or ``out = mean(n1..n8)``."""

    reducer: Name
    refs: tuple[Name | Range, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class GenoCell:
    """The chosen ops of one cell type: its nodes and its output."""

    name: Name
    nodes: tuple[Node, ...]
    output: Output | None
    span: Span | None = _span()
    outputs: tuple[Output, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Genotype:
    """``genotype NAME : SPACE { cell {...} ... }``."""

    name: Name
    space: Name
    cells: tuple[GenoCell, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Network:
    """A network skeleton: ``network NAME { stem = cifar ... }``."""

    name: Name
    props: tuple[Prop, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class OpArg:
    """An argument of a primitive: positional (``3``, ``1x7``, ``stride``) or keyword
    (``dilation = 2``)."""

    value: Value
    key: Name | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class OpCall:
    """A primitive or a declared op in an op body: ``relu``, ``dwconv(3, stride)``."""

    name: Name
    args: tuple[OpArg, ...] = ()
    span: Span | None = _span()


@dataclass(frozen=True)
class OpSequence:
    """``a > b > c``: each part applied to the output of the one before."""

    parts: tuple[OpExpr, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class OpRepeat:
    """``N * body``: the body N times in sequence, the op's stride on the first only."""

    times: Value
    body: OpExpr
    span: Span | None = _span()


@dataclass(frozen=True)
class OpStrided:
    """``strided if strided else plain``: the body by the op's stride."""

    strided: OpExpr
    plain: OpExpr
    span: Span | None = _span()


OpExpr = OpCall | OpSequence | OpRepeat | OpStrided


@dataclass(frozen=True)
class OpDecl:
    """``op NAME = BODY``, or a family ``op NAME for P in v1, v2 = BODY`` (one op per
    value, ``P`` replaced in the name and the body)."""

    name: Name
    body: OpExpr
    param: Name | None = None
    values: tuple[Value, ...] = ()
    span: Span | None = _span()


@dataclass(frozen=True)
class Setting:
    """``gumbel.tau_max = 5``: a hyperparameter of a search method's component."""

    component: Name
    param: Name
    value: Value
    span: Span | None = _span()


@dataclass(frozen=True)
class Search:
    """``search NAME : SPACE { network = ...; epochs = 50; gumbel.tau_max = 5 }``: a
    search experiment (skeleton, data, method, hyperparameters) of a space."""

    name: Name
    space: Name
    props: tuple[Prop, ...]
    settings: tuple[Setting, ...] = ()
    span: Span | None = _span()
    items: tuple[Prop | Setting, ...] = field(default=(), compare=False, repr=False)

    def ordered_items(self) -> tuple[Prop | Setting, ...]:
        """Items in source order (properties, then settings, for trees built in code)."""
        return self.items or (*self.props, *self.settings)


Decl = Space | Genotype | Network | OpDecl | Search


@dataclass(frozen=True)
class Comment:
    """A ``# ...`` comment; kept so the printer can put it back."""

    text: str
    span: Span | None = _span()


@dataclass(frozen=True)
class SpecFile:
    """A whole file: its version line, declarations and comments."""

    decls: tuple[Decl, ...]
    version: int = FORMAT_VERSION
    comments: tuple[Comment, ...] = field(default=(), compare=False)
    path: str = field(default="<spec>", compare=False)
    version_span: Span | None = _span()

    def find(self, name: str) -> Decl | None:
        for decl in self.decls:
            if decl.name.text == name:
                return decl
        return None


def make_genotype(
    name: str,
    space: str,
    cells: list[tuple[str, list[tuple[str, list[tuple[str, str]]]], str, list[str]]],
) -> Genotype:
    """Build a genotype tree in code: ``cells`` holds, per cell, its name, its nodes as
    ``(node, [(op, input), ...])``, its reducer and its output nodes."""
    geno_cells = []
    for cell_name, nodes, reducer, output in cells:
        node_defs = tuple(
            Node(Name(node), tuple(Term(Name(op), Name(src)) for op, src in terms)) for node, terms in nodes
        )
        out = Output(Name(reducer), tuple(Name(n) for n in output))
        geno_cells.append(GenoCell(Name(cell_name), node_defs, out, outputs=(out,)))
    return Genotype(Name(name), Name(space), tuple(geno_cells))
