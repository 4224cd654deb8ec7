"""The one progress reporter of the CLI: a run's ``Progress`` events (search and
training alike) become a tqdm bar per epoch on stderr when it is a terminal, and one
line per epoch."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

import click

from genolang.errors import plural


def _bar_postfix(metrics: Mapping[str, float], changes: Mapping[str, int]) -> str:
    parts = [f"loss {metrics['loss']:.3f}"]
    if "acc" in metrics:
        parts.append(f"acc {100 * metrics['acc']:.1f}%")
    if "ppl" in metrics:
        parts.append(f"ppl {metrics['ppl']:.1f}")
    parts += [f"{cell}: {n} edge{'s' if n != 1 else ''} changed" for cell, n in changes.items()]
    return ", ".join(parts)


def epoch_line(m: Mapping[str, Any], epochs: int, changes: Mapping[str, int] | None = None) -> str:
    """One line per epoch. A search's (``changes`` given): ``epoch 3/8: train loss
    0.531, train acc 83.1%, valid loss 0.412, valid acc 88.00%, lr 0.0237, 12.3s;
    genotype: normal 2 changed``; a training run's: ``epoch 3/30  train loss 0.531 acc
    83.1%  test loss 0.412 acc 88.0%  lr 0.0237  drop path 0.010  12.3s``."""
    if changes is not None:
        if "valid_acc" in m:
            scores = (f"train acc {100 * m['train_acc']:.1f}%, valid loss {m['valid_loss']:.4f}, "
                      f"valid acc {100 * m['valid_acc']:.2f}%")
        else:
            scores = f"train ppl {m['train_ppl']:.1f}, valid ppl {m['valid_ppl']:.2f}"
        changed = ", ".join(f"{cell} {n} changed" for cell, n in changes.items())
        return (f"epoch {m['epoch']}/{epochs}: train loss {m['train_loss']:.4f}, {scores}, lr {m['lr']:.4g}, "
                f"{m['seconds']:.1f}s; genotype: {changed}")
    head = f"epoch {m['epoch']}/{epochs}"
    if "valid_ppl" in m:
        return (f"{head}  train ppl {m['train_ppl']:.2f}  valid ppl {m['valid_ppl']:.2f}  "
                f"{m['optimizer']}  {m['seconds']:.1f}s")
    return (f"{head}  train loss {m['train_loss']:.4f} acc {100 * m['train_acc']:.2f}%  "
            f"test loss {m['test_loss']:.4f} acc {100 * m['test_acc']:.2f}%  lr {m['lr']:.4g}  "
            f"drop path {m['drop_path']:.3f}  {m['seconds']:.1f}s")


class Reporter:
    """``Progress`` events to stderr. ``what`` names the run in its first line
    (``searching`` or ``training``). On a terminal a bar shows each epoch's steps; to a
    pipe or a file (a job log) no bar is drawn, only whole lines: the epoch lines, and
    within a long epoch a step line every ``every`` seconds."""

    def __init__(self, quiet: bool, what: str, every: float = 60.0) -> None:
        self.quiet = quiet
        self.what = what
        self.show_bar = not quiet and sys.stderr.isatty()
        self.bar: Any = None
        self.search = what == "searching"
        self.every = every
        self.last_line = time.monotonic()

    def __call__(self, p: Any) -> None:
        if p.kind == "start" and not self.quiet:
            resumed = f", resuming after epoch {p.epoch}" if p.epoch else ""
            size = f" of {plural(p.steps, 'step')}" if p.steps else ""
            detail = f" ({p.message}{resumed})" if p.message or resumed else ""
            click.echo(f"{self.what}: {plural(p.epochs, 'epoch')}{size}{detail}", err=True)
        elif p.kind == "epoch_start" and not self.show_bar:
            self.last_line = time.monotonic()
        elif p.kind == "epoch_start" and self.show_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=p.steps, desc=f"epoch {p.epoch}/{p.epochs}", file=sys.stderr, leave=False,
                            dynamic_ncols=True)
        elif p.kind == "step" and self.bar is not None:
            self.bar.update(p.step - self.bar.n)
            self.bar.set_postfix_str(_bar_postfix(p.metrics, p.changes), refresh=False)
        elif p.kind == "step" and not self.quiet and time.monotonic() - self.last_line >= self.every:
            self.last_line = time.monotonic()
            click.echo(f"epoch {p.epoch}/{p.epochs}: step {p.step}/{p.steps}, {_bar_postfix(p.metrics, p.changes)}",
                       err=True)
        elif p.kind == "epoch_end":
            self.close_bar()
            if not self.quiet:
                click.echo(epoch_line(p.metrics, p.epochs, p.changes if self.search else None), err=True)
        elif p.kind == "note" and not self.quiet:
            click.echo(p.message, err=True)
        elif p.kind == "done":
            self.close_bar()

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
