"""DARTS-PT's selection by perturbation (Wang et al., "Rethinking Architecture Selection
in Differentiable NAS", ICLR 2021; ruocwang/darts-pt ``sota/cnn/projection.py``
``pt_project`` and ``model_search_darts_proj.py``).

After the search, the supernet is fine-tuned while edges are decided one at a time:

* the weight optimizer restarts (new momentum) at the search's lr x ``lr_factor``
  (0.025 / 10), constant: the original builds a cosine schedule for the fine-tuning
  but never steps it;
* **operation decisions**: an undecided edge drawn uniformly at random; for each of its
  ops, the supernet's validation accuracy with that op's weight set to 0 (the others
  kept, no renormalisation; batch norm in training mode, on batch statistics, under
  ``no_grad``, as the original's ``infer(..., _eval=False)``); the op whose removal
  lowers the accuracy most is kept, the edge becomes one-hot (ties: the earlier op).
  Each step decides one edge of every cell type (normal, then reduce);
* **topology decisions**, once every edge has its op: a node drawn at random among those
  with more than ``keep`` inputs; while it has more, each remaining input edge is set
  to 0 alone and the edge whose removal leaves the highest accuracy is removed (ties:
  the later edge; as the original, edges removed earlier in the same node are not
  zeroed while the next is chosen);
* between decisions ``interval`` epochs of the search's steps (both the architecture
  and the weight steps: undecided alphas keep learning; decided edges are fixed, their
  alphas get no gradient), and one epoch after the last decision.

The original decides 14 op edges and 3 nodes per cell type with ``interval`` 5: 81
fine-tuning epochs after a 50-epoch search. ``interval`` counts epochs and defaults to
1 here, for short searches (digits: 8 epochs, then 17 of fine-tuning);
``--set perturbation.interval=5`` is the paper's; 0 decides every edge at once without
fine-tuning.

The ops an edge may keep are its candidates less the derive rule's ``exclude`` (the
original's space has no ``none``; removing ``none``, a zero op, changes nothing anyway);
an op that reached its ``cap`` in the cell is no longer offered. The found genotype is
the space's derive rule on the decided weights (one-hot or zero rows), which is exactly
the decisions. Decisions are drawn from Python's generator (the same on every rank, kept
in every checkpoint); the validation figures are on the alpha half of the training
images without augmentation (the original evaluates augmented images) in batches of the
search's batch size; the running statistics are left as they were (the original's
evaluation moves them). Every decision and its scores go to ``selection.jsonl``, each
fine-tuning epoch's genotype (the decisions so far) to ``epoch-NNN.geno``; ``--resume``
continues from the last fine-tuning epoch's checkpoint, redoing the decisions made
after it, with the same draws."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from genolang.errors import UsageError
from genolang.ir.derive import derive_genotype, genotype_terms
from genolang.search.components import register
from genolang.spec.checked import GenotypeSpec, SpaceSpec

REMOVED = -1  # a decided row's column when the edge was removed


@dataclass(frozen=True)
class _Cell:
    """One cell type's edges (alpha rows): their names, sources and nodes, and the
    op columns each may keep."""

    name: str
    edges: tuple[str, ...]  # "n3<-c1" per row
    nodes: tuple[str, ...]  # the node each row feeds
    columns: tuple[tuple[int, ...], ...]
    keep: int
    caps: tuple[tuple[int, int], ...]

    def node_rows(self, node: str) -> list[int]:
        """The rows of the edges into ``node`` that have an op they may keep."""
        return [r for r, n in enumerate(self.nodes) if n == node and self.columns[r]]


def _cells(space: SpaceSpec, model: Any) -> list[_Cell]:
    from genolang.nets.supernet import mixed_edges

    out = []
    for shape in space.cells:
        edges = mixed_edges(model.irs[shape.name])
        cols = []
        for e in edges:
            ops = e.candidates if e.candidates is not None else space.ops
            cols.append(tuple(space.ops.index(op) for op in space.ops if op in ops and op not in space.derive.exclude))
        caps = tuple((space.ops.index(op), n) for op, n in space.derive.caps)
        out.append(_Cell(shape.name, tuple(f"{e.dst}<-{e.src}" for e in edges), tuple(e.dst for e in edges),
                         tuple(cols), shape.keep, caps))
    return out


@register("selection", "perturbation")
class Perturbation:
    """DARTS-PT: keep, edge by edge, the op whose removal hurts accuracy most; then per
    node the inputs whose removal hurts most; fine-tune between decisions."""

    fine_tunes = True

    def __init__(self, interval: int = 1, lr_factor: float = 0.1) -> None:
        if interval < 0 or not lr_factor > 0:
            raise UsageError(f"perturbation: interval must be at least 0 and lr_factor positive (got {interval}, "
                             f"{lr_factor})")
        self.interval, self.lr_factor = interval, lr_factor
        self._trial: tuple[str, int, int | None] | None = None  # (cell, row, column or None: the row) set to 0
        self._cells: list[_Cell] = []

    # -- the plan ----------------------------------------------------------------
    def _plan(self, cells: list[_Cell]) -> tuple[int, int, int]:
        """(op decision steps, node decision steps, fine-tuning epochs)."""
        op_steps = max((sum(1 for c in cell.columns if c) for cell in cells), default=0)
        node_steps = max((len(self._nodes_to_decide(cell)) for cell in cells), default=0)
        steps = op_steps + node_steps
        epochs = self.interval * (steps - 1) + 1 if self.interval and steps else 0
        return op_steps, node_steps, epochs

    @staticmethod
    def _nodes_to_decide(cell: _Cell) -> list[str]:
        if cell.keep == 0:
            return []
        nodes = list(dict.fromkeys(cell.nodes))
        for node in nodes:
            if len(cell.node_rows(node)) < cell.keep:
                raise UsageError(f"cell '{cell.name}': node {node} has {len(cell.node_rows(node))} input(s) with ops "
                                 f"it may keep, fewer than keep = {cell.keep}; exclude fewer ops")
        return [n for n in nodes if len(cell.node_rows(n)) > cell.keep]

    # -- the selection -----------------------------------------------------------
    def select(self, context: Any) -> GenotypeSpec:
        if context.score is None or context.train_epoch is None or context.fine_tune is None:
            raise UsageError("the perturbation selection (DARTS-PT) fine-tunes the supernet between decisions, which "
                             "only the CNN search driver offers; use another selection for recurrent spaces")
        model, space = context.model, context.space
        cells = self._cells = _cells(space, model)
        op_steps, node_steps, planned = self._plan(cells)
        state = self._start(context, cells)
        self._install(model, state)
        step = int(state["step"])
        epochs = int(state["epochs"])
        try:
            while step < op_steps + node_steps:
                if not state.get("decided_step"):  # the decisions of this step (redone after a resume before them)
                    for cell in cells:
                        if step < op_steps:
                            self._decide_op(context, cell, state)
                        else:
                            self._decide_node(context, cell, state)
                    state["decided_step"] = True
                last = step == op_steps + node_steps - 1
                run = (1 if last else self.interval) if self.interval else 0
                while epochs < (state["epochs_at_step"] + run):
                    epochs += 1
                    state["epochs"] = epochs
                    context.train_epoch(self._saved(state, step, run, epochs), planned)
                step += 1
                state.update(step=step, decided_step=False, epochs_at_step=epochs)
        finally:
            model.projection = None
            self._trial = None
        self._install(model, state)  # the decided weights, for the derivation and the header's table
        try:
            geno = derive_genotype(space, model.cell_alphas(), context.name)
        finally:
            model.projection = None
        self._check(geno, cells, state, space)
        op_decisions = sum(1 for c in cells for cols in c.columns if cols)
        node_decisions = sum(len(state["nodes_done"][c.name]) for c in cells)
        line = (f"DARTS-PT perturbation selection: {op_decisions} op decisions, {node_decisions} node decisions, "
                f"{epochs} fine-tuning epoch(s) at lr {state['lr']:.4g} (interval {self.interval})")
        context.summary.append(line + "; every decision in selection.jsonl")
        context.note(line)
        return geno

    def _start(self, context: Any, cells: list[_Cell]) -> dict[str, Any]:
        """The selection's state: resumed from the checkpoint, or new (and the weight
        optimizer restarted)."""
        if context.resumed is not None:
            saved = dict(context.resumed)
            saved["decided"] = {c: {int(r): int(v) for r, v in rows.items()} for c, rows in saved["decided"].items()}
            return saved
        lr = float(context.lr) / (1.0 / self.lr_factor)  # the search's initial lr / 10, as the original divides
        context.fine_tune(lr)
        decided: dict[str, dict[int, int]] = {c.name: {} for c in cells}
        for cell in cells:  # edges with no op it may keep are removed from the start
            for r, cols in enumerate(cell.columns):
                if not cols:
                    decided[cell.name][r] = REMOVED
        return {"step": 0, "epochs": 0, "epochs_at_step": 0, "decided_step": False, "decided": decided,
                "nodes_done": {c.name: [] for c in cells}, "lr": lr}

    @staticmethod
    def _saved(state: Mapping[str, Any], step: int, run: int, epochs: int) -> dict[str, Any]:
        """The state to checkpoint after a fine-tuning epoch (plain data only)."""
        out = {k: v for k, v in state.items() if k != "decided"}
        out["decided"] = {c: {str(r): v for r, v in rows.items()} for c, rows in state["decided"].items()}
        return out

    # -- the supernet's weights ----------------------------------------------------
    def _install(self, model: Any, state: Mapping[str, Any]) -> None:
        """Make every forward pass use the decided weights: one-hot rows for decided
        ops, zero rows for removed edges, the relaxation's weights elsewhere; minus the
        trial removal while one is scored."""
        tables: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        alphas = dict(zip(model.irs, model.arch_parameters()))
        for cell in self._cells:
            alpha = alphas[cell.name]
            fixed = torch.zeros_like(alpha, requires_grad=False).detach()
            mask = torch.zeros(alpha.shape[0], 1, dtype=torch.bool, device=alpha.device)
            for row, col in state["decided"][cell.name].items():
                mask[row, 0] = True
                if col != REMOVED:
                    fixed[row, col] = 1.0
            tables[cell.name] = (mask, fixed)

        def project(name: str, weights: torch.Tensor) -> torch.Tensor:
            mask, fixed = tables[name]
            out = torch.where(mask, fixed.to(weights.dtype), weights)
            trial = self._trial
            if trial is not None and trial[0] == name:
                keep = torch.ones_like(out)
                if trial[2] is None:
                    keep[trial[1]] = 0.0
                else:
                    keep[trial[1], trial[2]] = 0.0
                out = out * keep
            return out

        model.projection = project

    def _score(self, context: Any, trial: tuple[str, int, int | None]) -> float:
        self._trial = trial
        try:
            return float(context.score(None, train_mode=True))
        finally:
            self._trial = None

    # -- decisions ---------------------------------------------------------------
    def _decide_op(self, context: Any, cell: _Cell, state: dict[str, Any]) -> None:
        decided = state["decided"][cell.name]
        remaining = [r for r in range(len(cell.edges)) if r not in decided]
        if not remaining:
            return
        row = remaining[random.randrange(len(remaining))]
        space_ops = context.space.ops
        used = [c for c in decided.values() if c != REMOVED]
        full = {col for col, limit in cell.caps if used.count(col) >= limit}
        options = [c for c in cell.columns[row] if c not in full]
        scores: dict[str, float] = {}
        best: int | None = None
        if options:
            for col in options:
                scores[space_ops[col]] = acc = self._score(context, (cell.name, row, col))
                if best is None or acc < scores[space_ops[best]]:
                    best = col
        decided[row] = REMOVED if best is None else best
        self._install(context.model, state)
        kept = "removed (every op it may keep is at its cap)" if best is None else space_ops[best]
        context.record({"epoch": context.epochs_done + 1, "kind": "op", "cell": cell.name, "edge": cell.edges[row],
                        "scores": scores, "kept": None if best is None else space_ops[best]})
        shown = ", ".join(f"{op} {100 * a:.2f}%" for op, a in scores.items())
        context.note(f"DARTS-PT {cell.name} {cell.edges[row]}: keeps {kept} (valid acc without each op: {shown})")

    def _decide_node(self, context: Any, cell: _Cell, state: dict[str, Any]) -> None:
        done = state["nodes_done"][cell.name]
        remaining = [n for n in self._nodes_to_decide(cell) if n not in done]
        if not remaining:
            return
        node = remaining[random.randrange(len(remaining))]
        decided = state["decided"][cell.name]
        rows = [r for r in cell.node_rows(node) if decided[r] != REMOVED]
        rounds: list[dict[str, Any]] = []
        while len(rows) > cell.keep:
            scores: dict[str, float] = {}
            drop: int | None = None
            for row in rows:
                scores[cell.edges[row]] = acc = self._score(context, (cell.name, row, None))
                if drop is None or not acc < scores[cell.edges[drop]]:
                    drop = row
            assert drop is not None
            rows.remove(drop)
            rounds.append({"scores": scores, "removed": cell.edges[drop]})
        for row in cell.node_rows(node):
            if row not in rows:
                decided[row] = REMOVED
        done.append(node)
        self._install(context.model, state)
        kept = [cell.edges[r] for r in rows]
        context.record({"epoch": context.epochs_done + 1, "kind": "node", "cell": cell.name, "node": node,
                        "rounds": rounds, "kept": kept})
        context.note(f"DARTS-PT {cell.name} {node}: keeps {', '.join(kept)}"
                     + "".join(f"; without {r['removed']}: {100 * r['scores'][r['removed']]:.2f}%" for r in rounds))

    def _check(self, geno: GenotypeSpec, cells: list[_Cell], state: Mapping[str, Any], space: SpaceSpec) -> None:
        """The derive rule on the decided weights reproduces the decisions."""
        terms = genotype_terms(geno)
        for cell in cells:
            want = set()
            for row, col in state["decided"][cell.name].items():
                if col != REMOVED and (cell.keep == 0 or cell.nodes[row] in state["nodes_done"][cell.name]
                                       or len(cell.node_rows(cell.nodes[row])) <= cell.keep):
                    dst, _, src = cell.edges[row].partition("<-")
                    want.add((dst, space.ops[col], src))
            if terms[cell.name] != want:
                raise AssertionError(f"DARTS-PT: the derived cell '{cell.name}' {sorted(terms[cell.name])} differs "
                                     f"from the decisions {sorted(want)}")

