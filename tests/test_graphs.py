"""CUDA graphs (``genolang.run.graphs``) on a machine without a GPU: the capture's
sequence through a stand-in for ``torch.cuda``, the host-sync counter that tells a step
a GPU could capture, and the bench's ``--cuda-graphs`` refusals."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from _cli import fails_with_usage, run
from genolang.bench import BenchConfig, search_step
from genolang.errors import UsageError
from genolang.run import graphs
from genolang.run.graphs import GraphedStep, HostSyncs

pytestmark = pytest.mark.usefixtures("one_thread")


class FakeCuda:
    """What ``GraphedStep`` uses of ``torch.cuda``, recording the order of events."""

    def __init__(self, fail: str | None = None) -> None:
        self.events: list[str] = []
        self.stream_now = "default"
        self.fail = fail
        self.capturing = False

    def Stream(self, device: torch.device) -> Any:
        return SimpleNamespace(name="side", wait_stream=lambda other: self.events.append(f"side waits {other.name}"))

    def current_stream(self, device: torch.device) -> Any:
        return SimpleNamespace(name=self.stream_now,
                               wait_stream=lambda other: self.events.append(f"{self.stream_now} waits {other.name}"))

    @contextlib.contextmanager
    def stream(self, s: Any) -> Iterator[None]:
        before, self.stream_now = self.stream_now, s.name
        try:
            yield
        finally:
            self.stream_now = before

    def CUDAGraph(self) -> Any:
        return SimpleNamespace(replay=lambda: self.events.append("replay"))

    @contextlib.contextmanager
    def graph(self, g: Any) -> Iterator[None]:
        self.events.append("capture begins")
        self.capturing = True
        try:
            yield
            if self.fail:
                raise RuntimeError(self.fail)
        finally:
            self.capturing = False
        self.events.append("capture ends")

    def synchronize(self, device: torch.device) -> None:
        self.events.append("synchronize")

    def is_current_stream_capturing(self) -> bool:
        return self.capturing


def test_a_graphed_step_warms_up_on_a_side_stream_captures_once_then_replays(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCuda()
    monkeypatch.setattr(graphs, "_cuda", fake)
    cuda = torch.device("cuda")
    step = GraphedStep(lambda: fake.events.append(
        f"step on {fake.stream_now}{' (captured)' if graphs.capturing(cuda) else ''}"), cuda, warmup=2)
    before = step.capture_s
    step()
    step()
    step()
    assert fake.events == [
        "side waits default", "step on side", "step on side", "default waits side",
        "capture begins", "step on default (captured)", "capture ends", "synchronize",
        "replay", "replay", "replay"]
    assert before is None and step.capture_s is not None and step.capture_s >= 0


def test_a_step_that_cannot_be_captured_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graphs, "_cuda", FakeCuda(fail="operation not permitted when stream is capturing"))
    step = GraphedStep(lambda: None, torch.device("cuda"), warmup=1)
    with pytest.raises(UsageError, match="cannot be captured in a CUDA graph: operation not permitted"):
        step()
    assert step.graph is None


def test_a_graphed_step_needs_cuda() -> None:
    with pytest.raises(UsageError, match="this run is on cpu"):
        GraphedStep(lambda: None, torch.device("cpu"))
    assert not graphs.capturing(torch.device("cpu"))


def test_host_syncs_counts_what_waits_for_the_device_and_where() -> None:
    t = torch.tensor([1.0, 0.0, 3.0])
    with HostSyncs() as syncs:
        t.sum().item()  # a value read
        if bool((t != 0).all()):  # a truth value
            pass
        t.nonzero()  # a data-dependent shape
        t[t > 0]  # a boolean mask
        t + 1  # waits for nothing
        t[torch.tensor([0, 2])]  # an index by positions: no wait
    assert syncs.total() == 4
    assert set(syncs.counts) == {"?"}


def test_host_syncs_sees_masks_counts_and_ranges_read_from_the_data() -> None:
    t = torch.tensor([1.0, 0.0, 3.0])
    with HostSyncs() as syncs:
        t[t > 0] = 0.0  # index_put with a boolean mask
        t[t != 1]  # a boolean mask read
        torch.tensor([0, 2, 2]).bincount()  # the output's length is the largest value
        t.histc(bins=4)  # min = max = 0: the range is read from the data
        torch.allclose(t, t)  # a truth value
    assert syncs.total() == 5
    with HostSyncs() as syncs:
        t.histc(bins=4, min=0.0, max=4.0)  # a given range: nothing to read
        torch.tensor([1, 2]).repeat_interleave(torch.tensor([2, 1]), output_size=3)  # a given size
        t[torch.tensor([0, 2])] = 1.0  # index_put by positions
    assert syncs.total() == 0


def test_host_syncs_skips_the_step_counter_of_an_optimizer_and_cpu_reads_of_a_cuda_run() -> None:
    p = torch.nn.Parameter(torch.randn(4))
    opt = torch.optim.Adam([p], lr=0.1)
    for _ in range(2):
        p.grad = torch.randn(4)
        with HostSyncs() as syncs:
            opt.step()  # reads its CPU step counter with .item()
        assert syncs.total() == 0
    with HostSyncs("cuda") as syncs:
        torch.tensor(2.0).item()  # a CPU scalar: nothing to wait for on a CUDA run
    assert syncs.total() == 0


def test_a_graph_ready_search_step_leaves_out_recompute_convs() -> None:
    """With ``cuda_graphs`` the search step runs without ``recompute_convs`` (its
    executors' forwards check the alpha weights for zeros on the host) and refuses it
    when asked for; built on the CPU, where it is not run (its Adam is capturable)."""
    tiny = BenchConfig(network="cifar_search", channels=4, layers=3, batch_size=2, input_size=8, cuda_graphs=True)
    step = search_step(tiny, torch.device("cpu"))
    assert "recompute_convs" not in step.info["passes"] and "scale_bn" in step.info["passes"]
    assert step.info["cuda_graphs"] is True
    with pytest.raises(UsageError, match="cannot capture the pass recompute_convs"):
        search_step(BenchConfig(network="cifar_search", channels=4, layers=3, batch_size=2, input_size=8,
                                cuda_graphs=True, passes=("group_convs", "recompute_convs")), torch.device("cpu"))


def test_bench_cuda_graphs_refusals() -> None:
    tiny = ("--channels", "4", "--layers", "3", "--batch-size", "2", "--input-size", "8", "--iters", "1",
            "--warmup", "0", "--threads", "1")
    fails_with_usage(run("bench", "search-step", "--cuda-graphs", *tiny), "--cuda-graphs captures CUDA graphs",
                     "this run is on cpu")
    fails_with_usage(run("bench", "search-step", "--cuda-graphs", "--compile", *tiny),
                     "--cuda-graphs and --compile")
    fails_with_usage(run("bench", "train-step", "--cuda-graphs", "--count-ops", *tiny), "--count-ops counts")


def test_bench_count_ops_reports_host_syncs_and_their_sites() -> None:
    tiny = ("--channels", "4", "--layers", "3", "--batch-size", "2", "--input-size", "8", "--warmup", "1",
            "--threads", "1", "--json", "--count-ops")
    d = json.loads(run("bench", "search-step", *tiny).stdout.strip().splitlines()[-1])
    assert d["host_syncs"] == 2  # the zero check of the BN scales, once per forward
    assert [n for _, n in d["sync_sites"]] == [2] and "nets/supernet.py" in d["sync_sites"][0][0]
    free = json.loads(run("bench", "search-step", *tiny, "--passes",
                          "drop_none,share_relu,share_param_free,group_convs,merge_kernels,scale_bn,sum_by_source"
                          ).stdout.strip().splitlines()[-1])
    assert free["host_syncs"] == 0 and free["sync_sites"] == []


@pytest.mark.parametrize(("method", "draws"), [("darts", False), ("drnas", True), ("gdas", True),
                                               ("sdarts_rs", False), ("pc_darts", False)])
def test_a_second_order_step_whose_forward_draws_random_numbers_refuses_capture(
        method: str, draws: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The two finite-difference passes must draw the same random numbers, which a
    captured graph cannot rewind to: a forward that draws (a sampled relaxation:
    Dirichlet, Gumbel), as the uncaptured warm-up steps find, is refused
    while capturing; one that draws none is captured (DARTS's; random smoothing draws
    its perturbation outside the architecture step, partial channels shuffle by a fixed
    permutation)."""
    from genolang.run.graphs import CannotCapture
    from genolang.search import architect

    step = search_step(BenchConfig(network="cifar_search", channels=4, layers=3, batch_size=2, input_size=8,
                                   method=method, order=2), torch.device("cpu"))
    step.run()  # uncaptured, as GraphedStep's warm-up steps
    monkeypatch.setattr(architect, "capturing", lambda device: True)
    if not draws:
        step.run()
    else:
        with pytest.raises(CannotCapture, match="draws random numbers"):
            step.run()
