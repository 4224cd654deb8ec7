"""A short CUDA check: the search iteration of the original DARTS code and genolang's,
eager and replayed as a CUDA graph, at several batch sizes and both orders, and one
retraining configuration with and without mixed precision; JSON lines with times and
peak GPU memory. Runs in a few minutes on one GPU:

    pip install -e .            # genolang and its pure-Python dependencies
    python bench/gpu_check.py --original path/to/darts/cnn   # --iters 10 --warmup 3

Search: the DARTS CNN space on the cifar_search skeleton (C=16, 8 cells), batches of
16, 64 and 256 (``--batches``), 32x32 random images, first and second order: the
architecture step then the weight step (SGD, momentum 0.9, weight decay 3e-4, gradient
clipping at 5), through ``genolang.bench`` (``genolang bench search-step``), eager and
with ``--cuda-graphs``. With ``--original`` (the ``cnn`` folder of a checkout of
quark0/darts, not edited) the original's ``model_search.Network`` and
``architect.Architect`` run the body of its ``train_search.train()`` loop on the same
sizes. Retraining: DARTS_V2 on the cifar skeleton (C=36, 20 cells, auxiliary head), batch
96, float32 and bfloat16 autocast with channels_last.

``--cpu-dry-run`` runs everything that does not need a GPU on the CPU at batch 2 (the
original with ``.cuda()`` made a no-op, no graphs): it checks the script, and measures
nothing useful."""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import torch
import torch.nn.functional as F

DEVICE = torch.device("cuda")


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _fresh() -> None:
    """Free what the last configuration left and reset the peak-memory counter."""
    gc.collect()
    if DEVICE.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


class Timing(TypedDict):
    median_s: float
    min_s: float
    peak_gpu_mb: float | None  # None off CUDA


