"""Data-parallel search and retraining with two CPU processes (gloo), started the way
torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT in the environment)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

WORKER = Path(__file__).with_name("_dist_worker.py")
TINY = """genolang 1

network tiny {
    stem = cifar
    stem_multiplier = 2
    channels = 4
    layers = 3
    reduce_at = 1/3, 2/3
    input_size = 8
}
"""

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(rank: int | None, world: int, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK"}}
    env.update(OMP_NUM_THREADS="1", GENOLANG_DIST_TIMEOUT="60", PYTHONUNBUFFERED="1")
    if rank is not None:
        env.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
    return env


def _run_job(job: str, args: dict[str, Any], out: Path, world: int,
             cwds: list[Path] | None = None) -> list[dict[str, Any]]:
    """Run ``world`` worker processes (one plain process when world is 1); the results
    each rank wrote."""
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    procs = []
    for rank in range(world):
        cwd = cwds[rank] if cwds else out
        env = _env(rank if world > 1 else None, world, port)
        procs.append(subprocess.Popen([sys.executable, str(WORKER), job, str(out), json.dumps(args)], env=env,
                                      cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, f"worker failed:\n{stdout}\n{stderr}"
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("specs") / "tiny.geno"
    path.write_text(TINY)
    return path


def _search_args(tiny: Path, run_dir: Path, batch: int, order: int, out: str | None = None) -> dict[str, Any]:
    config = {"space": "darts_cnn", "network": str(tiny), "dataset": "digits", "epochs": 1, "batch_size": batch,
              "order": order, "seed": 3, "limit": 3, "augment": False, "threads": 1, "device": "cpu"}
    return {"config": config, "run_dir": str(run_dir), "out": out}


def _relative_gap(a: torch.Tensor, b: torch.Tensor, start: torch.Tensor) -> float:
    """How far two runs ended apart, relative to how far one of them moved."""
    return float((a - b).norm() / (b - start).norm())


# Float32 runs of ReLU networks agree only approximately: a different split of the same
# batch rounds a few pre-activations differently, and one that crosses zero switches its
# ReLU's gradient on or off. In float64 the two-rank and one-rank gradients agree to
# 1e-14. A real mistake (per-rank batch norm, summed instead of averaged gradients)
# moves the result by tens of percent; the bound below sits far from both.
GAP = 0.02


@pytest.mark.slow
@pytest.mark.parametrize("order", [1, 2])
def test_two_process_search_equals_one_process_with_the_global_batch(tmp_path: Path, tiny: Path, order: int) -> None:
    cwds = [tmp_path / "cwd0", tmp_path / "cwd1"]
    for c in cwds:
        c.mkdir()
    two = _run_job("search", _search_args(tiny, tmp_path / "run2", 4, order, out="found.geno"), tmp_path / "two", 2,
                   cwds)
    one = _run_job("search", _search_args(tiny, tmp_path / "run1", 8, order), tmp_path / "one", 1)
    # every rank ends with the very same alphas and derives the same genotype
    assert two[0]["alphas"] == two[1]["alphas"]
    assert two[0]["text"] == two[1]["text"]
    # exactly one genotype file: rank 0 wrote found.geno in its folder, rank 1 wrote nothing
    assert (cwds[0] / "found.geno").is_file()
    assert not any(cwds[1].iterdir())
    assert sorted(p.name for p in (tmp_path / "run2").glob("*.geno")) == ["epoch-001.geno", "genotype.geno",
                                                                          "recipe.geno"]
    # and the two ranks together computed what one process with their global batch computes
    for cell, rows in one[0]["alphas"].items():
        a = torch.tensor(two[0]["alphas"][cell], dtype=torch.float64)
        b = torch.tensor(rows, dtype=torch.float64)
        uniform = torch.full_like(b, 1.0 / b.shape[1])
        assert float((b - uniform).norm()) > 1e-4  # the alphas moved
        assert _relative_gap(a, b, uniform) < GAP, cell


@pytest.mark.slow
def test_two_process_training_equals_one_process_with_the_global_batch(tmp_path: Path) -> None:
    # the small skeleton with an auxiliary head, so the batch-split of the head's loss is checked too (GAP was
    # calibrated on this network; without the head the trunk alone moves less in 4 steps and float32 noise
    # weighs more)
    net = tmp_path / "small_aux.geno"
    net.write_text("genolang 1\nnetwork small_aux {\n    stem = cifar\n    stem_multiplier = 3\n    channels = 16\n"
                   "    layers = 8\n    reduce_at = 1/3, 2/3\n    auxiliary = 2/3\n    auxiliary_weight = 0.4\n"
                   "    drop_path = 0.1\n    input_size = 8\n}\n")
    base: dict[str, Any] = {"genotype": "darts_v2", "network": str(net),
                            "recipe": {"epochs": 1, "limit_train": 48, "limit_test": 40, "augment": False,
                                       "drop_path": 0.0, "cutout": 0, "seed": 5, "lr": 0.05}}
    two = _run_job("train", {**base, "run_dir": str(tmp_path / "run2"),
                             "recipe": {**base["recipe"], "batch_size": 6}}, tmp_path / "two", 2)
    _run_job("train", {**base, "run_dir": str(tmp_path / "run1"), "recipe": {**base["recipe"], "batch_size": 12}},
             tmp_path / "one", 1)
    assert two[0]["test_acc"] == two[1]["test_acc"]
    w2 = torch.load(tmp_path / "run2" / "model.pt", weights_only=True)["state_dict"]
    w1 = torch.load(tmp_path / "run1" / "model.pt", weights_only=True)["state_dict"]
    w0 = torch.load(tmp_path / "one" / "initial0.pt", weights_only=True)
    assert w1.keys() == w2.keys() == w0.keys()
    keys = [k for k in w1 if w1[k].is_floating_point() and not k.endswith(("running_mean", "running_var"))]
    flat = [torch.cat([w[k].double().flatten() for k in keys]) for w in (w2, w1, w0)]
    assert _relative_gap(*flat) < GAP
    # the running statistics are those of the global batches too
    stats = [k for k in w1 if k.endswith(("running_mean", "running_var"))]
    flat = [torch.cat([w[k].double().flatten() for k in stats]) for w in (w2, w1, w0)]
    assert _relative_gap(*flat) < GAP
    metrics = [json.loads(line) for line in (tmp_path / "run2" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1 and metrics[0]["epoch"] == 1


@pytest.mark.slow
def test_a_two_process_comparison_agrees_on_every_rank_and_rank_0_writes(tmp_path: Path) -> None:
    from _train_data import write_skeletons

    tiny = write_skeletons(tmp_path / "specs")[0]
    args = {"out_dir": str(tmp_path / "cmp"),
            "config": {"genotypes": ["darts_v1", "darts_v2"], "network": str(tiny), "seeds": [0, 1],
                       "options": {"epochs": 1, "limit_train": 24, "limit_test": 16, "batch_size": 6}}}
    ranks = _run_job("compare", args, tmp_path / "two", 2)
    assert ranks[0]["rows"] == ranks[1]["rows"] and ranks[0]["tests"] == ranks[1]["tests"]
    written = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert written["rows"] == ranks[0]["rows"] and written["status"] == "done"
    assert sorted(p.name for p in (tmp_path / "cmp" / "darts_v2").iterdir()) == ["seed-0", "seed-1"]


@pytest.mark.slow
def test_a_killed_rank_makes_the_other_fail_clearly(tmp_path: Path, tiny: Path) -> None:
    port = _free_port()
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "genolang", "search", "darts_cnn", "--network", str(tiny), "--dataset", "digits",
           "--epochs", "3", "--batch-size", "4", "--run-dir", str(run_dir), "--threads", "1", "--quiet",
           "--device", "cpu"]
    procs = [subprocess.Popen(cmd, env=_env(r, 2, port), cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "run.json").is_file():
            assert time.monotonic() < deadline, "the search never started"
            assert procs[0].poll() is None, procs[0].communicate()
            time.sleep(0.2)
        time.sleep(1.0)
        procs[1].send_signal(signal.SIGKILL)
        started = time.monotonic()
        _, stderr = procs[0].communicate(timeout=90)
        waited = time.monotonic() - started
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[0].returncode == 1, stderr
    assert "another rank probably died" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert waited < 90
