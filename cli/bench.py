"""``genolang bench``: time one step of a network (train-step, eval-step, ...).

Adding a benchmark: register a step factory with ``genolang.bench.register_step``,
write a click command decorated with ``bench_options`` that calls ``report(NAME, ...)``,
and add a row to ``BENCH_COMMANDS`` (commands are imported only when used)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

import click

from genolang.cli.options import DEVICE, DEVICE_HELP, pipeline_help
from genolang.errors import UsageError, plural

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # torch.compile's modes
COUNT_BATCH = 4  # search-step's batch when counting ops: the batch of the original's count

# command name -> (module, attribute, one-line help)
BENCH_COMMANDS: dict[str, tuple[str, str, str]] = {
    "train-step": ("genolang.cli.bench", "train_step", "Time forward + backward + optimizer step."),
    "eval-step": ("genolang.cli.bench", "eval_step", "Time an inference forward pass (no_grad, eval mode)."),
    "search-step": ("genolang.cli.bench", "search_step",
                    "Time one search iteration of a method (architecture + weight step)."),
}


class BenchGroup(click.Group):
    """A group whose commands come from ``BENCH_COMMANDS``, imported on use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(BENCH_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in BENCH_COMMANDS:
            return None
        module, attr, _ = BENCH_COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(n, BENCH_COMMANDS[n][2]) for n in self.list_commands(ctx)])


@click.group("bench", cls=BenchGroup)
def bench() -> None:
    """Time one step of a compiled network on random data and print one JSON object
    (median_s, min_s, peak_rss_mb, config). Default: DARTS_V2 on the cifar skeleton,
    C=36, 20 cells, batch 32, 32x32, 10 classes, 2 threads, CPU.

    On a machine busy with other work, OpenMP's spinning threads can make a multi-thread
    step many times slower; set OMP_WAIT_POLICY=PASSIVE in the environment to compare."""


