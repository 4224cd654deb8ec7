"""Git set-up for spec files: ``git diff`` and ``git log -p`` show ``.geno`` files
through the canonical printer (a textconv driver), with hunk headers naming the
declaration or cell a change is in. Setting up twice changes nothing the second time."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from genolang.errors import UsageError
from genolang.fsio import write_text

DRIVER = "genolang"
ATTRIBUTE_LINE = f"*.geno diff={DRIVER}"
# hunk headers: the enclosing 'genotype x : s {', 'space x {', or a cell block
XFUNCNAME = r"^[ \t]*((genotype|space|network|cell)[ \t]+[A-Za-z_].*|[A-Za-z_][A-Za-z0-9_]*[ \t]*\{.*)$"


def genolang_command() -> str:
    """The running genolang as a shell command with an absolute path: the ``genolang``
    script when that is what runs, else this Python with ``-m genolang``; so git runs
    the textconv driver without the environment being activated."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "genolang":
        found = script if script.is_absolute() else shutil.which(str(script))
        if found is not None and os.access(found, os.X_OK):
            return shlex.quote(str(Path(found).absolute()))
    return f"{shlex.quote(str(Path(sys.executable).absolute()))} -m genolang"


def config() -> dict[str, str]:
    """Key -> value of the repository's local git config."""
    return {
        f"diff.{DRIVER}.textconv": f"{genolang_command()} fmt --stdout --lenient",
        f"diff.{DRIVER}.xfuncname": XFUNCNAME,
    }


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if shutil.which("git") is None:
        raise UsageError("git is not installed or not on PATH; install git first")
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=check,
                              timeout=60)
    except subprocess.CalledProcessError as err:
        detail = (err.stderr or err.stdout or "").strip().splitlines()
        raise UsageError(f"git {' '.join(args)} failed in {repo}: {detail[-1] if detail else err.returncode}") from None
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UsageError(f"cannot run git in {repo}: {err}") from None


def repo_root(path: str | Path = ".") -> Path:
    """The top folder of the git work tree holding ``path``."""
    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(f"{path}: no such folder; pass --repo with a folder inside a git repository")
    result = _git(folder, "rev-parse", "--show-toplevel", check=False)
    if result.returncode != 0:
        raise UsageError(f"{path} is not inside a git repository; run 'git init' there first, or pass --repo")
    return Path(result.stdout.strip())


def _has_attribute(text: str) -> bool:
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "*.geno" and f"diff={DRIVER}" in parts[1:]:
            return True
    return False


def setup_repo(path: str | Path = ".") -> list[str]:
    """Add the ``.gitattributes`` line and the local git config that make git show spec
    files canonically. Returns what was changed (empty when all was already there)."""
    root = repo_root(path)
    done: list[str] = []
    attributes = root / ".gitattributes"
    try:
        text = attributes.read_text(encoding="utf-8") if attributes.exists() else ""
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {attributes}: {err}") from None
    if not _has_attribute(text):
        if text and not text.endswith("\n"):
            text += "\n"
        write_text(attributes, text + ATTRIBUTE_LINE + "\n")
        done.append(f"added '{ATTRIBUTE_LINE}' to {attributes}")
    for key, value in config().items():
        current = _git(root, "config", "--local", "--get", key, check=False)
        if current.returncode == 0 and current.stdout.rstrip("\n") == value:
            continue
        _git(root, "config", "--local", "--replace-all", key, value)
        done.append(f"set git config {key} = {value}")
    return done
