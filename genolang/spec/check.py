"""The semantic pass: syntax tree to checked specs (``genolang.spec.checked``), reporting every
problem in a file at once, each at its line and column with a way to fix it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal, overload

from genolang.errors import Diagnostic, GenolangError, Span, SpecError, did_you_mean
from genolang.parse import ast as A
from genolang.parse.parser import STDIN, parse, read_text
from genolang.spec.checked import (
    KEEP_ALL,
    CellGenotype,
    CellShape,
    DeriveRule,
    GenotypeSpec,
    Kind,
    NetworkSpec,
    NodeSpec,
    SearchSpec,
    SpaceSpec,
)
from genolang.spec.opcheck import OpResolver, family_names, supported_strides
from genolang.spec.ops import OpDef, layer_count
from genolang.spec.resolve import Ambiguous, Found, Library, where_found
from genolang.spec.validate import Problem, Where, _list_names, genotype_problems, network_problems

REDUCERS = ("concat", "mean", "last")
STEMS: dict[str, Kind] = {"cifar": "cnn", "imagenet": "cnn", "embedding": "rnn"}


@dataclass
class Checked:
    """The result of checking one file: its checked declarations and its diagnostics."""

    file: A.SpecFile
    source: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    spaces: dict[str, SpaceSpec] = field(default_factory=dict)
    genotypes: dict[str, GenotypeSpec] = field(default_factory=dict)
    networks: dict[str, NetworkSpec] = field(default_factory=dict)
    ops: dict[str, OpDef] = field(default_factory=dict)
    searches: dict[str, SearchSpec] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.file.path

    @property
    def errors(self) -> list[Diagnostic]:
        """The errors, with the notes that explain them (notes come only with errors)."""
        return [d for d in self.diagnostics if d.severity in ("error", "note")]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def raise_errors(self) -> Checked:
        """Raise a ``SpecError`` holding every error (warnings alone pass)."""
        if self.errors:
            raise SpecError(tuple(self.errors), {self.path: self.source, **self.sources})
        return self

    def render_warnings(self) -> str:
        return "\n".join(d.render(self.sources.get(d.path, self.source)) for d in self.warnings)

    @overload
    def single(self, kind: Literal["space"]) -> SpaceSpec: ...
    @overload
    def single(self, kind: Literal["genotype"]) -> GenotypeSpec: ...
    @overload
    def single(self, kind: Literal["network"]) -> NetworkSpec: ...
    @overload
    def single(self, kind: Literal["search"]) -> SearchSpec: ...
    @overload
    def single(self, kind: str) -> SpaceSpec | GenotypeSpec | NetworkSpec | SearchSpec: ...

    def single(self, kind: str) -> SpaceSpec | GenotypeSpec | NetworkSpec | SearchSpec:
        """The one declaration of a kind in this file; a clear error otherwise."""
        tables: dict[str, Mapping[str, SpaceSpec | GenotypeSpec | NetworkSpec | SearchSpec]] = {
            "space": self.spaces, "genotype": self.genotypes, "network": self.networks, "search": self.searches}
        table = tables[kind]
        if len(table) == 1:
            return next(iter(table.values()))
        found = ", ".join(table) if table else "none"
        held = [f"{k} {n}" for k, t in tables.items() if k != kind for n in t]
        holds = f"; it holds {', '.join(held[:4])}{' ...' if len(held) > 4 else ''}" if held and not table else ""
        diag = Diagnostic(
            self.path, None, f"expected exactly one {kind} in this file, found {len(table)} ({found}){holds}",
            f"put one {kind} in the file, or name the one you mean",
        )
        raise SpecError((diag,), {self.path: self.source})


class _Report:
    """Collects diagnostics for one file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[Diagnostic] = []

    def error(self, span: Span | None, message: str, hint: str | None = None) -> None:
        self.items.append(Diagnostic(self.path, span, message, hint))

    def warning(self, span: Span | None, message: str, hint: str | None = None) -> None:
        self.items.append(Diagnostic(self.path, span, message, hint, "warning"))

    def errors_since(self, start: int) -> bool:
        """Whether an error (not a mere warning) was reported after item ``start``."""
        return any(d.severity == "error" for d in self.items[start:])


# ---- property values --------------------------------------------------------------

def _one(prop: A.Prop, rep: _Report) -> A.Value | None:
    if len(prop.values) != 1:
        rep.error(prop.values[1].span if len(prop.values) > 1 else prop.span,
                  f"'{prop.key.text}' takes one value, got {len(prop.values)}",
                  f"write '{prop.key.text} = <value>'")
        return None
    return prop.values[0]


def _int_value(v: A.Value, key: str, rep: _Report, minimum: int, maximum: int | None = None) -> int | None:
    if isinstance(v.value, bool) or not isinstance(v.value, int):
        rep.error(v.span, f"'{key}' must be a whole number, got '{_show(v)}'")
        return None
    if v.value < minimum:
        what = "positive" if minimum == 1 else f"at least {minimum}"
        rep.error(v.span, f"'{key}' must be {what}, got {v.value}", f"use a number >= {minimum}")
        return None
    if maximum is not None and v.value > maximum:
        rep.error(v.span, f"'{key}' must be at most {maximum}, got {v.value}", f"use a number <= {maximum}")
        return None
    return v.value


def _show(v: A.Value) -> str:
    from genolang.parse.printer import format_value

    return format_value(v.value)


# Upper bounds that keep every later stage (lowering, 'show --ir', the supernet passes,
# 'graph', drawing, building) answering in seconds: DARTS cells have 4 nodes, NASNet's
# 5, recurrent ones 8; a supernet cell holds at most MAX_SUPERNET_TERMS (edge, op) terms
# (DARTS: 14 edges x 8 ops = 112), a space at most MAX_CELL_TYPES cell types.
MAX_CELL_INPUTS = 64
MAX_CELL_NODES = 32
MAX_KEEP = 64
MAX_SUPERNET_TERMS = 4096
MAX_SUPERNET_LAYERS = 65_536  # layers of one supernet cell (DARTS's: 14 edges x 27 layers of its 8 ops = 378)
MAX_CELL_TYPES = 16


def _whole(prop: A.Prop, rep: _Report) -> int | None:
    """A whole number of any size (network values: ``validate`` bounds them)."""
    v = _one(prop, rep)
    if v is None:
        return None
    if isinstance(v.value, bool) or not isinstance(v.value, int):
        rep.error(v.span, f"'{prop.key.text}' must be a whole number, got '{_show(v)}'")
        return None
    return v.value


def _int(minimum: int = 1, maximum: int | None = None) -> Callable[[A.Prop, _Report], int | None]:
    def parse_int(prop: A.Prop, rep: _Report) -> int | None:
        v = _one(prop, rep)
        return None if v is None else _int_value(v, prop.key.text, rep, minimum, maximum)

    return parse_int


