"""Replaying a step as a CUDA graph (``genolang bench ... --cuda-graphs``), and counting
the host synchronisations a step makes (``HostSyncs``).

A DARTS iteration on a GPU is bound by the host: it launches thousands of small kernels,
and the GPU waits for each launch. A CUDA graph records the kernels of one call once and
replays them with a single launch. ``GraphedStep`` captures a step, a zero-argument
callable that reads and writes only tensors living across calls (parameters, optimizer
state, fixed input buffers), and replays it on every later call. What such a step must
be:

* free of host synchronisation: no ``.item()``, no ``bool(tensor)``, no shape that
  depends on the data (``nonzero``, boolean masks). Capture fails on one. ``HostSyncs``
  counts them on any device, the CPU included, so a test can check a step before a GPU
  ever sees it;
* static: the same shapes and the same Python decisions on every call. What Python
  decides while the step is captured (a learning rate given as a float, a branch on a
  setting) is fixed for every replay;
* with capturable optimizers: ``torch.optim.Adam(capturable=True)`` keeps its step
  counter on the device (and computes its bias corrections there, in float32: they
  differ from the Python-float ones in the last bits). SGD has no counter.

Before capturing, the step runs ``warmup`` times eagerly on a side stream (torch's
recipe: lazily made state, cuDNN's autotuning and the allocator settle first), so a
graphed run takes ``warmup`` more steps than it replays."""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from types import FrameType
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from genolang.errors import UsageError

GRAPH_WARMUP = 3  # eager steps on a side stream before the capture (torch's examples use 3)

# torch.cuda, through a name the tests can replace: a CPU machine cannot capture
_cuda: Any = torch.cuda


def capturing(device: torch.device) -> bool:
    """Whether the current stream of ``device`` is being captured into a CUDA graph."""
    return device.type == "cuda" and bool(_cuda.is_current_stream_capturing())


class CannotCapture(RuntimeError):
    """Raised by a step, while it is captured, that knows it cannot be (and why)."""


class GraphedStep:
    """``step`` captured in a CUDA graph on its first call (after ``warmup`` eager calls
    on a side stream) and replayed on every call. ``capture_s``: the seconds the
    warm-up and the capture took, None before the first call."""

    def __init__(self, step: Callable[[], object], device: torch.device, warmup: int = GRAPH_WARMUP) -> None:
        if device.type != "cuda":
            raise UsageError(f"--cuda-graphs captures CUDA graphs, and this run is on {device}; "
                             "use --device cuda (or auto on a machine with a GPU), or drop --cuda-graphs")
        self.step = step
        self.device = device
        self.warmup = warmup
        self.graph: Any = None
        self.capture_s: float | None = None

    def capture(self) -> None:
        began = time.perf_counter()
        side = _cuda.Stream(self.device)
        side.wait_stream(_cuda.current_stream(self.device))
        with _cuda.stream(side), warnings.catch_warnings():
            # a capturable optimizer warns when it steps uncaptured, as these warm-up steps do
            warnings.filterwarnings("ignore", message="This instance was constructed with capturable=True")
            for _ in range(self.warmup):
                self.step()
        _cuda.current_stream(self.device).wait_stream(side)
        graph = _cuda.CUDAGraph()
        try:
            with _cuda.graph(graph):
                self.step()
        except torch.OutOfMemoryError:
            raise UsageError("the device ran out of memory while the step was captured in a CUDA graph: use a "
                             "smaller batch, or run without --cuda-graphs") from None
        except CannotCapture as e:  # the step knows why
            raise UsageError(f"this step cannot be captured in a CUDA graph: {e}") from None
        except RuntimeError as e:  # a host sync, a CPU tensor made inside, a non-capturable optimizer...
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(f"this step cannot be captured in a CUDA graph: {first}. A captured step may not "
                             "wait for the device (.item(), a tensor's truth value, data-dependent shapes); "
                             "run without --cuda-graphs") from None
        _cuda.synchronize(self.device)
        self.graph = graph
        self.capture_s = time.perf_counter() - began

    def __call__(self) -> None:
        if self.graph is None:
            self.capture()
        self.graph.replay()


