"""Validating checked-spec objects: what must hold of a genotype or a network skeleton
however it was made (read from a file, derived from alphas, sampled, converted from
another format, a skeleton with command-line overrides).

Each check takes a model object (``genolang.spec.checked``) and returns ``Problem``s; it
never parses or prints text. A problem names *where* it is as a path into the object
(``("cell", "normal", "node", 2, "term", 1, "input")``: the input of the second term of
the third node of cell ``normal``), which ``genolang.spec.check`` maps to a span of the
file the object came from, and which ``describe`` turns into words for objects that
have no file (``--channels 0`` on the command line).

Torch-free."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from genolang.errors import did_you_mean, plural
from genolang.spec.checked import CellGenotype, GenotypeSpec, NetworkSpec, SpaceSpec, resolve_position

Where = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or, with ``severity='warning'``, suspicious) in a spec object."""

    where: Where
    message: str
    hint: str | None = None
    severity: str = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def errors(problems: Sequence[Problem]) -> list[Problem]:
    return [p for p in problems if p.is_error]


def _list_names(names: Sequence[str], most: int = 12) -> str:
    """``a, b, c`` for a few names; the first and last ones around '...' for many."""
    if len(names) <= most:
        return ", ".join(names)
    return ", ".join([*names[:most - 2], "...", names[-1]])


# ---- genotypes ------------------------------------------------------------------------

def genotype_problems(geno: GenotypeSpec, known_op: Callable[[str], bool] | None = None) -> list[Problem]:
    """Every problem of a genotype against its space: one cell per cell type of the
    space; in each cell the right number of nodes, each summing ``keep`` terms (every
    earlier node once for ``keep = all``) of the space's ops over inputs and earlier
    nodes; an output listing intermediate nodes once each. Warnings: nodes nothing
    uses, and choices the space's derive rule would never make (an excluded op, two
    terms from one input where inputs must be distinct, more edges of an op than its
    cap). ``known_op`` tells an op declared somewhere (but not in the space) from an
    unknown name, for the message. A term's op must also be one its edge chooses from
    (``CellShape.edge_ops``: a space may give an edge some of its ops only)."""
    space = geno.space
    out: list[Problem] = []
    seen: set[str] = set()
    for cell in geno.cells:
        if cell.name in seen:
            out.append(Problem(("cell", cell.name), f"cell '{cell.name}' appears twice in genotype '{geno.name}'",
                               "keep one of them"))
            continue
        seen.add(cell.name)
        if cell.name not in space.cell_names:
            out.append(Problem(("cell", cell.name), f"space '{space.name}' has no cell '{cell.name}'"
                               f"{did_you_mean(cell.name, space.cell_names)}",
                               f"its cells are: {', '.join(space.cell_names)}"))
            continue
        out += cell_problems(cell, geno, known_op)
    missing = [c for c in space.cell_names if c not in seen]
    if missing:
        out.append(Problem(("genotype",), f"genotype '{geno.name}' lacks cell{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(repr(m) for m in missing)} of space '{space.name}'",
                           f"add a block for each: {' '.join(m + ' { ... }' for m in missing)}"))
    return out


