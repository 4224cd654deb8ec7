"""Commands for genotypes under version control: diff, hash, git-setup. None of them
imports torch."""

from __future__ import annotations

import click

from genolang.errors import GenolangError, UsageError
from genolang.spec.check import Checked, load
from genolang.spec.checked import GenotypeSpec, NetworkSpec, SearchSpec, SpaceSpec
from genolang.vcs.canon import cell_hash, genotype_hash, search_hash, short, space_hash
from genolang.vcs.diff import GenotypeDiff, SpaceDiff, diff_genotypes, diff_spaces
from genolang.vcs.git import genolang_command, setup_repo

EXIT_SAME, EXIT_DIFFERENT, EXIT_TROUBLE = 0, 1, 2


def _one_decl(result: Checked, path: str) -> GenotypeSpec | SpaceSpec:
    """The genotype of a file, or its space when it holds no genotype."""
    if len(result.genotypes) == 1:
        return next(iter(result.genotypes.values()))
    if not result.genotypes and len(result.spaces) == 1:
        return next(iter(result.spaces.values()))
    found = [f"genotype {n}" for n in result.genotypes] + [f"space {n}" for n in result.spaces]
    raise UsageError(f"{path}: diff compares files holding one genotype (or one space); this one holds "
                     f"{', '.join(found) or 'neither'}")


@click.command("diff")
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; only set the exit status.")
def diff(a: str, b: str, quiet: bool) -> None:
    """Compare the genotypes (or spaces) in files A and B as architectures: which
    cells, nodes, inputs and ops changed. Node numbering, term order and output
    order are not changes. Exit status: 0 equivalent, 1 different, 2 trouble (as diff)."""
    result: GenotypeDiff | SpaceDiff
    try:
        left, right = _one_decl(load(a), a), _one_decl(load(b), b)
        if isinstance(left, GenotypeSpec) and isinstance(right, GenotypeSpec):
            result = diff_genotypes(left, right)
        elif isinstance(left, SpaceSpec) and isinstance(right, SpaceSpec):
            result = diff_spaces(left, right)
        else:
            kinds = ["genotype" if isinstance(x, GenotypeSpec) else "space" for x in (left, right)]
            raise UsageError(f"cannot compare a {kinds[0]} ({a}) with a {kinds[1]} ({b})")
    except GenolangError as err:
        click.echo(err.render(), err=True)
        raise click.exceptions.Exit(EXIT_TROUBLE) from None
    if not quiet:
        click.echo(result.render(a, b), nl=False)
    raise click.exceptions.Exit(EXIT_SAME if result.equivalent else EXIT_DIFFERENT)


@click.command("hash")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--full", is_flag=True, help="Print all 64 hex digits instead of the first 16.")
def hash_cmd(files: tuple[str, ...], full: bool) -> None:
    """Print canonical hashes of the genotypes (and their cells) and spaces in FILES.
    Equivalent genotypes (renumbered nodes, reordered terms) hash alike; names and
    comments are not hashed."""
    def show(digest: str) -> str:
        return digest if full else short(digest)

    for path in files:
        result = load(path)
        for geno in result.genotypes.values():
            click.echo(f"{show(genotype_hash(geno))}  genotype {geno.name}  ({path})")
            for cell in geno.cells:
                click.echo(f"{show(cell_hash(cell))}    cell {cell.name}")
        for space in result.spaces.values():
            click.echo(f"{show(space_hash(space))}  space {space.name}  ({path})")
        for search in result.searches.values():
            click.echo(f"{show(search_hash(search, _search_network(search, result)))}  search {search.name}  ({path})")
        if not result.genotypes and not result.spaces and not result.searches:
            click.echo(f"{path}: no genotype, space or search to hash", err=True)


def _search_network(search: SearchSpec, result: Checked) -> NetworkSpec | None:
    """The skeleton a search declaration names (this file's, or resolved as a search
    resolves it), None when it leaves it to the data set."""
    from genolang.spec.lookup import load_named

    if search.network is None:
        return None
    if search.network in result.networks:
        return result.networks[search.network]
    network = load_named("network", search.network, search.path)
    assert isinstance(network, NetworkSpec)
    return network


@click.command("git-setup")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False),
              help="A folder inside the git repository to set up.")
def git_setup(repo: str) -> None:
    """Make git show .geno files through the canonical printer: adds '*.geno
    diff=genolang' to .gitattributes and the textconv driver to the repository's
    git config. Running it again changes nothing."""
    done = setup_repo(repo)
    for line in done:
        click.echo(line)
    if not done:
        click.echo("already set up: git diff shows .geno files canonically")
    click.echo(f"git runs {genolang_command()} to show .geno files (run git-setup again after moving it)")
