"""How good is DARTS's finite-difference second-order gradient? On a small search
supernet, the architecture gradient of the unrolled step (DARTS eq. 7-8) with the
finite-difference Hessian-vector product at several radii eps = r / ||v|| (the paper's
r = 0.01) against the exact one (double backward through the unrolled weight step),
in float64 and float32, after a few weight steps; and how far second order moves the
gradient from first order at all. Prints one JSON object.

    python bench/second_order.py                       # C=8, 5 cells, 16x16, batch 8
    python bench/second_order.py --channels 16 --layers 8 --input-size 32 --batch 16

Errors are ||g_fd - g_exact|| / ||g_exact|| over both cells' alphas, the median and the
maximum over ``--trials`` random batches and initialisations."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any, cast

import torch
import torch.nn.functional as F

from genolang.nets.supernet import Supernet, build_supernet
from genolang.search.architect import Architect, ArchitectConfig, Objective
from genolang.spec.checked import NetworkSpec, SpaceSpec
from genolang.spec.lookup import load_named

RADII = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7)


def objective(x: torch.Tensor, y: torch.Tensor) -> Objective:
    return lambda call: F.cross_entropy(cast(torch.Tensor, call(x)), y)


def setup(args: argparse.Namespace, seed: int, dtype: torch.dtype) -> tuple[Supernet, torch.optim.SGD, list[Any]]:
    space = load_named("space", "darts_cnn")
    assert isinstance(space, SpaceSpec)
    net = NetworkSpec("probe", "cnn", "cifar", channels=args.channels, layers=args.layers, input_size=args.input_size)
    torch.manual_seed(seed)
    model = build_supernet(space, net, in_channels=3, input_size=args.input_size, classes=10).to(dtype)
    opt = torch.optim.SGD(model.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    g = torch.Generator().manual_seed(seed + 1000)
    batches = [(torch.randn(args.batch, 3, args.input_size, args.input_size, generator=g, dtype=dtype),
                torch.randint(0, 10, (args.batch,), generator=g)) for _ in range(args.warm_steps + 2)]
    model.train()
    for x, y in batches[2:]:  # a few weight steps: momentum buffers, weights off their initialisation
        weights = model.weight_parameters()
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights)
        for p, grad in zip(weights, grads):
            p.grad = grad
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model, opt, batches[:2]


def gradient(args: argparse.Namespace, seed: int, dtype: torch.dtype, order: int, mode: str = "fd",
             radius: float = 0.01) -> tuple[torch.Tensor, float]:
    model, opt, (valid, train) = setup(args, seed, dtype)
    arch = Architect(model, opt, ArchitectConfig(order=order, mode=mode, fd_radius=radius))
    began = time.perf_counter()
    grads = arch.alpha_gradients(objective(*valid), objective(*train) if order == 2 else None, 0.025)
    return torch.cat([g.reshape(-1) for g in grads]).detach().double(), time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--input-size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warm-steps", type=int, default=3)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {"config": vars(args), "loadavg_before": os.getloadavg(), "torch": torch.__version__}
    errors: dict[str, list[float]] = {}
    moves, seconds = [], {"first": [], "fd": [], "exact": []}  # type: ignore[var-annotated]
    for trial in range(args.trials):
        for dtype, tag in ((torch.float64, "float64"), (torch.float32, "float32")):
            exact, t_exact = gradient(args, trial, dtype, 2, "exact")
            scale = float(exact.norm())
            for radius in (RADII if dtype == torch.float64 else (1e-2, 1e-3, 1e-4)):
                fd, t_fd = gradient(args, trial, dtype, 2, "fd", radius)
                errors.setdefault(f"{tag} r={radius:g}", []).append(float((fd - exact).norm()) / scale)
                if dtype == torch.float32 and radius == 1e-2:
                    seconds["fd"].append(t_fd)
                    seconds["exact"].append(t_exact)
            if dtype == torch.float64:
                first, _t_first = gradient(args, trial, dtype, 1)
                moves.append(float((first - exact).norm()) / scale)
            else:
                seconds["first"].append(gradient(args, trial, dtype, 1)[1])
    out["fd_relative_error"] = {k: {"median": statistics.median(v), "max": max(v)} for k, v in errors.items()}
    out["first_vs_exact_second_order"] = {"median": statistics.median(moves), "max": max(moves)}
    out["architecture_gradient_seconds_float32"] = {k: statistics.median(v) for k, v in seconds.items()}
    out["loadavg_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
