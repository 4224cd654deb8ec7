"""Timing one step of a compiled network on random data.

Steps are registered by name (``train-step``, ``eval-step``, ``search-step``; others
register themselves with ``register_step``). A step factory receives the
``BenchConfig`` and returns a ``Step``: a zero-argument callable doing exactly the
work to time, plus facts about what it built. ``run_bench`` calls it ``warmup`` times
untimed, then ``iters`` times timed (synchronising CUDA around each call), and
reports median and minimum seconds and the process's peak resident memory.

With ``count_ops`` it counts instead of timing: after the warm-up (at least one call,
so that optimizer state exists as in steady state) one call runs under a
``TorchDispatchMode`` that counts every aten op dispatched below autograd, forward and
backward (``count_aten_ops``), and the ops that make the host wait for the device
(``genolang.run.graphs.HostSyncs``); the result has ``aten_ops``, ``top_ops``,
``host_syncs`` and ``sync_sites`` and no times. Counts do not depend on the machine's
load, only on the code and the shapes.

With ``cuda_graphs`` (CUDA only) the step is captured in a CUDA graph on its first call,
after a few eager calls on a side stream, and replayed on every call
(``genolang.run.graphs.GraphedStep``); ``info.capture_s`` reports the warm-up and capture."""

from __future__ import annotations

import collections
import dataclasses
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from genolang.errors import UsageError, did_you_mean
from genolang.run.graphs import GRAPH_WARMUP, GraphedStep, HostSyncs
from genolang.run.runtime import pick_device


@dataclass(frozen=True)
class BenchConfig:
    """What to time: a genotype on a skeleton (names or .geno paths), its size, and
    how. Sizes left None are the skeleton's (and then the defaults: 3x32x32, 10 classes)."""

    genotype: str = "darts_v2"
    network: str = "cifar"
    channels: int | None = None
    layers: int | None = None
    batch_size: int = 32
    input_size: int | None = None
    in_channels: int | None = None
    classes: int | None = None
    seq_len: int = 35
    iters: int = 10
    warmup: int = 2
    threads: int = 2
    device: str = "cpu"
    seed: int = 0
    # search-step: the space, the search method (a preset of genolang.search.method, its
    # components' hyperparameters set by ``params``: "component.parameter" -> value), the
    # order of the architecture gradient and its Hessian-vector product (second order), the
    # supernet's passes (None: the default passes) and memory format
    space: str = "darts_cnn"
    method: str = "darts"
    params: tuple[tuple[str, Any], ...] = ()
    order: int = 1
    hessian: str = "fd"
    passes: tuple[str, ...] | None = None
    channels_last: bool = True
    # the supernet's CPU kernel choices (SupernetOptions.cpu_kernels)
    cpu_kernels: bool = True
    # torch.compile the network's forward (search-step: each cell's) before timing, in
    # this mode of torch.compile's ("reduce-overhead": CUDA graphs on CUDA)
    compile: bool = False
    compile_mode: str = "default"
    # count the aten ops of one step (after the warm-up) instead of timing
    count_ops: bool = False
    # capture the step in a CUDA graph and replay it (``genolang.run.graphs``); a
    # search step then runs without ``recompute_convs`` and with a capturable Adam
    cuda_graphs: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Step:
    """The callable to time and what to report about it."""

    run: Callable[[], None]
    info: dict[str, Any] = field(default_factory=dict)


StepFactory = Callable[[BenchConfig, torch.device], Step]
STEPS: dict[str, StepFactory] = {}


def register_step(name: str) -> Callable[[StepFactory], StepFactory]:
    """Register a step factory under ``name`` (``genolang bench NAME``)."""
    def deco(fn: StepFactory) -> StepFactory:
        if name in STEPS:
            raise ValueError(f"bench step {name!r} is registered twice")
        STEPS[name] = fn
        return fn

    return deco


@dataclass(frozen=True)
class BenchResult:
    """Timings of one benchmark, or (``config.count_ops``) its op counts: then
    ``times_s`` is empty and the seconds are None."""

    step: str
    times_s: tuple[float, ...]
    median_s: float | None
    min_s: float | None
    mean_s: float | None
    peak_rss_mb: float
    device: str
    threads: int
    config: dict[str, Any]
    info: dict[str, Any]
    aten_ops: int | None = None  # ops dispatched by one step (count_ops)
    top_ops: tuple[tuple[str, int], ...] = ()  # the most frequent of them, with their counts
    distinct_ops: int | None = None
    host_syncs: int | None = None  # of them, those that make the host wait for the device
    sync_sites: tuple[tuple[str, int], ...] = ()  # where they are called, with their counts

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["times_s"] = list(self.times_s)
        d["top_ops"] = [list(t) for t in self.top_ops]
        d["sync_sites"] = [list(t) for t in self.sync_sites]
        return d


