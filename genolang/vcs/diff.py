"""Semantic diffs of genotypes and spaces.

Cells are compared as architectures (``genolang.vcs.canon``): a different node
numbering, term order or output order is no change. For cells that do differ, the
nodes of the second genotype are matched to those of the first so that as few terms as
possible differ (every matching for cells of up to ``EXACT_MATCH_NODES`` nodes, a local
search up to ``LOCAL_SEARCH_NODES``, names beyond), and the changes are reported in the first genotype's node names:
``- n5 = skip_connect(c0) + dil_conv_3x3(n2)`` / ``+ n5 = ...`` lines and a summary such
as ``cell normal: node n5: dil_conv_3x3(n2) -> sep_conv_3x3(n2)``."""

from __future__ import annotations

import difflib
import hashlib
import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from genolang.spec.checked import CellGenotype, CellShape, GenotypeSpec, SpaceSpec
from genolang.vcs.canon import canonical_cell, space_text

EXACT_MATCH_NODES = 7  # up to 7! = 5,040 matchings tried per cell
LOCAL_SEARCH_NODES = 40  # up to this many, pairs of nodes are swapped while that helps; beyond, names match
RENAME_COST = 1.001  # in changed terms, per node of B matched to a node of A with another name
Term = tuple[str, str]
Status = Literal["same", "equivalent", "changed", "added", "removed"]


def format_terms(terms: tuple[Term, ...]) -> str:
    return " + ".join(f"{op}({src})" for op, src in terms)


def format_output(reducer: str, output: tuple[str, ...]) -> str:
    return f"out = {reducer}({', '.join(output)})"


@dataclass(frozen=True)
class NodeChange:
    """A node whose terms differ: ``before`` as written in A (None: only in B),
    ``after`` B's terms in A's names (None: only in A)."""

    name: str
    before: tuple[Term, ...] | None
    after: tuple[Term, ...] | None

    def summary(self) -> str:
        if self.before is None:
            return f"node {self.name} added: {format_terms(self.after or ())}"
        if self.after is None:
            return f"node {self.name} removed (was {format_terms(self.before)})"
        removed = list((Counter(self.before) - Counter(self.after)).elements())
        added = list((Counter(self.after) - Counter(self.before)).elements())
        removed.sort(key=self.before.index)
        added.sort(key=self.after.index)
        pairs, removed, added = _pair(removed, added)
        parts = [f"{r[0]}({r[1]}) -> {a[0]}({a[1]})" for r, a in pairs]
        parts += [f"removed {op}({src})" for op, src in removed]
        parts += [f"added {op}({src})" for op, src in added]
        return f"node {self.name}: " + "; ".join(parts)


@dataclass(frozen=True)
class CellDiff:
    """How one cell type differs between A and B."""

    name: str
    status: Status
    a: CellGenotype | None
    b: CellGenotype | None
    renamed: tuple[tuple[str, str], ...] = ()  # (name in B, name in A) where they differ
    nodes: tuple[NodeChange, ...] = ()
    output: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # (A's, B's in A's names)
    shape: tuple[str, ...] = ()  # e.g. "stride 1 -> 2"

    @property
    def same(self) -> bool:
        return self.status in ("same", "equivalent")

    def summary(self) -> list[str]:
        """One line per change, each starting with ``cell NAME:``."""
        head = f"cell {self.name}"
        if self.status == "added":
            return [f"{head}: only in B"]
        if self.status == "removed":
            return [f"{head}: only in A"]
        lines = [f"{head}: {s}" for s in self.shape]
        lines += [f"{head}: {n.summary()}" for n in self.nodes]
        if self.output is not None:
            reducer = self.a.shape.reducer if self.a else ""
            b_reducer = self.b.shape.reducer if self.b else reducer
            lines.append(f"{head}: output: {reducer}({', '.join(self.output[0])}) -> "
                         f"{b_reducer}({', '.join(self.output[1])})")
        if self.status == "equivalent":
            lines.append(f"{head}: equivalent ({self.how_equivalent()})")
        return lines

    def how_equivalent(self) -> str:
        parts = []
        if self.renamed:
            parts.append("nodes renamed: " + ", ".join(f"{b} -> {a}" for b, a in self.renamed))
        else:
            parts.append("node order, term order or output order differ")
        return "; ".join(parts)


