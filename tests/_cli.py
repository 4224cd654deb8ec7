"""Helpers for tests that drive the command line: run a command in-process, check
that a command failed the way users should see failures, and check that commands run
without importing PyTorch."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from click.testing import CliRunner, Result

from genolang.cli import main

_WITHOUT_TORCH = """
import sys
from genolang.cli import main
for args in {argv!r}:
    try:
        main(args, prog_name="genolang")
    except SystemExit as exit:
        assert exit.code in (0, None), (args, exit.code)
print("TORCH" if "torch" in sys.modules else "NO-TORCH")
"""


def run(*args: object) -> Result:
    """``genolang ARGS...`` through click's runner; an exception other than the
    command's own exit is raised, so a crash shows its traceback in the test."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def assert_clean_failure(code: int, output: str, *fragments: str, status: int = 1) -> None:
    """Exit ``status`` (1: a spec, input or work error; 2: a usage error), no
    traceback, and every fragment in the output."""
    assert code == status, output
    assert "Traceback" not in output
    for fragment in fragments:
        assert fragment in output, output


def fails_cleanly(result: Result, *fragments: str) -> None:
    """``assert_clean_failure`` on a runner result: exit status 1."""
    assert_clean_failure(result.exit_code, result.output, *fragments)


def fails_with_usage(result: Result, *fragments: str) -> None:
    """A usage error on a runner result: exit status 2, no traceback, the fragments."""
    assert_clean_failure(result.exit_code, result.output, *fragments, status=2)


def assert_torch_free(argv: Sequence[Sequence[str]], cwd: Path) -> None:
    """Each command line of ``argv`` succeeds in one fresh interpreter that never
    imports torch."""
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH.format(argv=[list(a) for a in argv])],
                          capture_output=True, text=True, timeout=120, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "NO-TORCH"
