"""Commands that convert genotypes between genolang specs and other formats."""

from __future__ import annotations

import click

from genolang.cli.spec import read_input
from genolang.errors import SpecError, UsageError
from genolang.fsio import check_destination, write_text
from genolang.interop import FORMATS, at_input
from genolang.parse.ast import SpecFile
from genolang.parse.printer import format_spec
from genolang.spec.check import load, load_text
from genolang.spec.resolve import Library


@click.command("import")
@click.option("--from", "fmt", required=True, type=click.Choice(sorted(FORMATS)), help="The format of TEXT.")
@click.argument("text")
@click.option("--name", default="imported", show_default=True, help="Name of the genotype to write.")
@click.option("--space", help="Space the genotype belongs to (default: the format's usual space).")
@click.option("-o", "--output", "--out", "output", type=click.Path(),
              help="Write the spec here (atomically; an existing file is replaced) instead of stdout.")
def import_(fmt: str, text: str, name: str, space: str | None, output: str | None) -> None:
    """Convert TEXT (the genotype itself, a file holding it, or '-' for stdin) into a
    checked genotype spec."""
    if output:
        check_destination(output)
    source, label = read_input(text)
    tree = FORMATS[fmt].read(source, label, name, space)
    spec_text = format_spec(SpecFile((tree,)), header_comments=[f"imported from the {fmt} format ({label})"])
    target = output or "<import>"
    try:
        load_text(spec_text, target, Library.for_file(output))
    except SpecError as err:  # said of the user's text, not of the spec text made from it
        raise at_input(err, spec_text, target, FORMATS[fmt].locate(source, label), source, label) from None
    if output:
        write_text(output, spec_text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(spec_text, nl=False)


@click.command("export")
@click.option("--to", "fmt", required=True, type=click.Choice(sorted(FORMATS)), help="The format to write.")
@click.argument("file", type=click.Path())
@click.option("--name", help="Which genotype of FILE (when it holds several).")
def export(fmt: str, file: str, name: str | None) -> None:
    """Print the genotype in FILE in another format."""
    result = load(file)
    if name is not None:
        if name not in result.genotypes:
            raise UsageError(f"{file} has no genotype '{name}'; it has: {', '.join(result.genotypes) or 'none'}")
        geno = result.genotypes[name]
    else:
        geno = result.single("genotype")
    click.echo(FORMATS[fmt].write(geno))