TOP_OPS = 15  # how many of the most frequent ops a count reports


class OpCounter(TorchDispatchMode):
    """Counts every aten op dispatched while it is active, by overload name
    (``aten.add_.Tensor``): below autograd, so the ops of backward passes run inside it
    count too, and views, detaches and copies count as ops."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.counts[str(func)] += 1
        return func(*args, **(kwargs or {}))


def count_aten_ops(run: Callable[[], object], device: torch.device | str = "cpu"
                   ) -> tuple[collections.Counter[str], HostSyncs]:
    """The aten ops ``run()`` dispatches, with how often each, and its host syncs on a
    run on ``device``."""
    counter, syncs = OpCounter(), HostSyncs(device)
    with counter, syncs:
        run()
    return counter.counts, syncs


def peak_rss_mb() -> float:
    """The process's peak resident set size in MiB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def compile_for_bench(config: BenchConfig, device: torch.device, *, auxiliary: bool) -> tuple[nn.Module, Any]:
    """The network of ``config`` on ``device`` and its ``DataShape``."""
    from genolang.nets.compile import apply_overrides, build, check_pair, data_shape
    from genolang.spec.lookup import load_named

    geno = load_named("genotype", config.genotype)
    network = load_named("network", config.network)
    check_pair(geno, network)
    if network.kind == "cnn":
        network = apply_overrides(network, channels=config.channels, layers=config.layers)
        shape = data_shape(network, in_channels=config.in_channels, input_size=config.input_size,
                           classes=config.classes)
    else:
        shape = data_shape(network)
    torch.manual_seed(config.seed)
    return build(geno, network, shape, auxiliary=auxiliary, batch=config.batch_size, training=True).to(device), shape


def maybe_compile(module: nn.Module, config: BenchConfig) -> None:
    """Replace ``module.forward`` by its ``torch.compile``d version when the config asks
    for it; compilation happens on the first (warm-up) call. Static shapes: a supernet
    cell's grouped executors share their code (one frame for many weight shapes), and
    with dynamo's automatic dynamic shapes inductor's graph of one executor was handed
    another's (3x3 against 5x5 depthwise weights: ``assert_size_stride`` failed)."""
    if config.compile:
        module.forward = torch.compile(module.forward, mode=config.compile_mode, dynamic=False)