def cell_problems(cell: CellGenotype, geno: GenotypeSpec,
                  known_op: Callable[[str], bool] | None = None) -> list[Problem]:
    """The problems of one cell of ``geno`` (see ``genotype_problems``)."""
    space, shape, cname = geno.space, cell.shape, cell.name
    inputs = shape.input_names
    here: Where = ("cell", cname)
    out: list[Problem] = []
    defined: list[str] = []
    defined_set: set[str] = set()
    order: dict[str, int] = {}  # node name -> its position among the nodes defined so far
    later = {n.name for n in cell.nodes}
    read: set[str] = set()
    for i, node in enumerate(cell.nodes):
        name = node.name
        at = (*here, "node", i)
        if name in inputs:
            out.append(Problem(at, f"'{name}' is an input of cell '{cname}' and cannot be redefined",
                               f"name intermediate nodes differently, e.g. {', '.join(shape.node_names[:2])}"))
            continue
        if name in defined_set:
            out.append(Problem(at, f"node '{name}' is defined twice in cell '{cname}'", "give every node its own name"))
            continue
        n_terms = len(node.edges)
        if not shape.keeps_all and n_terms != shape.keep:
            if space.kind == "rnn":
                out.append(Problem((*at, "term", 1) if n_terms > 1 else (*at, "body"),
                                   f"recurrent node '{name}' has {n_terms} inputs; a recurrent node reads "
                                   "exactly one earlier node", f"write '{name} = relu(n1)' with a single input"))
            else:
                out.append(Problem(at, f"node '{name}' has {n_terms} input{'s' if n_terms != 1 else ''}; space "
                                   f"'{space.name}' keeps {shape.keep} per node",
                                   f"write {shape.keep} terms joined by '+'"))
        for j, (op, src) in enumerate(node.edges):
            if op not in space.ops:
                if known_op is not None and known_op(op):
                    out.append(Problem((*at, "term", j, "op"), f"op '{op}' is not in space '{space.name}'"
                                       f"{did_you_mean(op, space.ops)}",
                                       f"the space's ops are: {', '.join(space.ops)}"))
                else:
                    out.append(Problem((*at, "term", j, "op"), f"unknown op '{op}'"
                                       f"{did_you_mean(op, space.ops)}",
                                       f"the space's ops are: {', '.join(space.ops)}"))
            elif shape.edge_sets and len(defined) < shape.nodes and (src in inputs or src in defined_set):
                problem = _edge_set_problem(cell, (*at, "term", j, "op"), op, src, name, order, space.ops,
                                            space.name)
                if problem is not None:
                    out.append(problem)
            if src == name:
                out.append(Problem((*at, "term", j, "input"), f"node '{name}' reads itself",
                                   "a node may read inputs and earlier nodes only"))
            elif src in later and src not in defined_set:
                out.append(Problem((*at, "term", j, "input"), f"node '{name}' reads '{src}', which is defined later",
                                   "a cell is acyclic: a node may read inputs and earlier nodes only; "
                                   "reorder the nodes"))
            elif src not in inputs and src not in defined_set:
                known = [*inputs, *defined]
                out.append(Problem((*at, "term", j, "input"), f"undefined node '{src}'{did_you_mean(src, known)}",
                                   f"node '{name}' can read: {_list_names(known)}"))
            else:
                read.add(src)
        if shape.keeps_all:
            out += _keep_all_problems(at, name, node.edges, [*inputs, *defined], geno)
        order[name] = len(defined)
        defined.append(name)
        defined_set.add(name)
    if len(cell.nodes) != shape.nodes:
        out.append(Problem(here, f"cell '{cname}' has {len(cell.nodes)} node{'s' if len(cell.nodes) != 1 else ''}; "
                           f"space '{space.name}' declares {shape.nodes}",
                           f"define exactly {plural(shape.nodes, 'node')} ({_list_names(shape.node_names)})"))
    out += _output_problems(cell, defined, inputs)
    if errors(out):
        return out
    listed = set(cell.output)
    first: dict[str, int] = {}
    for i, node in enumerate(cell.nodes):
        first.setdefault(node.name, i)
    for node in cell.nodes:
        if node.name not in read and node.name not in listed:
            out.append(Problem((*here, "node", first[node.name]),
                               f"node '{node.name}' is never used: no node reads it and the output leaves it out",
                               "list it in 'out' or remove it", "warning"))
    out += _derive_rule_problems(cell, geno)
    return out


def _edge_set_problem(cell: CellGenotype, at: Where, op: str, src: str, name: str, order: dict[str, int],
                      space_ops: tuple[str, ...], space: str) -> Problem | None:
    """A term whose op its edge does not choose from (``CellShape.edge_ops``). Genotype
    nodes are matched to the space's by position, whatever they are called."""
    shape = cell.shape
    dst = shape.node_names[len(order)]
    edge_src = src if src in shape.input_names else shape.node_names[order[src]]
    allowed = shape.edge_ops(edge_src, dst, space_ops)
    if op in allowed:
        return None
    edge = f"{src} -> {name}"
    own = f"{edge_src} -> {dst}"
    also = f" (the space's edge {own})" if own != edge else ""
    return Problem(at, f"op '{op}' is not on edge {edge}{also} of cell '{cell.name}': space '{space}' lets that edge "
                   f"choose from {', '.join(allowed)} only{did_you_mean(op, allowed)}",
                   f"use {'one of ' if len(allowed) > 1 else ''}{', '.join(allowed)}, or read another input "
                   f"(cell '{cell.name}' of the space says "
                   f"'edge {own} = {', '.join(allowed)}')")