@dataclass(frozen=True)
class GenotypeDiff:
    """A semantic diff of two genotypes, cell by cell (in A's cell order, then B's new cells)."""

    a: GenotypeSpec
    b: GenotypeSpec
    cells: tuple[CellDiff, ...]

    @property
    def equivalent(self) -> bool:
        return all(c.same for c in self.cells)

    def summary(self) -> list[str]:
        return [line for c in self.cells for line in c.summary()]

    def render(self, label_a: str = "a", label_b: str = "b") -> str:
        """A readable diff: headers, changed lines per cell, then a summary."""
        lines = [f"--- {label_a} (genotype {self.a.name} : {self.a.space.name})",
                 f"+++ {label_b} (genotype {self.b.name} : {self.b.space.name})"]
        for cell in self.cells:
            if cell.same:
                continue
            lines.append(f"@@ cell {cell.name} @@")
            lines += _cell_lines(cell)
        if self.equivalent:
            lines.append("equivalent genotypes" + ("" if all(c.status == "same" for c in self.cells)
                                                   else " (up to node numbering and term order)"))
        lines.append("summary:" if self.summary() else "summary: no change")
        lines += ["  " + s for s in self.summary()]
        return "\n".join(lines) + "\n"


def _cell_lines(cell: CellDiff) -> list[str]:
    if cell.status == "added":
        assert cell.b is not None
        return ["+ (cell only in B)", *("+   " + line for line in _cell_text(cell.b))]
    if cell.status == "removed":
        assert cell.a is not None
        return ["- (cell only in A)", *("-   " + line for line in _cell_text(cell.a))]
    lines = [f"! {s}" for s in cell.shape]
    if cell.renamed:
        lines.append("! nodes of B renamed to match A: " + ", ".join(f"{b} -> {a}" for b, a in cell.renamed))
    for change in cell.nodes:
        if change.before is not None:
            lines.append(f"-   {change.name} = {format_terms(change.before)}")
        if change.after is not None:
            lines.append(f"+   {change.name} = {format_terms(change.after)}")
    if cell.output is not None:
        a_reducer = cell.a.shape.reducer if cell.a else "concat"
        b_reducer = cell.b.shape.reducer if cell.b else a_reducer
        lines.append(f"-   {format_output(a_reducer, cell.output[0])}")
        lines.append(f"+   {format_output(b_reducer, cell.output[1])}")
    return lines


def _cell_text(cell: CellGenotype) -> list[str]:
    lines = [f"{n.name} = {format_terms(n.edges)}" for n in cell.nodes]
    return lines + [format_output(cell.shape.reducer, cell.output)]


# ---- matching B's nodes to A's ---------------------------------------------------------

def _translate(cell: CellGenotype, mapping: dict[str, str]) -> dict[str, tuple[Term, ...]]:
    """B's nodes under ``mapping`` (B name -> A name): A's name -> B's terms in A's names."""
    return {mapping.get(n.name, n.name): tuple((op, mapping.get(src, src)) for op, src in n.edges) for n in cell.nodes}


def _pair(removed: list[Term], added: list[Term]) -> tuple[list[tuple[Term, Term]], list[Term], list[Term]]:
    """Pair removed with added terms: an op change on one input first, then an input
    change of one op, then whatever is left; returns the pairs and the unpaired."""
    removed, added = list(removed), list(added)
    pairs = []
    for same in (lambda r, a: r[1] == a[1], lambda r, a: r[0] == a[0], lambda r, a: True):
        for r in list(removed):
            match = next((a for a in added if same(r, a)), None)
            if match is not None:
                pairs.append((r, match))
                removed.remove(r)
                added.remove(match)
    return pairs, removed, added


def _term_cost(before: tuple[Term, ...], after: tuple[Term, ...]) -> float:
    """Changed terms: 1 for a new op or a new input on a term, 2 for both, 1 per term
    added or removed."""
    removed = list((Counter(before) - Counter(after)).elements())
    added = list((Counter(after) - Counter(before)).elements())
    pairs, r, a = _pair(removed, added)
    return sum(1 if (x[0] == y[0] or x[1] == y[1]) else 2 for x, y in pairs) + len(r) + len(a)


def _upward(cell: CellGenotype) -> dict[str, str]:
    """Each node's computation as a hash of its terms over its inputs' computations."""
    up = {name: name for name in cell.shape.input_names}
    for node in cell.nodes:
        key = repr(sorted((op, up[src]) for op, src in node.edges))
        up[node.name] = hashlib.sha256(key.encode()).hexdigest()
    return up


def _cost(a: CellGenotype, b: CellGenotype, mapping: dict[str, str], free: set[tuple[str, str]]) -> float:
    """How far B, renamed by ``mapping``, is from A; renaming B's node ``x`` to ``y``
    costs nothing when ``(x, y)`` is in ``free`` (both names mean the same computation)."""
    translated = _translate(b, mapping)
    cost = 0.0
    for node in a.nodes:
        other = translated.get(node.name)
        cost += len(node.edges) if other is None else _term_cost(node.edges, other)
    a_names = set(a.node_names)
    cost += sum(len(t) for name, t in translated.items() if name not in a_names)
    out = Counter(a.output)
    out.subtract(Counter(mapping.get(n, n) for n in b.output))
    cost += sum(abs(v) for v in out.values())
    # a renamed node must explain more than one changed term to be worth it; ties keep names
    return cost + sum(RENAME_COST for k, v in mapping.items() if k != v and (k, v) not in free) \
        + 1e-6 * sum(1 for k, v in mapping.items() if k != v)


