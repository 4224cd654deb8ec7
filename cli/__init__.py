"""The ``genolang`` command line: a thin layer over the library.

Commands are loaded lazily, one module per command group, so commands that only read
and write specs never import torch. Every ``GenolangError`` becomes its rendered
message on stderr and its class's exit status (``UsageError`` 2, as click's own usage
errors; spec and other errors 1, see ``genolang.errors``). An ``OSError`` nobody
expected (a disk that fills up, a file that vanished) and running out of memory are
reported in words with status 1, a closed output pipe ends the command quietly."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import Any

import click

from genolang import __version__
from genolang.errors import GenolangError, is_out_of_memory
from genolang.fsio import os_reason
from genolang.parse.ast import FORMAT_VERSION

# command name -> (module, attribute, one-line help); modules are imported on use.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "check": ("genolang.cli.spec", "check_cmd", "Parse and check spec files; report every error."),
    "fmt": ("genolang.cli.spec", "fmt", "Rewrite spec files in canonical form."),
    "show": ("genolang.cli.spec", "show", "Print a checked spec (and its cell IR)."),
    "graph": ("genolang.cli.spec", "graph", "Write the cells of a spec as Graphviz DOT."),
    "list": ("genolang.cli.spec", "list_specs", "List the spaces, genotypes and networks on the search path."),
    "ops": ("genolang.cli.spec", "ops", "List the known operations."),
    "import": ("genolang.cli.convert", "import_", "Convert a genotype from another format to a spec."),
    "export": ("genolang.cli.convert", "export", "Convert a genotype spec to another format."),
    "search": ("genolang.cli.search", "search", "Search a space with DARTS; write the found genotype as a spec."),
    "sample": ("genolang.cli.sample", "sample", "Draw uniformly random genotypes of a space (a search's baseline)."),
    "compare": ("genolang.cli.compare", "compare",
                "Retrain genotypes under one budget and seeds; a table, a plot and a significance test."),
    "compile": ("genolang.cli.compile", "compile_cmd", "Compile a genotype on a network skeleton; size, save, export."),
    "train": ("genolang.cli.train", "train", "Retrain a compiled genotype from scratch (the DARTS recipe)."),
    "eval": ("genolang.cli.train", "eval_cmd", "Evaluate a saved model on a data set's test split."),
    "bench": ("genolang.cli.bench", "bench", "Time training and inference steps of a network."),
    "diff": ("genolang.cli.vcs", "diff", "Compare two genotypes (or spaces) as architectures; exit 1 if they differ."),
    "hash": ("genolang.cli.vcs", "hash_cmd", "Print canonical hashes of genotypes, their cells and spaces."),
    "git-setup": ("genolang.cli.vcs", "git_setup", "Make git diff show .geno files through the canonical printer."),
    "draw": ("genolang.cli.draw", "draw", "Draw cells as SVG, PNG or PDF (Graphviz) or DOT text."),
    "plot": ("genolang.cli.report", "plot", "Plot a search run's alphas and curves as PNGs (matplotlib)."),
    "report": ("genolang.cli.report", "report", "Write a search run as one self-contained HTML page."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported only when run or asked for help."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GenolangError as err:
            click.echo(err.render(), err=True)
            ctx.exit(err.exit_code)
        except BrokenPipeError:
            # the reader of stdout went away ('genolang show --ir x | head'): nothing to say
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")
            ctx.exit(1)
        except MemoryError:
            click.echo("error: out of memory; the command needs more memory than this machine (or its limit) "
                       "allows; try smaller sizes", err=True)
            ctx.exit(1)
        except OSError as err:
            where = f"{err.filename}: " if err.filename else ""
            click.echo(f"error: {where}{os_reason(err)}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted; a search or training continues from its last finished epoch with the same "
                       "command and --resume (and its --run-dir)", err=True)
            ctx.exit(130)
        except Exception as err:  # only allocation failures and failures of a torchrun job's collectives are caught
            if is_out_of_memory(err):
                click.echo("error: out of memory while running; the job needs more memory than this machine (or its "
                           "limit) allows; try smaller sizes (--batch-size, --channels, --layers) or smaller ops",
                           err=True)
                ctx.exit(1)
            message = distributed_failure(err)
            if message is None:
                raise
            click.echo(message, err=True)
            ctx.exit(1)


def distributed_failure(err: BaseException) -> str | None:
    """A clear message when, under torchrun, a collective failed because a peer died,
    timed out or the network broke (those surface as raw torch errors); else None."""
    if "RANK" not in os.environ:
        return None
    text = str(err).strip()
    markers = ("gloo", "nccl", "connection closed", "connection reset", "timed out", "broken pipe")
    if type(err).__name__ not in {"DistBackendError", "DistNetworkError", "DistStoreError"} and \
            not any(m in text.lower() for m in markers):
        return None
    first = text.splitlines()[0][:300] if text else type(err).__name__
    return (f"error: rank {os.environ['RANK']}: a collective operation failed; another rank probably died, "
            f"timed out or lost the network ({first})")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="genolang",
                      message=f"%(prog)s %(version)s (spec format {FORMAT_VERSION})")
def main() -> None:
    """genolang: DARTS search spaces, genotypes and networks as a language.

    Write a space or a genotype as a .geno file, check and format it, search a space
    for a genotype, and compile a genotype into a PyTorch network."""

