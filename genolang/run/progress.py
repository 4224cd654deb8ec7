"""How a run reports without printing: callbacks receive ``Progress`` events; the CLI
turns them into a progress bar and lines, a TensorBoard logger into scalars."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Progress:
    """One event of a search or training run. ``kind`` is ``start`` (``epoch``: the
    epochs already done; ``steps``: steps per epoch; ``message`` what runs), then per
    epoch ``epoch_start``, ``step`` (running ``metrics``), ``epoch_end`` (``metrics``:
    the epoch's record), ``note`` (e.g. the switch to ASGD) and at last ``done``
    (``metrics``: the result; ``message``: where it was written). Epochs are 1-based.
    A search's events carry ``changes``: per cell, how many terms of the genotype its
    alphas derive changed since the last epoch."""

    kind: str
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    metrics: Mapping[str, Any] = field(default_factory=dict)
    changes: Mapping[str, int] = field(default_factory=dict)
    message: str = ""


ProgressFn = Callable[[Progress], None]


def emit(callbacks: Sequence[ProgressFn], event: Progress) -> None:
    for cb in callbacks:
        cb(event)


class TensorBoardLog:
    """Writes every numeric metric of each epoch to TensorBoard event files in
    ``folder``. ``create`` returns None when TensorBoard is not installed."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    @staticmethod
    def available() -> bool:
        """Whether TensorBoard can be written (without creating anything)."""
        import importlib.util

        try:
            return importlib.util.find_spec("tensorboard") is not None
        except (ImportError, ValueError):
            return False

    @classmethod
    def create(cls, folder: str | Path, purge_step: int | None = None) -> TensorBoardLog | None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - tensorboard missing or broken: skip quietly
            return None
        return cls(SummaryWriter(str(folder), purge_step=purge_step))

    def __call__(self, event: Progress) -> None:
        if event.kind == "epoch_end":
            for key, value in event.metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
                    self.writer.add_scalar(key, value, event.epoch)
            self.writer.flush()
        elif event.kind == "done":
            self.close()

    def close(self) -> None:
        self.writer.close()
