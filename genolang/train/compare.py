"""``run_compare``: the library side of ``genolang compare``. Every genotype is retrained
under one recipe (the data set's and skeleton's defaults with the options given on top)
with each of the same seeds, one run folder each, through the training loop of
``genolang train`` (``genolang.train.train``); then the scores are tabulated and the
best genotype is tested against each other (``genolang.train.stats``).

The comparison folder::

    compare.json        the setup (genotypes with their files and canonical hashes, skeleton,
                        data, recipe, seeds) and the results: per genotype the per-seed
                        scores, mean, standard deviation, parameters and time, and the tests
    compare.md          the same as a Markdown table
    LABEL/seed-S/       one training run folder (metrics.jsonl, checkpoint.pt, model.pt,
                        result.json), as 'genolang train --run-dir' writes it

Runs go seed by seed (every genotype at the first seed, then at the next), so an
interrupted comparison has its seeds complete for all genotypes first. ``resume``
continues: a finished run (its result.json) is reused after checking that it was made
from the same genotype, skeleton and recipe, an unfinished one is resumed from its
checkpoint (bit for bit on the CPU), a missing one is started; genotypes and seeds may
be added to a comparison that way, the recipe may not change.

Under torchrun every run uses every process (as ``genolang train`` does); rank 0 writes.
The library never prints: it reports through a ``progress`` callback."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genolang import __version__
from genolang.data.registry import dataset_kind
from genolang.errors import GenolangError, UsageError
from genolang.nets.compile import apply_overrides, check_pair
from genolang.run import dist
from genolang.run.folder import RunDir
from genolang.run.progress import Progress, ProgressFn, emit
from genolang.spec.checked import GenotypeSpec, NetworkSpec
from genolang.spec.lookup import load_named
from genolang.spec.syntax import read_bundle, same_specs
from genolang.train import train
from genolang.train.recipe import Recipe, default_recipe, recipe_diff, recipe_from_dict
from genolang.train.state import RESULT, SPEC
from genolang.train.stats import ALPHA, TEST_NAME, holm, mean, std, welch
from genolang.vcs import genotype_hash

FORMAT = "genolang-compare/1"
COMPARE_JSON = "compare.json"
COMPARE_MD = "compare.md"


@dataclass(frozen=True)
class CompareConfig:
    """What a user asks for: the genotypes (files or names), one skeleton, one data set,
    the seeds, recipe fields given explicitly (``options``, the same for every run) and
    skeleton overrides."""

    genotypes: tuple[str, ...]
    network: str
    dataset: str
    seeds: tuple[int, ...] = (0, 1, 2)
    data_dir: str | None = None
    download: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    device: str = "auto"
    workers: int = 0
    threads: int | None = None


@dataclass(frozen=True)
class Entry:
    """One genotype of a comparison: its label (unique in the comparison, a folder
    name), the argument it came from and its canonical hash."""

    label: str
    source: str
    genotype: GenotypeSpec
    digest: str


@dataclass(frozen=True)
class SeedResult:
    """One finished run: its seed, score, parameters, seconds and folder."""

    seed: int
    score: float
    params: int
    seconds: float
    run_dir: str


@dataclass(frozen=True)
class Row:
    """One genotype's results over the seeds."""

    label: str
    name: str
    source: str
    digest: str
    runs: tuple[SeedResult, ...]

    @property
    def scores(self) -> list[float]:
        return [r.score for r in self.runs]

    @property
    def mean(self) -> float:
        return mean(self.scores)

    @property
    def std(self) -> float:
        return std(self.scores)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "genotype": self.name, "source": self.source, "hash": self.digest,
                "mean": self.mean, "std": self.std, "seeds": [r.seed for r in self.runs], "scores": self.scores,
                "params": self.runs[0].params if self.runs else None,
                "seconds_mean": mean([r.seconds for r in self.runs]),
                "runs": [{"seed": r.seed, "score": r.score, "params": r.params, "seconds": r.seconds,
                          "run_dir": r.run_dir} for r in self.runs]}