def _batch(config: BenchConfig, shape: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(config.seed)
    if shape.kind == "rnn":
        words = torch.randint(0, shape.ntokens, (config.seq_len + 1, config.batch_size), generator=gen)
        return words[:-1].to(device), words[1:].reshape(-1).to(device)
    x = torch.randn(config.batch_size, shape.in_channels, shape.input_size, shape.input_size, generator=gen)
    y = torch.randint(0, shape.classes, (config.batch_size,), generator=gen)
    return x.to(device), y.to(device)


@register_step("train-step")
def train_step(config: BenchConfig, device: torch.device) -> Step:
    """Forward (with the auxiliary head, weight 0.4), backward, gradient clip at 5 and
    an SGD step (momentum 0.9, weight decay 3e-4) on one random batch; for a recurrent
    model one (seq_len, batch) chunk with the DARTS PTB settings."""
    from genolang.nets.rnn import RNNModel

    model, shape = compile_for_bench(config, device, auxiliary=True)
    model.train()
    maybe_compile(model, config)
    x, y = _batch(config, shape, device)
    criterion = nn.CrossEntropyLoss()
    if isinstance(model, RNNModel):
        opt = torch.optim.SGD(model.parameters(), lr=20.0, weight_decay=8e-7)
        hidden = model.init_hidden(config.batch_size)

        def rnn_step() -> None:
            opt.zero_grad(set_to_none=True)
            log_prob, _, raw, _ = model(x, hidden, return_h=True)
            loss = nn.functional.nll_loss(log_prob.view(-1, model.ntokens), y)
            loss = loss + 1e-3 * (raw[1:] - raw[:-1]).pow(2).mean()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            opt.step()

        return Step(rnn_step, _info(model, shape))
    opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)

    def cnn_step() -> None:
        opt.zero_grad(set_to_none=True)
        logits, aux = model(x, return_aux=True)
        loss = criterion(logits, y)
        if aux is not None:
            loss = loss + 0.4 * criterion(aux, y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    return Step(cnn_step, _info(model, shape))


@register_step("eval-step")
def eval_step(config: BenchConfig, device: torch.device) -> Step:
    """A forward pass in eval mode under ``torch.no_grad`` on one random batch."""
    from genolang.nets.rnn import RNNModel

    model, shape = compile_for_bench(config, device, auxiliary=False)
    model.eval()
    maybe_compile(model, config)
    x, _ = _batch(config, shape, device)
    if isinstance(model, RNNModel):
        hidden = model.init_hidden(config.batch_size)

        def rnn_forward() -> None:
            with torch.no_grad():
                model(x, hidden)

        return Step(rnn_forward, _info(model, shape))

    def forward() -> None:
        with torch.no_grad():
            model(x)

    return Step(forward, _info(model, shape))


@register_step("search-step")
def search_step(config: BenchConfig, device: torch.device) -> Step:
    """One search iteration of ``config.method`` on random data, as ``genolang search``
    runs it after any warm-up: the method's architecture step (first or second order,
    with its regularizers) on a validation batch, then its weight step (SGD, momentum
    0.9, weight decay 3e-4, gradient norm clipped at 5, with its perturbation) on a
    training batch, in the method's order, on the supernet of ``config.space`` with the
    method's relaxation and transforms, compiled with ``config.passes``. A method's
    final selection (DARTS-PT's decisions, random search's ranking) is not timed."""
    from genolang.nets.compile import apply_overrides, data_shape
    from genolang.nets.supernet import SupernetOptions, build_supernet
    from genolang.passes import DEFAULT_PASSES
    from genolang.passes.recompute_convs import NAME as RECOMPUTE
    from genolang.search.method import MethodRun, override, preset
    from genolang.search.recipe import SearchConfig, refuse_order_without_arch_steps, resolve_recipe
    from genolang.search.step import image_iteration
    from genolang.spec.lookup import load_named

    space = load_named("space", config.space)
    network = load_named("network", config.network)
    if space.kind != "cnn" or network.kind != "cnn":
        raise UsageError(f"search-step times CNN spaces on CNN skeletons; '{config.space}' on '{config.network}' "
                         "is not one")
    network = apply_overrides(network, channels=config.channels, layers=config.layers)
    shape = data_shape(network, in_channels=config.in_channels, input_size=config.input_size, classes=config.classes)
    from genolang.nets.compile import SIZE_FIX
    from genolang.nets.size import estimate_supernet, refuse_too_large

    refuse_too_large(estimate_supernet(space, network, in_channels=shape.in_channels or 3,
                                       input_size=shape.input_size or 32, classes=shape.classes or 10),
                     f"the supernet of space '{space.name}' on network '{network.name}'", SIZE_FIX,
                     2 * config.batch_size, training=True)
    passes = DEFAULT_PASSES if config.passes is None else config.passes
    if config.cuda_graphs:  # its executors divide by the BN scales: a forward checks them for zeros on the host
        if config.passes is None:
            passes = tuple(p for p in passes if p != RECOMPUTE)
        elif RECOMPUTE in passes:
            raise UsageError(f"--cuda-graphs cannot capture the pass {RECOMPUTE}: its grouped calls divide by the "
                             "alpha weights, and each forward checks on the host that none is zero; leave it out "
                             "of --passes")
    assert shape.in_channels is not None and shape.input_size is not None and shape.classes is not None  # set for a CNN
    spec = override(preset(config.method).spec(), params=dict(config.params))
    refuse_order_without_arch_steps(spec, config.order, config.method)
    # the method's settings as a CIFAR-10 search takes them, at the bench's order and Hessian
    recipe = dataclasses.replace(
        resolve_recipe(SearchConfig(space=config.space, dataset="cifar10", method=config.method), "cnn"),
        order=config.order, hessian=config.hessian, method=spec.to_json())
    epochs = 100
    method = MethodRun(spec, epochs)
    options = method.supernet_options(SupernetOptions(passes=passes, channels_last=config.channels_last,
                                                         cpu_kernels=config.cpu_kernels))
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    model = build_supernet(space, network, in_channels=shape.in_channels, input_size=shape.input_size,
                           classes=shape.classes, options=options).to(device)
    method.prepare(model)
    method.start_epoch(epochs)  # past any warm-up: the architecture step runs if the method has one
    for cell in model.cells.values():
        maybe_compile(cell, config)
    weights = model.weight_parameters()
    lr = recipe.lr
    opt = torch.optim.SGD(weights, lr=lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay, foreach=True)
    architect = method.architect(model, opt, recipe, capturable=config.cuda_graphs)
    train = _batch(config, shape, device)
    valid = _batch(dataclasses.replace(config, seed=config.seed + 1), shape, device)

    def step() -> None:
        model.train()
        image_iteration(model, architect, opt, weights, train, valid, lr, recipe.grad_clip, method=method)

    info = _info(model, shape)
    info["weights"] = sum(p.numel() for p in weights)  # without the architecture parameters
    info.update(order=config.order, hessian=config.hessian if config.order == 2 else None, method=spec.describe(),
                arch_step=method.arch_step_due(), passes=list(passes), channels_last=config.channels_last,
                cpu_kernels=config.cpu_kernels,
                compile=config.compile, cuda_graphs=config.cuda_graphs, torch=torch.__version__)
    return Step(step, info)


def _info(model: nn.Module, shape: Any) -> dict[str, Any]:
    from genolang.nets.count import count_params

    return {"params": count_params(model), "params_with_aux": count_params(model, exclude=()),
            "data_shape": shape.to_dict()}


def run_bench(name: str, config: BenchConfig) -> BenchResult:
    """Build the step ``name`` for ``config`` and time it. Sets torch's intra-op
    thread count to ``config.threads`` for the duration."""
    if name not in STEPS:
        raise UsageError(f"no benchmark step '{name}'{did_you_mean(name, STEPS)}; known: {', '.join(STEPS)}")
    if config.iters < 1 or config.warmup < 0 or config.threads < 1 or config.batch_size < 1:
        raise UsageError("--iters, --threads and --batch-size must be at least 1, --warmup at least 0")
    if config.order not in (1, 2):
        raise UsageError(f"--order must be 1 or 2, not {config.order}")
    if config.hessian not in ("fd", "exact"):
        raise UsageError(f"--hessian must be fd or exact, not {config.hessian!r}")
    if config.cuda_graphs and config.compile:
        raise UsageError("--cuda-graphs and --compile (or --compile-mode) both change how the step runs: give one "
                         "of them (--compile-mode reduce-overhead captures graphs through torch.compile)")
    if config.cuda_graphs and config.count_ops:
        raise UsageError("--count-ops counts the ops of an eager step, and a replayed graph dispatches none: "
                         "drop --cuda-graphs to count")
    device = pick_device(config.device)
    if config.cuda_graphs and device.type != "cuda":
        raise UsageError(f"--cuda-graphs captures CUDA graphs, and this run is on {device}: use --device cuda "
                         "(or auto on a machine with a GPU), or drop --cuda-graphs")
    before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    graphed = None
    try:
        step = STEPS[name](config, device)
        if config.cuda_graphs:
            graphed = GraphedStep(step.run, device)
            step = Step(graphed, step.info)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        first_step = None
        for _ in range(max(config.warmup, 1) if config.count_ops else config.warmup):
            began = time.perf_counter()
            step.run()
            sync()
            first_step = time.perf_counter() - began if first_step is None else first_step
        load_before = os.getloadavg()
        counts, syncs = count_aten_ops(step.run, device) if config.count_ops else (None, None)
        times, cpu = [], []
        for _ in range(0 if config.count_ops else config.iters):
            began, began_cpu = time.perf_counter(), time.process_time()
            step.run()
            sync()
            times.append(time.perf_counter() - began)
            cpu.append(time.process_time() - began_cpu)
        load_after = os.getloadavg()
    finally:
        torch.set_num_threads(before)
    info = dict(step.info)
    if first_step is not None:  # includes any compilation, capture and cuDNN autotuning
        info["first_step_s"] = round(first_step, 3)
    if graphed is not None:  # the graph's eager warm-up steps and its capture
        info.update(cuda_graphs=True, capture_s=None if graphed.capture_s is None else round(graphed.capture_s, 3),
                    graph_warmup_steps=GRAPH_WARMUP)
    info["loadavg_before"] = [round(x, 2) for x in load_before]
    info["loadavg_after"] = [round(x, 2) for x in load_after]
    if device.type == "cuda":
        info["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        info["gpu"] = torch.cuda.get_device_name(device)
    if counts is not None:
        assert syncs is not None  # counted with the ops
        sites = tuple(sorted(syncs.counts.items(), key=lambda kv: (-kv[1], kv[0])))
        return BenchResult(name, (), None, None, None, peak_rss_mb(), str(device), config.threads, config.to_dict(),
                           info, sum(counts.values()), tuple(counts.most_common(TOP_OPS)), len(counts),
                           syncs.total(), sites)
    # process CPU seconds over wall seconds per step: near the thread count when the
    # run had the cores to itself, much lower when it waited for them
    info["cpu_over_wall"] = [round(c / t, 2) for c, t in zip(cpu, times)]
    return BenchResult(name, tuple(times), statistics.median(times), min(times), statistics.fmean(times),
                       peak_rss_mb(), str(device), config.threads, config.to_dict(), info)
