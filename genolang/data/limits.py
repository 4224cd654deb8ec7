"""How much memory a data set may take once loaded, checked before it is read.

Data sets are held in memory (uint8 images, int64 token ids). A folder the user
points at can be of any size, so loaders compute what it would take first and refuse
more than ``GENOLANG_MAX_DATA_GIB`` GiB (8 by default) with the figures and a fix,
instead of filling the machine's memory."""

from __future__ import annotations

import os

from genolang.errors import GenolangError, UsageError

ENV = "GENOLANG_MAX_DATA_GIB"
DEFAULT_GIB = 8.0


def memory_limit() -> int:
    """The most bytes a loaded data set may take."""
    raw = os.environ.get(ENV)
    if raw is None or not raw.strip():
        return int(DEFAULT_GIB * 2**30)
    try:
        gib = float(raw)
    except ValueError:
        gib = float("nan")
    if not gib > 0 or gib == float("inf"):
        raise UsageError(f"{ENV}={raw!r}: give the most memory a data set may take, in GiB (a positive number, "
                         f"e.g. {ENV}=16)")
    return int(gib * 2**30)


def gib(n: int) -> str:
    """``1.50 GiB``, ``12.0 MiB``."""
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def check_memory(what: str, need: int, fix: str) -> None:
    """A clear error when ``need`` bytes exceed the limit; ``what`` says what would be
    loaded, ``fix`` how to make it smaller."""
    limit = memory_limit()
    if need > limit:
        raise GenolangError(f"{what} would take {gib(need)} of memory, more than the limit of {gib(limit)}; "
                         f"{fix}, or raise the limit with {ENV}=<GiB> if the machine has the memory")