# ops that make the host wait for the device: reading a value (item, a truth value),
# or an output shape that depends on the data
SYNC_OPS = frozenset({
    "aten._local_scalar_dense.default", "aten.item.default", "aten.is_nonzero.default", "aten.equal.default",
    "aten.nonzero.default", "aten.nonzero.out", "aten.masked_select.default", "aten._unique.default",
    "aten._unique2.default", "aten.unique_dim.default", "aten.unique_consecutive.default",
    "aten.repeat_interleave.Tensor", "aten.bincount.default", "aten.allclose.default", "aten.masked_select.out",
    "aten._linalg_check_errors.default",  # inv, cholesky, solve... read their error codes on the host
    "aten.embedding_renorm_.default",  # embedding(max_norm=): unique rows
})
MASKS = (torch.bool, torch.uint8)  # index dtypes that select by mask (a data-dependent count)


class HostSyncs(TorchDispatchMode):
    """Counts, while active, the ops that make the host wait for the device (``SYNC_OPS``,
    an index by a boolean mask, a copy from a CUDA tensor to the CPU) on a run on
    ``device``, by where they were called from: ``counts`` maps "package/file:line
    function" (the nearest genolang, torch.nn or torch.optim frame) to a count. Reads of
    a CPU scalar wait for nothing: on a CUDA run they are not counted. On a CPU run every
    tensor is a CPU tensor, so every read counts (what a CUDA run of the same code would
    wait for), except torch.optim's reads of its step counter, which is a CPU tensor on
    any device unless the optimizer is capturable.

    What it cannot see, being below the dispatcher: a CPU run's ``.tolist()``,
    ``.cpu()``, ``.numpy()`` and printing (they dispatch nothing on the CPU; on CUDA the
    copies count). What it counts that a CUDA run would not wait for: ops whose CPU
    kernels read values their CUDA kernels do not (``one_hot``'s range check)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.cuda = torch.device(device).type == "cuda"
        self.counts: dict[str, int] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if self._syncs(str(func), args, kwargs):
            where = _caller(sys._getframe(1))
            if where is not None:
                self.counts[where] = self.counts.get(where, 0) + 1
        return func(*args, **kwargs)

    def _syncs(self, name: str, args: Any, kwargs: Any) -> bool:
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        on_device = not self.cuda or first is None or first.device.type != "cpu"  # a CUDA run waits for CUDA only
        if name == "aten.repeat_interleave.Tensor" and kwargs.get("output_size") is not None:
            return False  # the output's size is given: nothing to read
        if name in SYNC_OPS:
            return on_device
        if name.startswith("aten.histc"):  # histc(self, bins, min, max): min = max reads the range from the data
            lo = args[2] if len(args) > 2 else kwargs.get("min", 0)
            hi = args[3] if len(args) > 3 else kwargs.get("max", 0)
            return on_device and lo == hi
        if name.startswith(("aten.index.Tensor", "aten.index_put")) and len(args) > 1:
            return on_device and any(isinstance(i, torch.Tensor) and i.dtype in MASKS for i in args[1] or ())
        if name.startswith(("aten._to_copy", "aten.copy_")) and first is not None and not kwargs.get("non_blocking"):
            src: torch.device | None = first.device
            dst: Any = kwargs.get("device")
            if name.startswith("aten.copy_"):  # copy_(self, src, non_blocking=False): self is the destination
                src = args[1].device if len(args) > 1 and isinstance(args[1], torch.Tensor) else None
                dst = first.device
                if len(args) > 2 and args[2]:
                    return False
            if src is None or dst is None:
                return False
            kinds = {src.type, torch.device(dst).type}
            return kinds == {"cuda", "cpu"}  # a blocking copy between host and device
        return False

    def total(self) -> int:
        return sum(self.counts.values())


def _caller(frame: FrameType | None) -> str | None:
    """Where a sync came from, or None for a read that waits for nothing (torch.optim's
    step counter)."""
    nearest = None
    while frame is not None:
        name = frame.f_code.co_filename.replace("\\", "/")
        if "/torch/optim/" in name and frame.f_code.co_name == "_get_value":
            return None
        if nearest is None and ("/genolang/" in name or "/torch/optim/" in name or "/torch/nn/" in name):
            nearest = f"{name.rsplit('/', 2)[-2]}/{name.rsplit('/', 1)[-1]}:{frame.f_lineno} {frame.f_code.co_name}"
        frame = frame.f_back
    return nearest or "?"
