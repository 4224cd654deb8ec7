"""Benchmark: parse, check and lower a spec with 1,000 intermediate nodes.

The generated file holds a space with one cell of 1,000 nodes (2 inputs, keep 2) and a
genotype on it whose node k reads the two nodes before it, so every name is resolved and
every edge lowered. Prints the timings (seconds) as JSON; the goal is a total under 1 s.

    python bench/parse_bench.py [--nodes 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import time

from genolang.ir.lower import lower_genotype
from genolang.parse.parser import parse
from genolang.spec.check import check
from genolang.spec.resolve import Library

OPS = ("skip_connect", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3")


def make_spec(nodes: int) -> str:
    """The text of a space ``big`` with one cell of ``nodes`` nodes and a genotype on it."""
    lines = [
        "genolang 1",
        "",
        "space big {",
        f"    ops = none, {', '.join(OPS)}",
        "    cell normal {",
        "        inputs = 2",
        f"        nodes = {nodes}",
        "        keep = 2",
        "        output = concat",
        "    }",
        "}",
        "",
        "genotype big_geno : big {",
        "    normal {",
    ]
    names = ["c0", "c1"]
    for k in range(nodes):
        name = f"n{k + 2}"
        a, b = names[-2], names[-1]
        lines.append(f"        {name} = {OPS[k % len(OPS)]}({a}) + {OPS[(k + 3) % len(OPS)]}({b})")
        names.append(name)
    lines.append(f"        out = concat({names[2]}..{names[-1]})")
    lines += ["    }", "}", ""]
    return "\n".join(lines)


def run(nodes: int) -> dict[str, float]:
    text = make_spec(nodes)
    t0 = time.perf_counter()
    spec = parse(text, "big.geno")
    t1 = time.perf_counter()
    result = check(spec, text, Library([])).raise_errors()
    t2 = time.perf_counter()
    cells = lower_genotype(result.genotypes["big_geno"])
    t3 = time.perf_counter()
    assert len(cells["normal"].edges()) == 2 * nodes
    return {"parse_s": t1 - t0, "check_s": t2 - t1, "lower_s": t3 - t2, "total_s": t3 - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000, help="intermediate nodes in the cell")
    ap.add_argument("--repeat", type=int, default=3, help="runs; the fastest is reported")
    args = ap.parse_args()
    parse("genolang 1\n")  # build the parser once, outside the timings
    runs = [run(args.nodes) for _ in range(max(args.repeat, 1))]
    best = min(runs, key=lambda r: r["total_s"])
    out = {"nodes": args.nodes, "bytes": len(make_spec(args.nodes)), **{k: round(v, 4) for k, v in best.items()},
           "goal_s": 1.0, "ok": best["total_s"] < 1.0}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
