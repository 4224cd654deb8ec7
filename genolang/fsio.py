"""Files, safely: atomic and durable writes (a reader never sees a half-written spec,
checkpoint or report, and a crash never leaves one), destinations checked before a
job starts, and bounded reads of regular files only.

* ``atomic_path`` writes beside the destination and renames over it after an fsync;
  a symlink's target is replaced (not the link), a read-only or non-regular
  destination is refused, and temp files that a killed process left beside the
  destination are removed (``clean_stale_temps``).
* ``check_destination`` / ``check_folder`` say before any work whether a file or a
  folder can be written there (and, with ``replace=False``, that no file is there).
* ``read_regular`` reads at most a limit of a regular file; FIFOs, devices and folders
  are refused by ``stat`` before anything is opened."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from genolang.errors import GenolangError, UsageError

# A temp file of a process that died mid-write: removed by the next write of the same
# destination when its process is gone (same host) or it is older than this.
STALE_SECONDS = 6 * 3600
_STEM_CHARS = 80  # of a destination's name in its temp files' names (NAME_MAX is 255)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def _temp_prefix(target: Path) -> str:
    return f".{target.name[:_STEM_CHARS]}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists (another user's) or not a pid we can ask about
    return True


def clean_stale_temps(target: str | os.PathLike[str], now: float | None = None) -> list[Path]:
    """Remove the temp files beside ``target`` that writes killed mid-way left behind:
    ``.NAME.HOST-PID-XXXX.tmp`` of this host whose process is gone, any of them older
    than ``STALE_SECONDS``, and the older form ``.NAME.XXXXXXXX.tmp`` when that old.
    Returns what was removed; files that cannot be removed are left alone."""
    dest = Path(target)
    prefix = _temp_prefix(dest)
    mine = re.compile(r"(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp")
    older = re.compile(r"[A-Za-z0-9_]{8}\.tmp")
    host, clock = _host(), time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(dest.parent if str(dest.parent) else "."))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not name.startswith(prefix) or not name.endswith(".tmp"):
            continue
        rest = name[len(prefix):]
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        old = clock - st.st_mtime > STALE_SECONDS
        match = mine.fullmatch(rest)
        if match is not None:
            stale = old or (match["host"] == host and int(match["pid"]) != os.getpid()
                            and not _pid_alive(int(match["pid"])))
        else:
            stale = old and older.fullmatch(rest) is not None
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _stat_or_none(path: Path, what: str) -> os.stat_result | None:
    """``path``'s stat, None when nothing is there; any other failure a ``UsageError``
    saying ``what`` and why."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise UsageError(f"{what} ({os_reason(err)})") from None


def _resolve_link(path: Path) -> Path:
    """A symlink's final target (so a write replaces the file, not the link)."""
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return path


def _writable_ancestor(folder: Path) -> None:
    """The nearest existing ancestor of ``folder`` (``folder`` itself when it exists)
    must be a folder genolang may create files or folders in."""
    probe = folder
    st: os.stat_result
    while True:
        try:
            st = probe.stat()
            break
        except FileNotFoundError:
            if probe.parent == probe:
                raise UsageError(f"{folder}: no existing folder above it") from None
            probe = probe.parent
        except OSError as err:
            raise UsageError(f"{folder}: cannot be created or written ({os_reason(err)})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{probe} is {_kind(st.st_mode)}, not a folder, so {folder} cannot be made there; "
                         "choose a path in a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{probe}: the folder is not writable (permission denied); choose another place or "
                         "change its permissions")
    if probe == folder:
        try:  # permissions are not everything: a read-only file system, a full quota
            fd, tmp = tempfile.mkstemp(prefix=".genolang-probe-", suffix=".tmp", dir=folder)
            os.close(fd)
            os.unlink(tmp)
        except OSError as err:
            raise UsageError(f"{folder}: cannot write files there ({os_reason(err)})") from None


def _refuse_unwritable_file(target: Path, st: os.stat_result, flag: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{target} is a folder; name the file to write there, such as {target / 'NAME'}")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{target} is {_kind(st.st_mode)}; genolang writes regular files only; choose another name")
    if not os.access(target, os.W_OK) or not stat.S_IMODE(st.st_mode) & 0o222:
        raise UsageError(f"{target} is read-only; make it writable (chmod u+w {target}) or write elsewhere"
                         + (f" ({flag})" if flag else ""))


