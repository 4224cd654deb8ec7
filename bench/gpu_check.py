"""A short CUDA check: one search configuration and one retraining configuration on the
GPU, with and without mixed precision, printing throughput and peak GPU memory as JSON
lines. Runs in a few minutes on one GPU:

    pip install -e .            # genolang and its pure-Python dependencies
    python bench/gpu_check.py   # --iters 10 --warmup 3 by default

Search: the DARTS CNN space on the cifar_search skeleton (C=16, 8 cells), batch 64,
32x32 random images, first and second order (architect step + weight step). Retraining:
DARTS_V2 on the cifar skeleton (C=36, 20 cells, auxiliary head), batch 96, float32 and
bfloat16 autocast with channels_last."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

DEVICE = torch.device("cuda")


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def timed(step: Callable[[], None], warmup: int, iters: int) -> dict[str, float]:
    """Median and min seconds of ``step`` on the GPU, and the peak memory it reached."""
    for _ in range(warmup):
        step()
    _sync()
    if DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        _sync()
        times.append(time.perf_counter() - start)
    times.sort()
    peak = torch.cuda.max_memory_allocated() / 2**20 if DEVICE.type == "cuda" else float("nan")
    return {"median_s": times[len(times) // 2], "min_s": times[0], "peak_gpu_mb": peak}


def search_check(order: int, batch: int, warmup: int, iters: int) -> dict[str, object]:
    from genolang.nets.supernet import build_supernet
    from genolang.search.architect import Architect, ArchitectConfig
    from genolang.spec.lookup import load_named

    space, net = load_named("space", "darts_cnn"), load_named("network", "cifar_search")
    model = build_supernet(space, net, in_channels=3, input_size=32, classes=10).to(DEVICE)
    weights = model.weight_parameters()
    opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    architect = Architect(model, opt, ArchitectConfig(order=order))
    x, xv = torch.randn(batch, 3, 32, 32, device=DEVICE), torch.randn(batch, 3, 32, 32, device=DEVICE)
    y, yv = torch.randint(0, 10, (batch,), device=DEVICE), torch.randint(0, 10, (batch,), device=DEVICE)

    def step() -> None:
        # call runs the supernet: logits
        architect.step(lambda call: F.cross_entropy(call(xv), yv),
                       (lambda call: F.cross_entropy(call(x), y)) if order == 2 else None, 0.025)
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, weights)
        for p, g in zip(weights, grads):
            p.grad = g
        torch.nn.utils.clip_grad_norm_(weights, 5.0)
        opt.step()

    result = timed(step, warmup, iters)
    return {"check": "search-step", "order": order, "batch": batch, **result,
            "images_per_s": batch / result["median_s"]}


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="Run the same steps on the CPU at batch 2 (checks the script, measures nothing useful).")
    args = parser.parse_args()
    global DEVICE
    search_batch, train_batch = 64, 96
    if args.cpu_dry_run:
        DEVICE, search_batch, train_batch = torch.device("cpu"), 2, 2
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible; run this on a machine with a GPU", file=sys.stderr)
        return 1
    else:
        torch.backends.cudnn.benchmark = True
        print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                          "bf16": torch.cuda.is_bf16_supported()}), flush=True)
    for order in (1, 2):
        print(json.dumps(search_check(order, search_batch, args.warmup, args.iters)), flush=True)
    for amp in (False, True):
        print(json.dumps(train_check(amp, train_batch, args.warmup, args.iters)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