@dataclass(frozen=True)
class Test:
    """The best genotype against one other."""

    other: str
    difference: float  # best minus other (in the metric's unit; negative for perplexity)
    t: float | None
    df: float | None
    p: float | None
    p_holm: float | None
    note: str = ""

    @property
    def significant(self) -> bool:
        return self.p_holm is not None and self.p_holm < ALPHA

    def to_json(self) -> dict[str, Any]:
        return {"other": self.other, "difference": self.difference, "t": self.t, "df": self.df, "p": self.p,
                "p_holm": self.p_holm, "significant": self.significant, "note": self.note}


@dataclass(frozen=True)
class Comparison:
    """A finished comparison: its folder, setup, rows (best first) and tests."""

    out_dir: Path
    metric: str  # test_acc or test_ppl
    higher_is_better: bool
    setup: Mapping[str, Any]
    rows: tuple[Row, ...]
    tests: tuple[Test, ...]

    @property
    def best(self) -> Row:
        return self.rows[0]

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.setup, "metric": self.metric, "higher_is_better": self.higher_is_better,
                "test": TEST_NAME, "alpha": ALPHA, "best": self.best.label,
                "rows": [r.to_json() for r in self.rows], "tests": [t.to_json() for t in self.tests]}


def default_out_dir() -> Path:
    """``runs/compare-<time>`` under the current folder."""
    return Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"


def _labels(genos: Sequence[GenotypeSpec]) -> list[str]:
    """Unique folder names: the genotype's name, with ``_2``, ``_3`` ... for repeats."""
    seen: dict[str, int] = {}
    out = []
    for g in genos:
        seen[g.name] = seen.get(g.name, 0) + 1
        out.append(g.name if seen[g.name] == 1 else f"{g.name}_{seen[g.name]}")
    return out


def load_entries(sources: Sequence[str]) -> list[Entry]:
    """The genotypes to compare, checked; a clear error for none or one."""
    if len(sources) < 2:
        raise UsageError(f"compare needs at least 2 genotypes, got {len(sources)}; give genotype files or names")
    genos = []
    for source in sources:
        geno = load_named("genotype", source)
        assert isinstance(geno, GenotypeSpec)
        genos.append(geno)
    kinds = {g.kind for g in genos}
    if len(kinds) > 1:
        raise UsageError("compare needs genotypes of one kind: "
                         + ", ".join(f"{s} is {'recurrent' if g.kind == 'rnn' else 'a CNN'}"
                                     for s, g in zip(sources, genos)))
    return [Entry(label, source, g, genotype_hash(g)) for label, source, g in zip(_labels(genos), sources, genos)]


def _setup(entries: Sequence[Entry], network: NetworkSpec, config: CompareConfig, recipe: Recipe) -> dict[str, Any]:
    base = recipe.to_dict()
    base.pop("seed")
    return {"genotypes": [{"label": e.label, "source": e.source, "name": e.genotype.name, "hash": e.digest}
                          for e in entries],
            "network": network.name, "network_path": network.path, "overrides": dict(config.overrides),
            "dataset": config.dataset, "data_dir": config.data_dir, "seeds": list(config.seeds), "recipe": base,
            "genolang": __version__, "torch": torch.__version__}