def _best_mapping(a: CellGenotype, b: CellGenotype) -> dict[str, str]:
    a_names, b_names = list(a.node_names), list(b.node_names)
    if len(a_names) != len(b_names):
        return {}  # different sizes: compare by name
    identity = dict(zip(b_names, b_names)) if set(a_names) == set(b_names) else dict(zip(b_names, a_names))
    up_a, up_b = _upward(a), _upward(b)
    # B's x may become A's y for free when x names the same computation in A as in B
    # (e.g. two identical nodes swapped)
    free = {(x, y) for x in b_names for y in a_names if up_b[x] == up_a[y] and up_a.get(x) == up_b[x]}
    if len(a_names) <= EXACT_MATCH_NODES:
        best, best_cost = identity, _cost(a, b, identity, free)
        for perm in itertools.permutations(a_names):
            mapping = dict(zip(b_names, perm))
            cost = _cost(a, b, mapping, free)
            if cost < best_cost:
                best, best_cost = mapping, cost
        return best
    mapping, cost = identity, _cost(a, b, identity, free)
    improved = len(a_names) <= LOCAL_SEARCH_NODES
    while improved:  # swap two nodes' images while that lowers the cost
        improved = False
        for x, y in itertools.combinations(b_names, 2):
            trial = dict(mapping)
            trial[x], trial[y] = mapping[y], mapping[x]
            trial_cost = _cost(a, b, trial, free)
            if trial_cost < cost:
                mapping, cost, improved = trial, trial_cost, True
    return mapping


def _aligned(before: tuple[Term, ...], after: tuple[Term, ...]) -> tuple[Term, ...]:
    """``after`` reordered so that terms shared with ``before`` keep ``before``'s places."""
    left = list(after)
    slots: list[Term | None] = []
    for term in before:
        if term in left:
            left.remove(term)
            slots.append(term)
        else:
            slots.append(None)
    rest = iter(left)
    out = [t if t is not None else next(rest, None) for t in slots]
    return tuple(t for t in out if t is not None) + tuple(rest)


def _shape_changes(a: CellGenotype, b: CellGenotype) -> tuple[str, ...]:
    sa, sb = a.shape, b.shape
    out = []
    for label, x, y in (("inputs", sa.inputs, sb.inputs), ("nodes", len(a.nodes), len(b.nodes)),
                        ("stride", sa.stride, sb.stride), ("output", sa.reducer, sb.reducer),
                        ("input names", sa.input_prefix, sb.input_prefix)):
        if x != y:
            out.append(f"{label} {x} -> {y}")
    return tuple(out)


def diff_cells(name: str, a: CellGenotype | None, b: CellGenotype | None) -> CellDiff:
    """How cell ``name`` differs between A and B (either may be missing)."""
    if a is None:
        return CellDiff(name, "added", a, b)
    if b is None:
        return CellDiff(name, "removed", a, b)
    same_text = (a.nodes, a.output, a.shape) == (b.nodes, b.output, b.shape)
    ca, cb = canonical_cell(a), canonical_cell(b)
    if same_text:
        return CellDiff(name, "same", a, b)
    if ca.text == cb.text:
        renamed = tuple((y, x) for x, y in zip(ca.order, cb.order) if x != y)
        return CellDiff(name, "equivalent", a, b, tuple(sorted(renamed)))
    mapping = _best_mapping(a, b)
    translated = _translate(b, mapping)
    changes = []
    for node in a.nodes:
        after = translated.get(node.name)
        if after is None:
            changes.append(NodeChange(node.name, node.edges, None))
        elif Counter(after) != Counter(node.edges):
            changes.append(NodeChange(node.name, node.edges, _aligned(node.edges, after)))
    a_names = set(a.node_names)
    changes += [NodeChange(n, None, t) for n, t in translated.items() if n not in a_names]
    b_output = tuple(mapping.get(n, n) for n in b.output)
    output = None
    if Counter(a.output) != Counter(b_output) or a.shape.reducer != b.shape.reducer:
        output = (a.output, b_output)
    renamed = tuple(sorted((k, v) for k, v in mapping.items() if k != v))
    return CellDiff(name, "changed", a, b, renamed, tuple(changes), output, _shape_changes(a, b))


