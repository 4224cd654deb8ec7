"""Planning a network from a skeleton: which cell goes where, with how many channels,
at which spatial size. Torch-free, so a summary or a misfit between skeleton and data
is found before anything is built."""

from __future__ import annotations

from dataclasses import dataclass

from genolang.errors import GenolangError
from genolang.spec.checked import NetworkSpec


class PlanError(GenolangError):
    """A skeleton that does not fit the data or the genotype."""


@dataclass(frozen=True)
class CellPlan:
    """One cell of the stack: its type, its preprocessors' input widths (``c_prev_prev``,
    ``c_prev``), its per-node width ``channels`` and its output width."""

    index: int
    cell: str
    reduction: bool
    reduction_prev: bool
    c_prev_prev: int
    c_prev: int
    channels: int
    out_channels: int
    in_size: int
    out_size: int


@dataclass(frozen=True)
class NetworkPlan:
    """The whole CNN stack for given data."""

    network: NetworkSpec
    in_channels: int
    input_size: int
    classes: int
    stem_channels: int
    stem_size: int
    cells: tuple[CellPlan, ...]
    aux_cell: int | None
    aux_channels: int | None
    aux_size: int | None

    @property
    def final_channels(self) -> int:
        return self.cells[-1].out_channels

    @property
    def final_size(self) -> int:
        return self.cells[-1].out_size


def _halve(size: int) -> int:
    return (size + 1) // 2


def plan_cnn(
    network: NetworkSpec,
    multipliers: dict[str, int],
    *,
    in_channels: int,
    input_size: int,
    classes: int,
    normal: str = "normal",
    reduce: str = "reduce",
) -> NetworkPlan:
    """Lay out the cells of a CNN skeleton. ``multipliers[cell]`` is how many node
    outputs the cell concatenates. Raises ``PlanError`` when the data cannot flow
    through the stack (odd sizes at a reduction, maps shrunk below 1x1)."""
    where = f"network '{network.name}' ({network.path})"
    for name in (normal, reduce):
        if name not in multipliers:
            have = ", ".join(multipliers) or "none"
            raise PlanError(f"{where} stacks '{normal}' and '{reduce}' cells, but the cell types are: {have}; "
                            f"name the space's cells '{normal}' and '{reduce}'")
    if network.kind != "cnn":
        raise PlanError(f"{where} is a recurrent skeleton; a CNN genotype or space needs 'stem = cifar' or 'imagenet'")
    C = network.channels
    reductions = set(network.reduction_cells())
    if network.stem == "imagenet":
        if C % 2:
            raise PlanError(f"{where}: the ImageNet stem halves the channels, so 'channels' must be even, not {C}")
        prev_size = _halve(_halve(input_size))  # stem0's output, cell 0's c0
        size = _halve(prev_size)  # stem1's output, cell 0's c1
        stem_channels = C
        c_pp, c_p, c_curr = C, C, C
        reduction_prev = True
    else:
        prev_size = size = input_size
        stem_channels = network.stem_multiplier * C
        c_pp, c_p, c_curr = stem_channels, stem_channels, C
        reduction_prev = False
    stem_size = size
    cells: list[CellPlan] = []
    aux_cell = network.auxiliary_cell()
    aux_channels = aux_size = None
    for i in range(network.layers):
        reduction = i in reductions
        if reduction:
            c_curr *= 2
            if size % 2:
                raise PlanError(f"{where}: reduction cell {i} gets a {size}x{size} map; a factorized reduce needs an "
                                f"even size. Use fewer reductions or another input size (now {input_size}).")
        if reduction_prev and prev_size % 2:
            raise PlanError(f"{where}: cell {i} factorized-reduces a {prev_size}x{prev_size} map; it must be even")
        cell = reduce if reduction else normal
        out_size = _halve(size) if reduction else size
        out_channels = multipliers[cell] * c_curr
        cells.append(CellPlan(i, cell, reduction, reduction_prev, c_pp, c_p, c_curr, out_channels, size, out_size))
        prev_size, size = size, out_size
        reduction_prev = reduction
        c_pp, c_p = c_p, out_channels
        if i == aux_cell:
            aux_channels, aux_size = c_p, size
    if aux_size is not None and aux_size < 2:
        raise PlanError(f"{where}: the auxiliary head after cell {aux_cell} sees a {aux_size}x{aux_size} map; it needs "
                        "at least 2x2. Move it earlier ('auxiliary = 1/3') or remove it ('auxiliary = none').")
    return NetworkPlan(network, in_channels, input_size, classes, stem_channels, stem_size, tuple(cells),
                       aux_cell, aux_channels, aux_size)
