"""Commands that read and write specs: check, fmt, show, graph, list, ops. None of
them imports torch."""

from __future__ import annotations

import os
from pathlib import Path

import click

from genolang import resources
from genolang.cli.options import pipeline_help
from genolang.draw import dot_document
from genolang.errors import GenolangError, SpecError, UsageError, did_you_mean, plural
from genolang.fsio import check_destination, os_reason, write_text
from genolang.ir.lower import lower_genotype, lower_space
from genolang.parse.parser import MAX_SPEC_BYTES, STDIN, parse, read_text
from genolang.parse.printer import format_spec, format_value
from genolang.spec.check import Checked, check, load
from genolang.spec.ops import OpDef
from genolang.spec.resolve import SUFFIX, Library


def expand(paths: tuple[str, ...]) -> list[str]:
    """Files as given ('-' is standard input, at most once); folders become their
    ``*.geno`` files, recursively (symlinked folders are not followed, so a loop
    cannot recur; folders that cannot be read are an error naming them)."""
    out: list[str] = []
    if paths.count("-") > 1:
        raise UsageError("'-' (standard input) can be given once")
    for p in paths:
        path = Path(p)
        if p != "-" and path.is_dir():
            found = spec_files_under(path)
            if not found:
                raise UsageError(f"{p}: folder holds no {SUFFIX} files")
            out.extend(found)
        else:
            out.append(p)
    return out


def spec_files_under(folder: Path) -> list[str]:
    """The ``*.geno`` regular files below ``folder``, sorted."""
    problems: list[OSError] = []
    found = []
    for root, dirs, files in os.walk(folder, onerror=problems.append, followlinks=False):
        dirs.sort()
        found += [os.path.join(root, f) for f in files if f.endswith(SUFFIX)]
    if problems:
        err = problems[0]
        raise UsageError(f"{err.filename}: cannot read the folder ({os_reason(err)})")
    return sorted(found)


@click.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("-q", "--quiet", is_flag=True, help="Print errors only, not a line per good file.")
def check_cmd(files: tuple[str, ...], quiet: bool) -> None:
    """Parse and check FILES (spec files, folders of them, or '-' for standard input),
    reporting every error and warning with its file, line and column. Exit status: 1
    when a file has an error, 2 when a file cannot be read (or the command is misused)."""
    status = 0
    for path in expand(files):
        label = STDIN if path == "-" else path
        try:
            text = read_text(path)
            result = check(parse(text, label), text)
        except GenolangError as err:
            click.echo(err.render(), err=True)
            status = max(status, err.exit_code)
            continue
        if result.warnings:
            click.echo(result.render_warnings(), err=True)
        if result.errors:
            click.echo(SpecError(tuple(result.errors), {label: text, **result.sources}).render(), err=True)
            status = max(status, 1)
        elif not quiet:
            click.echo(f"{label}: ok ({_summary(result)})")
    if status:
        raise click.exceptions.Exit(status)


def _summary(result: Checked) -> str:
    parts = [f"{kind} {name}" for kind, table in
             (("space", result.spaces), ("genotype", result.genotypes), ("network", result.networks),
              ("search", result.searches))
             for name in table]
    if result.ops:
        parts.append(f"op{'s' if len(result.ops) > 1 else ''} {', '.join(result.ops)}")
    return ", ".join(parts) if parts else "no declarations"


@click.command("fmt")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if any file would be reformatted.")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the formatted text instead of rewriting files.")
@click.option("--lenient", is_flag=True,
              help="With --stdout: print a file that does not parse as it is instead of failing "
                   "(git's textconv uses this, so 'git log -p' survives a broken revision).")
def fmt(files: tuple[str, ...], check_only: bool, to_stdout: bool, lenient: bool = False) -> None:
    """Rewrite FILES in canonical form, in place and atomically (like black).
    '-' reads standard input and prints the result. A symlink's target is rewritten
    (the link stays); a read-only file is refused, not replaced."""
    changed = 0
    status = 0
    for path in expand(files):
        label = STDIN if path == "-" else path
        try:
            text = read_text(path)
            try:
                formatted = format_spec(parse(text, label))
            except SpecError:
                if not (lenient and (to_stdout or path == "-") and not check_only):
                    raise
                formatted = text
            if (path == "-" or to_stdout) and not check_only:
                click.echo(formatted, nl=False)
            if formatted == text:
                continue
            changed += 1
            if check_only:
                click.echo(f"would reformat {label}", err=True)
            elif path != "-" and not to_stdout:
                write_text(path, formatted)
                click.echo(f"reformatted {path}", err=True)
        except GenolangError as err:
            if len(files) == 1 and not Path(files[0]).is_dir():
                raise
            click.echo(err.render(), err=True)  # the other files are still formatted
            status = max(status, err.exit_code)
    if status:
        raise click.exceptions.Exit(status)
    if check_only and changed:
        raise click.exceptions.Exit(1)


def _load(path: str) -> Checked:
    result = load(path)
    if result.warnings:
        click.echo(result.render_warnings(), err=True)
    return result