def diff_genotypes(a: GenotypeSpec, b: GenotypeSpec) -> GenotypeDiff:
    """A semantic diff of two genotypes, matching cells by name."""
    b_cells = {c.name: c for c in b.cells}
    a_names = {c.name for c in a.cells}
    cells = [diff_cells(c.name, c, b_cells.get(c.name)) for c in a.cells]
    cells += [diff_cells(c.name, None, c) for c in b.cells if c.name not in a_names]
    return GenotypeDiff(a, b, tuple(cells))


# ---- spaces ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SpaceDiff:
    """A diff of two spaces' canonical texts (name, comments and layout aside)."""

    a: SpaceSpec
    b: SpaceSpec
    changes: tuple[str, ...]
    lines: tuple[str, ...]

    @property
    def equivalent(self) -> bool:
        return not self.changes

    def summary(self) -> list[str]:
        return list(self.changes)

    def render(self, label_a: str = "a", label_b: str = "b") -> str:
        out = [f"--- {label_a} (space {self.a.name})", f"+++ {label_b} (space {self.b.name})", *self.lines]
        if self.equivalent:
            out.append("equivalent spaces")
        out.append("summary:" if self.changes else "summary: no change")
        out += ["  " + c for c in self.changes]
        return "\n".join(out) + "\n"


def _edge_set_changes(a: CellShape, a_ops: tuple[str, ...], b: CellShape, b_ops: tuple[str, ...]) -> list[str]:
    """``cell normal: edge c0 -> n2: skip_connect, dil_conv_3x3 -> skip_connect, sep_conv_3x3``
    for every edge, listed in either cell, whose set of ops differs (as sets: the order of
    a space's ops is a change of its own)."""
    out = []
    listed = dict.fromkeys([(src, dst) for src, dst, _ in a.edge_sets] + [(src, dst) for src, dst, _ in b.edge_sets])
    for src, dst in listed:
        before, after = a.edge_ops(src, dst, a_ops), b.edge_ops(src, dst, b_ops)
        if set(before) != set(after):
            def show(ops: tuple[str, ...], space_ops: tuple[str, ...]) -> str:
                return "all the space's ops" if ops == space_ops else ", ".join(ops)
            out.append(f"cell {a.name}: edge {src} -> {dst}: {show(before, a_ops)} -> {show(after, b_ops)}")
    return out


def diff_spaces(a: SpaceSpec, b: SpaceSpec) -> SpaceDiff:
    """What differs between two spaces: ops (set and order), cells (their edges' own
    sets of ops too), derivation."""
    changes: list[str] = []
    added = [op for op in b.ops if op not in a.ops]
    removed = [op for op in a.ops if op not in b.ops]
    if added:
        changes.append("ops: added " + ", ".join(added))
    if removed:
        changes.append("ops: removed " + ", ".join(removed))
    if not added and not removed and a.ops != b.ops:
        changes.append("ops: order changed (the column order of the alphas)")
    b_cells = {c.name: c for c in b.cells}
    for cell in a.cells:
        other = b_cells.get(cell.name)
        if other is None:
            changes.append(f"cell {cell.name}: only in A")
            continue
        for field in ("inputs", "nodes", "keep", "reducer", "stride"):
            x, y = getattr(cell, field), getattr(other, field)
            if x != y:
                show = (lambda v: "all" if v == 0 else v) if field == "keep" else (lambda v: v)
                changes.append(f"cell {cell.name}: {'output' if field == 'reducer' else field} {show(x)} -> {show(y)}")
        changes += _edge_set_changes(cell, a.ops, other, b.ops)
    changes += [f"cell {c.name}: only in B" for c in b.cells if c.name not in {x.name for x in a.cells}]
    a_cells = {c.name for c in a.cells}
    if [c.name for c in a.cells if c.name in b_cells] != [c.name for c in b.cells if c.name in a_cells]:
        changes.append("cells: order changed")
    da, db = a.derive, b.derive
    if set(da.exclude) != set(db.exclude):
        changes.append(f"derive: exclude {', '.join(da.exclude) or 'nothing'} -> {', '.join(db.exclude) or 'nothing'}")
    if da.distinct != db.distinct:
        changes.append(f"derive: distinct {str(da.distinct).lower()} -> {str(db.distinct).lower()}")
    if dict(da.caps) != dict(db.caps):
        def caps(d: dict[str, int]) -> str:
            return ", ".join(f"{op} <= {n}" for op, n in sorted(d.items())) or "none"
        changes.append(f"derive: caps {caps(dict(da.caps))} -> {caps(dict(db.caps))}")
    text_a, text_b = space_text(a).splitlines(), space_text(b).splitlines()
    lines = list(difflib.unified_diff(text_a, text_b, lineterm="", n=1))[2:]
    if not changes and text_a != text_b:  # anything the summary does not name yet
        changes.append("canonical text differs")
    return SpaceDiff(a, b, tuple(changes), tuple(lines))
