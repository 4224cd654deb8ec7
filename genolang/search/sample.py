"""Random genotypes of a space: the baseline that a search has to beat (``genolang
sample``).

The distribution is uniform over the genotypes the space's derive rule can produce,
counting two genotypes as different when some node keeps another set of (op, input)
terms (the order of a node's terms does not matter; renumbered but isomorphic cells
count as different genotypes). Concretely, cell types are drawn independently, and in
each cell:

* every intermediate node draws its set of kept terms uniformly from the sets the
  derive rule allows: with ``distinct = true`` (DARTS), ``keep`` different inputs and
  one allowed op on each; with ``distinct = false`` (NASNet, AmoebaNet), ``keep``
  different (op, input) pairs, so an input may be read twice through two ops; with
  ``keep = all`` (NAS-Bench-201), one allowed op on every in-edge; recurrent cells keep
  one input per node. The allowed ops of an edge are its candidates (the IR's mixed
  edge) without the derive rule's ``exclude`` (``allowed_ops``);
* nodes are independent, and a cell with more edges of an op than the op's ``cap`` is
  redrawn as a whole (rejection sampling), so the cell is uniform over the cells that
  obey the caps.

When every edge offers the same number of ops, a distinct-input node is a uniform set
of ``keep`` inputs with independent uniform ops; when edges offer different numbers
(per-edge candidate sets), a set of inputs is drawn with probability proportional to
the number of op choices it allows, which keeps every node configuration equally
likely. All draws use exact integer arithmetic.

Sample ``i`` of seed ``s`` depends on ``s`` and ``i`` alone (its generator is seeded
with both), so ``-n 16`` gives the 8 genotypes of ``-n 8`` and 8 more. Samples are
drawn with replacement: two may be the same architecture (the CLI says so).

Torch-free. Each sample is validated with ``genolang.spec.validate.genotype_problems``
and written once, formatted by the printer, with its provenance as header comments
(``genolang.search.output``)."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from genolang.errors import UsageError
from genolang.fsio import check_folder, make_folder, write_text
from genolang.ir.graph import CellIR
from genolang.ir.lower import lower_space_cell
from genolang.search.output import HASH_SLOT, GenotypeFile, display_path, sha256_file
from genolang.spec.checked import CellGenotype, CellShape, GenotypeSpec, NodeSpec, SpaceSpec
from genolang.spec.lookup import load_named_source
from genolang.spec.validate import genotype_problems
from genolang.vcs import genotype_hash

SEED_FORMAT = "genolang-sample/1"  # part of every sample's seed: changing it changes every sample
MAX_SAMPLES = 100_000  # genotypes one call draws (each is a file)
MAX_TRIES = 10_000  # cells drawn per cell type before caps are declared too tight
DISTRIBUTION = ("uniform over the genotypes the space's derive rule can produce: cell types independent; each "
                "node's set of kept (op, input) terms uniform over the sets the rule allows (excluded ops never, "
                "distinct inputs where the rule says so, every in-edge where keep = all); a cell over a cap redrawn")

Terms = tuple[tuple[str, str], ...]  # (op, input) pairs of one node


class SampleError(UsageError):
    """A space whose derive rule no genotype can satisfy (or only very rarely)."""


def allowed_ops(space: SpaceSpec, ir: CellIR, src: str, dst: str) -> tuple[str, ...]:
    """The ops the derive rule may keep on the edge ``src -> dst`` of a space's cell:
    the edge's candidates (every op of the space, until spaces give edges their own
    sets) without the excluded ones, in the space's order. The sampler asks only this."""
    candidates: tuple[str, ...] = space.ops
    for edge in ir.in_edges(dst):
        if edge.src == src and edge.candidates is not None:
            candidates = edge.candidates
            break
    return tuple(op for op in candidates if op not in space.derive.exclude)


@dataclass(frozen=True)
class NodeChoices:
    """What one node of a cell may keep: its in-edges' sources in the IR's order, each
    with its allowed ops, and how many terms it keeps."""

    node: str
    sources: tuple[tuple[str, tuple[str, ...]], ...]
    keep: int

    def count(self, distinct: bool, keeps_all: bool) -> int:
        """How many term sets the node may keep (0: none satisfies the rule)."""
        sizes = [len(ops) for _, ops in self.sources]
        if keeps_all:
            return _product(sizes)
        if distinct:
            return _elementary(sizes, self.keep)[len(sizes)][self.keep]
        return _binomial(sum(sizes), self.keep)


@dataclass(frozen=True)
class CellChoices:
    """What a cell type may keep: its nodes' choices and the nodes its output lists."""

    nodes: tuple[NodeChoices, ...]
    output: tuple[str, ...]


