"""The compile facade: a checked genotype on a checked skeleton, sized for the data,
becomes an ``nn.Module`` (a ``FixedCNN`` or an ``RNNModel``), with a summary of its
parameters, multiply-adds and cells.

A genotype and a skeleton must be of the same kind (CNN cells on a ``cifar`` or
``imagenet`` stem, a recurrent cell on an ``embedding`` stem); a mismatch, a skeleton
the data cannot flow through, or an op without a builder is a ``GenolangError``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from genolang.errors import GenolangError, UsageError, is_out_of_memory
from genolang.ir.lower import lower_genotype
from genolang.nets.count import count_macs, count_params
from genolang.nets.fixed import FixedCNN, plan_for
from genolang.nets.rnn import RNNModel, build_fixed_rnn
from genolang.nets.size import (
    TooLarge,
    estimate_cnn,
    estimate_rnn,
    genotype_edges,
    refuse_too_large,
)
from genolang.spec.checked import GenotypeSpec, Kind, NetworkSpec
from genolang.spec.validate import errors, network_problems


class CompileError(GenolangError):
    """A genotype and a skeleton (or data) that do not go together."""


@dataclass(frozen=True)
class DataShape:
    """What a network must know about its data: image channels, side and classes for a
    CNN, the vocabulary size for a recurrent model."""

    kind: Kind
    in_channels: int | None = None
    input_size: int | None = None
    classes: int | None = None
    ntokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataShape:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})

    def describe(self) -> str:
        if self.kind == "rnn":
            return f"{self.ntokens} tokens"
        return f"{self.in_channels}x{self.input_size}x{self.input_size} images, {self.classes} classes"


def data_shape(network: NetworkSpec, *, in_channels: int | None = None, input_size: int | None = None,
               classes: int | None = None, ntokens: int | None = None) -> DataShape:
    """The data shape for ``network``: explicit values (from the data or the command
    line) first, then the skeleton's own, then the defaults (3 channels, 32x32 or 224x224
    for an ImageNet stem, 10 classes; 10,000 tokens)."""
    if network.kind == "rnn":
        return DataShape("rnn", ntokens=ntokens or network.vocab or 10000)
    size = input_size or network.input_size or (224 if network.stem == "imagenet" else 32)
    return DataShape("cnn", in_channels=in_channels or network.in_channels or 3, input_size=size,
                     classes=classes or network.classes or 10)


def check_pair(geno: GenotypeSpec, network: NetworkSpec) -> None:
    """A clear error when ``geno`` cannot be stacked by ``network``."""
    where = f"network '{network.name}' ({network.path})"
    if geno.kind == "cnn" and network.kind == "rnn":
        raise CompileError(f"genotype '{geno.name}' has CNN cells, but {where} is a recurrent skeleton "
                           f"(stem = {network.stem}); use a CNN skeleton such as cifar, imagenet or small")
    if geno.kind == "rnn" and network.kind == "cnn":
        raise CompileError(f"genotype '{geno.name}' has a recurrent cell, but {where} is a CNN skeleton "
                           f"(stem = {network.stem}); use a recurrent skeleton such as ptb")
    if geno.kind == "rnn" and len(geno.cells) != 1:
        names = ", ".join(c.name for c in geno.cells)
        raise CompileError(f"genotype '{geno.name}' has {len(geno.cells)} recurrent cells ({names}); "
                           "a recurrent model unrolls exactly one")


def compile_network(geno: GenotypeSpec, network: NetworkSpec, *, in_channels: int | None = None,
                    input_size: int | None = None, classes: int | None = None, ntokens: int | None = None,
                    auxiliary: bool = True) -> nn.Module:
    """Compile ``geno`` on ``network`` for data of the given shape (``None`` takes the
    skeleton's value or the default, see ``data_shape``). ``auxiliary`` keeps the
    skeleton's auxiliary head (CNN only)."""
    check_pair(geno, network)
    shape = data_shape(network, in_channels=in_channels, input_size=input_size, classes=classes, ntokens=ntokens)
    return build(geno, network, shape, auxiliary=auxiliary)


SIZE_FIX = "lower --channels, --layers, --input-size (or --hidden, --embedding, --vocab) or the batch size"


def build(geno: GenotypeSpec, network: NetworkSpec, shape: DataShape, *, auxiliary: bool = True,
          batch: int = 1, training: bool = False) -> nn.Module:
    """Compile for a resolved ``DataShape``. The memory the network needs (for
    ``batch`` examples, with what training keeps) is estimated from its plan first and
    a network beyond the limit is refused before anything is allocated
    (``genolang.nets.size``); running out of memory while building is a clear error
    too."""
    check_pair(geno, network)
    if shape.kind != network.kind:
        raise CompileError(f"data of kind {shape.kind} ({shape.describe()}) cannot feed network '{network.name}'")
    what = f"genotype '{geno.name}' on network '{network.name}' for {shape.describe()}"
    if network.kind == "rnn":
        (ir,) = lower_genotype(geno).values()
        assert shape.ntokens is not None
        if shape.ntokens < 2:
            raise CompileError(f"a vocabulary of {shape.ntokens} tokens is too small for a language model")
        refuse_too_large(estimate_rnn(network, len(ir.nodes), shape.ntokens), what, SIZE_FIX, batch, training)
        return _allocating(lambda: build_fixed_rnn(ir, network, ntokens=shape.ntokens or 2), what)
    assert shape.in_channels is not None and shape.input_size is not None and shape.classes is not None
    plan = plan_for(geno, network, in_channels=shape.in_channels, input_size=shape.input_size, classes=shape.classes)
    refuse_too_large(estimate_cnn(plan, *genotype_edges(geno)), what, SIZE_FIX, batch, training)
    return _allocating(lambda: FixedCNN(geno, plan, auxiliary=auxiliary), what)


def _allocating(make: Callable[[], nn.Module], what: str) -> nn.Module:
    """``make()``, with running out of memory (torch's allocator says so in a
    ``RuntimeError``) turned into a ``TooLarge`` error."""
    try:
        return make()
    except MemoryError:
        raise TooLarge(f"{what}: out of memory while building it; {SIZE_FIX}") from None
    except RuntimeError as err:
        if not is_out_of_memory(err):
            raise
        raise TooLarge(f"{what}: out of memory while building it; {SIZE_FIX}") from None




def example_input(shape: DataShape, batch: int = 1, seq_len: int = 35,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
    """A random input of the right shape: images for a CNN, (words, hidden) for a
    recurrent model (``RNNModel.forward``'s arguments)."""
    if shape.kind == "rnn":
        assert shape.ntokens is not None
        words = torch.randint(0, shape.ntokens, (seq_len, batch), device=device)
        return (words,)
    assert shape.in_channels is not None and shape.input_size is not None
    return (torch.randn(batch, shape.in_channels, shape.input_size, shape.input_size, device=device),)


# ---- summaries ---------------------------------------------------------------------

@dataclass(frozen=True)
class CellRow:
    """One line of the per-cell table."""

    index: int
    cell: str
    reduction: bool
    c_prev_prev: int
    c_prev: int
    channels: int
    out_channels: int
    in_size: int
    out_size: int
    params: int


@dataclass(frozen=True)
class Summary:
    """What ``genolang compile`` reports. For a recurrent model ``macs`` counts the
    multiply-adds per token (cell maps and decoder) and ``input_size`` is None."""

    genotype: str
    network: str
    kind: Kind
    shape: DataShape
    params: int
    params_with_aux: int
    macs: int
    cells: tuple[CellRow, ...] = ()
    aux_cell: int | None = None
    embedding: int | None = None
    hidden: int | None = None
    nodes: int | None = None

    @property
    def input_size(self) -> int | None:
        return self.shape.input_size

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_size"] = self.input_size
        d["data_shape"] = d.pop("shape")
        d["cells"] = [dataclasses.asdict(c) for c in self.cells]
        return d


def summarize(model: nn.Module, geno: GenotypeSpec, network: NetworkSpec, shape: DataShape) -> Summary:
    """Count ``model`` (built by ``build`` for ``shape``): parameters without and with
    the auxiliary head, multiply-adds at the data's size, and the per-cell table."""
    if isinstance(model, RNNModel):
        nhid, ninp, ntok = model.nhid, model.ninp, model.ntokens
        nodes = len(model.cell.ws)
        macs = (ninp + nhid) * 2 * nhid + nodes * nhid * 2 * nhid + nhid * ntok
        params = count_params(model, exclude=())
        return Summary(geno.name, network.name, "rnn", shape, params, params, macs,
                       embedding=ninp, hidden=nhid, nodes=nodes)
    if not isinstance(model, FixedCNN):
        raise TypeError(f"cannot summarize a {type(model).__name__}")
    example = example_input(shape, device=next(model.parameters()).device)
    macs = count_macs(model, example[0])
    rows = []
    for cp, cell in zip(model.plan.cells, model.cells.values()):
        rows.append(CellRow(cp.index, cp.cell, cp.reduction, cp.c_prev_prev, cp.c_prev, cp.channels, cp.out_channels,
                            cp.in_size, cp.out_size, sum(p.numel() for p in cell.parameters())))
    return Summary(geno.name, network.name, "cnn", shape, count_params(model), count_params(model, exclude=()), macs,
                   tuple(rows), model.aux_index)


# ---- skeleton overrides --------------------------------------------------------------

CNN_OVERRIDES = ("channels", "layers", "input_size", "in_channels", "classes")
RNN_OVERRIDES = ("embedding", "hidden", "vocab")


def apply_overrides(network: NetworkSpec, **changes: object) -> NetworkSpec:
    """``network`` with some fields changed (``None`` leaves a field alone), validated
    as a checked skeleton is, so an override cannot produce a skeleton the checker would
    refuse (a reduction beyond the last cell, an untied size mismatch)."""
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        return network
    allowed = CNN_OVERRIDES if network.kind == "cnn" else RNN_OVERRIDES
    wrong = [k for k in given if k not in allowed]
    if wrong:
        kind = "CNN" if network.kind == "cnn" else "recurrent"
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise UsageError(f"{flags} does not apply to the {kind} skeleton '{network.name}'; "
                           f"it takes: {', '.join('--' + k.replace('_', '-') for k in allowed)}")
    changed = network.replace(**given)
    if network.kind == "rnn" and changed.tied and changed.embedding != changed.hidden:
        if "embedding" in given and "hidden" not in given:
            changed = changed.replace(hidden=changed.embedding)
        elif "hidden" in given and "embedding" not in given:
            changed = changed.replace(embedding=changed.hidden)
    problems = errors(network_problems(changed))
    if problems:
        label = f"<{network.name} with " + ", ".join(f"{k}={v}" for k, v in given.items()) + ">"
        raise UsageError(f"{label}: " + "; ".join(p.message for p in problems))
    return changed
