"""Random search with weight sharing's selection (Li and Talwalkar 2019;
randomNAS_release ``searchers/random_weight_share.py`` ``get_eval_arch``): sample cells
uniformly (``uniform_paths``' sampler, the derive rule's cells), score each with the
trained shared weights on a few validation batches, score the best ``top`` again on
the whole validation split and keep the best of those.

As the original: every sample sees the next ``batches`` batches of one cycling iterator
over the shuffled validation split (so samples are scored on different batches), the
model in eval mode (batch norm on its running statistics); ties go to the earlier
sample. The original samples 1,000 cells (one round: its output is the first round's
winner) and scores each on 10 batches of 64; ``samples`` defaults to 100 here, sized
for CPUs (``--set rank_samples.samples=1000`` for the paper's). Every sample's score
and the re-scored ones go to the run folder's ``selection.jsonl``."""

from __future__ import annotations

import random
from typing import Any

from genolang.errors import UsageError
from genolang.ir.lower import lower_space_cell
from genolang.search.components import register
from genolang.search.components.uniform_paths import CellPaths, Term, UniformPaths, cell_paths
from genolang.spec.checked import CellGenotype, GenotypeSpec, NodeSpec, SpaceSpec
from genolang.spec.validate import errors, genotype_problems

Arch = dict[str, list[Term]]  # per cell type, the chosen (row, column) terms


def genotype_of(space: SpaceSpec, paths: dict[str, CellPaths], arch: Arch, name: str) -> GenotypeSpec:
    """The checked genotype of a sampled cell per cell type (a node's terms in edge
    order)."""
    cells = []
    for shape in space.cells:
        p = paths[shape.name]
        where = {row: (src, node.name) for node in p.nodes for row, src in zip(node.rows, node.sources)}
        nodes = tuple(NodeSpec(node.name, tuple((space.ops[c], where[r][0]) for r, c in sorted(arch[shape.name])
                                                if where[r][1] == node.name)) for node in p.nodes)
        cells.append(CellGenotype(shape, nodes, tuple(lower_space_cell(shape, space).output_nodes)))
    geno = GenotypeSpec(name, space, tuple(cells), "<sampled>")
    problems = errors(genotype_problems(geno))
    if problems:
        raise AssertionError(f"sampled genotype '{name}' is invalid: " + "; ".join(p.message for p in problems))
    return geno


def describe(geno: GenotypeSpec) -> dict[str, str]:
    """Per cell, ``n2 = sep_conv_3x3(c0) + skip_connect(c1); ...``."""
    return {c.name: "; ".join(f"{n.name} = " + " + ".join(f"{op}({src})" for op, src in n.edges) for n in c.nodes)
            for c in geno.cells}


@register("selection", "rank_samples")
class RankSamples:
    """The best of ``samples`` uniformly sampled cells by the shared weights."""

    fine_tunes = False

    def __init__(self, samples: int = 100, batches: int = 10, top: int = 10) -> None:
        if samples < 1 or batches < 1 or top < 1:
            raise UsageError(f"rank_samples: samples, batches and top must be at least 1 (got {samples}, {batches}, "
                             f"{top})")
        self.samples, self.batches, self.top = samples, batches, top

    def select(self, context: Any) -> GenotypeSpec:
        if context.score is None:
            raise UsageError("rank_samples scores sampled cells on validation data, which this search's driver "
                             "does not offer")
        space, model = context.space, context.model
        paths = {name: cell_paths(space, model, name) for name in space.cell_names}
        at = context.epochs_done + 1  # the records of a run resumed before this point are written again
        scored: list[tuple[float, int, Arch]] = []
        try:
            for i in range(self.samples):
                arch = {name: paths[name].sample(random) for name in space.cell_names}
                self._show(model, paths, arch)
                score = float(context.score(self.batches))
                scored.append((score, i, arch))
                context.record({"epoch": at, "kind": "sample", "index": i, "score": score,
                                "cells": describe(genotype_of(space, paths, arch, f"sample_{i}"))})
            ranked = sorted(scored, key=lambda t: (-t[0], t[1]))[: self.top]
            full: list[tuple[float, int, Arch]] = []
            for score, i, arch in ranked:
                self._show(model, paths, arch)
                whole = float(context.score(None))
                full.append((whole, i, arch))
                context.record({"epoch": at, "kind": "rescore", "index": i, "score": score, "full_score": whole})
        finally:
            model.projection = None
        best_score, best, arch = sorted(full, key=lambda t: (-t[0], [i for _, i, _ in ranked].index(t[1])))[0]
        geno = genotype_of(space, paths, arch, context.name)
        context.record({"epoch": at, "kind": "chosen", "index": best, "full_score": best_score,
                        "cells": describe(geno)})
        line = (f"random search with weight sharing: {self.samples} sampled cells scored on {self.batches} "
                f"validation batches each, the best {len(full)} on the whole split; sample {best} chosen "
                f"(validation score {best_score:.4f})")
        context.note(line)
        context.summary.append(line + "; every score in selection.jsonl")
        if isinstance(model.relaxation, UniformPaths):
            context.summary.append("(the alphas are not trained: the table below holds each term's probability in a "
                                   "uniform sample)")
        return geno

    @staticmethod
    def _show(model: Any, paths: dict[str, CellPaths], arch: Arch) -> None:
        """Make the supernet run exactly ``arch`` (its 0/1 masks as the edge weights)."""
        masks = {name: paths[name].mask(terms) for name, terms in arch.items()}
        device = next(iter(model.arch_parameters())).device

        def project(cell: str, weights: Any) -> Any:
            return masks[cell].to(device=device, dtype=weights.dtype)

        model.projection = project
