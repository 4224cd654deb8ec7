"""A small on-disk cache of what is computed once from a data set's files (the
normalisation statistics of an image folder), so a second load does not compute it
again.

Where: ``$GENOLANG_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/genolang``, else
``~/.cache/genolang``; never the data folder, which may be read-only or shared by
users. Each entry is one JSON file named by a digest of everything the value depends
on (for a folder: the relative path, size and modification time of every training
image, and how they are read), so a changed, added or removed file gives another key
and the value is computed afresh; stale entries are never read. Floats are stored as
``repr`` writes them, so a value read back is bit-identical to the one computed.

The cache only saves time: an entry that cannot be written (a read-only home, a full
disk) or read (damaged, from another version) is computed again, never an error."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from genolang.errors import GenolangError
from genolang.fsio import read_regular, write_text

ENV = "GENOLANG_CACHE_DIR"
VERSION = 1


def cache_root() -> Path:
    """The folder that holds genolang's cache."""
    explicit = os.environ.get(ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "genolang"
    return Path.home() / ".cache" / "genolang"


def digest(parts: Any) -> str:
    """A key for a JSON-serialisable description of what a value depends on."""
    text = json.dumps([VERSION, parts], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def entry_path(kind: str, key: str) -> Path:
    return cache_root() / kind / f"{key}.json"


def read(kind: str, key: str) -> dict[str, Any] | None:
    """The cached value for ``key``, or None (absent, unreadable or damaged)."""
    try:
        value = json.loads(read_regular(entry_path(kind, key), 1 << 20).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, GenolangError):
        return None
    if not isinstance(value, dict) or value.get("version") != VERSION or value.get("key") != key:
        return None
    return value


def write(kind: str, key: str, value: dict[str, Any]) -> bool:
    """Store ``value`` under ``key`` atomically; False when the cache cannot be written."""
    try:
        write_text(entry_path(kind, key), json.dumps({**value, "version": VERSION, "key": key}, indent=1) + "\n")
    except (OSError, GenolangError):
        return False
    return True