def check_destination(path: str | os.PathLike[str], *, replace: bool = True, flag: str = "") -> Path:
    """Before any work: say (as a ``UsageError``) why a file cannot be written at
    ``path``: a folder or a non-regular file there, a read-only file, a parent that is
    a file or not writable; with ``replace=False`` also an existing file (``flag``
    names the option that allows replacing it, e.g. ``--force``). Returns the path a
    write will replace (a symlink's target)."""
    given = Path(path)
    if str(given) in ("", ".", ".."):
        raise UsageError(f"'{path}' is not a file name; name the file to write")
    target = _resolve_link(given)
    st = _stat_or_none(target, f"{given}: cannot be written")
    if st is not None:
        _refuse_unwritable_file(target, st, "")
        if not replace:
            how = f"pass {flag} to replace it, or " if flag else ""
            raise UsageError(f"{given} already exists; {how}choose another name (genolang never replaces a file "
                             "silently)")
    _writable_ancestor(target.parent if str(target.parent) else Path("."))
    return target


def check_folder(path: str | os.PathLike[str]) -> Path:
    """Before any work: a ``UsageError`` unless ``path`` is a writable folder or can be
    made one."""
    folder = Path(path)
    st = _stat_or_none(folder, f"{folder}: cannot be used as a folder")
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{folder} is {_kind(st.st_mode)}, not a folder; choose a folder (or a new name)")
    _writable_ancestor(folder)
    return folder


def make_folder(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p`` with the reason in words when it cannot be done."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{folder} exists and is not a folder; choose another name") from None
    except OSError as err:
        raise UsageError(f"{folder}: cannot create the folder ({os_reason(err)})") from None
    return folder


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one
    rename after its data reached the disk, on failure it is removed and ``path`` is
    left as it was. A symlink at ``path`` keeps pointing at the new file; a read-only
    or non-regular file there is refused."""
    target = _resolve_link(Path(path))
    st = _stat_or_none(target, f"{path}: cannot be written")
    if st is not None:
        _refuse_unwritable_file(target, st, "")
    make_folder(target.parent if str(target.parent) else ".")
    clean_stale_temps(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(target)}{_host()}-{os.getpid()}-", suffix=".tmp",
                                   dir=target.parent)
    except OSError as err:
        raise UsageError(f"{path}: cannot write there ({os_reason(err)})") from None
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600); give it the mode the target has, or
        # the one a plain open() would have given a new file
        os.chmod(tmp, _mode_for(target))
        _fsync(tmp)  # the data is on disk before the name points at it
        os.replace(tmp, target)
        _fsync(target.parent)  # and the new name itself
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise GenolangError(f"cannot write {path} ({os_reason(err)}); it was left as it was") from None
        raise


def _fsync(path: str | os.PathLike[str]) -> None:
    """Flush a file's (or a folder's) data to disk; a file system that cannot is skipped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


# ---- reading ------------------------------------------------------------------------------

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def os_reason(err: OSError) -> str:
    """The words for an ``OSError``: its ``strerror``, named for the common cases."""
    if err.errno == errno.ELOOP:
        return "too many levels of symbolic links (a symlink loop?)"
    if err.errno == errno.ENOTDIR:
        return "a part of the path is a file, not a folder"
    return err.strerror or type(err).__name__


def stat_regular(path: str | os.PathLike[str], what: str = "file") -> os.stat_result:
    """``os.stat`` of a path that must be a regular file (followed through symlinks);
    a ``UsageError`` that says what it is otherwise. Never opens anything, so a FIFO
    or a device cannot block or stream forever."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({os_reason(err)})") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path}: is {_kind(st.st_mode)}, not a {what}; give a regular file")
    return st


def read_regular(path: str | os.PathLike[str], limit: int | None = None, what: str = "file") -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit + 1`` of them (so a
    caller sees that a file is too large without reading it all). Checked with
    ``stat`` before opening and opened non-blocking, then checked again on the open
    descriptor (a FIFO swapped in between cannot block)."""
    stat_regular(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({os_reason(err)})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{path}: is {_kind(st.st_mode)}, not a {what}; give a regular file")
        chunks: list[bytes] = []
        left = limit + 1 if limit is not None else None
        while left is None or left > 0:
            chunk = os.read(fd, 1 << 20 if left is None else min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            if left is not None:
                left -= len(chunk)
        return b"".join(chunks)
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({os_reason(err)})") from None
    finally:
        os.close(fd)