def bench_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options every benchmark takes."""
    options = [
        click.option("--genotype", default="darts_v2", show_default=True, help="Genotype name or .geno file."),
        click.option("--network", default="cifar", show_default=True, help="Skeleton name or .geno file."),
        click.option("--channels", type=click.IntRange(min=1), default=None,
                     help="Initial channels C (CNN skeletons) [the skeleton's: cifar 36]."),
        click.option("--layers", type=click.IntRange(min=1), default=None,
                     help="Number of cells (CNN skeletons) [the skeleton's: cifar 20]."),
        click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True,
                     help="Batch size (at least 2: batch norm needs two)."),
        click.option("--input-size", type=click.IntRange(min=1), default=None,
                     help="Image side [the skeleton's, else 32]."),
        click.option("--classes", type=click.IntRange(min=2), default=None,
                     help="Classes [the skeleton's, else 10]."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return common_options(fn)


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """How to time: iterations, warm-up, threads, device, output."""
    options = [
        click.option("--iters", type=click.IntRange(min=1), default=10, show_default=True, help="Timed steps."),
        click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True, help="Untimed steps first."),
        click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True,
                     help="torch.set_num_threads for the run."),
        click.option("--device", type=DEVICE, default="cpu", show_default=True, help=DEVICE_HELP),
        click.option("--compile", "compile_", is_flag=True,
                     help="torch.compile the network (search-step: each cell) first; the compile time "
                          "shows as info.first_step_s (the first warm-up step; with --warmup 0, in the first "
                          "timed step)."),
        click.option("--compile-mode", type=click.Choice(COMPILE_MODES), default=None,
                     help="torch.compile's mode (implies --compile; with --compile alone: default). "
                          "reduce-overhead captures CUDA graphs on CUDA; on the CPU it compiles as the "
                          "default mode does."),
        click.option("--cuda-graphs", is_flag=True,
                     help="Capture the step in a CUDA graph and replay it (CUDA only): a few eager steps on a "
                          "side stream, the capture (info.capture_s), then one replay per step (search-step: "
                          "without recompute_convs, with a capturable Adam)."),
        click.option("--count-ops", is_flag=True,
                     help="Count the aten ops one step dispatches (forward and backward, after the warm-up: at "
                          "least one step) instead of timing: aten_ops and top_ops in the JSON, and host_syncs "
                          "(the ops that wait for the device) with their sync_sites."),
        click.option("--json", "as_json", is_flag=True, help="Print only the JSON object (also the default output)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def report(step: str, as_json: bool, compile_: bool = False, compile_mode: str | None = None,
           **options: Any) -> None:
    """Run benchmark ``step`` with the command-line options and print the result."""
    from genolang.bench import BenchConfig, run_bench

    result = run_bench(step, BenchConfig(compile=compile_ or compile_mode is not None,
                                         compile_mode=compile_mode or "default", **options))
    d = result.to_dict()
    if not as_json and result.aten_ops is not None:
        top = ", ".join(f"{op} {n}" for op, n in result.top_ops[:5])
        click.echo(f"{step}: {result.aten_ops} aten ops in one step ({result.distinct_ops} distinct; {top}, ...), "
                   f"{plural(result.host_syncs or 0, 'host sync')}", err=True)
    elif not as_json:
        click.echo(f"{step}: median {d['median_s'] * 1000:.1f} ms, min {d['min_s'] * 1000:.1f} ms over "
                   f"{plural(len(d['times_s']), 'step')} on {d['device']} ({plural(d['threads'], 'thread')}); "
                   f"peak RSS {d['peak_rss_mb']:.0f} MiB", err=True)
    click.echo(json.dumps(d, sort_keys=True))


@click.command("train-step")
@bench_options
def train_step(as_json: bool, **options: Any) -> None:
    """Time forward + backward + SGD step (auxiliary head and grad clip included)."""
    report("train-step", as_json, **options)


@click.command("eval-step")
@bench_options
def eval_step(as_json: bool, **options: Any) -> None:
    """Time a forward pass in eval mode under no_grad."""
    report("eval-step", as_json, **options)


@click.command("search-step")
@click.option("--space", default="darts_cnn", show_default=True, help="CNN space name or .geno file.")
@click.option("--network", default="cifar_search", show_default=True, help="CNN skeleton name or .geno file.")
@click.option("--method", default="darts", show_default=True, metavar="NAME",
              help="Search method (genolang search --list-methods): its relaxation, transforms, regularizers, "
                   "perturbation and step order.")
@click.option("--set", "settings", multiple=True, metavar="COMPONENT.PARAM=VALUE",
              help="Set a component's hyperparameter, e.g. --set gumbel.tau_max=5 (repeatable).")
@click.option("--order", type=click.IntRange(1, 2), default=1, show_default=True,
              help="1: first-order architecture step; 2: second order (unrolled).")
@click.option("--hessian", type=click.Choice(["fd", "exact"]), default="fd", show_default=True,
              help="Second order: the finite-difference Hessian-vector product (the paper's) or the exact one "
                   "(double backward).")
@click.option("--channels", type=click.IntRange(min=1), default=None,
              help="Initial channels C [the skeleton's: cifar_search 16].")
@click.option("--layers", type=click.IntRange(min=1), default=None,
              help="Number of cells [the skeleton's: cifar_search 8].")
@click.option("--batch-size", type=click.IntRange(min=2), default=None,
              help="Batch size (of each of the two batches).  [default: 16; 4 with --count-ops]")
@click.option("--input-size", type=click.IntRange(min=1), default=None, help="Image side [the skeleton's, else 32].")
@click.option("--in-channels", type=click.IntRange(min=1), default=None,
              help="Image channels [the skeleton's, else 3].")
@click.option("--classes", type=click.IntRange(min=2), default=None, help="Classes [the skeleton's, else 10].")
@click.option("--passes", default=None, metavar="A,B,...",
              help="Run only these passes over the cell IR, in this order (default: all; '' for none). "
                   + pipeline_help())
@click.option("--no-opt", is_flag=True, help="No passes and NCHW tensors: the supernet as the paper's code builds it.")
@click.option("--channels-last/--no-channels-last", default=True, show_default=True,
              help="Keep the supernet's tensors channels-last (NHWC in memory).")
@click.option("--cpu-kernels/--no-cpu-kernels", default=True, show_default=True,
              help="On the CPU, run merged kernels as one call per kernel size, tile shared-input depthwise convs "
                   "and run dilated ones on their input's phases (faster there, by more but cheaper ops); off, the "
                   "CPU runs the ops a GPU runs.")
@common_options
def search_step(as_json: bool, passes: str | None, no_opt: bool, channels_last: bool, cpu_kernels: bool,
                settings: tuple[str, ...], batch_size: int | None, **options: Any) -> None:
    """Time one search iteration of a method on random data: its architecture step
    (first or second order) on one batch, then its weight step on another, in the
    method's order, on the supernet with its relaxation and transforms, compiled with the
    chosen passes (a final selection is not timed). Default: DARTS on darts_cnn on
    cifar_search (C=16, 8 cells), batch 16, 32x32x3, 10 classes, 2 threads, CPU.

    Peak RSS is the process's: compare configurations in separate runs. With
    --count-ops (batch 4 unless given) the count is comparable with the original code's
    under the same counting (docs/performance.md, "Dispatched ops"); add
    --no-cpu-kernels to count, on the CPU, the program a GPU runs (the CPU kernels add
    views, layout copies and smaller calls)."""
    from genolang.cli.search import parse_settings
    from genolang.passes import parse_passes

    if no_opt and passes is not None:
        raise UsageError("--no-opt and --passes contradict each other: --no-opt runs no pass; give one of them")
    chosen = () if no_opt else (parse_passes(passes) if passes is not None else None)
    if batch_size is None:
        batch_size = COUNT_BATCH if options["count_ops"] else 16
    report("search-step", as_json, passes=chosen, channels_last=channels_last and not no_opt,
           cpu_kernels=cpu_kernels and not no_opt, genotype="",
           params=parse_settings(settings), batch_size=batch_size, **options)
