"""A run folder, shared by search and training: its layout, metrics as append-only JSON
lines, text and JSON artefacts written atomically, and the checkpoint's place.

Every file but the JSON-lines logs is replaced atomically (a reader sees the old file
or the new one); a log line is appended and flushed to disk before the run goes on, and
a resumed run cuts the logs back to its checkpoint's epoch once."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from genolang.errors import UsageError
from genolang.fsio import write_text

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
RUN_JSON = "run.json"


class RunDir:
    """The folder of one training or search run."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def ensure(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()

    # -- JSON lines -------------------------------------------------------------------
    def append_jsonl(self, name: str, record: dict[str, Any]) -> None:
        """Append one JSON line to ``name`` and flush it to disk."""
        self.ensure()
        with open(self.path / name, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def log_metrics(self, record: dict[str, Any]) -> None:
        self.append_jsonl(METRICS, record)

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
        """Replace ``name`` with ``records`` (atomically)."""
        write_text(self.path / name, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))

    def truncate_jsonl(self, name: str, upto_epoch: int) -> None:
        """Drop records after ``upto_epoch`` (a resumed run writes again what follows)."""
        records = self.read_jsonl(name)
        kept = [r for r in records if int(r.get("epoch", 0)) <= upto_epoch]
        if len(kept) != len(records):
            self.write_jsonl(name, kept)

    # -- files ------------------------------------------------------------------------
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
