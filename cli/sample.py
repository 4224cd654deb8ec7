"""``genolang sample``: uniformly random genotypes of a space, the baseline a search has
to beat. Torch-free."""

from __future__ import annotations

import shlex
from collections import defaultdict

import click

from genolang.cli.options import SEED
from genolang.errors import UsageError


@click.command("sample")
@click.argument("space")
@click.option("-n", "count", type=int, default=8, show_default=True, help="How many genotypes to draw.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Random seed; sample i depends only on the seed and i, so a larger -n extends a smaller one.")
@click.option("-o", "--out-dir", "out_dir", required=True, type=click.Path(),
              help="Folder for the genotype files PREFIX_000.geno ... (made if missing; existing files are never "
                   "replaced).")
@click.option("--prefix", default="sample", show_default=True,
              help="Name of the genotypes and their files: PREFIX_000, PREFIX_001, ...")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def sample(space: str, count: int, seed: int, out_dir: str, prefix: str, quiet: bool) -> None:
    """Draw N uniformly random genotypes of SPACE (a space .geno file or a name) that
    obey its derive rule (excluded ops, distinct inputs, keep, caps), each written as
    a spec file with its provenance: the space file and its SHA-256, the seed, the
    index and the genotype's canonical hash. Every node's set of kept terms is uniform
    over the sets the rule allows; a cell breaking a cap is drawn again. Example:

        genolang sample darts_cnn -n 8 --seed 0 -o baselines/
    """
    from genolang.search.sample import write_samples

    command = "genolang sample " + " ".join(shlex.quote(a) for a in [space, "-n", str(count), "--seed", str(seed),
                                                                      "-o", out_dir]
                                            + (["--prefix", prefix] if prefix != "sample" else []))
    try:
        written = write_samples(space, count, seed, out_dir, prefix, command=command)
    except UsageError as err:  # how the command was called: click's usage error, exit status 2
        raise click.UsageError(str(err)) from None
    if quiet:
        return
    by_hash: dict[str, list[str]] = defaultdict(list)
    for s in written:
        by_hash[s.digest].append(s.genotype.name)
        click.echo(f"wrote {s.path} (genotype {s.genotype.name}, hash {s.digest[:16]})")
    for names in by_hash.values():
        if len(names) > 1:
            click.echo(f"note: {', '.join(names)} are the same architecture (samples are drawn with replacement)",
                       err=True)
    click.echo(f"{len(written)} random genotype{'s' if len(written) != 1 else ''} of {space} (seed {seed}) in "
               f"{out_dir}", err=True)
