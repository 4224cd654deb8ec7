"""Cell diagrams: the cells' DOT text (``dot_document``, from their IR) as a file, rendered to
SVG, PNG or PDF by Graphviz's ``dot`` when it is installed. DOT text needs nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from genolang.errors import GenolangError, MissingTool, UsageError
from genolang.fsio import write_bytes, write_text
from genolang.ir.graph import CellIR, applied_ops

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
        raise MissingTool(f"Graphviz's 'dot' program is not installed, so no {fmt.upper()} can be drawn; "
                         + INSTALL_HINT)
    try:
        done = subprocess.run([program, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise GenolangError(f"Graphviz failed to draw the cells: {err}") from None
    if done.returncode != 0 or not done.stdout:
        detail = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
        raise GenolangError(f"Graphviz failed to draw the cells: {detail}")
    return done.stdout


def write_drawing(dot_text: str, path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """Write the diagram to ``path`` atomically, as DOT text or rendered; returns the format."""
    chosen = format_of(path, fmt)
    if chosen == "dot":
        write_text(path, dot_text)
    else:
        write_bytes(path, render(dot_text, chosen))
    return chosen


# ---- DOT text of cell IRs -----------------------------------------------------------

def dot_body(cell: CellIR, prefix: str = "") -> list[str]:
    """The node and edge statements of this cell, ids prefixed by ``prefix`` so
    several cells can share one graph."""
    def nid(n: str) -> str:
        return _dot_id(prefix + n)

    lines = []
    for n in cell.inputs:
        lines.append(f'{nid(n)} [shape=box, style=filled, fillcolor="#d8e8f8", label="{n}"];')
    for n in cell.nodes:
        lines.append(f'{nid(n)} [shape=circle, style=filled, fillcolor="#f8f0c8", label="{n}"];')
    lines.append(f'{nid("out")} [shape=box, style=filled, fillcolor="#d8f0d8", label="{cell.reducer}"];')
    derived = [n for n in cell.order() if cell.role(n) not in ("input", "node", "output")]
    for n in derived:  # a pass's nodes: a shared ReLU, an op applied once for several edges
        d = cell.graph.nodes[n]
        label = "+".join(applied_ops(d)) if d.get("op") else d["role"]
        lines.append(f'{nid(n)} [shape=ellipse, style=dashed, label="{label}"];')
        for u, _ in cell.graph.in_edges(n):
            lines.append(f"{nid(u)} -> {nid(n)} [style=dotted];")
    for e in cell.edges():
        if e.kind == "term":
            lines.append(f'{nid(e.src)} -> {nid(e.dst)} [label="[{e.part}]"];')
            continue
        label = e.op if e.op is not None else f"mixed[{len(e.candidates or ())}]"
        if e.stride != 1:
            label += f" /{e.stride}"
        lines.append(f'{nid(e.src)} -> {nid(e.dst)} [label="{label}"];')
    for n in cell.output_nodes:
        lines.append(f"{nid(n)} -> {nid('out')} [style=dashed];")
    return lines


def dot_document(cells: list[tuple[str, CellIR]]) -> str:
    """One DOT digraph; with several cells, one labelled cluster per cell."""
    lines = ["digraph genolang {", "  rankdir=LR;", '  node [fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    if len(cells) == 1:
        label, cell = cells[0]
        lines.append(f'  label="{label}";')
        lines += ["  " + line for line in dot_body(cell)]
    else:
        for i, (label, cell) in enumerate(cells):
            lines.append(f"  subgraph cluster_{i} {{")
            lines.append(f'    label="{label}";')
            lines += ["    " + line for line in dot_body(cell, f"k{i}_")]
            lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_id(text: str) -> str:
    return text if text.replace("_", "a").isalnum() and not text[0].isdigit() else f'"{text}"'


def cell_dot(cell: CellIR, graph_name: str | None = None) -> str:
    """Graphviz DOT text of one cell: inputs and output as boxes, nodes as circles, ops on edges."""
    return dot_document([(graph_name or f"cell {cell.name}", cell)])