def _real(prop: A.Prop, rep: _Report) -> float | None:
    """A number (network values: ``validate`` bounds them)."""
    v = _one(prop, rep)
    if v is None:
        return None
    if isinstance(v.value, (str, A.Text)):
        rep.error(v.span, f"'{prop.key.text}' must be a number, got '{v.value}'")
        return None
    assert not isinstance(v.value, A.Kernel)  # the grammar has kernel sizes in op calls only
    return float(v.value)


def _word(choices: Iterable[str]) -> Callable[[A.Prop, _Report], str | None]:
    options = tuple(choices)

    def parse_word(prop: A.Prop, rep: _Report) -> str | None:
        v = _one(prop, rep)
        if v is None:
            return None
        if not isinstance(v.value, str) or v.value not in options:
            text = _show(v)
            rep.error(v.span, f"'{prop.key.text}' must be one of {', '.join(options)}; got '{text}'"
                      + (did_you_mean(text, options) if isinstance(v.value, str) else ""))
            return None
        return v.value

    return parse_word


def _bool(prop: A.Prop, rep: _Report) -> bool | None:
    word = _word(("true", "false"))(prop, rep)
    return None if word is None else word == "true"


def _position(v: A.Value, key: str, rep: _Report) -> int | Fraction | None:
    """A cell index or a fraction of the depth (``validate`` checks the range)."""
    if isinstance(v.value, Fraction):
        return v.value
    if isinstance(v.value, str) and "/" in v.value:  # a fraction the parser could not make exact
        if float(v.value.partition("/")[2]) == 0:
            rep.error(v.span, f"'{key}' has a zero denominator: '{v.value}'")
        else:
            rep.error(v.span, f"'{key}' fraction must be of whole numbers, got '{v.value}'",
                      "use a fraction of the depth such as 1/3, or a cell index")
        return None
    if isinstance(v.value, bool) or not isinstance(v.value, int):
        rep.error(v.span, f"'{key}' must be a whole number, got '{_show(v)}'")
        return None
    return v.value


def _positions(prop: A.Prop, rep: _Report) -> tuple[int | Fraction, ...] | None:
    if len(prop.values) == 1 and prop.values[0].value == "none":
        return ()
    out = [_position(v, prop.key.text, rep) for v in prop.values]
    positions = [p for p in out if p is not None]
    return None if len(positions) < len(out) else tuple(positions)


def _optional_position(prop: A.Prop, rep: _Report) -> object:
    v = _one(prop, rep)
    if v is None:
        return None
    if v.value == "none":
        return _NONE
    return _position(v, prop.key.text, rep)


_NONE = object()  # "explicitly none" for optional fields

# key -> (domain, parser); a domain of None means every kind of network.
_NETWORK_KEYS: dict[str, tuple[str | None, Callable[[A.Prop, _Report], object]]] = {
    "stem": (None, _word(STEMS)),
    "channels": ("cnn", _whole),
    "layers": ("cnn", _whole),
    "stem_multiplier": ("cnn", _whole),
    "reduce_at": ("cnn", _positions),
    "auxiliary": ("cnn", _optional_position),
    "auxiliary_weight": ("cnn", _real),
    "drop_path": ("cnn", _real),
    "label_smoothing": ("cnn", _real),
    "input_size": ("cnn", _whole),
    "in_channels": ("cnn", _whole),
    "classes": ("cnn", _whole),
    "embedding": ("rnn", _whole),
    "hidden": ("rnn", _whole),
    "dropout": ("rnn", _real),
    "dropout_h": ("rnn", _real),
    "dropout_x": ("rnn", _real),
    "dropout_i": ("rnn", _real),
    "dropout_e": ("rnn", _real),
    "tied": ("rnn", _bool),
    "vocab": ("rnn", _whole),
}

def _stride(prop: A.Prop, rep: _Report) -> int | None:
    v = _one(prop, rep)
    if v is None:
        return None
    if v.value not in (1, 2) or isinstance(v.value, bool):
        rep.error(v.span, f"'stride' must be 1 or 2, got '{_show(v)}'", "a reduction cell has 'stride = 2'")
        return None
    return int(v.value)


def _keep(prop: A.Prop, rep: _Report) -> int | None:
    """``keep = 2`` (that many inputs per node) or ``keep = all`` (``KEEP_ALL``: one edge
    from every earlier node, as in NAS-Bench-201)."""
    v = _one(prop, rep)
    if v is None:
        return None
    if v.value == "all":
        return KEEP_ALL
    if isinstance(v.value, str):
        rep.error(v.span, f"'keep' must be a whole number or 'all', got '{v.value}'",
                  "write 'keep = 2', or 'keep = all' for a node that reads every earlier node")
        return None
    return _int_value(v, "keep", rep, 1, MAX_KEEP)


_CELL_KEYS: dict[str, Callable[[A.Prop, _Report], int | str | None]] = {
    "inputs": _int(1, MAX_CELL_INPUTS),
    "nodes": _int(1, MAX_CELL_NODES),
    "keep": _keep,
    "output": _word(REDUCERS),
    "stride": _stride,
}


def _props(props: Iterable[A.Prop], schema: Mapping[str, object], where: str, rep: _Report,
           qualified: Iterable[str] = ()) -> dict[str, A.Prop]:
    """Index props by key, reporting unknown, duplicated and wrongly qualified keys."""
    seen: dict[str, A.Prop] = {}
    allowed_q = set(qualified)
    for prop in props:
        key = prop.key.text
        if prop.qualifier is not None and key not in allowed_q:
            rep.error(prop.qualifier.span, f"'{key}' takes no qualifier in {where}",
                      f"write '{key} = <value>'")
            continue
        if key in allowed_q:
            continue
        if key not in schema:
            keys = list(schema) + list(allowed_q)
            rep.error(prop.key.span, f"unknown property '{key}' in {where}{did_you_mean(key, keys)}",
                      "known properties: " + ", ".join(sorted(keys)))
            continue
        if key in seen:
            first = seen[key].key.span
            at = f" (first set at line {first.line})" if first else ""
            rep.error(prop.key.span, f"'{key}' is set twice in {where}{at}", "keep one of them")
            continue
        seen[key] = prop
    return seen


# ---- spaces -----------------------------------------------------------------------