def _check_resume(out: RunDir, setup: Mapping[str, Any], entries: Sequence[Entry]) -> None:
    """A resumed comparison keeps its skeleton, data and recipe, and its labels keep
    their genotypes."""
    saved = out.read_json(COMPARE_JSON)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise UsageError(f"{out.path / COMPARE_JSON}: not a comparison ({FORMAT}); choose another --out-dir")
    changes = [f"{k}: {saved.get(k)!r} -> {setup[k]!r}" for k in ("network", "overrides", "dataset")
               if saved.get(k) != setup[k]]
    changes += recipe_diff(recipe_from_dict(dict(saved.get("recipe") or {}, seed=0)),
                           recipe_from_dict(dict(setup["recipe"], seed=0)))
    before = {g["label"]: g["hash"] for g in saved.get("genotypes", []) if isinstance(g, dict)}
    changes += [f"genotype {e.label}: another architecture than before ({e.source})" for e in entries
                if e.label in before and before[e.label] != e.digest]
    if changes:
        raise UsageError(f"--resume: {out.path} was started with other settings ({'; '.join(changes)}); resume with "
                         "the same skeleton, data, recipe options and genotypes, or choose another --out-dir")


def _reuse(run_dir: Path, geno: GenotypeSpec, network: NetworkSpec, recipe: Recipe) -> dict[str, Any] | None:
    """A finished run's result.json when it was made from ``geno``, ``network`` and
    ``recipe``; None when it has not finished; a clear error when it is another run."""
    run = RunDir(run_dir)
    if not (run_dir / RESULT).is_file():
        return None
    try:
        stored = read_bundle((run_dir / SPEC).read_text(encoding="utf-8"), str(run_dir / SPEC))
        old = recipe_from_dict(dict(run.read_json("recipe.json")))
    except (OSError, GenolangError, TypeError, ValueError) as err:
        raise UsageError(f"{run_dir}: a finished run whose spec.geno or recipe.json cannot be read ({err}); remove "
                         "the folder to train it again") from None
    diff = recipe_diff(old, recipe)
    if not same_specs(stored, (geno, network)) or diff:
        why = "; ".join(diff) if diff else "another genotype or skeleton"
        raise UsageError(f"{run_dir}: a finished run of other settings ({why}); remove the folder or choose "
                         "another --out-dir")
    result = run.read_json(RESULT)
    if not isinstance(result, dict):
        raise UsageError(f"{run_dir / RESULT}: not a training result")
    return result


def _seed_result(seed: int, result: Mapping[str, Any], metric: str, run_dir: Path) -> SeedResult:
    score = result.get(metric)
    if not isinstance(score, (int, float)):
        raise UsageError(f"{run_dir / RESULT}: no {metric}")
    seconds = sum(float(m.get("seconds", 0.0)) for m in RunDir(run_dir).metrics())
    return SeedResult(seed, float(score), int(result.get("params", 0)), round(seconds, 3), str(run_dir))


