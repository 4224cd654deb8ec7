"""The ``draw`` command: cell diagrams as SVG, PNG, PDF (through Graphviz) or DOT text.
It does not import torch or matplotlib."""

from __future__ import annotations

import click

from genolang.cli.spec import dot_for
from genolang.draw import FORMATS, write_drawing
from genolang.fsio import check_destination
from genolang.spec.check import load


@click.command("draw")
@click.argument("file", type=click.Path())
@click.option("-o", "--output", "--out", "output", type=click.Path(dir_okay=False),
              help="Picture to write (atomically; an existing one is replaced): .svg, .png, .pdf (need Graphviz) or "
                   ".dot. Default: DOT on stdout.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Picture format, when the file name does not say.")
@click.option("--cell", help="Only this cell (a cell name, or GENOTYPE.CELL).")
def draw(file: str, output: str | None, fmt: str | None, cell: str | None) -> None:
    """Draw the cells of FILE's genotypes and spaces: inputs, nodes, the op on every
    edge and the output, one box per cell."""
    if output is not None:
        check_destination(output)
    result = load(file)
    if result.warnings:
        click.echo(result.render_warnings(), err=True)
    dot = dot_for(result, cell)
    if output is None:
        if fmt not in (None, "dot"):
            raise click.UsageError(f"--format {fmt} writes a binary picture; name it with -o")
        click.echo(dot, nl=False)
        return
    written = write_drawing(dot, output, fmt)
    click.echo(f"wrote {output} ({written})", err=True)