def check_space(space: A.Space, rep: _Report, ops_in: OpResolver) -> SpaceSpec | None:
    """A checked space, or None after reporting why not; its op names are resolved by
    ``ops_in`` (the file's declarations, the search path, the plugins)."""
    start = len(rep.items)
    where = f"space '{space.name.text}'"
    props = _props(space.props, {"ops": None}, where, rep)
    for extra in [i for i in space.ordered_items() if isinstance(i, A.Derive)][1:]:
        rep.error(extra.span, f"{where} has more than one derive block", "merge them into one")
    ops: list[str] = []
    defs: list[OpDef] = []
    spans: dict[str, Span | None] = {}
    kind: Kind | None = None
    if "ops" not in props:
        rep.error(space.name.span, f"{where} has no 'ops'",
                  "list the candidate ops, e.g. 'ops = none, skip_connect, sep_conv_3x3'")
    else:
        for v in props["ops"].values:
            if not isinstance(v.value, str):
                rep.error(v.span, f"an op must be a name, got '{_show(v)}'")
                continue
            name = v.value
            if name in ops:
                rep.error(v.span, f"op '{name}' is listed twice in {where}", "list each op once")
                continue
            found = ops_in.get(name)
            if found is None:
                rep.error(v.span, f"unknown op '{name}'{did_you_mean(name, ops_in.known_names())}",
                          "declare it ('op NAME = ...') in this file, its folder or GENOLANG_PATH, or install a "
                          "plugin; "
                          "'genolang ops' lists the known ops")
                continue
            if not isinstance(found, OpDef):
                rep.error(v.span, f"op '{name}' has errors (see where it is declared)", "fix its declaration")
                continue
            ops.append(name)
            defs.append(found)
            spans[name] = v.span
        real = [d for d in defs if not d.is_zero]
        if defs and not real:
            rep.error(props["ops"].span, f"{where} has only zero ops ({', '.join(ops)})", "add at least one real op")
        elif real:
            kind = "rnn" if all(d.elementwise for d in real) else "cnn"
    cells: list[CellShape] = []
    names: dict[str, A.CellDecl] = {}
    for decl in space.cells:
        if decl.name.text in names:
            rep.error(decl.name.span, f"cell '{decl.name.text}' is declared twice in {where}",
                      "give each cell type its own name")
            continue
        names[decl.name.text] = decl
        shape = _check_cell(decl, kind, rep)
        if shape is not None and decl.edges and "ops" in props:
            shape = _check_edges(decl, shape, ops, rep, ops_in, where, space.name.text)
        if shape is not None:
            cells.append(shape)
    if len(space.cells) > MAX_CELL_TYPES:
        rep.error(space.cells[MAX_CELL_TYPES].name.span, f"{where} declares {len(space.cells)} cell types; at most "
                  f"{MAX_CELL_TYPES} are allowed", "a network stacks 'normal' and 'reduce' cells: keep those")
    for shape in cells:
        terms = (shape.inputs * shape.nodes + shape.nodes * (shape.nodes - 1) // 2) * max(len(ops), 1)
        if terms > MAX_SUPERNET_TERMS:
            rep.error(names[shape.name].span, f"cell '{shape.name}' of {where} would make a supernet cell of {terms:,} "
                      f"(edge, op) terms ({shape.inputs} inputs, {shape.nodes} nodes, {len(ops)} ops); at most "
                      f"{MAX_SUPERNET_TERMS:,} can be searched", "use fewer nodes, inputs or ops")
            continue
        edges = terms // max(len(ops), 1)
        per_edge = sum(layer_count(d.body) for d in (ops_in.get(op) for op in ops)
                       if isinstance(d, OpDef) and d.body is not None)
        if edges * per_edge > MAX_SUPERNET_LAYERS:
            rep.error(names[shape.name].span, f"cell '{shape.name}' of {where} would make a supernet cell of "
                      f"{edges * per_edge:,} layers ({edges} edges x {per_edge} layers of its ops); at most "
                      f"{MAX_SUPERNET_LAYERS:,} can be built", "use fewer or smaller ops, or fewer nodes")
    if not space.cells:
        rep.error(space.name.span, f"{where} declares no cell",
                  "add e.g. 'cell normal { inputs = 2; nodes = 4; keep = 2; output = concat }'")
    derive = _check_derive(space.derive, ops, rep, where)
    if derive is not None and kind == "cnn":
        for shape in cells:
            if derive.distinct and shape.keep > shape.inputs:
                rep.error(names[shape.name].span, f"cell '{shape.name}' keeps {shape.keep} distinct inputs per node "
                          f"but its first node has only {shape.inputs} predecessors",
                          "lower 'keep', raise 'inputs', or set 'distinct = false' in derive")
    if derive is not None and not rep.errors_since(start):
        _check_derivable(cells, names, ops, derive, space.derive, rep, where)
    on_edges = {shape.name: _ops_by_stride(shape, ops) for shape in cells}
    if any(shape.edge_sets for shape in cells):
        used = {op for by_stride in on_edges.values() for group in by_stride.values() for op in group}
        for name in ops:
            if name not in used:
                rep.warning(spans[name], f"op '{name}' of {where} is on no edge: every edge of every cell lists "
                            "its own ops without it", f"remove '{name}' from 'ops', or add it to an edge")
    if kind == "cnn":
        for op in defs:  # every op must run at the strides of the edges it is on
            strides, why = supported_strides(op)
            for shape in cells:
                bad = [stride for stride in (2, 1) if op.name in on_edges[shape.name].get(stride, ())
                       and stride not in strides]
                if bad:
                    rep.error(spans[op.name], f"op '{op.name}' cannot run at stride {bad[0]}, which cell "
                              f"'{shape.name}' of {where} needs: {why[bad[0]]}",
                              "use the op in spaces whose cells it fits, or change its declaration"
                              + (f" ({op.origin})" if op.origin else ""))
                    break
    if rep.errors_since(start) or kind is None or derive is None:
        return None
    return SpaceSpec(space.name.text, kind, tuple(ops), tuple(cells), derive, rep.path,
                     op_defs=tuple(defs))


def checked_space(found: Found) -> tuple[SpaceSpec | None, _Report, OpResolver]:
    """The checked space of a declaration found on a search path, its ops resolved from
    its own file first (None when it has errors, which the report holds)."""
    path = found.file.path
    rep = _Report(path)
    resolver = OpResolver(found.file, path, rep, Library.for_file(path))
    assert isinstance(found.decl, A.Space)
    return check_space(found.decl, rep, resolver), rep, resolver


def _check_cell(decl: A.CellDecl, kind: str | None, rep: _Report) -> CellShape | None:
    where = f"cell '{decl.name.text}'"
    props = _props(decl.props, _CELL_KEYS, where, rep)
    values = {k: _CELL_KEYS[k](p, rep) for k, p in props.items()}
    if "nodes" not in props:
        rep.error(decl.name.span, f"{where} does not say how many nodes it has", "add 'nodes = 4'")
        return None
    defaults: dict[str, int | str] = {"inputs": 2, "keep": 2, "output": "concat", "stride": 1}
    if kind == "rnn":
        defaults.update(inputs=1, keep=1, output="mean")
    if any(values.get(k) is None for k in props):
        return None
    merged = {**defaults, **{k: v for k, v in values.items() if v is not None}}
    if kind == "rnn":
        if merged["keep"] != 1:
            rep.error(props["keep"].values[0].span if "keep" in props else decl.name.span,
                      f"recurrent {where} must keep 1 input per node, not "
                      f"{'all' if merged['keep'] == KEEP_ALL else merged['keep']}",
                      "a recurrent node reads exactly one earlier node: 'keep = 1'")
            return None
        if merged["inputs"] != 1:
            rep.error(props["inputs"].values[0].span if "inputs" in props else decl.name.span,
                      f"recurrent {where} has one input node (the state s0), not {merged['inputs']}",
                      "write 'inputs = 1'")
            return None
        if merged["stride"] != 1:
            rep.error(props["stride"].values[0].span, f"recurrent {where} cannot have a stride")
            return None
    return CellShape(decl.name.text, int(merged["inputs"]), int(merged["nodes"]),
                     int(merged["keep"]), str(merged["output"]), int(merged["stride"]),
                     "s" if kind == "rnn" else "c")


def _ops_by_stride(shape: CellShape, ops: list[str]) -> dict[int, set[str]]:
    """The ops on the edges of a cell type, by the stride they run at there (edges from
    inputs at the cell's stride, the others at 1); linear in the listed edges."""
    out: dict[int, set[str]] = {}
    inputs = set(shape.input_names)
    listed = {shape.stride: 0, 1: 0} if shape.stride != 1 else {1: 0}
    for src, _, chosen in shape.edge_sets:
        stride = shape.stride if src in inputs else 1
        listed[stride] += 1
        out.setdefault(stride, set()).update(chosen)
    from_inputs = shape.inputs * shape.nodes
    between_nodes = shape.nodes * (shape.nodes - 1) // 2
    if shape.stride == 1:
        if listed[1] < from_inputs + between_nodes:
            out.setdefault(1, set()).update(ops)
    else:
        if listed[shape.stride] < from_inputs:
            out.setdefault(shape.stride, set()).update(ops)
        if listed[1] < between_nodes:
            out.setdefault(1, set()).update(ops)
    return out


def _check_edges(decl: A.CellDecl, shape: CellShape, ops: list[str], rep: _Report, ops_in: OpResolver,
                 where: str, space: str) -> CellShape | None:
    """The cell's ``edge SRC -> DST = ops`` lines as the shape's ``edge_sets`` (None after
    reporting a problem): each an edge the supernet has (from an input or an earlier
    node into a node), listed once, with some of the space's ops, each once. A line
    that lists every op of the space changes nothing and is not recorded."""
    start = len(rep.items)
    cname = decl.name.text
    inputs, nodes = shape.input_names, shape.node_names
    position = {name: i for i, name in enumerate((*inputs, *nodes))}
    seen: dict[tuple[str, str], A.EdgeDecl] = {}
    sets: dict[tuple[str, str], tuple[str, ...]] = {}
    for edge in decl.edges:
        src, dst = edge.src.text, edge.dst.text
        text = f"edge {src} -> {dst}"
        bad = False
        for end in (edge.src, edge.dst):
            if end.text not in position:
                rep.error(end.span, f"{text}: cell '{cname}' has no node '{end.text}'"
                          f"{did_you_mean(end.text, position)}",
                          f"the nodes of cell '{cname}' are: {_list_names([*inputs, *nodes])}")
                bad = True
        if bad:
            continue
        if dst in inputs:
            rep.error(edge.dst.span, f"{text}: '{dst}' is an input of cell '{cname}'; no edge leads into an input",
                      f"an edge goes from an input or a node into a later node, e.g. 'edge {inputs[-1]} -> "
                      f"{nodes[0]} = ...'")
            continue
        if src == dst:
            rep.error(edge.src.span, f"{text}: a node does not read itself",
                      "an edge goes from an input or a node into a later node")
            continue
        if position[src] > position[dst]:
            rep.error(edge.src.span, f"{text}: there is no such edge; '{dst}' reads inputs and earlier nodes only, "
                      f"and '{src}' comes after it", f"did you mean 'edge {dst} -> {src}'?")
            continue
        if (src, dst) in seen:
            first = seen[(src, dst)].span
            at = f" (first at line {first.line})" if first else ""
            rep.error(edge.span, f"{text} is listed twice in cell '{cname}'{at}", "keep one line per edge")
            continue
        seen[(src, dst)] = edge
        chosen: list[str] = []
        for op in edge.ops:
            name = op.text
            if name in chosen:
                rep.error(op.span, f"op '{name}' is listed twice on {text}", "list each op once")
            elif name not in ops:
                known = name in ops_in.known_names()
                rep.error(op.span, f"{text}: {'op' if known else 'unknown op'} '{name}'"
                          + (f" is not one of the ops of space '{space}'" if known else "") + did_you_mean(name, ops),
                          f"an edge chooses among the space's ops (the columns of its alphas): {', '.join(ops)}"
                          + (f"; add '{name}' to 'ops' first" if known else ""))
            else:
                chosen.append(name)
        if len(chosen) < len(ops):
            sets[(src, dst)] = tuple(op for op in ops if op in chosen)  # in the space's op order
    if rep.errors_since(start):
        return None
    ordered = sorted(sets, key=lambda e: (position[e[1]], position[e[0]]))  # alpha-row order
    return dataclasses.replace(shape, edge_sets=tuple((src, dst, sets[(src, dst)]) for src, dst in ordered))


def _check_derivable(cells: list[CellShape], decls: dict[str, A.CellDecl], ops: list[str], rule: DeriveRule,
                     derive: A.Derive | None, rep: _Report, where: str) -> None:
    """Whether every node can get its ``keep`` inputs under the derive rule whatever the
    alphas (caps aside: they are met, or reported, when deriving). An edge whose ops the
    rule all excludes is never kept: that is an error when its node then cannot keep
    enough inputs (the derivation at the end of every search would fail), and a warning
    otherwise (the search trains the edge but never chooses it)."""
    excluded = set(rule.exclude)
    exclude_span = None
    if derive is not None:
        exclude_span = next((p.span for p in derive.props if p.key.text == "exclude"), derive.span)
    default = [op for op in ops if op not in excluded]
    if not default:  # the edges' own sets are some of the space's ops: excluded too
        rep.error(exclude_span, f"the derive rule of {where} excludes every op: a search could choose nothing",
                  "exclude fewer ops")
        return
    for shape in cells:
        decl = decls[shape.name]
        lines = {(e.src.text, e.dst.text): e for e in decl.edges}
        dead: dict[str, list[str]] = {}
        viable: dict[str, int] = {}  # ops a derivation may keep, summed over the listed edges into a node
        for src, dst, chosen in shape.edge_sets:
            count = sum(op not in excluded for op in chosen)
            viable[dst] = viable.get(dst, 0) + count
            if not count:
                dead.setdefault(dst, []).append(src)
        for dst, srcs in dead.items():
            position = shape.node_names.index(dst)
            need = shape.terms_of(position)
            sources = shape.inputs + position
            listed_into = sum(1 for _, d, _ in shape.edge_sets if d == dst)
            if shape.keeps_all or rule.distinct:
                can = sources - len(srcs)
            else:
                can = viable.get(dst, 0) + (sources - listed_into) * len(default)
            shown = [lines[(src, dst)] for src in srcs if (src, dst) in lines]
            span = shown[-1].span if shown else (exclude_span or decl.name.span)
            what = ", ".join(f"{src} -> {dst}" for src in srcs)
            only = sorted({op for src in srcs for op in shape.edge_ops(src, dst, ops)}, key=ops.index)
            plural = len(srcs) > 1
            why = (f"the derive rule excludes every op of edge{'s' if plural else ''} {what} "
                   f"({', '.join(only)})")
            if (shape.keeps_all and srcs) or can < need:
                keeps = "all its inputs" if shape.keeps_all else f"{need} input{'s' if need != 1 else ''}"
                rep.error(span, f"node '{dst}' of cell '{shape.name}' cannot keep {keeps}: {why}",
                          f"allow an op the derive rule keeps on an edge into '{dst}', or exclude fewer ops in "
                          "derive")
            else:
                it = "them" if plural else "it"
                rep.warning(span, f"{why}: a search trains {it} but never keeps {it}",
                            "allow an op the derive rule keeps, or leave the edge out if that is the point")


def _check_derive(derive: A.Derive | None, ops: list[str], rep: _Report, where: str) -> DeriveRule | None:
    if derive is None:
        return DeriveRule(("none",) if "none" in ops else (), True, ())
    start = len(rep.items)
    schema: dict[str, object] = {"exclude": None, "distinct": None}
    props = _props(derive.props, schema, f"derive of {where}", rep, qualified=("cap",))
    exclude: list[str] = []
    if "exclude" in props and [v.value for v in props["exclude"].values] == ["nothing"]:
        pass  # ``exclude = nothing``: every op may be derived, 'none' included (NAS-Bench-201)
    elif "exclude" in props:
        for v in props["exclude"].values:
            if not isinstance(v.value, str) or v.value not in ops:
                text = _show(v)
                rep.error(v.span, f"cannot exclude '{text}': it is not an op of {where}"
                          + (did_you_mean(text, ops) if isinstance(v.value, str) else ""))
            else:
                exclude.append(v.value)
    elif "none" in ops:
        exclude.append("none")
    distinct = _bool(props["distinct"], rep) if "distinct" in props else True
    caps: list[tuple[str, int]] = []
    for prop in derive.props:
        if prop.key.text != "cap":
            continue
        if prop.qualifier is None:
            rep.error(prop.key.span, "'cap' needs the op it limits", "write 'cap skip_connect = 2'")
            continue
        op = prop.qualifier.text
        if op not in ops:
            rep.error(prop.qualifier.span, f"cannot cap '{op}': it is not an op of {where}{did_you_mean(op, ops)}")
            continue
        if any(name == op for name, _ in caps):
            rep.error(prop.qualifier.span, f"'{op}' is capped twice", "keep one 'cap' per op")
            continue
        given = _one(prop, rep)
        limit = None if given is None else _int_value(given, f"cap {op}", rep, 0)
        if limit is not None:
            caps.append((op, limit))
    if rep.errors_since(start) or distinct is None:
        return None
    return DeriveRule(tuple(exclude), bool(distinct), tuple(caps))


# ---- networks ---------------------------------------------------------------------

def check_network(net: A.Network, rep: _Report) -> NetworkSpec | None:
    """A checked network skeleton, or None after reporting why not. Values are read here
    (their types); what must hold of them is ``genolang.spec.validate.network_problems``."""
    start = len(rep.items)
    where = f"network '{net.name.text}'"
    props = _props(net.props, _NETWORK_KEYS, where, rep)
    if "stem" not in props:
        rep.error(net.name.span, f"{where} has no 'stem'",
                  "add 'stem = cifar', 'stem = imagenet' or 'stem = embedding'")
        return None
    stem = _NETWORK_KEYS["stem"][1](props["stem"], rep)
    if stem is None:
        return None
    kind = STEMS[str(stem)]
    fields: dict[str, Any] = {}  # each key's parser gives its field's type; mypy cannot tie the two
    for key, prop in props.items():
        if key == "stem":
            continue
        domain, parser = _NETWORK_KEYS[key]
        if domain is not None and domain != kind:
            rep.error(prop.key.span, f"'{key}' does not apply to a {'recurrent' if kind == 'rnn' else 'CNN'} network "
                      f"(stem = {stem})", f"remove '{key}'")
            continue
        value = parser(prop, rep)
        if value is _NONE:
            fields[key] = None
        elif value is not None:
            fields[key] = value
    if rep.errors_since(start):
        return None
    spec = NetworkSpec(net.name.text, kind, str(stem), rep.path, **fields)

    def span(where: Where) -> Span | None:
        key = str(where[1]) if len(where) > 1 else ""
        if key not in props:
            return (props.get("hidden") or props["stem"]).span if key == "hidden" else net.name.span
        values = props[key].values
        if key == "hidden" and kind == "rnn" and len(where) == 2 and spec.tied and spec.embedding != spec.hidden:
            return props[key].span
        index = int(where[2]) if len(where) > 2 else 0
        return values[index].span if index < len(values) else props[key].span

    report_problems(network_problems(spec), span, rep)
    if rep.errors_since(start):
        return None
    return spec


# ---- genotypes --------------------------------------------------------------------

SpaceLookup = Callable[[A.Name], SpaceSpec | None]


def check_genotype(geno: A.Genotype, find_space: SpaceLookup, rep: _Report,
                   known_op: Callable[[str], bool] | None = None) -> GenotypeSpec | None:
    """A checked genotype, or None after reporting why not. The tree becomes a
    ``GenotypeSpec`` here (cells matched to the space's, output ranges expanded); what
    must hold of it is ``genolang.spec.validate.genotype_problems``, whose problems are
    reported at the spans they point to."""
    start = len(rep.items)
    space = find_space(geno.space)
    if space is None:
        return None
    where = f"genotype '{geno.name.text}'"
    shapes = {c.name: c for c in space.cells}
    spans: dict[Where, Span | None] = {("genotype",): geno.name.span}
    cells: list[CellGenotype] = []
    seen: set[str] = set()
    for cell in geno.cells:
        cname = cell.name.text
        if cname not in shapes:
            rep.error(cell.name.span, f"space '{space.name}' has no cell '{cname}'{did_you_mean(cname, shapes)}",
                      f"its cells are: {', '.join(shapes)}")
            continue
        if cname in seen:
            rep.error(cell.name.span, f"cell '{cname}' appears twice in {where}", "keep one of them")
            continue
        seen.add(cname)
        cells.append(_genotype_cell(cell, shapes[cname], spans, rep))
    if rep.errors_since(start):
        # the cells that did convert are still validated, so every problem of the file shows at once
        partial = GenotypeSpec(geno.name.text, space, tuple(cells), rep.path)
        problems = [p for p in genotype_problems(partial, known_op) if p.where != ("genotype",)]
        report_problems(problems, spans.get, rep)
        return None
    spec = GenotypeSpec(geno.name.text, space, tuple(sorted(cells, key=lambda c: space.cell_names.index(c.name))),
                        rep.path)
    report_problems(genotype_problems(spec, known_op), spans.get, rep)
    return None if rep.errors_since(start) else spec


def _genotype_cell(cell: A.GenoCell, shape: CellShape, spans: dict[Where, Span | None],
                   rep: _Report) -> CellGenotype:
    """One cell of a genotype tree as a model (with an empty output when the output
    cannot be read: its span is then None, and its problems are not reported twice),
    recording the span of every part under its ``Where`` path."""
    cname = cell.name.text
    here: Where = ("cell", cname)
    spans[here] = cell.name.span
    nodes = []
    for i, node in enumerate(cell.nodes):
        at = (*here, "node", i)
        spans[at] = node.name.span
        spans[at + ("body",)] = node.span
        for j, term in enumerate(node.terms):
            spans[at + ("term", j)] = term.span
            spans[at + ("term", j, "op")] = term.op.span
            spans[at + ("term", j, "input")] = term.input.span
        nodes.append(NodeSpec(node.name.text, tuple((t.op.text, t.input.text) for t in node.terms)))
    names = [n.name.text for n in cell.nodes if n.name.text not in shape.input_names]
    output = _genotype_output(cell, shape, list(dict.fromkeys(names)), spans, rep)
    if output is None:  # reported; the nodes are still validated (with no output to check)
        spans[here + ("output",)] = None
        return CellGenotype(shape, tuple(nodes), ())
    return CellGenotype(shape, tuple(nodes), output)


def _output_names(names: list[str]) -> str:
    """The nodes of a suggested output line: listed when few, a range when many."""
    return ", ".join(names) if len(names) <= 12 else f"{names[0]}..{names[-1]}"


def _genotype_output(cell: A.GenoCell, shape: CellShape, defined: list[str], spans: dict[Where, Span | None],
                     rep: _Report) -> tuple[str, ...] | None:
    """The output's node names with ranges expanded (``None`` after reporting what makes
    the output unreadable: no output, another reducer, a range that cannot be expanded)."""
    cname = cell.name.text
    if cell.output is None:
        rep.error(cell.name.span, f"cell '{cname}' has no output",
                  f"add 'out = {shape.reducer}({_output_names(defined or list(shape.node_names))})'")
        return None
    for extra in cell.outputs[1:]:
        rep.error(extra.span, f"cell '{cname}' has more than one output", "keep one 'out = ...' line")
    out = cell.output
    at: Where = ("cell", cname, "output")
    spans[at] = out.span
    start = len(rep.items)
    if out.reducer.text != shape.reducer:
        rep.error(out.reducer.span,
                  f"cell '{cname}' combines its nodes with '{shape.reducer}', not '{out.reducer.text}'",
                  f"write 'out = {shape.reducer}(...)'")
    names: list[str] = []
    position = {n: i for i, n in enumerate(defined)}

    def endpoint(ref: A.Name) -> bool:
        if ref.text in shape.input_names:
            rep.error(ref.span, f"output lists input '{ref.text}'", "the output combines intermediate nodes only")
            return False
        if ref.text not in position:
            rep.error(ref.span, f"output lists unknown node '{ref.text}'{did_you_mean(ref.text, defined)}",
                      f"the nodes of cell '{cname}' are: {_list_names(defined)}")
            return False
        return True

    for ref in out.refs:
        if isinstance(ref, A.Range):
            if endpoint(ref.start) and endpoint(ref.end):
                i, j = position[ref.start.text], position[ref.end.text]
                if i > j:
                    rep.error(ref.span, f"range '{ref.start.text}..{ref.end.text}' runs backwards",
                              f"write '{ref.end.text}..{ref.start.text}'")
                for name in defined[i:j + 1]:
                    spans[at + (len(names),)] = ref.span
                    names.append(name)
        else:
            spans[at + (len(names),)] = ref.span
            names.append(ref.text)
    if rep.errors_since(start):
        return None
    return tuple(names)


def report_problems(problems: Iterable[Problem], span: Callable[[Where], Span | None], rep: _Report) -> None:
    """Report model problems at the spans their paths map to; a problem of an output the
    tree-to-model step already found unreadable (recorded with no span) is left out."""
    for p in problems:
        if len(p.where) >= 3 and p.where[2] == "output" and span(p.where[:3]) is None:
            continue
        (rep.error if p.is_error else rep.warning)(span(p.where), p.message, p.hint)


# ---- searches ---------------------------------------------------------------------

STEP_ORDERS = ("arch_first", "weight_first")
HESSIANS = ("fd", "exact")


def _search_number(kind: type, low: float | None = None, high: float | None = None, low_open: bool = False,
                   high_open: bool = True) -> Callable[[A.Prop, _Report], object]:
    """A whole number (``kind`` int) or a number (float) in [low, high) (bounds by the flags)."""
    def parse_number(prop: A.Prop, rep: _Report) -> object:
        v = _one(prop, rep)
        if v is None:
            return None
        key = prop.key.text
        if kind is int:
            if isinstance(v.value, bool) or not isinstance(v.value, int):
                rep.error(v.span, f"'{key}' must be a whole number, got '{_show(v)}'")
                return None
            value: float = v.value
        else:
            if isinstance(v.value, bool) or not isinstance(v.value, (int, float)):
                rep.error(v.span, f"'{key}' must be a number, got '{_show(v)}'")
                return None
            value = float(v.value)
        if low is not None and (value < low or (low_open and value == low)):
            rep.error(v.span, f"'{key}' must be {'above' if low_open else 'at least'} {low:g}, got {_show(v)}")
            return None
        if high is not None and (value > high or (high_open and value == high)):
            rep.error(v.span, f"'{key}' must be {'below' if high_open else 'at most'} {high:g}, got {_show(v)}")
            return None
        return int(value) if kind is int else value

    return parse_number


def _order(prop: A.Prop, rep: _Report) -> int | None:
    v = _one(prop, rep)
    if v is None:
        return None
    if v.value not in (1, 2) or isinstance(v.value, bool) or isinstance(v.value, float):
        rep.error(v.span, f"'order' must be 1 or 2, got '{_show(v)}'",
                  "1: first-order DARTS; 2: second order (the unrolled weight step)")
        return None
    return int(v.value)


def _name_or_text(prop: A.Prop, rep: _Report) -> str | A.Text | None:
    v = _one(prop, rep)
    if v is None:
        return None
    if isinstance(v.value, (str, A.Text)):
        return v.value
    rep.error(v.span, f"'{prop.key.text}' must be a name or a quoted path, got '{_show(v)}'")
    return None


def _text(prop: A.Prop, rep: _Report) -> A.Text | None:
    v = _one(prop, rep)
    if v is None:
        return None
    if not isinstance(v.value, A.Text):
        rep.error(v.span, f"'{prop.key.text}' must be a quoted path, got '{_show(v)}'",
                  f'write \'{prop.key.text} = "path/to/folder"\' (relative to this file\'s folder)')
        return None
    return v.value


def _words(prop: A.Prop, rep: _Report) -> tuple[str, ...] | None:
    """Names (``none`` alone for none)."""
    out = []
    for v in prop.values:
        if not isinstance(v.value, str):
            rep.error(v.span, f"'{prop.key.text}' takes names, got '{_show(v)}'")
            return None
        out.append(v.value)
    if out == ["none"]:
        return ()
    if "none" in out:
        rep.error(prop.span, f"'{prop.key.text}': 'none' stands alone", f"write '{prop.key.text} = none'")
        return None
    return tuple(out)


def _name_value(prop: A.Prop, rep: _Report) -> str | None:
    v = _one(prop, rep)
    if v is None:
        return None
    if not isinstance(v.value, str):
        rep.error(v.span, f"'{prop.key.text}' must be a name, got '{_show(v)}'")
        return None
    return v.value


_SEARCH_KEYS: dict[str, Callable[[A.Prop, _Report], object]] = {
    "network": _name_or_text,
    "dataset": _name_or_text,
    "data_dir": _text,
    "method": _name_value,
    "relaxation": _name_value,
    "transforms": _words,
    "regularizers": _words,
    "perturbation": _name_value,
    "selection": _name_value,
    "warmup": _search_number(float, 0.0, 1.0),
    "step_order": _word(STEP_ORDERS),
    "order": _order,
    "hessian": _word(HESSIANS),
    "epochs": _search_number(int, 1),
    "batch_size": _search_number(int, 2),
    "seed": _search_number(int, 0, 2**63 - 1, high_open=False),
    "lr": _search_number(float, 0.0, None, low_open=True),
    "lr_min": _search_number(float, 0.0),
    "momentum": _search_number(float, 0.0, 1.0),
    "weight_decay": _search_number(float, 0.0),
    "grad_clip": _search_number(float, 0.0, None, low_open=True),
    "arch_lr": _search_number(float, 0.0, None, low_open=True),
    "arch_weight_decay": _search_number(float, 0.0),
    "train_portion": _search_number(float, 0.0, 1.0, low_open=True),
    "bptt": _search_number(int, 2),
    "augment": _bool,
    "sync_bn": _bool,
    "limit": _search_number(int, 1),
}


def _relative(path: str, spec_path: str) -> str:
    """``path`` (``~`` expanded) against the folder of the spec file, absolute."""
    from pathlib import Path

    p = Path(path).expanduser()
    if not p.is_absolute() and not spec_path.startswith("<"):
        p = Path(spec_path).resolve().parent / p
    return str(p.resolve())


def check_search(decl: A.Search, find_space: SpaceLookup, find_network: Callable[[A.Name], str | None],
                 rep: _Report) -> SearchSpec | None:
    """A checked search declaration, or None after reporting why not. ``find_network``
    says the kind (cnn, rnn) of the skeleton a name refers to, None after reporting
    that it is unknown. The method's and its components' names are the search's to
    check (they live with the code: ``genolang.search.spec``)."""
    from genolang.data.registry import dataset_kind, dataset_names

    start = len(rep.items)
    space = find_space(decl.space)
    where = f"search '{decl.name.text}'"
    schema: dict[str, object] = dict(_SEARCH_KEYS)
    props = _props(decl.props, schema, where, rep)
    fields: dict[str, object] = {}
    spans: dict[str, Span | None] = {}
    for key, prop in props.items():
        value = _SEARCH_KEYS[key](prop, rep)
        if value is None:
            continue
        spans[key] = prop.values[0].span if len(prop.values) == 1 else prop.span
        fields[key] = value
    kind = space.kind if space is not None else None
    network = fields.get("network")
    if isinstance(network, A.Text):
        fields["network"] = _relative(network.text, rep.path)
        from pathlib import Path

        if not Path(str(fields["network"])).is_file():
            rep.error(spans["network"], f"no skeleton file {network}", "give a skeleton's name or its .geno file")
    elif isinstance(network, str):
        found = find_network(A.Name(network, spans["network"]))
        if found is not None and kind is not None and found != kind:
            rep.error(spans["network"], f"network '{network}' is a {'recurrent' if found == 'rnn' else 'CNN'} "
                      f"skeleton, but space '{decl.space.text}' is {'recurrent' if kind == 'rnn' else 'a CNN space'}",
                      "use a skeleton with " + ("'stem = embedding' (e.g. ptb_search)" if kind == "rnn"
                                                else "a CNN stem (e.g. small_search)"))
    dataset = fields.get("dataset")
    if dataset is not None:
        name = dataset.text if isinstance(dataset, A.Text) else str(dataset)
        fields["dataset"] = name
        if name not in dataset_names():
            rep.error(spans["dataset"], f"unknown data set '{name}'{did_you_mean(name, dataset_names())}",
                      f"the data sets are: {', '.join(dataset_names())} (quote names with '-': \"fashion-mnist\")")
        elif kind is not None and (dataset_kind(name) == "text") != (kind == "rnn"):
            rep.error(spans["dataset"], f"data set '{name}' is {dataset_kind(name)} data, but space "
                      f"'{decl.space.text}' is {'recurrent' if kind == 'rnn' else 'a CNN space'}",
                      "a CNN space searches image data, a recurrent one text")
    data_dir = fields.get("data_dir")
    if isinstance(data_dir, A.Text):
        fields["data_dir"] = _relative(data_dir.text, rep.path)
    settings: list[tuple[str, object]] = []
    for setting in decl.settings:
        key = f"{setting.component.text}.{setting.param.text}"
        v = setting.value.value
        if isinstance(v, (Fraction, A.Kernel, A.Text)):
            rep.error(setting.value.span,
                      f"'{key}' must be a number, a name, true or false, got '{_show(setting.value)}'")
            continue
        if any(k == key for k, _ in settings):
            rep.error(setting.component.span, f"'{key}' is set twice in {where}", "keep one of them")
            continue
        settings.append((key, (v == "true") if v in ("true", "false") else v))
        spans[f"set:{key}"] = setting.span
    if space is None or rep.errors_since(start):
        return None
    return SearchSpec(decl.name.text, space, rep.path, settings=tuple(settings),  # type: ignore[arg-type]
                      spans=tuple(spans.items()), **fields)  # type: ignore[arg-type]


# ---- files ------------------------------------------------------------------------

def check(spec: A.SpecFile, source: str, library: Library | None = None) -> Checked:
    """Check every declaration of a parsed file, resolving space names through
    the file itself first and then ``library``."""
    library = library if library is not None else Library.for_file(spec.path)
    library.preload(spec, source)
    rep = _Report(spec.path)
    result = Checked(spec, source)
    ops_in = OpResolver(spec, spec.path, rep, library)
    names: dict[tuple[str, str], A.Name] = {}
    for decl in spec.decls:
        if isinstance(decl, A.OpDecl):
            declared = family_names(decl)
            twice = [n for n in declared if ("op", n) in names]
            if twice:
                first = names[("op", twice[0])].span
                at = f" (first declared at line {first.line})" if first else ""
                rep.error(decl.name.span, f"op '{twice[0]}' is declared twice in this file{at}", "rename one of them")
                continue
            names.update({("op", n): decl.name for n in declared})
            continue
        kind = type(decl).__name__.lower()
        key = (kind, decl.name.text)
        if key in names:
            first = names[key].span
            at = f" (first declared at line {first.line})" if first else ""
            rep.error(decl.name.span, f"{kind} '{decl.name.text}' is declared twice in this file{at}",
                      "rename one of them")
            continue
        names[key] = decl.name
        if isinstance(decl, A.Space):
            space = check_space(decl, rep, ops_in)
            if space is not None:
                result.spaces[space.name] = space
        elif isinstance(decl, A.Network):
            net = check_network(decl, rep)
            if net is not None:
                result.networks[net.name] = net

    local_spaces = {d.name.text for d in spec.decls if isinstance(d, A.Space)}

    def find_space(ref: A.Name) -> SpaceSpec | None:
        if ref.text in local_spaces:
            space = result.spaces.get(ref.text)
            if space is None:
                rep.error(ref.span, f"space '{ref.text}' has errors (see above)")
            return space
        other = names.get(("genotype", ref.text)) or names.get(("network", ref.text))
        if other is not None:
            kind = "genotype" if ("genotype", ref.text) in names else "network"
            line = f" (line {other.span.line})" if other.span else ""
            rep.error(ref.span, f"'{ref.text}' is a {kind} of this file{line}, not a space",
                      "after ':' a genotype names the space it was chosen from, e.g. 'genotype g : darts_cnn'")
            return None
        return _library_space(ref, library, rep, result)

    local_networks = {d.name.text: d for d in spec.decls if isinstance(d, A.Network)}

    def find_network(ref: A.Name) -> str | None:
        """The kind of the skeleton ``ref`` names: this file's, else the library's."""
        decl = local_networks.get(ref.text)
        if decl is None:
            try:
                found = library.find("network", ref.text)
            except SpecError:
                rep.error(ref.span, f"network '{ref.text}' is defined in a file with errors")
                return None
            if found is None or not isinstance(found.decl, A.Network):
                rep.error(ref.span, f"unknown network '{ref.text}'{did_you_mean(ref.text, library.names('network'))}",
                          "skeletons are found in this file, its folder, GENOLANG_PATH and the shipped library "
                          "('genolang list networks'); or give a quoted .geno path")
                return None
            decl = found.decl
        stems = [p.values[0].value for p in decl.props if p.key.text == "stem" and p.values]
        return STEMS.get(str(stems[0])) if stems else None

    for decl in spec.decls:
        if isinstance(decl, A.Search) and names.get(("search", decl.name.text)) is decl.name:
            search = check_search(decl, find_space, find_network, rep)
            if search is not None:
                result.searches[search.name] = search
    for decl in spec.decls:
        if isinstance(decl, A.Genotype) and names.get(("genotype", decl.name.text)) is decl.name:
            start = len(rep.items)
            geno = check_genotype(decl, find_space, rep, lambda name: isinstance(ops_in.get(name), OpDef))
            if geno is not None:
                result.genotypes[geno.name] = geno
            _note_resolved_space(decl, local_spaces, library, rep, start)
        elif isinstance(decl, A.OpDecl) and names.get(("op", family_names(decl)[0])) is decl.name:
            for op in ops_in.check_local(decl):  # every declaration is checked, used or not
                result.ops[op.name] = op
    for err in ops_in.library_errors:
        result.diagnostics.extend(err.diagnostics)
        result.sources.update(err.sources)
    result.diagnostics.extend(rep.items)
    result.diagnostics.sort(key=lambda d: (d.path != spec.path, d.severity == "note", d.span or Span(0, 0, 0, 0)))
    return result


def _note_resolved_space(decl: A.Genotype, local: set[str], library: Library, rep: _Report, start: int) -> None:
    """With errors in a genotype checked against a space of another file, a note
    naming that file (the space a name resolves to may not be the one its author
    thought of)."""
    if decl.space.text in local or not rep.errors_since(start):
        return
    if any(d.span == decl.space.span for d in rep.items[start:]):
        return  # the space reference itself is the error, and says so
    try:
        found = library.find("space", decl.space.text)
    except GenolangError:
        return
    if found is not None:
        rep.items.append(Diagnostic(rep.path, decl.space.span, f"space '{decl.space.text}' is the one declared at "
                                    f"{where_found(found)}", None, "note"))


def _library_space(ref: A.Name, library: Library, rep: _Report, result: Checked) -> SpaceSpec | None:
    try:
        found = library.find("space", ref.text)
    except SpecError as err:
        rep.error(ref.span, f"space '{ref.text}' is defined in a file with errors")
        result.diagnostics.extend(err.diagnostics)
        result.sources.update(err.sources)
        return None
    except Ambiguous as err:
        rep.error(ref.span, f"space '{ref.text}' is ambiguous: it is declared differently in "
                  f"{' and '.join(where_found(f) for f in err.found)}",
                  "rename or remove one of them: names must be unique within a folder")
        return None
    except GenolangError as err:  # the file named after the space cannot be read
        rep.error(ref.span, f"space '{ref.text}' cannot be read: {err}")
        return None
    if found is None:
        hint = ("spaces are found in this file, its folder, GENOLANG_PATH and the shipped library "
                "('genolang list' shows them)" + library.unreadable_note())
        for kind in ("genotype", "network"):
            try:
                declared = library.find(kind, ref.text)
            except GenolangError:
                declared = None
            if declared is not None:
                rep.error(ref.span, f"'{ref.text}' is a {kind} ({where_found(declared)}), not a space",
                          "after ':' a genotype names the space it was chosen from, e.g. 'genotype g : darts_cnn'")
                return None
        rep.error(ref.span, f"unknown space '{ref.text}'{did_you_mean(ref.text, library.names('space'))}", hint)
        return None
    space, other, resolver = checked_space(found)
    if space is None:
        rep.error(ref.span, f"space '{ref.text}' ({found.file.path}) has errors")
        result.diagnostics.extend(other.items)
        result.sources[found.file.path] = found.source
        for library_error in resolver.library_errors:
            result.diagnostics.extend(library_error.diagnostics)
            result.sources.update(library_error.sources)
    return space


def load_text(text: str, path: str = "<spec>", library: Library | None = None) -> Checked:
    """Parse and check text; raises ``SpecError`` listing every error."""
    return check(parse(text, path), text, library).raise_errors()


def load(path: str, library: Library | None = None) -> Checked:
    """Parse and check a spec file ('-': standard input, labelled ``<stdin>``); raises
    ``SpecError`` (spec problems) or ``UsageError`` (unreadable file)."""
    label = STDIN if path == "-" else path
    return load_text(read_text(path), label, library)