@click.command("show")
@click.argument("file", type=click.Path())
@click.option("--ir", is_flag=True, help="Also print each cell's lowered IR (a supernet's for a space).")
@click.option("--passes", default=None, metavar="all|A,B,...",
              help="With --ir, a CNN space's IR after these supernet passes ('all': the default pipeline). "
                   + pipeline_help())
def show(file: str, ir: bool, passes: str | None) -> None:
    """Print what FILE declares: ops and cells of a space, nodes of a genotype, the
    settings of a network skeleton."""
    from genolang.passes import DEFAULT_PASSES, parse_passes, run_passes

    chosen = None if passes is None else DEFAULT_PASSES if passes.strip() == "all" else parse_passes(passes)
    if chosen is not None and not ir:
        raise UsageError("--passes shows the optimized IR: add --ir")
    result = _load(file)
    if chosen is not None and (not result.spaces or any(sp.kind != "cnn" for sp in result.spaces.values())):
        raise UsageError(f"--passes: the passes optimize CNN supernets; {file} must hold only CNN spaces")
    for space in result.spaces.values():
        click.echo(f"space {space.name} ({space.kind}) from {space.path}")
        click.echo(f"  ops ({len(space.ops)}): {', '.join(space.ops)}")
        for cell in space.cells:
            edges = sum(cell.inputs + i for i in range(cell.nodes))
            click.echo(f"  cell {cell.name}: {plural(cell.inputs, 'input')}, {plural(cell.nodes, 'node')}, "
                       f"keep {'all' if cell.keeps_all else cell.keep}, {cell.reducer}, stride {cell.stride}; "
                       f"supernet: {plural(edges, 'edge')} x {plural(len(space.ops), 'op')}"
                       + (f", {len(cell.edge_sets)} of them with their own ops" if cell.edge_sets else ""))
            for src, dst, edge_ops in cell.edge_sets:
                click.echo(f"    edge {src} -> {dst}: {', '.join(edge_ops)}")
        d = space.derive
        caps = ", ".join(f"{op} <= {n}" for op, n in d.caps) or "none"
        click.echo(f"  derive: exclude {', '.join(d.exclude) or 'nothing'}; "
                   f"{'distinct' if d.distinct else 'repeatable'} inputs; caps: {caps}")
        if ir:
            for cell_ir in lower_space(space).values():
                click.echo(_indent((cell_ir if chosen is None else run_passes(cell_ir, chosen)).dump()))
    for geno in result.genotypes.values():
        click.echo(f"genotype {geno.name} : {geno.space.name} ({geno.space.path})")
        for geno_cell in geno.cells:
            ops = [op for n in geno_cell.nodes for op, _ in n.edges]
            click.echo(f"  cell {geno_cell.name}: {plural(len(geno_cell.nodes), 'node')}, {plural(len(ops), 'edge')}, "
                       f"{geno_cell.shape.reducer} of {', '.join(geno_cell.output)}")
        if ir:
            for cell_ir in lower_genotype(geno).values():
                click.echo(_indent(cell_ir.dump()))
    for search in result.searches.values():
        from genolang.spec.syntax import search_value

        click.echo(f"search {search.name} : {search.space.name} ({search.space.path})")
        for key, value in search.given().items():
            click.echo(f"  {key} = " + ", ".join(format_value(v) for v in search_value(key, value)))
        for key, setting in search.settings:
            click.echo(f"  {key} = {format_value(setting)}")
        if not search.given() and not search.settings:
            click.echo("  (every value the data set's and the method's default)")
    for net in result.networks.values():
        click.echo(f"network {net.name} ({net.kind}, stem {net.stem})")
        fields = (("channels", "layers", "stem_multiplier", "reduce_at", "auxiliary", "auxiliary_weight", "drop_path",
                   "label_smoothing", "input_size", "in_channels", "classes") if net.kind == "cnn" else
                  ("embedding", "hidden", "dropout", "dropout_h", "dropout_x", "dropout_i", "dropout_e", "tied",
                   "vocab"))
        for name in fields:
            value = getattr(net, name)
            shown = ("from the data" if value is None else
                     ", ".join(format_value(v) for v in value) if isinstance(value, tuple) else format_value(value))
            click.echo(f"  {name} = {shown}")
        if net.kind == "cnn":
            click.echo(f"  reduction cells: {', '.join(map(str, net.reduction_cells())) or 'none'}; "
                       f"auxiliary head after cell: {net.auxiliary_cell() if net.auxiliary is not None else 'none'}")


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def dot_for(result: Checked, cell: str | None = None) -> str:
    """One DOT graph with a cluster per cell of every genotype and space in a file."""
    cells = []
    for geno in result.genotypes.values():
        cells += [(f"{geno.name}.{name}", ir) for name, ir in lower_genotype(geno).items()]
    for space in result.spaces.values():
        cells += [(f"{space.name}.{name}", ir) for name, ir in lower_space(space).items()]
    if cell is not None:
        chosen = [(label, ir) for label, ir in cells if ir.name == cell or label == cell]
        if not chosen:
            raise UsageError(f"no cell '{cell}' in {result.path}; cells: {', '.join(label for label, _ in cells)}")
        cells = chosen
    if not cells:
        raise UsageError(f"{result.path} holds no genotype or space to draw")
    return dot_document(cells)


