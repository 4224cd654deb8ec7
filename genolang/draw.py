"""Cell diagrams: the cells' DOT text (``genolang.ir.graph``) as a file, rendered to
SVG, PNG or PDF by Graphviz's ``dot`` when it is installed. DOT text needs nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from genolang.errors import UsageError
from genolang.fsio import write_bytes, write_text

IMAGE_FORMATS = ("svg", "png", "pdf")
FORMATS = (*IMAGE_FORMATS, "dot")
INSTALL_HINT = "install Graphviz (Debian/Ubuntu: 'apt-get install graphviz'), or write DOT text with '-o cell.dot'"


def format_of(path: str | os.PathLike[str], explicit: str | None = None) -> str:
    """The output format: ``explicit`` when given, else the file's extension."""
    fmt = (explicit or Path(path).suffix.lstrip(".")).lower()
    if fmt == "gv":
        fmt = "dot"
    if fmt not in FORMATS:
        raise UsageError(f"{path}: cannot tell the picture format from the name; "
                         f"end it in one of {', '.join('.' + f for f in FORMATS)} or pass --format")
    return fmt


def graphviz() -> str | None:
    """The path of Graphviz's ``dot`` program, or None when it is not installed."""
    return shutil.which("dot")


def render(dot_text: str, fmt: str, timeout: float = 120.0) -> bytes:
    """``dot_text`` rendered by Graphviz as ``fmt`` (svg, png or pdf)."""
    if fmt not in IMAGE_FORMATS:
        raise UsageError(f"cannot render '{fmt}'; Graphviz renders {', '.join(IMAGE_FORMATS)}")
    program = graphviz()
    if program is None:
        raise UsageError(f"Graphviz's 'dot' program is not installed, so no {fmt.upper()} can be drawn; "
                         + INSTALL_HINT)
    try:
        done = subprocess.run([program, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UsageError(f"Graphviz failed to draw the cells: {err}") from None
    if done.returncode != 0 or not done.stdout:
        detail = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
        raise UsageError(f"Graphviz failed to draw the cells: {detail}")
    return done.stdout


def write_drawing(dot_text: str, path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """Write the diagram to ``path`` atomically, as DOT text or rendered; returns the format."""
    chosen = format_of(path, fmt)
    if chosen == "dot":
        write_text(path, dot_text)
    else:
        write_bytes(path, render(dot_text, chosen))
    return chosen
