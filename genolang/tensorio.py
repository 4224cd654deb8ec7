"""Files of tensors: checkpoints and saved models are plain dicts of tensors, numbers
and strings written with ``torch.save`` atomically and read back with
``torch.load(weights_only=True)``, so loading one never runs code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from genolang.errors import UsageError
from genolang.fsio import atomic_path


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` atomically: a reader sees the old file or the new one."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a file written by ``save_state`` safely; unreadable or foreign files are a
    clear error."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such checkpoint")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - corrupt zip, wrong format, disallowed globals
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"{p}: not a readable genolang checkpoint ({first[:200]})") from None
    if not isinstance(state, dict) or "format" not in state:
        raise UsageError(f"{p}: not a genolang checkpoint (no 'format' entry)")
    return state
