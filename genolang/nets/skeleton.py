"""The CNN macro skeleton shared by fixed networks and supernets: stem, a stack of
cells laid out by ``genolang.ir.plan.plan_cnn``, optional auxiliary head, global
pooling and a linear classifier."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from genolang.ir.plan import CellPlan, NetworkPlan


class CifarStem(nn.Sequential):
    """3x3 conv (stride 1) to ``stem_multiplier * C`` channels, BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out, affine=affine))


class ImageNetStem0(nn.Sequential):
    """3x3 conv stride 2 to C/2, BN, ReLU, 3x3 conv stride 2 to C, BN."""

    def __init__(self, c_in: int, c: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c),
        )


class ImageNetStem1(nn.Sequential):
    """ReLU, 3x3 conv stride 2 to C, BN."""

    def __init__(self, c: int) -> None:
        super().__init__(nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))


class AuxiliaryHead(nn.Module):
    """The DARTS auxiliary classifier: ReLU, 5x5 average pool (stride 3 for CIFAR's 8x8
    maps, 2 for ImageNet's 7x7; count excludes padding), 1x1 conv to 128, BN, ReLU, 2x2
    conv to 768, [BN,] ReLU, linear. The ImageNet head has no BN after the 2x2 conv, as
    in the paper's code. For map sizes the fixed pool does not turn into 2x2, an
    adaptive average pool to 2x2 takes its place (same parameters)."""

    def __init__(self, c: int, classes: int, size: int, imagenet: bool = False) -> None:
        super().__init__()
        stride = 2 if imagenet else 3
        if (size - 5) // stride + 1 == 2 and size >= 5:
            pool: nn.Module = nn.AvgPool2d(5, stride=stride, padding=0, count_include_pad=False)
        else:
            pool = nn.AdaptiveAvgPool2d(2)
        layers: list[nn.Module] = [
            nn.ReLU(inplace=True), pool, nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
        ]
        if not imagenet:
            layers.append(nn.BatchNorm2d(768))
        layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(768, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class ReLUConvBN(nn.Sequential):
    """ReLU, a 1x1 conv, BN: the preprocessing of a cell input."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, 1, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


def preprocessors(cp: CellPlan, affine: bool) -> tuple[nn.Module, nn.Module]:
    """The 1x1 ReLU-Conv-BN of each cell input (a factorized reduce for c0 after a
    reduction cell), bringing both to the cell's width."""
    from genolang.ops.cnn import FactorizedReduce

    pre0 = (FactorizedReduce(cp.c_prev_prev, cp.channels, affine) if cp.reduction_prev
            else ReLUConvBN(cp.c_prev_prev, cp.channels, affine))
    pre1 = ReLUConvBN(cp.c_prev, cp.channels, affine)
    return pre0, pre1


class CNNSkeleton(nn.Module):
    """Stem, cells, auxiliary head and classifier. Subclasses say what extra arguments
    each cell type receives per forward pass (``cell_args``)."""

    def __init__(self, plan: NetworkPlan, make_cell: Callable[[CellPlan], nn.Module], *, affine: bool = True,
                 auxiliary: bool = True) -> None:
        super().__init__()
        self.plan = plan
        net = plan.network
        if net.stem == "imagenet":
            self.stem0: nn.Sequential = ImageNetStem0(plan.in_channels, net.channels)
            self.stem1: nn.Sequential | None = ImageNetStem1(net.channels)
        else:
            self.stem0 = CifarStem(plan.in_channels, plan.stem_channels, affine)
            self.stem1 = None
        self.cells = nn.ModuleDict({f"cell{cp.index:02d}": make_cell(cp) for cp in plan.cells})
        self._cell_types = [cp.cell for cp in plan.cells]
        self.aux_index = plan.aux_cell if auxiliary and plan.aux_cell is not None else None
        self.auxiliary: nn.Module | None = None
        if self.aux_index is not None:
            assert plan.aux_channels is not None and plan.aux_size is not None
            self.auxiliary = AuxiliaryHead(plan.aux_channels, plan.classes, plan.aux_size, net.stem == "imagenet")
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(plan.final_channels, plan.classes)

    def cell_args(self) -> dict[str, tuple[object, ...]]:
        """Extra arguments for each cell type, computed once per forward pass."""
        return {}

    def forward(self, x: torch.Tensor,
                return_aux: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        """Logits; with ``return_aux``, ``(logits, aux_logits)`` where ``aux_logits`` is
        None outside training or without an auxiliary head."""
        s0 = self.stem0(x)
        s1 = self.stem1(s0) if self.stem1 is not None else s0
        args = self.cell_args()
        aux = None
        for i, (cell, kind) in enumerate(zip(self.cells.values(), self._cell_types)):
            s0, s1 = s1, cell(s0, s1, *args.get(kind, ()))
            if i == self.aux_index and self.training and self.auxiliary is not None:
                aux = self.auxiliary(s1)
        logits = self.classifier(torch.flatten(self.global_pooling(s1), 1))
        return (logits, aux) if return_aux else logits
