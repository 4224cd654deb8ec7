"""Files of tensors: checkpoints and saved models are plain dicts of tensors, numbers
and strings written with ``torch.save`` atomically and durably and read back with
``torch.load(weights_only=True)``, so loading one never runs code.

Every file carries its own SHA-256: ``torch.save`` writes a zip archive, and the
archive's comment (the last bytes of the file, after the end-of-central-directory
record) is set to ``genolang-sha256:<hex>``, the digest of every byte before it. The
file stays a plain PyTorch file (``torch.load`` and ``zipfile`` read it as before), and
no byte of it can change unnoticed: the digest covers the tensors, the pickle, the zip
structure and the comment's length, and the comment is the digest itself. A comment
rather than a sidecar file, because a sidecar can be lost, copied without its file or
left stale by a crash between two renames.

Files written before digests (an empty zip comment) still load, reported as
unverified (``TensorFile.verified``); anything else that does not verify is refused
with the file named and what to do, never with torch's own text."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genolang.errors import InputError
from genolang.fsio import atomic_path, read_regular

MAGIC = b"genolang-sha256:"
TRAILER = len(MAGIC) + 64  # the zip comment: the magic and 64 hex digits
_EOCD = b"PK\x05\x06"  # zip's end-of-central-directory record: 22 bytes, then the comment
_EOCD_SIZE = 22
DEFAULT_FIX = "restore it from a backup or write it again"


@dataclass(frozen=True)
class TensorFile:
    """A loaded file: its dict and whether its digest was checked (False only for a
    file written before genolang wrote digests)."""

    state: dict[str, Any]
    verified: bool


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` atomically and durably, with its digest: a reader sees the old
    file or the new one, and a damaged copy is refused on load."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        seal(tmp)


def seal(path: str | os.PathLike[str]) -> str:
    """Append the digest comment to the zip archive ``torch.save`` wrote at ``path``;
    returns the hex digest."""
    with open(path, "r+b") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(size - _EOCD_SIZE)
        eocd = fh.read(_EOCD_SIZE)
        if size < _EOCD_SIZE or eocd[:4] != _EOCD or eocd[-2:] != b"\x00\x00":
            raise RuntimeError(f"torch.save wrote {path} in a layout genolang does not know (no plain zip end)")
        fh.seek(size - 2)
        fh.write(struct.pack("<H", TRAILER))
        fh.flush()
        fh.seek(0)
        digest = hashlib.sha256()
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
        hexdigest = digest.hexdigest()
        fh.seek(0, os.SEEK_END)
        fh.write(MAGIC + hexdigest.encode("ascii"))
    return hexdigest


def _verify(data: bytes, where: Path, fix: str) -> bool:
    """True for a sealed file whose digest matches, False for a file written before
    digests; an ``InputError`` for anything else."""
    sealed = len(data) >= _EOCD_SIZE + TRAILER and data[-TRAILER - _EOCD_SIZE:][:4] == _EOCD and \
        data[-TRAILER - 2:-TRAILER] == struct.pack("<H", TRAILER)
    if sealed and data[-TRAILER:-64] == MAGIC:
        expected = data[-64:]
        actual = hashlib.sha256(memoryview(data)[:-TRAILER]).hexdigest().encode("ascii")
        if actual != expected:
            raise InputError(f"{where}: damaged: its content does not match the SHA-256 genolang wrote into it "
                             f"(the file changed after it was saved: a disk or copy error, or an edit); {fix}")
        return True
    if MAGIC in data[-TRAILER - _EOCD_SIZE:] or sealed:
        raise InputError(f"{where}: damaged: the SHA-256 record at its end is broken; {fix}")
    if len(data) >= _EOCD_SIZE and data[-_EOCD_SIZE:][:4] == _EOCD and data[-2:] == b"\x00\x00":
        return False  # a zip without comment: written before digests (or by plain torch.save)
    raise InputError(f"{where}: damaged or not a file genolang wrote (it does not end like a PyTorch file); {fix}")


def read_state(path: str | os.PathLike[str], map_location: str | torch.device = "cpu",
               fix: str = DEFAULT_FIX) -> TensorFile:
    """Read and verify a file written by ``save_state``. ``fix`` says what to do with a
    damaged one (it ends every refusal). Only tensors and plain values are loaded."""
    p = Path(path)
    data = read_regular(p, None, "checkpoint file")
    verified = _verify(data, p, fix)
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise InputError(
                f"{p}: holds Python objects other than tensors, numbers and strings, so genolang does "
                "not load it (loading such objects can run code); use a file that genolang wrote"
            ) from None
        raise InputError(f"{p}: damaged: its data cannot be read back; {fix}") from None
    except (RuntimeError, EOFError, ValueError, KeyError, OSError, zipfile.BadZipFile, struct.error,
            UnicodeDecodeError, AttributeError, TypeError, IndexError, OverflowError, MemoryError):
        raise InputError(f"{p}: damaged or not a PyTorch file: its data cannot be read back; {fix}") from None
    if not isinstance(state, dict) or "format" not in state:
        raise InputError(f"{p}: not a genolang checkpoint (no 'format' entry); use a file written by genolang")
    return TensorFile(state, verified)


def load_state(path: str | os.PathLike[str], map_location: str | torch.device = "cpu",
               fix: str = DEFAULT_FIX) -> dict[str, Any]:
    """The dict of ``read_state``."""
    return read_state(path, map_location, fix).state
