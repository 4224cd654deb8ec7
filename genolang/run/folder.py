"""A run directory: metrics as JSON lines, text artefacts and checkpoints, each
written atomically so an interrupted run never leaves a half-written file.

Checkpoints are plain dicts of tensors and numbers saved with ``torch.save`` and read
back with ``torch.load(weights_only=True)``: loading one never runs code."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from genolang.errors import UsageError
from genolang.fsio import atomic_path, write_text

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Save ``state`` atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely; unreadable or foreign files are a clear error."""
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


class RunDir:
    """The folder of one training or search run."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def ensure(self) -> "RunDir":
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line to ``metrics.jsonl`` (rewritten atomically)."""
        self.write_jsonl(METRICS, [*self.read_jsonl(METRICS), record])

    def metrics(self) -> list[dict[str, Any]]:
        return self.read_jsonl(METRICS)

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        path = self.path / name
        if not path.is_file():
            return []
        out = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise UsageError(f"{path}:{i}: not JSON ({err.msg})") from None
        return out

    def write_jsonl(self, name: str, records: list[dict[str, Any]]) -> None:
        write_text(self.path / name, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))

    def truncate_jsonl(self, name: str, upto_epoch: int) -> None:
        """Drop records after ``upto_epoch`` (a resumed run rewrites what follows)."""
        records = [r for r in self.read_jsonl(name) if int(r.get("epoch", 0)) <= upto_epoch]
        self.write_jsonl(name, records)

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        write_text(path, text)
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write_text(name, json.dumps(obj, indent=2, sort_keys=True) + "\n")

    def read_json(self, name: str) -> Any:
        path = self.path / name
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"{path}: missing") from None
        except json.JSONDecodeError as err:
            raise UsageError(f"{path}: not JSON ({err.msg})") from None