def _keep_all_problems(at: Where, name: str, edges: tuple[tuple[str, str], ...], earlier: list[str],
                       geno: GenotypeSpec) -> list[Problem]:
    """With ``keep = all`` a node reads every earlier node exactly once."""
    space = geno.space
    out = []
    seen: set[str] = set()
    for j, (_, src) in enumerate(edges):
        if src in seen:
            out.append(Problem((*at, "term", j, "input"), f"node '{name}' reads '{src}' twice; space '{space.name}' "
                               "keeps all edges, one from each earlier node", f"keep one term reading '{src}'"))
        seen.add(src)
    missing = [n for n in earlier if n not in seen]
    if missing:
        if "none" in space.ops:
            hint = "add '" + " + ".join(f"none({n})" for n in missing) + "' where there is no connection"
        else:
            hint = f"add a term reading each of {', '.join(missing)}"
        out.append(Problem(at, f"node '{name}' does not read {', '.join(repr(m) for m in missing)}; space "
                           f"'{space.name}' keeps all edges, one from each earlier node", hint))
    return out


def _output_problems(cell: CellGenotype, defined: list[str], inputs: tuple[str, ...]) -> list[Problem]:
    at: Where = ("cell", cell.name, "output")
    out = []
    known = set(defined)
    for k, ref in enumerate(cell.output):
        if ref in inputs:
            out.append(Problem((*at, k), f"output lists input '{ref}'", "the output combines intermediate nodes only"))
        elif ref not in known:
            out.append(Problem((*at, k), f"output lists unknown node '{ref}'{did_you_mean(ref, defined)}",
                               f"the nodes of cell '{cell.name}' are: {_list_names(defined)}"))
    if not cell.output:
        out.append(Problem(at, f"the output of cell '{cell.name}' lists no node",
                           f"list nodes: {_list_names(defined)}"))
    dupes = sorted(n for n, count in Counter(cell.output).items() if count > 1)
    if dupes:
        out.append(Problem(at, f"output lists {', '.join(repr(d) for d in dupes)} more than once",
                           "list each node once"))
    if cell.shape.reducer == "last" and cell.output and defined and list(cell.output) != [defined[-1]]:
        out.append(Problem(at, f"the output of cell '{cell.name}' is its last node, '{defined[-1]}'",
                           f"write 'out = last({defined[-1]})'"))
    return out


def _is_zero(space: SpaceSpec, op: str) -> bool:
    return any(d.name == op and d.is_zero for d in space.op_defs)


def _derive_rule_problems(cell: CellGenotype, geno: GenotypeSpec) -> list[Problem]:
    """Warnings for choices the space's derive rule never makes: a search of this space
    cannot find such a cell (it is still a valid architecture)."""
    rule = geno.space.derive
    out = []
    used: Counter[str] = Counter()
    for i, node in enumerate(cell.nodes):
        at: Where = ("cell", cell.name, "node", i)
        srcs: list[str] = []
        for j, (op, src) in enumerate(node.edges):
            used[op] += 1
            # a zero op ('none') is how a cell says "no input here" (keep = all spaces, FairDARTS's
            # threshold selection): no warning for it
            if op in rule.exclude and not _is_zero(geno.space, op):
                out.append(Problem((*at, "term", j, "op"), f"op '{op}' is excluded by the derive rule of space "
                                   f"'{geno.space.name}': a search never chooses it",
                                   "fine for a hand-written cell; a searched one would use another op", "warning"))
            if rule.distinct and not cell.shape.keeps_all and src in srcs:
                out.append(Problem((*at, "term", j, "input"), f"node '{node.name}' reads '{src}' twice, but space "
                                   f"'{geno.space.name}' derives inputs from distinct nodes",
                                   "fine for a hand-written cell; a searched one reads two different nodes", "warning"))
            srcs.append(src)
    for op, limit in rule.caps:
        if used[op] > limit:
            out.append(Problem(("cell", cell.name), f"cell '{cell.name}' has {used[op]} '{op}' edges; space "
                               f"'{geno.space.name}' caps them at {limit} per cell",
                               "fine for a hand-written cell; a search keeps at most the cap", "warning"))
    return out


# ---- network skeletons ----------------------------------------------------------------

MAX_LAYERS = 10_000