def timed(step: Callable[[], None], warmup: int, iters: int) -> Timing:
    """Median and min seconds of ``step`` on the GPU, and the peak memory it reached."""
    for _ in range(warmup):
        step()
    _sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        _sync()
        times.append(time.perf_counter() - start)
    times.sort()
    peak = torch.cuda.max_memory_allocated() / 2**20 if DEVICE.type == "cuda" else None  # JSON null off CUDA
    return Timing(median_s=times[len(times) // 2], min_s=times[0], peak_gpu_mb=peak)


def load_original(folder: Path) -> tuple[Any, Any]:
    """``Network`` from the original's ``model_search.py`` and ``Architect`` from its
    ``architect.py``, both files of ``folder`` (with ``folder`` first on the path for
    their own imports); ValueError saying what is wrong otherwise."""
    classes = []
    sys.path.insert(0, str(folder))
    try:
        for module, name in (("model_search", "Network"), ("architect", "Architect")):
            path = folder / f"{module}.py"
            if not path.is_file():
                raise ValueError(f"{folder} has no {module}.py")
            spec = importlib.util.spec_from_file_location(module, path)
            assert spec is not None and spec.loader is not None  # a .py file that exists
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[module] = loaded  # architect.py imports model_search's neighbours by name
            try:
                spec.loader.exec_module(loaded)
            except Exception as e:  # noqa: BLE001 (any error of a foreign file is reported, not raised)
                raise ValueError(f"{path} does not import: {type(e).__name__}: {e}") from None
            cls = getattr(loaded, name, None)
            if not callable(cls):
                raise ValueError(f"{path} defines no {name}")
            classes.append(cls)
    finally:
        sys.path.remove(str(folder))
    return classes[0], classes[1]


def original_check(original: tuple[Any, Any], order: int, batch: int, warmup: int, iters: int) -> dict[str, object]:
    """The original's search iteration: ``Architect.step`` (unrolled for second order),
    then the weight step, as its ``train_search.train()`` runs them."""
    from torch import nn

    if DEVICE.type != "cuda":  # the original calls .cuda() everywhere: a no-op for the dry run
        torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
        nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    network, architect_cls = original  # load_original's
    torch.manual_seed(0)
    criterion = nn.CrossEntropyLoss().to(DEVICE)
    model = network(16, 10, 8, criterion).to(DEVICE)
    optimizer = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    settings = argparse.Namespace(momentum=0.9, weight_decay=3e-4, arch_learning_rate=3e-4, arch_weight_decay=1e-3)
    architect = architect_cls(model, settings)
    x, xv = torch.randn(batch, 3, 32, 32, device=DEVICE), torch.randn(batch, 3, 32, 32, device=DEVICE)
    y, yv = torch.randint(0, 10, (batch,), device=DEVICE), torch.randint(0, 10, (batch,), device=DEVICE)

    def step() -> None:
        model.train()
        architect.step(x, y, xv, yv, 0.025, optimizer, unrolled=order == 2)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5)
        optimizer.step()

    _fresh()
    result = timed(step, warmup, iters)
    return {"check": "search-step", "code": "original", "order": order, "batch": batch, **result,
            "images_per_s": batch / result["median_s"]}


def search_check(order: int, batch: int, warmup: int, iters: int, graphs: bool) -> dict[str, object]:
    """genolang's search iteration (``genolang bench search-step``), eager or graphed."""
    from genolang.bench import BenchConfig, run_bench

    _fresh()
    result = run_bench("search-step", BenchConfig(network="cifar_search", genotype="", batch_size=batch, order=order,
                                                  iters=iters, warmup=warmup, device=str(DEVICE),
                                                  cuda_graphs=graphs))
    assert result.median_s is not None  # timed, not counted
    peak = result.info.get("cuda_peak_mb")  # None (JSON null) off CUDA
    return {"check": "search-step", "code": "genolang", "cuda_graphs": graphs, "order": order, "batch": batch,
            "median_s": result.median_s, "min_s": result.min_s, "peak_gpu_mb": peak,
            "capture_s": result.info.get("capture_s"), "images_per_s": batch / result.median_s}


def train_check(amp: bool, batch: int, warmup: int, iters: int) -> dict[str, object]:
    from genolang.nets.fixed import build_fixed_cnn
    from genolang.spec.lookup import load_named
    from genolang.train.images import autocast_dtype

    geno, net = load_named("genotype", "darts_v2"), load_named("network", "cifar")
    model = build_fixed_cnn(geno, net).to(DEVICE)
    model.drop_path_prob = 0.2
    if amp:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    dtype = autocast_dtype(DEVICE)
    scaler = torch.amp.GradScaler(DEVICE.type, enabled=amp and dtype == torch.float16)
    x = torch.randn(batch, 3, 32, 32, device=DEVICE)
    if amp:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=DEVICE)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(DEVICE.type, dtype=dtype, enabled=amp):
            logits, aux = model(x, return_aux=True)
            loss = F.cross_entropy(logits.float(), y) + 0.4 * F.cross_entropy(aux.float(), y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        scaler.step(opt)
        scaler.update()

    model.train()
    result = timed(step, warmup, iters)
    return {"check": "train-step", "amp": str(dtype).replace("torch.", "") if amp else "float32",
            "channels_last": amp, "batch": batch, **result, "images_per_s": batch / result["median_s"]}


def report(what: dict[str, object], check: Callable[[], dict[str, object]]) -> None:
    """Print ``check()``'s record as a JSON line; if it fails (out of memory at a large
    batch, a step that cannot be captured, an error of the original's code), print
    ``what`` with the error instead and go on: one failure costs one line, not the run."""
    try:
        record = check()
    except Exception as e:  # noqa: BLE001 (reported, and the other checks still run)
        _fresh()
        text = str(e).strip().splitlines()
        record = {**what, "error": f"{type(e).__name__}: {text[0] if text else ''}"}
    print(json.dumps(record), flush=True)


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is less than {low}")
        return value
    return parse


def batches(text: str) -> list[int]:
    """An argparse type: batch sizes separated by commas, each at least 2."""
    parse = at_least(2)
    try:
        return [parse(b.strip()) for b in text.split(",")]
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{e} (batch sizes are integers of at least 2, as batch norm needs two, "
                                         "separated by commas)") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=at_least(1), default=10,
                        help="Timed iterations per configuration; the median is reported (default 10).")
    parser.add_argument("--warmup", type=at_least(0), default=3,
                        help="Untimed iterations before them (default 3).")
    parser.add_argument("--batches", type=batches, default=[16, 64, 256],
                        help="Search batch sizes, comma-separated, each at least 2 (default 16,64,256); "
                             "--cpu-dry-run ignores them.")
    parser.add_argument("--original", type=Path, default=None,
                        help="The cnn folder of a checkout of quark0/darts, to time the original side by side.")
    parser.add_argument("--no-train", action="store_true", help="Skip the retraining check.")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="Run the same steps on the CPU at batch 2, whatever --batches says (checks the script, "
                             "measures nothing useful).")
    args = parser.parse_args()
    global DEVICE
    search_batches: list[int] = args.batches
    original = None
    if args.original is not None:
        try:
            original = load_original(args.original)
        except ValueError as e:
            parser.error(f"--original: {e} (give the cnn folder of a checkout of quark0/darts)")
    train_batch = 96
    if args.cpu_dry_run:
        DEVICE, search_batches, train_batch = torch.device("cpu"), [2], 2
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible; run this on a machine with a GPU", file=sys.stderr)
        return 1
    else:
        torch.backends.cudnn.benchmark = True
        print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                          "bf16": torch.cuda.is_bf16_supported()}), flush=True)
    for order in (1, 2):
        for batch in search_batches:
            if original is not None:
                report({"check": "search-step", "code": "original", "order": order, "batch": batch},
                       lambda: original_check(original, order, batch, args.warmup, args.iters))  # noqa: B023
            for graphs in ((False, True) if DEVICE.type == "cuda" else (False,)):
                report({"check": "search-step", "code": "genolang", "cuda_graphs": graphs, "order": order,
                        "batch": batch},
                       lambda: search_check(order, batch, args.warmup, args.iters, graphs))  # noqa: B023
    if not args.no_train:
        for amp in (False, True):
            report({"check": "train-step", "amp": amp, "batch": train_batch},
                   lambda: train_check(amp, train_batch, args.warmup, args.iters))  # noqa: B023
    return 0


if __name__ == "__main__":
    sys.exit(main())
