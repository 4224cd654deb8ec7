"""The aten ops one search iteration dispatches (``genolang bench search-step
--count-ops``, docs/performance.md "Dispatched ops") must not grow: a guard against
changes that add per-edge or per-tensor ops to the supernet, the optimizer or the
architect. Counts, not timings: they do not depend on the machine or its load. A small
supernet (C=4, 3 cells, 8x8 input, batch 2) keeps it fast; the figures were recorded with
about 2% headroom. Lower them when a change removes ops. Two programs: the one a GPU
runs (``cpu_kernels`` off), which the op-count goal is about (kernel launches), and the
CPU's, whose kernel choices add views and layout copies."""

from __future__ import annotations

import pytest

from genolang.bench import BenchConfig, run_bench

# (order, cpu_kernels) -> the most aten ops one iteration may dispatch
# (recorded: 4,278 and 11,693 without the CPU kernels; 7,691 and 20,408 with them, which
# run merged kernels as one call per kernel size)
RECORDED = {(1, False): 4_360, (2, False): 11_920, (1, True): 7_850, (2, True): 20_820}


@pytest.mark.parametrize("cpu_kernels", [False, True], ids=["gpu-program", "cpu-program"])
@pytest.mark.parametrize("order", [1, 2])
def test_a_search_iteration_dispatches_no_more_ops_than_recorded(order: int, cpu_kernels: bool) -> None:
    config = BenchConfig(network="cifar_search", genotype="", channels=4, layers=3, input_size=8, batch_size=2,
                         order=order, count_ops=True, warmup=1, threads=1, cpu_kernels=cpu_kernels)
    result = run_bench("search-step", config)
    assert result.aten_ops is not None
    assert result.aten_ops <= RECORDED[order, cpu_kernels], (result.aten_ops, result.top_ops)
