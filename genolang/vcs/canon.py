"""Canonical forms and hashes: when two genotypes are the same architecture.

A cell is a labelled DAG: its inputs are labelled by position (c0, c1, or s0), every
edge by its op, the output by its reducer, the cell by its stride. Two cells are
*equivalent* when they are isomorphic as such graphs: names of intermediate nodes, the
order in which nodes are written (as long as they stay topologically ordered) and the
order of a node's terms do not matter. The output is compared as a *multiset* of
nodes: the channel order of ``concat`` only permutes the next layer's input channels,
so it is ignored, and ``mean`` does not depend on order at all. ``none`` edges count as
edges (NAS-Bench-201 lists such cells as distinct architectures).

The canonical form renumbers the nodes of a cell in a canonical topological order: it
repeatedly takes, among the nodes whose inputs are all numbered, the one with the
smallest sorted list of ``(op, input number)`` terms. Nodes tied on that list read the
same nodes through the same ops; when they differ in what reads them, every choice is
tried and the smallest result kept. The form spells out the whole graph, so equal forms
always mean isomorphic cells; the hashes are SHA-256 of the forms. ``WORK_LIMIT`` bounds
the search: only contrived cells (dozens of identical nodes each feeding a different
node) reach it, and past it ties are broken by node name, so two such cells that differ
only by names may hash differently (equal hashes still always mean equivalent cells).
Names of genotypes and spaces are not part of any hash; a genotype's hash combines its
cells' hashes by cell name."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from genolang.spec.checked import CellGenotype, GenotypeSpec, NetworkSpec, NodeSpec, SearchSpec, SpaceSpec
from genolang.spec.syntax import space_tree, spec_text

HASH_VERSION = 1
SHORT = 16  # hex digits shown by default
WORK_LIMIT = 500_000  # labelling steps (and copied entries) per cell before ties are broken by name

Key = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class CanonicalCell:
    """A cell in canonical order: ``order`` holds the original names of the
    intermediate nodes in canonical order (node ``order[i]`` becomes
    ``n{inputs + i}``), ``cell`` is the renamed cell and ``text`` what is hashed."""

    order: tuple[str, ...]
    cell: CellGenotype
    text: str

    def renaming(self) -> dict[str, str]:
        """Original node name -> canonical name."""
        names = self.cell.shape.node_names
        return dict(zip(self.order, names))


class _Labeller:
    """Finds the smallest canonical labelling of one cell (see the module docstring)."""

    def __init__(self, cell: CellGenotype) -> None:
        self.cell = cell
        self.inputs = cell.shape.input_names
        self.edges = {n.name: n.edges for n in cell.nodes}
        self.readers: dict[str, list[str]] = {n.name: [] for n in cell.nodes}
        self.reads: dict[str, set[str]] = {}
        for node in cell.nodes:
            srcs = {src for _, src in node.edges}
            self.reads[node.name] = srcs - set(self.inputs)
            for src in srcs:
                if src in self.readers:
                    self.readers[src].append(node.name)
        out = Counter(cell.output)
        # What a node feeds, by identity: two nodes tied on their inputs with the same
        # signature here are interchangeable (swapping them is an automorphism).
        self.signature = {
            n.name: (tuple(sorted((op, dst) for dst in set(self.readers[n.name]) for op, src in self.edges[dst]
                                  if src == n.name)), out[n.name])
            for n in cell.nodes
        }
        self.work = 0
        self.best: tuple[tuple[Key, ...], tuple[int, ...]] | None = None
        self.best_order: tuple[str, ...] = ()

    def key(self, node: str, labels: dict[str, int]) -> Key:
        return tuple(sorted((op, labels[src]) for op, src in self.edges[node]))

    def run(self) -> tuple[tuple[str, ...], tuple[Key, ...], tuple[int, ...]]:
        labels = {name: i for i, name in enumerate(self.inputs)}
        waiting = {n: len(srcs) for n, srcs in self.reads.items()}
        ready = {n: self.key(n, labels) for n, count in waiting.items() if count == 0}
        self._search(labels, waiting, ready, [], [])
        assert self.best is not None
        return self.best_order, self.best[0], self.best[1]

    def _search(self, labels: dict[str, int], waiting: dict[str, int], ready: dict[str, Key],
                order: list[str], keys: list[Key]) -> None:
        """Label nodes from ``ready`` (node -> its key, fixed once its inputs are
        labelled) until none is left, branching over ties that matter."""
        while ready:
            smallest = min(ready.values())
            tied = sorted(n for n, k in ready.items() if k == smallest)
            choices: dict[object, str] = {}
            for n in tied:  # one representative per class of interchangeable nodes
                choices.setdefault(self.signature[n], n)
            options = list(choices.values())
            if len(options) > 1 and self.work < WORK_LIMIT:
                for i, n in enumerate(options):
                    if i and self.work >= WORK_LIMIT:
                        break  # out of budget: keep the best labelling found so far
                    self.work += len(labels) + len(waiting) + len(ready)
                    branch_labels, branch_waiting, branch_ready = dict(labels), dict(waiting), dict(ready)
                    self._take(n, branch_labels, branch_waiting, branch_ready)
                    self._search(branch_labels, branch_waiting, branch_ready, [*order, n], [*keys, smallest])
                return
            self._take(options[0], labels, waiting, ready)
            order.append(options[0])
            keys.append(smallest)
            self.work += 1
        outputs = tuple(sorted(labels[n] for n in self.cell.output))
        result = (tuple(keys), outputs)
        if self.best is None or result < self.best:
            self.best, self.best_order = result, tuple(order)

    def _take(self, node: str, labels: dict[str, int], waiting: dict[str, int], ready: dict[str, Key]) -> None:
        labels[node] = len(labels)
        del ready[node]
        for reader in set(self.readers[node]):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready[reader] = self.key(reader, labels)


def canonical_cell(cell: CellGenotype) -> CanonicalCell:
    """The canonical form of a genotype cell."""
    order, keys, outputs = _Labeller(cell).run()
    shape = cell.shape
    names = (*shape.input_names, *shape.node_names)
    nodes = tuple(NodeSpec(names[shape.inputs + i], tuple((op, names[src]) for op, src in key))
                  for i, key in enumerate(keys))
    output = tuple(names[i] for i in outputs)
    renamed = CellGenotype(shape, nodes, output)
    lines = [
        f"genolang-cell {HASH_VERSION}",
        f"inputs = {shape.inputs} ({shape.input_prefix}); stride = {shape.stride}; output = {shape.reducer}",
        *(f"{n.name} = " + " + ".join(f"{op}({src})" for op, src in n.edges) for n in nodes),
        f"out = {shape.reducer}({', '.join(output)})",
    ]
    return CanonicalCell(order, renamed, "\n".join(lines) + "\n")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cell_hash(cell: CellGenotype) -> str:
    """SHA-256 (64 hex digits) of a cell's canonical form: equal exactly for
    equivalent cells (the cell's name is not part of it)."""
    return _sha(canonical_cell(cell).text)


def genotype_hash(geno: GenotypeSpec) -> str:
    """SHA-256 of a genotype: its cells' hashes by cell name. Equivalent genotypes
    (cell by cell) share it whatever their names and spaces are called."""
    lines = [f"genolang-genotype {HASH_VERSION}", f"kind = {geno.kind}"]
    lines += [f"{cell.name} {cell_hash(cell)}" for cell in sorted(geno.cells, key=lambda c: c.name)]
    return _sha("\n".join(lines) + "\n")


def equivalent_cells(a: CellGenotype, b: CellGenotype) -> bool:
    """Whether two cells are the same architecture (see the module docstring)."""
    return canonical_cell(a).text == canonical_cell(b).text


def equivalent(a: GenotypeSpec, b: GenotypeSpec) -> bool:
    """Whether two genotypes have the same cells, each equivalent."""
    return genotype_hash(a) == genotype_hash(b)


def space_text(space: SpaceSpec) -> str:
    """The canonical text of a space without its name (written ``_``) and comments:
    op order is kept (it is the column order of the supernet's alphas)."""
    return spec_text(space_tree(space, "_", canonical=True))


def space_hash(space: SpaceSpec) -> str:
    """SHA-256 of ``space_text``: equal for spaces that differ only by name, comments,
    layout or defaults written out."""
    return _sha(f"genolang-space {HASH_VERSION}\n" + space_text(space))


def search_text(search: SearchSpec, network: NetworkSpec | None) -> str:
    """What a search's hash covers, as text: its space (``space_text``), its skeleton's
    content (whatever its name or file; None: the declaration leaves the skeleton to the
    data set's default), every field written but the skeleton's reference and the data
    folder (a recipe is the same on any machine), and the settings sorted."""
    from genolang.spec.syntax import network_tree, search_value

    lines = [f"genolang-search {HASH_VERSION}", space_text(search.space),
             spec_text(network_tree(_unnamed(network))) if network is not None else "network = default\n"]
    from genolang.parse.printer import format_value

    for key, value in search.given().items():
        if key not in ("network", "data_dir"):
            lines.append(f"{key} = " + ", ".join(format_value(v) for v in search_value(key, value)))
    lines += [f"{k} = {format_value(v)}" for k, v in sorted(search.settings)]
    return "\n".join(lines) + "\n"


def _unnamed(network: NetworkSpec) -> NetworkSpec:
    import dataclasses

    return dataclasses.replace(network, name="_", path="")


def search_hash(search: SearchSpec, network: NetworkSpec | None) -> str:
    """SHA-256 of ``search_text``: equal for searches that differ only by name,
    comments, layout, the skeleton's name or file, or the data folder."""
    return _sha(search_text(search, network))


def short(digest: str, length: int = SHORT) -> str:
    """The first ``length`` hex digits of a hash, as shown to people."""
    return digest[:length]
