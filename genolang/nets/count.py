"""Counting a model's parameters and multiply-adds.

Multiply-adds count convolutions (output elements x input channels per group x kernel
area) and linear layers (in x out per sample), at batch size 1, in eval mode (so the
auxiliary head, which runs only in training, is left out). Pools, BN, activations and
additions are not counted; that is the usual convention, and the reason a DARTS_V2
ImageNet network counts 529.9M here against the paper's 574M."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def count_params(model: nn.Module, exclude: Sequence[str] = ("auxiliary",)) -> int:
    """Parameters, leaving out those whose name starts with any of ``exclude``."""
    return sum(p.numel() for n, p in model.named_parameters() if not any(n.startswith(x) for x in exclude))


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-adds of one forward pass on ``example`` (batch size divided out)."""
    total = 0

    def conv_hook(mod: nn.Conv2d, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = mod.kernel_size
        total += out.numel() // out.shape[0] * (mod.in_channels // mod.groups) * kh * kw

    def linear_hook(mod: nn.Linear, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() // out.shape[0] * mod.in_features

    handles = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total
