"""Exporting a compiled network for deployment: ONNX (checked against PyTorch with
onnxruntime) or TorchScript (a traced module checked against eager outputs). Both
are written atomically and only after the check passes.

ONNX export uses PyTorch's TorchScript-based exporter (``dynamo=False``), which needs
only the ``onnx`` package; ``onnxruntime`` runs the check. Both are the optional extra
``genolang[onnx]``. A recurrent model is exported unrolled over a fixed number of time
steps (``seq_len``) with the batch size left dynamic."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from genolang.errors import GenolangError, MissingTool, UsageError
from genolang.fsio import atomic_path
from genolang.nets.compile import DataShape, example_input
from genolang.nets.rnn import RNNModel

FORMATS = ("onnx", "torchscript")


class ExportError(GenolangError):
    """An export that failed or whose outputs differ from PyTorch's."""


@dataclass(frozen=True)
class ExportReport:
    """Where the export went and how far its outputs are from eager PyTorch."""

    format: str
    path: str
    max_abs_diff: float
    inputs: tuple[tuple[int, ...], ...]


class _Deploy(nn.Module):
    """The inference graph: logits for a CNN; (log-probs, hidden) for a recurrent model
    with an explicit initial hidden state."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor) -> Any:
        if isinstance(self.model, RNNModel):
            words, hidden = args
            return self.model(words, hidden)
        return self.model(args[0])


def _inputs(model: nn.Module, shape: DataShape, batch: int, seq_len: int) -> tuple[torch.Tensor, ...]:
    gen_state = torch.get_rng_state()
    try:
        torch.manual_seed(0)
        args = example_input(shape, batch=batch, seq_len=seq_len)
    finally:
        torch.set_rng_state(gen_state)
    if isinstance(model, RNNModel):
        return (args[0], model.init_hidden(batch))
    return args


def _flat(out: Any) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def export_model(model: nn.Module, shape: DataShape, fmt: str, path: str | os.PathLike[str], *,
                 batch: int = 2, seq_len: int = 35, atol: float = 1e-4) -> ExportReport:
    """Export ``model`` (switched to eval mode) to ``path`` in ``fmt`` and verify it."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format '{fmt}'; use one of {', '.join(FORMATS)}")
    model = model.cpu().eval()
    wrapper = _Deploy(model).eval()
    args = _inputs(model, shape, batch, seq_len)
    with torch.no_grad():
        expected = [t.detach() for t in _flat(wrapper(*args))]
    if fmt == "onnx":
        diff = _onnx(wrapper, args, expected, path, isinstance(model, RNNModel), atol)
    else:
        diff = _torchscript(wrapper, args, expected, path, atol)
    return ExportReport(fmt, str(path), diff, tuple(tuple(a.shape) for a in args))


def _max_diff(expected: list[torch.Tensor], got: list[Any]) -> float:
    if len(expected) != len(got):
        return float("inf")
    worst = 0.0
    for e, g in zip(expected, got):
        g_t = torch.as_tensor(np.asarray(g)) if not isinstance(g, torch.Tensor) else g
        if tuple(g_t.shape) != tuple(e.shape):
            return float("inf")
        worst = max(worst, float((g_t.to(e.dtype) - e).abs().max()) if e.numel() else 0.0)
    return worst


def _verify(what: str, diff: float, atol: float, path: str | os.PathLike[str]) -> None:
    if not diff <= atol:  # also catches NaN
        raise ExportError(f"the {what} export differs from PyTorch by up to {diff:.3g} (tolerance {atol:g}); "
                          f"nothing was written to {path}")


def require_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise MissingTool(f"--export onnx needs the optional packages onnx and onnxruntime ({err.name} is missing); "
                         "install them with 'pip install genolang[onnx]' or 'pip install onnx onnxruntime'") from None
    return onnx, onnxruntime


def _onnx(wrapper: nn.Module, args: tuple[torch.Tensor, ...], expected: list[torch.Tensor],
          path: str | os.PathLike[str], recurrent: bool, atol: float) -> float:
    onnx, ort = require_onnx()
    if recurrent:
        names, outs = ["words", "hidden"], ["log_probs", "hidden_out"]
        axes = {"words": {1: "batch"}, "hidden": {1: "batch"}, "log_probs": {1: "batch"}, "hidden_out": {1: "batch"}}
    else:
        names, outs = ["images"], ["logits"]
        axes = {"images": {0: "batch"}, "logits": {0: "batch"}}
    with atomic_path(path) as tmp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(wrapper, args, str(tmp), dynamo=False, input_names=names, output_names=outs,
                                  dynamic_axes=axes, opset_version=17)
            onnx.checker.check_model(onnx.load(str(tmp)))
            session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            got = session.run(None, {n: a.numpy() for n, a in zip(names, args)})
        except GenolangError:
            raise
        except Exception as err:  # noqa: BLE001 - exporter and runtime errors of every kind
            raise ExportError(f"ONNX export failed: {type(err).__name__}: {str(err).strip()[:400]}") from None
        _verify("ONNX", _max_diff(expected, got), atol, path)
    return _max_diff(expected, got)


def _torchscript(wrapper: nn.Module, args: tuple[torch.Tensor, ...], expected: list[torch.Tensor],
                 path: str | os.PathLike[str], atol: float) -> float:
    with atomic_path(path) as tmp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(wrapper, args, check_trace=False)
                torch.jit.save(traced, str(tmp))
                loaded = torch.jit.load(str(tmp))
                with torch.no_grad():
                    got = _flat(loaded(*args))
        except Exception as err:  # noqa: BLE001
            raise ExportError(f"TorchScript export failed: {type(err).__name__}: {str(err).strip()[:400]}") from None
        _verify("TorchScript", _max_diff(expected, got), atol, path)
    return _max_diff(expected, got)