def run_compare(config: CompareConfig, *, out_dir: str | Path | None = None, resume: bool = False,
                progress: ProgressFn | None = None) -> Comparison:
    """Retrain every genotype of ``config`` with every seed in ``out_dir`` (default
    ``default_out_dir``), then tabulate and test; see the module docstring."""
    if resume and out_dir is None:
        raise UsageError("--resume needs --out-dir (the folder of the comparison to continue)")
    if not config.seeds:
        raise UsageError("--seeds needs at least one seed")
    if len(set(config.seeds)) != len(config.seeds):
        raise UsageError(f"--seeds lists a seed twice: {', '.join(map(str, config.seeds))}")
    if config.options.get("seed") is not None:
        raise UsageError("compare takes its seeds from --seeds (every genotype with every seed), not --seed")
    kind = dataset_kind(config.dataset)
    entries = load_entries(config.genotypes)
    network = load_named("network", config.network)
    assert isinstance(network, NetworkSpec)
    for e in entries:
        check_pair(e.genotype, network)
    network = apply_overrides(network, **config.overrides)
    explicit = {k: v for k, v in config.options.items() if v is not None}
    base = default_recipe(config.dataset, network).replace(**explicit)
    metric, higher = ("test_ppl", False) if kind == "text" else ("test_acc", True)
    setup = _setup(entries, network, config, base)

    before = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    world, device = dist.join(config.device)
    try:
        folder = Path(out_dir) if out_dir is not None else Path(str(dist.broadcast_object(str(default_out_dir()),
                                                                                            world)))
        out = RunDir(folder)
        if (folder / COMPARE_JSON).is_file():
            if not resume:
                raise UsageError(f"{folder} already holds a comparison ({COMPARE_JSON}); pass --resume to continue "
                                 "it or choose another --out-dir")
            _check_resume(out, setup, entries)
        elif resume:
            raise UsageError(f"--resume: {folder} holds no comparison ({COMPARE_JSON}); run without --resume to "
                             "start one there")
        elif folder.is_dir() and any(folder.iterdir()):
            raise UsageError(f"{folder} is not empty; compare starts in a new or empty folder (or --resume one it "
                             "wrote)")
        dist.barrier(world)
        if world.is_main:
            out.ensure()
            out.write_json(COMPARE_JSON, {"format": FORMAT, **setup, "status": "running"})
        callbacks: list[ProgressFn] = [progress] if progress is not None and world.is_main else []
        data: Any = None
        if kind == "image":
            from genolang.data.images import load_images

            data = load_images(config.dataset, config.data_dir, config.download)
        else:
            from genolang.data.text import load_corpus

            data = load_corpus(config.dataset, config.data_dir)
        results: dict[str, list[SeedResult]] = {e.label: [] for e in entries}
        total = len(entries) * len(config.seeds)
        done = 0
        for seed in config.seeds:
            recipe = base.replace(seed=seed)
            for e in entries:
                done += 1
                run_dir = folder / e.label / f"seed-{seed}"
                head = f"run {done} of {total}: {e.label}, seed {seed}"
                result = _reuse(run_dir, e.genotype, network, recipe)
                if result is not None:
                    emit(callbacks, Progress("note", message=f"{head}: finished before, reused ({run_dir})"))
                else:
                    again = (run_dir / "checkpoint.pt").is_file()
                    emit(
                        callbacks, Progress("note", message=f"{head} ({'resumed' if again else 'fresh'}) in {run_dir}")
                    )
                    kwargs: dict[str, Any] = ({"data": data, "download": config.download, "workers": config.workers}
                                              if kind == "image" else {"corpus": data})
                    trained = train(e.genotype, network, recipe, run_dir, data_dir=config.data_dir, device=device,
                                    world=world, resume=again, callbacks=callbacks, **kwargs)
                    result = trained.to_dict()
                results[e.label].append(_seed_result(seed, result, metric, run_dir))
        comparison = _tabulate(folder, metric, higher, setup, entries, results)
        if world.is_main:
            out.write_json(COMPARE_JSON, {**comparison.to_json(), "status": "done"})
            out.write_text(COMPARE_MD, markdown(comparison))
        emit(callbacks, Progress("done", message=str(folder)))
        return comparison
    finally:
        dist.shutdown()
        torch.set_num_threads(before)


def _tabulate(folder: Path, metric: str, higher: bool, setup: Mapping[str, Any], entries: Sequence[Entry],
              results: Mapping[str, Sequence[SeedResult]]) -> Comparison:
    rows = [Row(e.label, e.genotype.name, e.source, e.digest, tuple(results[e.label])) for e in entries]
    order = sorted(range(len(rows)), key=lambda i: (-rows[i].mean if higher else rows[i].mean, i))
    rows = [rows[i] for i in order]
    best = rows[0]
    raw = []
    for other in rows[1:]:
        w = welch(best.scores, other.scores)
        raw.append((other, w))
    testable = [w.p for _, w in raw if w is not None]
    adjusted = iter(holm(testable))
    tests = []
    for other, w in raw:
        if w is None:
            tests.append(Test(other.label, best.mean - other.mean, None, None, None, None,
                              "needs at least 2 seeds on both sides"))
        else:
            tests.append(Test(other.label, w.difference, w.t, w.df, w.p, next(adjusted), w.note))
    return Comparison(folder, metric, higher, setup, tuple(rows), tuple(tests))


