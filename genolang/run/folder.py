"""A run folder, shared by search and training: its layout, metrics as append-only JSON
lines, text and JSON artefacts written atomically, and the checkpoint's place.

Every file but the JSON-lines logs is replaced atomically (a reader sees the old file
or the new one); a log line is appended and flushed to disk before the run goes on, and
a resumed run cuts the logs back to its checkpoint's epoch once.

A folder genolang made a run folder holds the marker ``.genolang-run`` (which command,
which genolang, when). Only such folders, empty ones and new ones are used, so a
``--run-dir`` pointing at someone else's files never has them overwritten or merged
into; a folder written by a genolang from before markers is taken only to resume the
checkpoint in it."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from genolang import __version__
from genolang.errors import InputError, UsageError
from genolang.fsio import check_folder, make_folder, read_regular, write_text

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
RUN_JSON = "run.json"
MARKER = ".genolang-run"
_MAX_JSON_BYTES = 256 << 20


class RunDir:
    """The folder of one training or search run."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.command: str | None = None  # set by ``claim``: the marker ``ensure`` writes

    def ensure(self) -> RunDir:
        """Make the folder (and, for a claimed run, its marker) when the run first writes
        into it: a run that fails before writing anything leaves nothing behind."""
        make_folder(self.path)
        if self.command is not None and not self.marker.exists():
            write_text(self.marker, json.dumps({"command": self.command, "genolang": __version__,
                                                "created": _now()}, indent=2) + "\n")
        return self

    # -- ownership --------------------------------------------------------------------
    @property
    def marker(self) -> Path:
        return self.path / MARKER

    def marked_kind(self) -> str | None:
        """The command whose run folder this is (``search``, ``training``), from the
        marker; None without one."""
        if not self.marker.is_file():
            return None
        try:
            data = json.loads(read_regular(self.marker, 1 << 16).decode("utf-8"))
            return str(data["command"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise InputError(f"{self.marker}: not a genolang run marker; remove it only if the folder is yours, or "
                             "choose another --run-dir") from None

    def claim(self, command: str, resume: bool, write: bool = True) -> None:
        """Take this folder for a ``command`` run: refuse a file where the folder should
        be, a folder that cannot be written, one holding another command's run, and
        one holding files genolang did not write (no marker) unless it is an older
        genolang's run being resumed; then (``write``: rank 0) mark it when the run
        first writes into it (``ensure``)."""
        check_folder(self.path)
        kind = self.marked_kind()
        if kind is not None and kind != command:
            raise UsageError(f"{self.path} holds a {kind} run, not a {command} run; choose another --run-dir")
        if kind is None:
            try:
                names = sorted(os.listdir(self.path)) if self.path.is_dir() else []
            except OSError as err:
                raise UsageError(f"{self.path}: cannot read the folder ({err.strerror})") from None
            legacy = resume and self.has_checkpoint()  # an older genolang's run, being resumed
            if names and not legacy:
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                raise UsageError(f"{self.path} holds files that genolang did not write there ({shown}); choose an "
                                 "empty or new --run-dir (genolang only reuses folders it made, which hold "
                                 f"{MARKER})")
        if write:
            self.command = command
            if self.path.is_dir():
                self.ensure()  # a folder that exists (empty, or an older genolang's run) is marked now

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
        for i, line in enumerate(_read(path).splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise InputError(f"{path}:{i}: not JSON ({err.msg})") from None
        return out

    def write_jsonl(self, name: str, records: list[dict[str, Any]]) -> None:
        """Replace ``name`` with ``records`` (atomically)."""
        self.ensure()
        write_text(self.path / name, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))

    def truncate_jsonl(self, name: str, upto_epoch: int) -> None:
        """Drop records after ``upto_epoch`` (a resumed run writes again what follows)."""
        records = self.read_jsonl(name)
        kept = [r for r in records if int(r.get("epoch", 0)) <= upto_epoch]
        if len(kept) != len(records):
            self.write_jsonl(name, kept)

    # -- files ------------------------------------------------------------------------
    def write_text(self, name: str, text: str) -> Path:
        self.ensure()
        path = self.path / name
        write_text(path, text)
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write_text(name, json.dumps(obj, indent=2, sort_keys=True) + "\n")

    def read_json(self, name: str) -> Any:
        path = self.path / name
        if not path.exists():
            raise InputError(f"{path}: missing")
        try:
            return json.loads(_read(path))
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not JSON ({err.msg})") from None


def unused(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3`` ... when it is taken (default run folder names)."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def _read(path: Path) -> str:
    data = read_regular(path, _MAX_JSON_BYTES)
    if len(data) > _MAX_JSON_BYTES:
        raise InputError(f"{path}: larger than {_MAX_JSON_BYTES >> 20} MiB; not a file genolang wrote")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start}); not a file genolang wrote") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