# key -> (minimum, maximum) for whole numbers; (low, high, high included) for reals
INT_BOUNDS: dict[str, tuple[int, int | None]] = {
    "channels": (1, None), "layers": (1, MAX_LAYERS), "stem_multiplier": (1, None), "input_size": (1, None),
    "in_channels": (1, None), "classes": (2, None), "embedding": (1, None), "hidden": (1, None), "vocab": (2, None),
}
REAL_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "auxiliary_weight": (0.0, float("inf"), False), "drop_path": (0.0, 1.0, False),
    "label_smoothing": (0.0, 1.0, False), "dropout": (0.0, 1.0, False), "dropout_h": (0.0, 1.0, False),
    "dropout_x": (0.0, 1.0, False), "dropout_i": (0.0, 1.0, False), "dropout_e": (0.0, 1.0, False),
}
CNN_FIELDS = ("channels", "layers", "stem_multiplier", "reduce_at", "auxiliary", "auxiliary_weight", "drop_path",
              "label_smoothing", "input_size", "in_channels", "classes")
RNN_FIELDS = ("embedding", "hidden", "dropout", "dropout_h", "dropout_x", "dropout_i", "dropout_e", "tied", "vocab")


def int_problem(key: str, value: int, minimum: int, maximum: int | None = None,
                where: Where | None = None) -> Problem | None:
    """The problem of whole number ``value`` for ``key`` outside [minimum, maximum]."""
    at = where if where is not None else ("network", key)
    if value < minimum:
        what = "positive" if minimum == 1 else f"at least {minimum}"
        return Problem(at, f"'{key}' must be {what}, got {value}", f"use a number >= {minimum}")
    if maximum is not None and value > maximum:
        return Problem(at, f"'{key}' must be at most {maximum}, got {value}", f"use a number <= {maximum}")
    return None


def _show(x: int | float) -> str:
    return repr(x) if isinstance(x, float) else str(x)


def network_problems(net: NetworkSpec) -> list[Problem]:
    """Every problem of a skeleton: sizes in range, probabilities in [0, 1), a tied
    decoder of equal embedding and hidden sizes, reductions and the auxiliary head
    within the stack of cells."""
    out: list[Problem] = []
    fields = CNN_FIELDS if net.kind == "cnn" else RNN_FIELDS
    for key in fields:
        value = getattr(net, key)
        if value is None or isinstance(value, bool):
            continue
        if key in INT_BOUNDS:
            problem = int_problem(key, int(value), *INT_BOUNDS[key])
            if problem is not None:
                out.append(problem)
        elif key in REAL_BOUNDS:
            lo, hi, closed = REAL_BOUNDS[key]
            if value < lo or value > hi or (not closed and value == hi):
                bound = f"[{lo}, {hi}]" if closed else f"[{lo}, {hi})"
                out.append(Problem(("network", key), f"'{key}' must be in {bound}, got {_show(value)}"))
    if net.kind == "cnn":
        for i, pos in enumerate(net.reduce_at):
            problem = _position_problem("reduce_at", pos, ("network", "reduce_at", i))
            if problem is not None:
                out.append(problem)
        if net.auxiliary is not None:
            problem = _position_problem("auxiliary", net.auxiliary, ("network", "auxiliary"))
            if problem is not None:
                out.append(problem)
        if errors(out):
            return out
        aux = net.auxiliary_cell()
        if aux is not None and aux >= net.layers:
            out.append(
                Problem(
                    ("network", "auxiliary"),
                    f"auxiliary head after cell {aux}, but network '{net.name}' has {plural(net.layers, 'cell')}",
                    "use a fraction such as 2/3 or a smaller index",
                )
            )
            return out
        for i, pos in enumerate(net.reduce_at):
            if resolve_position(pos, net.layers) >= net.layers:
                cell = resolve_position(pos, net.layers)
                out.append(Problem(("network", "reduce_at", i), f"reduction at cell {cell}, "
                                   f"but network '{net.name}' has {plural(net.layers, 'cell')}",
                                   "use fractions such as 1/3, 2/3 or smaller indices"))
                return out
    elif net.tied and net.embedding != net.hidden:
        out.append(Problem(("network", "hidden"), f"a tied decoder needs embedding == hidden, got {net.embedding} "
                           f"and {net.hidden}", "make them equal or set 'tied = false'"))
    return out


def _position_problem(key: str, pos: int | Fraction, at: Where) -> Problem | None:
    if isinstance(pos, Fraction):
        if not 0 < pos < 1:
            return Problem(at, f"'{key}' fraction must be between 0 and 1, got {pos.numerator}/{pos.denominator}",
                           "use a fraction of the depth such as 1/3, or a cell index")
        return None
    return int_problem(key, pos, 0, where=at)


def describe(problems: Sequence[Problem], subject: str) -> str:
    """Problems of an object without a file, one per line: ``subject: message (hint)``."""
    return "\n".join(f"{subject}: {p.message}" + (f" ({p.hint})" if p.hint else "") for p in problems)