@click.command("graph")
@click.argument("file", type=click.Path())
@click.option("-o", "--output", "--out", "output", type=click.Path(),
              help="Write the DOT text here (atomically) instead of stdout.")
@click.option("--cell", help="Only this cell (a cell name, or GENOTYPE.CELL).")
def graph(file: str, output: str | None, cell: str | None) -> None:
    """Write the cells of FILE's genotypes and spaces as one Graphviz DOT graph ('-':
    the spec from standard input). -o replaces an existing file."""
    if output:
        check_destination(output)
    dot = dot_for(_load(file), cell)
    if output:
        write_text(output, dot)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(dot, nl=False)


@click.command("list")
@click.argument("kind", required=False, type=click.Choice(["spaces", "genotypes", "networks", "searches"]))
def list_specs(kind: str | None) -> None:
    """List the spaces, genotypes, networks and searches that names resolve to from the
    current folder: the folder itself, GENOLANG_PATH and the shipped library
    (declarations only: names in comments are not names). Files with errors are named
    on stderr."""
    lib = Library.for_file(str(Path.cwd() / "x.geno"))
    keywords = ("space", "genotype", "network", "search")
    for keyword in (keywords if kind is None else (kind[:-2] if kind == "searches" else kind[:-1],)):
        names = lib.names(keyword)
        click.echo(f"{keyword}{'es' if keyword == 'search' else 's'}:")
        for name in names:
            try:
                found = lib.find(keyword, name)
            except GenolangError as err:
                click.echo(f"  {name:<16} ({err})")
                continue
            if found is None:
                continue
            click.echo(f"  {name:<16} {found.file.path}")
    for path in lib.broken():
        click.echo(f"note: {path} has errors, so its names are not listed ('genolang check {path}')", err=True)
    for path, why in lib.unreadable.items():
        click.echo(f"note: cannot read {path} ({why})", err=True)


@click.command("ops")
@click.argument("name", required=False)
def ops(name: str | None) -> None:
    """List the ops that names resolve to from the current folder (this folder,
    GENOLANG_PATH, the shipped library, installed plugins) and where each comes from;
    with NAME, print that op's declaration and what genolang reads off it."""
    from genolang.parse.printer import format_op, format_op_expr
    from genolang.spec.opcheck import library_op
    from genolang.spec.plugins import plugin_ops
    from genolang.spec.resolve import Library
    from genolang.spec.syntax import op_body_tree, op_tree

    lib = Library.for_file(str(Path.cwd() / "x.geno"))
    shipped = str(resources.specs_dir().resolve())
    rows: dict[str, tuple[str, str]] = {}
    for op_name, _, spec in lib.op_declarations():
        if op_name not in rows:
            where = spec.path if not str(Path(spec.path).resolve()).startswith(shipped) else \
                f"shipped ({Path(spec.path).relative_to(resources.specs_dir())})"
            checked = library_op(lib, op_name)
            body = (format_op_expr(op_body_tree(checked.body)) if isinstance(checked, OpDef) and checked.body
                    else "(has errors: run 'genolang check' on its file)")
            rows[op_name] = (where, body)
    for op_name, op in plugin_ops().items():
        rows.setdefault(op_name, (op.origin, "(Python)"))
    if name is None:
        width = max((len(n) for n in rows), default=8)
        for op_name in sorted(rows):
            where, body = rows[op_name]
            click.echo(f"{op_name:<{width}}  {body}  [{where}]")
        return
    found = library_op(lib, name)
    if found is None or name not in rows:
        raise UsageError(f"no op named '{name}'{did_you_mean(name, rows)}; 'genolang ops' lists them")
    if not isinstance(found, OpDef):
        raise UsageError(f"op '{name}' ({rows[name][0]}) has errors; run 'genolang check' on its file")
    click.echo(f"# {rows[name][0]}")
    if found.is_plugin:
        click.echo(f"# a Python plugin: entry point {found.plugin} in the group genolang.ops")
        return
    click.echo(format_op(op_tree(found)))
    for stride in (1, 2):
        facts = found.facts(stride)
        traits = [t for t, on in (("starts with a ReLU", facts.starts_with_relu),
                                  ("ends with a BN", facts.ends_with_bn),
                                  ("has weights", facts.has_weights), ("random", facts.random),
                                  ("groupable", facts.groupable), ("shareable", facts.shareable)) if on]
        click.echo(f"# stride {stride}: {', '.join(traits) or 'parameter-free'}")


def read_input(text_or_path: str) -> tuple[str, str]:
    """TEXT as given, a file's contents, or standard input for '-'; with a label."""
    if text_or_path == "-":
        return read_text("-"), STDIN
    try:
        exists = len(text_or_path) < 4096 and "\n" not in text_or_path and os.path.exists(text_or_path)
    except (OSError, ValueError):
        exists = False
    if exists:
        return read_text(text_or_path), text_or_path
    if len(text_or_path) > MAX_SPEC_BYTES:
        raise UsageError(f"the text to import is longer than {MAX_SPEC_BYTES // 1024} KiB")
    return text_or_path, "<text>"
