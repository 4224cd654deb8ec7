"""Benchmark: every search method side by side, as the README's methods table shows them.

For each method of ``genolang search --list-methods`` (or those named with ``--methods``):

* one search iteration on random CIFAR-sized data (``genolang bench search-step
  --method M``: darts_cnn on cifar_search, C=16, 8 cells, batch 16, 32x32, first order),
  its median seconds and the process's peak resident memory, each method in its own
  process so that peak memory is its own;
* one epoch of a real search on the offline digits (``genolang search darts_cnn --method
  M --epochs 1``, the default digits recipe otherwise), its wall time, the validation
  accuracy of the supernet and the decisiveness of its alphas (1 epoch is far too short to
  judge a method: the column says the method runs end to end, selection included).

Prints ``uptime`` before and after (figures from a loaded machine are not results), a
Markdown table and, with ``--json``, one JSON object.

    python bench/methods.py                       # every method, 3 timed steps each
    python bench/methods.py --methods darts,gdas --iters 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _genolang(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("genolang")
    cmd = [str(exe), *args] if exe.exists() else [sys.executable, "-m", "genolang.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "load average: {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def methods() -> list[str]:
    from genolang.search.method import PRESETS

    return sorted(PRESETS)


def step(method: str, iters: int, threads: int) -> dict[str, Any]:
    proc = _genolang("bench", "search-step", "--method", method, "--iters", str(iters), "--warmup", "1",
                     "--threads", str(threads), "--json", timeout=1800)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    out = json.loads(proc.stdout)
    return {"median_s": out["median_s"], "peak_rss_mb": out["peak_rss_mb"]}


# settings of the one-epoch run: DARTS-PT decides every edge at once (interval 0) instead of
# fine-tuning an epoch between its 17 decisions per cell type
EPOCH_SETTINGS = {"darts_pt": ("--set", "perturbation.interval=0")}


def one_epoch(method: str, threads: int, work: Path) -> dict[str, Any]:
    run_dir = work / f"run-{method}"
    t0 = time.perf_counter()
    proc = _genolang("search", "darts_cnn", "--method", method, *EPOCH_SETTINGS.get(method, ()), "--epochs", "1",
                     "--threads", str(threads),
                     "--run-dir", str(run_dir), "--out", str(work / f"{method}.geno"), "--quiet", timeout=3600)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:], "seconds": seconds}
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    final = run.get("final", {})
    decisive = run.get("decisiveness") or {}
    return {"seconds": seconds, "valid_acc": final.get("valid_acc"),
            "kept_over_uniform": decisive.get("kept_over_uniform")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", help="comma-separated method names (default: all)")
    parser.add_argument("--iters", type=int, default=3, help="timed search-step iterations per method")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-epoch", action="store_true", help="skip the one-epoch digits searches")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    names = args.methods.split(",") if args.methods else methods()
    before = _uptime()
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="genolang-methods-") as tmp:
        for name in names:
            rows[name] = {"step": step(name, args.iters, args.threads)}
            if not args.no_epoch:
                rows[name]["epoch"] = one_epoch(name, args.threads, Path(tmp))
            print(f"{name}: {rows[name]}", file=sys.stderr, flush=True)
    after = _uptime()
    print(f"before: {before}\nafter:  {after}\n")
    print("| method | search step (s) | peak memory (MiB) | 1 digits epoch (s) | valid acc | kept ops / uniform |")
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        s, e = row["step"], row.get("epoch", {})

        def fmt(value: Any, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        print(f"| `{name}` | {fmt(s.get('median_s'), '.2f')} | {fmt(s.get('peak_rss_mb'), '.0f')} | "
              f"{fmt(e.get('seconds'), '.0f')} | {fmt(e.get('valid_acc'), '.3f')} | "
              f"{fmt(e.get('kept_over_uniform'), '.2f')} |" + (f" {s['error']}" if "error" in s else "")
              + (f" {e['error']}" if "error" in e else ""))
    if args.json:
        print(json.dumps({"before": before, "after": after, "methods": rows}, indent=1))


if __name__ == "__main__":
    main()
