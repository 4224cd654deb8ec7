"""``genolang compare``: the statistics (Welch's t-test against scipy, Holm's correction),
and tiny comparisons on digits: the table, the plot and the run folders, runs identical
to 'genolang train' with the same seed, resuming (finished runs reused, an interrupted
one continued bit for bit, seeds added) and clean refusals."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from _cli import run
from _train_data import write_skeletons
from genolang.errors import UsageError
from genolang.train.compare import CompareConfig, run_compare
from genolang.train.entry import TrainConfig, run_training
from genolang.train.stats import holm, std, t_two_sided_p, welch

pytestmark = pytest.mark.usefixtures("one_thread")

BUDGET = {"epochs": 1, "limit_train": 32, "limit_test": 24, "batch_size": 16}


# ---- statistics ----------------------------------------------------------------------------------

def test_welch_agrees_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for _ in range(100):
        a = [rng.gauss(0.0, 1.0) for _ in range(rng.randint(2, 6))]
        b = [rng.gauss(rng.uniform(-3, 3), rng.uniform(0.1, 3)) for _ in range(rng.randint(2, 6))]
        ours, theirs = welch(a, b), stats.ttest_ind(a, b, equal_var=False)
        assert ours is not None
        assert ours.t == pytest.approx(theirs.statistic, rel=1e-9)
        assert ours.p == pytest.approx(theirs.pvalue, rel=1e-7, abs=1e-12)


def test_t_distribution_table_values_and_degenerate_cases() -> None:
    assert t_two_sided_p(2.776445, 4) == pytest.approx(0.05, abs=1e-6)  # the 97.5% quantile, 4 df
    assert t_two_sided_p(12.7062, 1) == pytest.approx(0.05, abs=1e-5)
    assert t_two_sided_p(0.0, 3) == pytest.approx(1.0)
    assert std([1.0, 2.0, 3.0]) == 1.0 and std([5.0]) == 0.0
    assert welch([1.0], [2.0, 3.0]) is None  # one seed: no test
    same = welch([0.5, 0.5], [0.5, 0.5])
    assert same is not None and same.p == 1.0
    exact = welch([0.6, 0.6], [0.5, 0.5])
    assert exact is not None and exact.p == 0.0 and "degenerate" in exact.note


def test_holm_adjusts_step_down() -> None:
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


# ---- comparisons ---------------------------------------------------------------------------------

@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_skeletons(tmp_path / "specs")[0]


@pytest.fixture
def sampled(tmp_path: Path) -> Path:
    result = run("sample", "darts_cnn", "-n", "1", "--seed", "3", "-o", tmp_path / "random", "-q")
    assert result.exit_code == 0, result.output
    return tmp_path / "random" / "sample_000.geno"


def config(tiny: Path, genotypes: tuple[str, ...], seeds: tuple[int, ...] = (0, 1), **budget: object) -> CompareConfig:
    return CompareConfig(genotypes, str(tiny), "digits", seeds, options={**BUDGET, **budget}, device="cpu")


def test_a_comparison_writes_its_table_plot_and_runs(tmp_path: Path, tiny: Path, sampled: Path) -> None:
    out = tmp_path / "cmp"
    result = run("compare", "darts_v2", sampled, "--network", tiny, "--dataset", "digits", "--seeds", "0,1",
                 "--epochs", "1", "--limit-train", "32", "--limit-test", "24", "--batch-size", "16",
                 "--out-dir", out, "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    data = json.loads((out / "compare.json").read_text())
    assert data["status"] == "done" and data["metric"] == "test_acc" and data["seeds"] == [0, 1]
    assert data["test"].startswith("Welch's t-test (two-sided, unequal variances), Holm-corrected")
    assert {r["label"] for r in data["rows"]} == {"darts_v2", "sample_000"}
    assert data["recipe"]["limit_train"] == 32 and "seed" not in data["recipe"]
    for row in data["rows"]:
        assert row["seeds"] == [0, 1]
        for r in row["runs"]:
            run_dir = Path(r["run_dir"])
            assert run_dir == out / row["label"] / f"seed-{r['seed']}"
            stored = json.loads((run_dir / "result.json").read_text())
            assert r["score"] == stored["test_acc"] and r["params"] == stored["params"]
            assert json.loads((run_dir / "recipe.json").read_text())["seed"] == r["seed"]
        assert row["mean"] == pytest.approx(sum(row["scores"]) / 2)
    best, other = data["rows"]
    assert best["mean"] >= other["mean"] and data["best"] == best["label"]
    (test,) = data["tests"]
    assert test["other"] == other["label"] and test["difference"] == pytest.approx(best["mean"] - other["mean"])
    assert test["p_holm"] == test["p"] or test["p"] is None  # one comparison: Holm changes nothing
    table = (out / "compare.md").read_text()
    assert f"| {best['label']} | {100 * best['mean']:.2f} ± " in table and "better beyond the seed noise?" in table
    assert table in result.output  # the table is the command's output
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_compared_run_is_the_training_run_with_that_seed(tmp_path: Path, tiny: Path, sampled: Path) -> None:
    comparison = run_compare(config(tiny, ("darts_v2", str(sampled)), seeds=(4,)), out_dir=tmp_path / "cmp")
    alone = run_training(TrainConfig("darts_v2", str(tiny), "digits", options={**BUDGET, "seed": 4}, device="cpu",
                                     tensorboard=False), run_dir=tmp_path / "alone")
    (row,) = [r for r in comparison.rows if r.label == "darts_v2"]
    assert row.scores == [alone.metrics["test_acc"]] and row.runs[0].params == alone.params
    assert all(t.p is None and "at least 2 seeds" in t.note for t in comparison.tests)


class Stop(Exception):
    pass


def test_resume_reuses_finished_runs_and_continues_an_interrupted_one(tmp_path: Path, tiny: Path,
                                                                       sampled: Path) -> None:
    genotypes = ("darts_v2", str(sampled))
    whole = run_compare(config(tiny, genotypes, epochs=2), out_dir=tmp_path / "whole")
    seen: list[str] = []

    def stop_in_the_third_run(event) -> None:  # type: ignore[no-untyped-def]
        if event.kind == "note":
            seen.append(event.message)
        if len(seen) == 3 and event.kind == "epoch_end" and event.epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        run_compare(config(tiny, genotypes, epochs=2), out_dir=tmp_path / "cut", progress=stop_in_the_third_run)
    notes: list[str] = []
    resumed = run_compare(config(tiny, genotypes, epochs=2), out_dir=tmp_path / "cut", resume=True,
                          progress=lambda e: notes.append(e.message) if e.kind == "note" else None)
    assert notes[0].startswith("run 1 of 4: darts_v2, seed 0: finished before, reused")
    assert notes[1].startswith("run 2 of 4: sample_000, seed 0: finished before, reused")
    assert notes[2].startswith("run 3 of 4: darts_v2, seed 1 (resumed)")
    assert notes[3].startswith("run 4 of 4: sample_000, seed 1 (fresh)")
    assert [(r.label, r.scores) for r in resumed.rows] == [(r.label, r.scores) for r in whole.rows]
    # a third seed: only its runs are trained
    notes.clear()
    more = run_compare(config(tiny, genotypes, seeds=(0, 1, 2), epochs=2), out_dir=tmp_path / "cut", resume=True,
                       progress=lambda e: notes.append(e.message) if e.kind == "note" else None)
    assert sum("reused" in n for n in notes) == 4 and sum("(fresh)" in n for n in notes) == 2
    assert [len(r.runs) for r in more.rows] == [3, 3]


def test_refusals_are_clear(tmp_path: Path, tiny: Path, sampled: Path) -> None:
    genotypes = ("darts_v2", str(sampled))
    run_compare(config(tiny, genotypes, seeds=(0,)), out_dir=tmp_path / "cmp")
    with pytest.raises(UsageError, match="already holds a comparison"):
        run_compare(config(tiny, genotypes, seeds=(0,)), out_dir=tmp_path / "cmp")
    with pytest.raises(UsageError, match=r"other settings \(epochs: 1 -> 2\)"):
        run_compare(config(tiny, genotypes, seeds=(0,), epochs=2), out_dir=tmp_path / "cmp", resume=True)
    with pytest.raises(UsageError, match="holds no comparison"):
        run_compare(config(tiny, genotypes), out_dir=tmp_path / "nothing", resume=True)
    with pytest.raises(UsageError, match="at least 2 genotypes"):
        run_compare(config(tiny, ("darts_v2",)), out_dir=tmp_path / "one")
    with pytest.raises(UsageError, match="a seed twice"):
        run_compare(config(tiny, genotypes, seeds=(1, 1)), out_dir=tmp_path / "twice")
    with pytest.raises(UsageError, match="not --seed"):
        run_compare(config(tiny, genotypes, seed=3), out_dir=tmp_path / "seed")
    # the label sample_000 now names another architecture (sample 0 of another seed)
    assert run("sample", "darts_cnn", "-n", "1", "--seed", "9", "-o", tmp_path / "other", "-q").exit_code == 0
    with pytest.raises(UsageError, match="genotype sample_000: another architecture"):
        run_compare(config(tiny, ("darts_v2", str(tmp_path / "other" / "sample_000.geno")), seeds=(0,)),
                    out_dir=tmp_path / "cmp", resume=True)
    result = run("compare", "darts_v2", sampled, "--network", tiny, "--dataset", "digits", "--seeds", "0,x",
                 "--out-dir", tmp_path / "bad")
    assert result.exit_code == 2 and "give seeds as 0,1,2 or a range 0-4" in result.output