# ---- the Markdown table -------------------------------------------------------------------------

def _score(metric: str, value: float) -> str:
    return f"{100 * value:.2f}" if metric == "test_acc" else f"{value:.2f}"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2g}" if value >= 1e-4 else f"{value:.1e}"


def markdown(c: Comparison) -> str:
    """The comparison as Markdown: the setup, the table (best first) and the tests."""
    s = c.setup
    unit = "test accuracy (%)" if c.metric == "test_acc" else "test perplexity"
    r = s["recipe"]
    budget = (f"{r['epochs']} epoch{'s' if r['epochs'] != 1 else ''}, batch {r['batch_size']}, lr {r['lr']}"
              + (f", {r['limit_train']} training images" if r.get("limit_train") else "")
              + (f", {r['limit_test']} test images" if r.get("limit_test") else ""))
    overrides = ", ".join(f"{k} {v}" for k, v in s["overrides"].items() if v is not None)
    lines = [f"# Comparison of {len(c.rows)} genotypes", "",
             f"- skeleton: {s['network']}" + (f" ({overrides})" if overrides else ""),
             f"- data: {s['dataset']}; {budget}",
             f"- seeds: {', '.join(str(x) for x in s['seeds'])} (every genotype with every seed)",
             f"- test: {TEST_NAME}, at level {ALPHA}", "",
             f"| genotype | {unit}: mean ± std | per seed | parameters | time per run (s) | hash |",
             "|---|---|---|---|---|---|"]
    for row in c.rows:
        seeds = ", ".join(_score(c.metric, x) for x in row.scores)
        params = f"{row.runs[0].params:,}" if row.runs else ""
        secs = mean([x.seconds for x in row.runs])
        lines.append(f"| {row.label} | {_score(c.metric, row.mean)} ± {_score(c.metric, row.std)} | {seeds} | "
                     f"{params} | {secs:.0f} | {row.digest[:12]} |")
    lines += ["", (f"Best: **{c.best.label}**. Against each other genotype (difference of means, best minus other; "
              "Welch's t, degrees of freedom, p, Holm-adjusted p):"), "",
              "| other | difference | t | df | p | p (Holm) | better beyond the seed noise? |",
              "|---|---|---|---|---|---|---|"]
    for t in c.tests:
        verdict = ("yes" if t.significant else "no") if t.p_holm is not None else "not tested"
        note = f" ({t.note})" if t.note else ""
        diff = _score(c.metric, t.difference) if c.metric == "test_acc" else f"{t.difference:.2f}"
        tt = f"{t.t:.2f}" if t.t is not None else "n/a"
        df = f"{t.df:.1f}" if t.df is not None else "n/a"
        lines.append(f"| {t.other} | {diff} | {tt} | {df} | {_p(t.p)} | {_p(t.p_holm)} | {verdict}{note} |")
    better = [t.other for t in c.tests if t.significant]
    lines += ["", (f"{c.best.label} is better than {', '.join(better)} beyond the seed noise (Holm-adjusted p < "
                   f"{ALPHA}); the seeds cannot tell it apart from the rest." if better and len(better) < len(c.tests)
                   else f"{c.best.label} is better than every other genotype beyond the seed noise." if better
                   else f"The seeds cannot tell {c.best.label} apart from any other genotype at this budget "
                        f"(no Holm-adjusted p < {ALPHA})."), ""]
    return "\n".join(lines)


def read_comparison(path: str | Path) -> dict[str, Any]:
    """A comparison's compare.json (its folder or the file), checked for its format."""
    p = Path(path)
    if p.is_dir():
        p = p / COMPARE_JSON
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{p}: missing; expected the {COMPARE_JSON} of a 'genolang compare' folder") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"{p}: not JSON ({err.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"{p}: not a comparison ({FORMAT})")
    return data
