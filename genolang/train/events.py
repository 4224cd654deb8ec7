"""How a training run reports progress without printing: a callback receives
``Progress`` events (the CLI turns them into a progress bar and lines; a TensorBoard
logger turns epoch ends into scalars)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence


@dataclass(frozen=True)
class Progress:
    """One event of a run. ``kind`` is ``start`` (``message`` says fresh or resumed),
    ``epoch_start``, ``step``, ``epoch_end`` (``metrics`` holds the epoch's record),
    ``note`` (e.g. the switch to ASGD) or ``done`` (``metrics`` holds the result).
    Epochs are 1-based."""

    kind: str
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    metrics: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""


Callback = Callable[[Progress], None]


def emit(callbacks: Sequence[Callback], event: Progress) -> None:
    for cb in callbacks:
        cb(event)


class TensorBoardLog:
    """Writes every numeric metric of each epoch to TensorBoard event files in
    ``folder``. ``create`` returns None when TensorBoard is not installed."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    @classmethod
    def create(cls, folder: str | Path, purge_step: int | None = None) -> "TensorBoardLog | None":
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
