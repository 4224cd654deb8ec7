"""The one error a run stops with when its loss stops being a number."""

from __future__ import annotations

import math

import torch

from genolang.errors import GenolangError
from genolang.run.folder import RunDir


class Diverged(GenolangError):
    """A loss or gradient became NaN or infinite; the last good checkpoint is kept."""


def check_finite(value: torch.Tensor | float, what: str, epoch: int, step: int, run: RunDir,
                 hint: str = "lower --lr or --grad-clip") -> None:
    """Raise ``Diverged`` when ``value`` is not finite, during (1-based) ``epoch``, at
    ``step`` (0: at its end)."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().flatten()
        bad = flat[~torch.isfinite(flat)]  # one read of the device: the check's only sync
        if bad.numel() == 0:
            return
        number = float(bad[0])
    else:
        if math.isfinite(value):
            return
        number = float(value)
    at = f"at epoch {epoch}, step {step}" if step else f"in epoch {epoch}"
    if epoch > 1 and run.has_checkpoint():
        kept = f"The last good checkpoint ({run.checkpoint}, after epoch {epoch - 1}) is kept. "
    else:
        kept = "No epoch had finished, so there is no checkpoint. "
    raise Diverged(f"the {what} became {number} {at}; the run stopped. {kept}To go on, {hint} or change --seed, "
                   "and start a new --run-dir.")