def node_choices(space: SpaceSpec, shape: CellShape) -> CellChoices:
    """The choices of every intermediate node of a cell type, from its supernet IR (the
    edges whose alphas a search derives from)."""
    ir = lower_space_cell(shape, space)
    out = []
    for node in ir.nodes:
        sources = tuple((e.src, allowed_ops(space, ir, e.src, node)) for e in ir.in_edges(node))
        keep = len(sources) if shape.keeps_all else shape.keep
        out.append(NodeChoices(node, sources, keep))
    return CellChoices(tuple(out), tuple(ir.output_nodes))


def _product(values: Sequence[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _binomial(n: int, k: int) -> int:
    if k < 0 or k > n:
        return 0
    out = 1
    for i in range(k):
        out = out * (n - i) // (i + 1)
    return out


def _elementary(weights: Sequence[int], k: int) -> list[list[int]]:
    """``e[i][j]``: the sum over j-subsets of the first i weights of their products
    (the elementary symmetric polynomials), for i <= len(weights), j <= k."""
    e = [[1] + [0] * k]
    for w in weights:
        prev = e[-1]
        e.append([prev[0]] + [prev[j] + w * prev[j - 1] for j in range(1, k + 1)])
    return e


def draw_node(rng: random.Random, choices: NodeChoices, distinct: bool, keeps_all: bool) -> Terms:
    """One uniformly random term set of a node (see the module docstring), its terms
    in the IR's source order and the space's op order."""
    sources = choices.sources
    if keeps_all:
        picked = [(ops[rng.randrange(len(ops))], src) for src, ops in sources]
    elif distinct:
        # a k-subset of the sources with probability proportional to the product of their
        # op counts (uniform when all are equal), drawn from the last source backwards
        e = _elementary([len(ops) for _, ops in sources], choices.keep)
        chosen, k = [], choices.keep
        for i in range(len(sources), 0, -1):
            if k == 0:
                break
            weight = len(sources[i - 1][1])
            if rng.randrange(e[i][k]) < weight * e[i - 1][k - 1]:
                chosen.append(i - 1)
                k -= 1
        picked = [(sources[i][1][rng.randrange(len(sources[i][1]))], sources[i][0]) for i in sorted(chosen)]
    else:
        pairs = [(op, src) for src, ops in sources for op in ops]
        positions = sorted(rng.sample(range(len(pairs)), choices.keep))
        picked = [pairs[p] for p in positions]
    return tuple(picked)


def _within_caps(nodes: Sequence[Terms], caps: Sequence[tuple[str, int]]) -> bool:
    used = Counter(op for terms in nodes for op, _ in terms)
    return all(used[op] <= limit for op, limit in caps)


def draw_cell(rng: random.Random, space: SpaceSpec, shape: CellShape,
              choices: CellChoices | None = None) -> CellGenotype:
    """One uniformly random cell of ``shape`` under the space's derive rule
    (``choices``: its ``node_choices``, when the caller has them)."""
    rule = space.derive
    cell = choices if choices is not None else node_choices(space, shape)
    table = cell.nodes
    for c in table:
        if c.count(rule.distinct, shape.keeps_all) == 0:
            ops = sorted({op for _, ops in c.sources for op in ops})
            raise SampleError(
                f"space '{space.name}' ({space.path}), cell '{shape.name}': node {c.node} cannot keep "
                f"{c.keep} term(s) from {len(c.sources)} input(s) with the allowed ops ({', '.join(ops) or 'none'}; "
                f"excluded: {', '.join(rule.exclude) or 'nothing'}); exclude fewer ops or keep fewer inputs")
    for _ in range(MAX_TRIES):
        nodes = [draw_node(rng, c, rule.distinct, shape.keeps_all) for c in table]
        if _within_caps(nodes, rule.caps):
            return CellGenotype(shape, tuple(NodeSpec(c.node, terms) for c, terms in zip(table, nodes)), cell.output)
    caps = ", ".join(f"cap {op} = {n}" for op, n in rule.caps)
    raise SampleError(f"space '{space.name}' ({space.path}), cell '{shape.name}': not one of {MAX_TRIES:,} random "
                      f"cells obeys the caps ({caps}); raise the caps or offer more ops")


def sample_rng(seed: int, index: int) -> random.Random:
    """The generator of sample ``index`` of ``seed`` (independent of how many are drawn)."""
    return random.Random(f"{SEED_FORMAT}:{seed}:{index}")


def sample_genotype(space: SpaceSpec, seed: int, index: int = 0, name: str | None = None,
                    choices: Mapping[str, CellChoices] | None = None) -> GenotypeSpec:
    """Sample ``index`` of ``seed``: a uniformly random genotype of ``space`` (see the
    module docstring), validated as a genotype read from a file would be."""
    rng = sample_rng(seed, index)
    cells = tuple(draw_cell(rng, space, shape, choices[shape.name] if choices is not None else None)
                  for shape in space.cells)
    geno = GenotypeSpec(name or f"sample_{index:03d}", space, cells, "<sampled>")
    problems = genotype_problems(geno)
    if problems:  # errors or warnings: the sampler keeps the derive rule, so either is a bug
        raise AssertionError(f"sampled genotype '{geno.name}' breaks the rules of space '{space.name}': "
                             + "; ".join(p.message for p in problems))
    return geno


def sample_genotypes(space: SpaceSpec, n: int, seed: int, prefix: str = "sample") -> list[GenotypeSpec]:
    """Samples 0 .. n-1 of ``seed``, named ``PREFIX_000`` ..."""
    choices = {shape.name: node_choices(space, shape) for shape in space.cells}
    width = max(3, len(str(n - 1)))
    return [sample_genotype(space, seed, i, f"{prefix}_{i:0{width}d}", choices) for i in range(n)]


def space_size(space: SpaceSpec) -> int:
    """How many genotypes the space's derive rule can produce, ignoring caps (the
    product over cells and nodes of the nodes' choices)."""
    total = 1
    for shape in space.cells:
        for c in node_choices(space, shape).nodes:
            total *= c.count(space.derive.distinct, shape.keeps_all)
    return total


# ---- files ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SampleFile:
    """One written sample: its file, genotype, canonical hash and index."""

    path: Path
    genotype: GenotypeSpec
    digest: str
    index: int


NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def sample_paths(out_dir: Path, n: int, prefix: str) -> list[Path]:
    """Where samples 0 .. n-1 go: ``OUT_DIR/PREFIX_000.geno`` ..."""
    width = max(3, len(str(n - 1)))
    return [out_dir / f"{prefix}_{i:0{width}d}.geno" for i in range(n)]


def write_samples(space_arg: str, n: int, seed: int, out_dir: str | Path, prefix: str = "sample",
                  command: str | None = None) -> list[SampleFile]:
    """Draw ``n`` genotypes of the space ``space_arg`` (a file or a name) with ``seed``
    and write each to its own spec file in ``out_dir`` with its provenance. Refuses to
    replace any existing file (before writing anything)."""
    if n < 1:
        raise UsageError(f"-n must be at least 1, not {n}")
    if n > MAX_SAMPLES:
        raise UsageError(f"-n {n:,} is more than the {MAX_SAMPLES:,} genotypes one call writes; ask for fewer"
                         " (a genotype file each)")
    if not NAME.match(prefix):
        raise UsageError(f"--prefix '{prefix}' must be a name (letters, digits and '_', not starting with a digit): "
                         "it names the genotypes")
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: a file, not a folder; -o names the folder the samples go to")
    check_folder(folder)
    paths = sample_paths(folder, n, prefix)
    existing = [p for p in paths if p.exists()]
    if existing:
        shown = ", ".join(str(p) for p in existing[:3]) + (
            f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        )
        raise UsageError(f"{shown} already exist{'s' if len(existing) == 1 else ''}; genolang sample never replaces "
                         "a file: choose another -o folder or --prefix, or remove them")
    space, _ = load_named_source("space", space_arg)
    assert isinstance(space, SpaceSpec)
    genotypes = sample_genotypes(space, n, seed, prefix)
    make_folder(folder)
    writer = GenotypeFile(space, folder.resolve())
    digest_of_space = sha256_file(space.path)
    how = command or f"genolang sample {space_arg} -n {n} --seed {seed} -o {folder}"
    out = []
    for i, (path, geno) in enumerate(zip(paths, genotypes)):
        lines = [
            f"Drawn by 'genolang sample': random genotype {i} of {n} (seed {seed}) of space {space.name}.",
            f"space: {display_path(space.path)} (space {space.name}, sha256 {digest_of_space})",
            f"distribution: {DISTRIBUTION}",
            f"seed {seed}, index {i}: the sample depends on these two alone ({SEED_FORMAT})",
            f"reproduce: {how}",
            HASH_SLOT,
            "",
        ]
        text = writer.text(geno, lines)
        if path.exists():  # written meanwhile by someone else: still never replace it
            raise UsageError(f"{path} appeared while sampling; genolang sample never replaces a file")
        write_text(path, text)
        out.append(SampleFile(path, geno, genotype_hash(geno), i))
    return out
