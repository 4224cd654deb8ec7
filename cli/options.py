"""Option types shared by the commands, so that an option means and checks the same
everywhere: a bad value is click's usage error (exit 2) before any work starts."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # generic in the click mypy sees; not in every click this runs with (>= 8.1)
    _ParamType = click.ParamType[Any]
else:
    _ParamType = click.ParamType

DEVICE_HELP = "auto (CUDA when present), cpu or cuda[:N]."


def pipeline_help() -> str:
    """The supernet passes in their default order, for ``--passes`` help texts."""
    from genolang.passes import DEFAULT_PASSES

    return "The default pipeline, in order: " + ", ".join(DEFAULT_PASSES) + "."
SEED = click.IntRange(0, 2 ** 32 - 1)  # the generators' seeds are derived from it; larger ones overflow


class DeviceType(_ParamType):
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip().lower()
        if re.fullmatch(r"auto|cpu|cuda(:\d{1,3})?", text):
            return text
        self.fail(f"'{value}' is not a device; use {DEVICE_HELP[:-1]}", param, ctx)


DEVICE = DeviceType()


class Finite(_ParamType):
    """A finite number in a range (``low`` and ``high`` may be open): NaN and infinity
    are refused, which ``click.FloatRange`` lets through."""

    name = "number"

    def __init__(self, low: float | None = None, high: float | None = None, *, low_open: bool = False,
                 high_open: bool = False) -> None:
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def _range(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "finite"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            number = value
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                self.fail(f"'{value}' is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a finite number", param, ctx)
        too_low = self.low is not None and (number < self.low or (self.low_open and number == self.low))
        too_high = self.high is not None and (number > self.high or (self.high_open and number == self.high))
        if too_low or too_high:
            self.fail(f"{number:g} is not {self._range()}", param, ctx)
        return number


POSITIVE = Finite(0, low_open=True)
NON_NEGATIVE = Finite(0)
PROBABILITY = Finite(0, 1, high_open=True)  # [0, 1)
