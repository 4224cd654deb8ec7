"""Commands on search runs: ``plot`` (PNGs through matplotlib) and ``report`` (one
self-contained HTML page). Neither imports torch."""

from __future__ import annotations

from pathlib import Path

import click

from genolang.fsio import check_destination, check_folder
from genolang.report.run import load_genotype, load_run


@click.command("plot")
@click.argument("run_dir", type=click.Path())
@click.option("-o", "--output", "--out", "outdir", type=click.Path(file_okay=False),
              help="Folder for the PNGs (made if missing; default RUN_DIR/plots); PNGs there are replaced.")
def plot(run_dir: str, outdir: str | None) -> None:
    """Plot a search run (the --run-dir of 'genolang search'): a heatmap of the final
    softmax alphas per cell (alphas.png), each edge's op weights over the epochs
    (trajectory-CELL.png) and the loss, accuracy or perplexity and learning rate per
    epoch (curves.png). Needs matplotlib: pip install matplotlib."""
    from genolang.report.plots import write_plots

    if outdir is not None:
        check_folder(outdir)
    run = load_run(run_dir)
    genotype = load_genotype(run.genotype_file) if run.genotype_file is not None else None
    folder = Path(outdir) if outdir is not None else run.path / "plots"
    check_folder(folder)
    for path in write_plots(run, folder, genotype):
        click.echo(f"wrote {path}", err=True)


@click.command("report")
@click.argument("run_dir", type=click.Path())
@click.option("-o", "--output", "--out", "output", type=click.Path(dir_okay=False),
              help="HTML file to write (atomically; default RUN_DIR/report.html); an existing one is replaced.")
def report(run_dir: str, output: str | None) -> None:
    """Write one self-contained HTML page about a search run: the found genotype and
    its cell diagrams, the alpha plots and curves, the genotype after each epoch with
    the diff to the one before, and the run's provenance. Images are embedded; the
    page loads nothing else and runs no scripts."""
    from genolang.report.page import write_report

    if output is not None:
        check_destination(output)
    path, page = write_report(run_dir, output)
    for note in page.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {path}", err=True)
