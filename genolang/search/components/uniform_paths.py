"""Random search with weight sharing's relaxation (Li and Talwalkar, "Random Search and
Reproducibility for Neural Architecture Search", UAI 2019; liamli4465/randomNAS_release,
``benchmarks/cnn/darts/darts_wrapper_discrete.py``): every forward pass samples one cell
per cell type uniformly among the cells the space's derive rule allows, and the edges
mix their ops by that cell's 0/1 masks. The whole supernet still runs (every op, and so
every op's batch-norm statistics, as in the original); gradients reach the sampled
path only. The alphas are never trained (the method has no architecture step).

The sampler (torch-free, ``CellPaths.sample``) draws per node ``keep`` distinct inputs
and an op for each, uniformly over all such choices: an input whose edge allows more
ops is proportionally likelier, which for the DARTS space (8 ops on every edge) is the
original's ``np.random.choice(i + 2, 2, replace=False)`` and a uniform op per input.
The ops are the edge's candidates less the derive rule's ``exclude`` (so every sample
is a genotype of the space; the original samples ``none`` too, which ``sample_excluded
= true`` restores for training), ``keep = all`` takes every input with one op,
``distinct = false`` draws ``keep`` distinct (input, op) terms, and caps reject a cell
that exceeds one and draw it again (uniform over the cells within the caps).

Draws for training (the model in training mode, with gradients) use Python's generator,
seeded like torch's and kept in every checkpoint: it is the same on every rank under
torchrun (torch's differs per rank there), so all ranks train the same sampled cell for
a global batch, as one process would. Other forward passes (an epoch's validation
figures: the accuracy of random cells of the shared weights) draw from a generator of
their own, started afresh (seed ``EVAL_SEED``) after every training pass, so they
neither shift the training draws (ranks evaluate different numbers of batches) nor
depend on where a run was resumed: every evaluation scores the same sequence of cells."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from genolang.errors import UsageError
from genolang.search.components import register
from genolang.spec.checked import SpaceSpec

MAX_REJECTIONS = 10_000  # cells drawn for one sample under caps before giving up
EVAL_SEED = 0  # the evaluation passes' generator


class Rng(Protocol):
    """What the sampler draws with: ``random`` (the module) or a ``random.Random``."""

    def randrange(self, start: int, stop: int | None = ..., step: int = ...) -> int: ...
    def sample(self, population: Sequence[Any], k: int) -> list[Any]: ...


Term = tuple[int, int]  # (alpha row, op column) of one chosen term


@dataclass(frozen=True)
class NodeEdges:
    """A node's incoming edges: per edge its alpha row, its source and the op columns
    a sample may choose."""

    name: str
    rows: tuple[int, ...]
    sources: tuple[str, ...]
    columns: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class CellPaths:
    """The cells of one cell type that a sample may be: its nodes' edges, ``keep``
    (0 for every input), whether inputs are distinct, and the caps as (column, limit)."""

    cell: str
    shape: tuple[int, int]  # the alpha table's (rows, ops)
    nodes: tuple[NodeEdges, ...]
    keep: int
    distinct: bool
    caps: tuple[tuple[int, int], ...] = ()

    def sample(self, rng: Rng = random) -> list[Term]:
        """One cell, uniformly among those allowed: its chosen (row, column) terms."""
        for _ in range(MAX_REJECTIONS):
            terms = [t for node in self.nodes for t in self._node(node, rng)]
            if self._within_caps(terms):
                return terms
        caps = ", ".join(f"column {c} at most {n}" for c, n in self.caps)
        raise UsageError(f"cell '{self.cell}': {MAX_REJECTIONS} random cells in a row exceeded the caps ({caps}); "
                         "the caps leave too few cells to sample: raise them")

    def _node(self, node: NodeEdges, rng: Rng) -> list[Term]:
        if self.keep == 0:  # every input, one op each
            return [(row, cols[rng.randrange(len(cols))]) for row, cols in zip(node.rows, node.columns)]
        if not self.distinct:  # keep distinct (input, op) terms
            pairs = [(row, c) for row, cols in zip(node.rows, node.columns) for c in cols]
            if len(pairs) < self.keep:
                raise self._too_few(node)
            picked: list[int] = rng.sample(range(len(pairs)), self.keep)
            return [pairs[i] for i in sorted(picked)]
        chosen = weighted_subset([len(c) for c in node.columns], self.keep, rng)
        if chosen is None:
            raise self._too_few(node)
        return [(node.rows[i], node.columns[i][rng.randrange(len(node.columns[i]))]) for i in chosen]

    def _too_few(self, node: NodeEdges) -> UsageError:
        return UsageError(f"cell '{self.cell}': node {node.name} has too few inputs with ops a sample may choose "
                          f"to keep {self.keep}; exclude fewer ops")

    def _within_caps(self, terms: list[Term]) -> bool:
        for col, limit in self.caps:
            if sum(1 for _, c in terms if c == col) > limit:
                return False
        return True

    def mask(self, terms: list[Term], like: torch.Tensor | None = None) -> torch.Tensor:
        """The (rows x ops) 0/1 weights of a sampled cell."""
        out = torch.zeros(self.shape, dtype=like.dtype if like is not None else None)
        if terms:
            rows, cols = zip(*terms)
            out[list(rows), list(cols)] = 1.0
        return out if like is None else out.to(like.device)

    def marginals(self) -> list[list[float]]:
        """The probability of each (row, column) term in a sample (caps left out)."""
        out = [[0.0] * self.shape[1] for _ in range(self.shape[0])]
        for node in self.nodes:
            weights = [len(c) for c in node.columns]
            for i, (row, cols) in enumerate(zip(node.rows, node.columns)):
                if self.keep == 0:
                    p_edge = 1.0
                elif not self.distinct:
                    pairs = sum(weights)
                    p_edge = min(self.keep, pairs) / pairs * len(cols)
                else:
                    total = subset_weight(weights, self.keep)
                    rest = subset_weight(weights[:i] + weights[i + 1:], self.keep - 1)
                    p_edge = len(cols) * rest / total if total else 0.0
                for c in cols:
                    out[row][c] = p_edge / len(cols)
        return out


def subset_weight(weights: Sequence[int], k: int) -> int:
    """The sum over the ``k``-subsets of ``weights`` of their products (the elementary
    symmetric polynomial e_k), exactly."""
    e = [1] + [0] * k
    for w in weights:
        for j in range(k, 0, -1):
            e[j] += w * e[j - 1]
    return e[k]


def weighted_subset(weights: Sequence[int], k: int, rng: Rng) -> list[int] | None:
    """Indices of a ``k``-subset drawn with probability proportional to the product of
    its weights (exact integer draws); None when there are fewer than ``k`` positive
    weights."""
    n = len(weights)
    # tail[i][j]: e_j of weights[i:]
    tail = [[0] * (k + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        tail[i][0] = 1
    for i in range(n - 1, -1, -1):
        for j in range(1, k + 1):
            tail[i][j] = tail[i + 1][j] + weights[i] * tail[i + 1][j - 1]
    if tail[0][k] == 0:
        return None
    chosen, need = [], k
    for i in range(n):
        if need == 0:
            break
        take = weights[i] * tail[i + 1][need - 1]
        if rng.randrange(tail[i][need]) < take:
            chosen.append(i)
            need -= 1
    return chosen


def cell_paths(space: SpaceSpec, model: Any, cell: str, with_excluded: bool = False) -> CellPaths:
    """The cells a sample of ``cell`` may be in ``model`` (a supernet of ``space``): its
    IR's mixed edges with their candidate ops, less the excluded ones unless
    ``with_excluded``."""
    from genolang.nets.supernet import mixed_edges

    shape = space.cell(cell)
    rule = space.derive
    edges = mixed_edges(model.irs[cell])
    by_node: dict[str, list[tuple[int, str, tuple[int, ...]]]] = {}
    for e in edges:
        assert e.row is not None
        ops = e.candidates if e.candidates is not None else space.ops
        cols = tuple(space.ops.index(op) for op in space.ops if op in ops and (with_excluded or op not in rule.exclude))
        by_node.setdefault(e.dst, []).append((e.row, e.src, cols))
    nodes = []
    for name, entries in by_node.items():
        usable = [x for x in entries if x[2]]
        nodes.append(NodeEdges(name, tuple(x[0] for x in usable), tuple(x[1] for x in usable),
                               tuple(x[2] for x in usable)))
        if shape.keep == 0 and len(usable) < len(entries):
            raise UsageError(f"cell '{cell}': node {name} keeps every input, but an input of it has only "
                             "excluded ops")
    caps = () if with_excluded else tuple((space.ops.index(op), n) for op, n in rule.caps)
    return CellPaths(cell, (len(edges), len(space.ops)), tuple(nodes), shape.keep, rule.distinct, caps)


@register("relaxation", "uniform_paths")
class UniformPaths:
    """Each forward pass: one uniformly sampled cell per cell type, as 0/1 edge weights."""

    # every op still runs (weighted 0 or 1), as in the original; unchosen edges weigh 0
    one_op_per_edge = False

    def __init__(self, sample_excluded: bool = False) -> None:
        self.sample_excluded = sample_excluded
        self._cells: list[tuple[torch.Tensor, CellPaths]] = []
        self._model: Any = None
        self._eval_rng: random.Random | None = None

    def prepare(self, model: Any) -> None:
        """Learn the cells' structure from the supernet (before the first forward)."""
        self._model = model
        self._cells = [(alpha, cell_paths(model.space, model, name, self.sample_excluded))
                       for name, alpha in zip(model.irs, model.arch_parameters())]

    def paths(self, alpha: torch.Tensor) -> CellPaths:
        """The structure of the cell type whose alphas are ``alpha`` (by identity; by
        shape where that is unambiguous)."""
        for a, paths in self._cells:
            if a is alpha:
                return paths
        same = {p for a, p in self._cells if tuple(a.shape) == tuple(alpha.shape)}
        if len(same) == 1:
            return same.pop()
        if not self._cells:
            raise RuntimeError("uniform_paths: prepare(model) was not called before the first forward pass")
        raise RuntimeError(f"uniform_paths: no cell type of the supernet has alphas of shape {tuple(alpha.shape)}")

    def __call__(self, alpha: torch.Tensor) -> torch.Tensor:
        paths = self.paths(alpha)
        training = self._model is None or (bool(self._model.training) and torch.is_grad_enabled())
        if training:
            self._eval_rng = None
            rng: Rng = random
        else:
            if self._eval_rng is None:
                self._eval_rng = random.Random(EVAL_SEED)
            rng = self._eval_rng
        return paths.mask(paths.sample(rng), like=alpha.detach())

    def expected(self, alpha: torch.Tensor) -> torch.Tensor:
        """The probability of every term in a sample (caps left out)."""
        return torch.tensor(self.paths(alpha).marginals(), dtype=alpha.dtype, device=alpha.device)

    def selection(self, alpha: torch.Tensor) -> torch.Tensor:
        """What the logs show: the sampling probabilities (the alphas never change)."""
        return self.expected(alpha)

    def set_epoch(self, epoch: int, epochs: int) -> None:
        pass
