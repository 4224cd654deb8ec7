"""``genolang compile``: a genotype on a skeleton becomes a PyTorch network; print its
size, save it as a self-contained checkpoint, export it to ONNX or TorchScript."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from genolang.cli.options import SEED
from genolang.data.registry import dataset_help
from genolang.errors import GenolangError, UsageError, plural
from genolang.parse.parser import read_text
from genolang.spec.checked import GenotypeSpec, NetworkSpec
from genolang.spec.lookup import load_named


def data_sizes(geno: GenotypeSpec, kind: str, dataset: str | None,
               data_dir: str | None) -> tuple[dict[str, int], str | None]:
    """The data sizes to build for: those of ``dataset``, else of the data set the
    genotype's file says it was searched on (a 'genolang search' header), else none;
    with where they came from, for the report."""
    from genolang.data.registry import dataset_info
    from genolang.search.output import provenance_dataset

    origin = None
    if dataset is None and geno.path and not geno.path.startswith("<"):
        try:
            dataset = provenance_dataset(read_text(geno.path))
        except GenolangError:
            dataset = None
        if dataset is not None:
            origin = f"sized for {dataset}, the data set the genotype was searched on; --dataset changes it"
    elif dataset is not None:
        origin = f"sized for {dataset}"
    if dataset is None:
        return {}, None
    info = dataset_info(dataset)
    want = "image" if kind == "cnn" else "text"
    if info.kind != want:
        if origin is not None and "searched on" in origin:
            return {}, None  # a search on other data: nothing to take from it
        raise UsageError(f"--dataset {dataset} is a {info.kind} data set, but the skeleton needs {want} data")
    if info.shape is not None:
        channels, side, classes = info.shape
        return {"in_channels": channels, "input_size": side, "classes": classes}, origin
    if info.tokens is not None:
        return {"vocab": info.tokens}, origin
    if data_dir is None:
        if "searched on" in (origin or ""):
            return {}, (f"the genotype was searched on {dataset} data; give --dataset {dataset} --data-dir DIR to "
                        "size it for that data")
        raise UsageError(f"--dataset {dataset} reads the sizes from your data: add --data-dir DIR")
    if info.kind == "image":
        from genolang.data.images import load_images

        data = load_images(dataset, data_dir)
        return {"in_channels": data.in_channels, "input_size": data.input_size, "classes": data.classes}, origin
    from genolang.data.text import load_corpus

    return {"vocab": load_corpus(dataset, data_dir).ntokens}, origin


def load_specs(genotype: str, network: str) -> tuple[GenotypeSpec, NetworkSpec]:
    """The checked genotype and skeleton named (or given as files) on a command line."""
    geno = load_named("genotype", genotype)
    net = load_named("network", network)
    return geno, net


def human(n: int) -> str:
    """3,349,342 (3.35M)."""
    if n >= 1_000_000_000:
        short = f"{n / 1e9:.2f}G"
    elif n >= 1_000_000:
        short = f"{n / 1e6:.2f}M"
    elif n >= 1_000:
        short = f"{n / 1e3:.1f}K"
    else:
        return f"{n:,}"
    return f"{n:,} ({short})"


def format_summary(summary: Any) -> str:
    """The human-readable compile report."""
    from genolang.nets.compile import Summary

    s: Summary = summary
    lines = [f"genotype {s.genotype} on network {s.network}: {s.shape.describe()}"]
    if s.kind == "rnn":
        lines.append(f"parameters     {human(s.params)}")
        lines.append(f"sizes          embedding {s.embedding}, hidden {s.hidden}, {plural(s.nodes or 0, 'node')}, "
                     f"vocabulary {s.shape.ntokens}")
        lines.append(f"multiply-adds  {human(s.macs)} per token (cell maps and decoder)")
        return "\n".join(lines)
    if s.params_with_aux == s.params:
        lines.append(f"parameters     {human(s.params)}")
    else:
        lines.append(f"parameters     {human(s.params)} without the auxiliary head")
        lines.append(f"               {human(s.params_with_aux)} with it (after cell {s.aux_cell})")
    lines.append(f"multiply-adds  {human(s.macs)} at {s.input_size}x{s.input_size} "
                 "(convolutions and linear layers, inference)")
    header = (f"{'cell':>4}  {'type':<8} {'red':<3} {'C_pp':>5} {'C_p':>5} {'C':>5} {'out':>5}  {'size':<9} "
              f"{'params':>10}")
    lines += ["", header, "-" * len(header)]
    for r in s.cells:
        size = f"{r.in_size}->{r.out_size}" if r.reduction else f"{r.out_size}x{r.out_size}"
        lines.append(f"{r.index:>4}  {r.cell:<8} {'yes' if r.reduction else '':<3} {r.c_prev_prev:>5} {r.c_prev:>5} "
                     f"{r.channels:>5} {r.out_channels:>5}  {size:<9} {r.params:>10,}")
    cells = sum(r.params for r in s.cells)
    lines.append(f"{'':>4}  {'cells':<8} {'':<3} {'':>5} {'':>5} {'':>5} {'':>5}  {'':<9} {cells:>10,}")
    lines.append(f"stem and classifier: {s.params - cells:,} parameters; "
                 f"auxiliary head: {s.params_with_aux - s.params:,}")
    return "\n".join(lines)


@click.command("compile")
@click.argument("genotype")
@click.option("-n", "--network", required=True,
              help="Network skeleton: a name on the search path (cifar, imagenet, small, ptb ...) or a .geno file.")
@click.option("--channels", type=click.IntRange(min=1), help="Override the skeleton's initial channels C.")
@click.option("--layers", type=click.IntRange(min=1), help="Override the skeleton's number of cells.")
@click.option("--classes", type=click.IntRange(min=2), help="Number of classes (default: the skeleton's, else 10).")
@click.option("--input-size", type=click.IntRange(min=1), help="Image side (default: the skeleton's, else 32 / 224).")
@click.option("--in-channels", type=click.IntRange(min=1), help="Image channels (default: the skeleton's, else 3).")
@click.option("--vocab", type=click.IntRange(min=2), help="Vocabulary size of a recurrent model (default 10000).")
@click.option("--embedding", type=click.IntRange(min=1), help="Override a recurrent skeleton's embedding size.")
@click.option("--hidden", type=click.IntRange(min=1), help="Override a recurrent skeleton's hidden size.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the initial weights.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("-d", "--dataset", default=None,
              help=f"Build for this data set's images or vocabulary: {dataset_help()} (default: the data set a "
                   "'genolang search' genotype file was searched on, from its header; else the skeleton's sizes, "
                   "then 3x32x32 (224 for an imagenet stem), 10 classes, 10,000 tokens). --in-channels, --input-size, "
                   "--classes and --vocab override it.")
@click.option("--data-dir", type=click.Path(), help="With --dataset folder or text: the data's folder "
                                                    "(its sizes are read from it).")
@click.option("-o", "--output", "--out", "output", type=click.Path(dir_okay=False),
              help="Save a checkpoint (weights, spec texts, data shape) that reloads with no other file. An "
                   "existing file is refused unless --force.")
@click.option("--export", "export_fmt", type=click.Choice(["onnx", "torchscript"]),
              help="Also export the network for inference, verified against PyTorch.")
@click.option("--export-path", type=click.Path(dir_okay=False),
              help="Where the export goes (default: GENOTYPE_NETWORK.onnx / .pt beside -o, or here). An existing "
                   "file is refused unless --force.")
@click.option("--force", is_flag=True, help="Replace existing -o and --export-path files.")
def compile_cmd(genotype: str, network: str, channels: int | None, layers: int | None, classes: int | None,
                input_size: int | None, in_channels: int | None, vocab: int | None, embedding: int | None,
                hidden: int | None, seed: int, as_json: bool, dataset: str | None, data_dir: str | None,
                output: str | None, export_fmt: str | None, export_path: str | None, force: bool) -> None:
    """Compile GENOTYPE (a name or a .geno file) on the skeleton --network and report
    parameters (with and without the auxiliary head), multiply-adds and a per-cell
    table. Example: genolang compile darts_v2 --network cifar"""
    from genolang.fsio import check_destination
    from genolang.nets.checkpoint import save_model
    from genolang.nets.compile import (
        apply_overrides,
        build,
        check_pair,
        data_shape,
        summarize,
    )
    from genolang.nets.export import export_model, require_onnx
    from genolang.run.runtime import seed_everything

    if export_fmt == "onnx":
        require_onnx()  # fail before anything is built or written
    if export_path is not None and export_fmt is None:
        raise UsageError("--export-path names the file of an export: add --export onnx or --export torchscript")
    if output:
        check_destination(output, replace=force, flag="--force")
    geno, net = load_specs(genotype, network)
    check_pair(geno, net)
    target = None
    if export_fmt:
        suffix = ".onnx" if export_fmt == "onnx" else ".pt"
        target = export_path or str((Path(output).parent if output else Path.cwd()) / f"{geno.name}_{net.name}{suffix}")
        if output and Path(target).resolve() == Path(output).resolve():
            raise UsageError("--export-path must differ from -o")
        check_destination(target, replace=force, flag="--force")
    sizes, origin = data_sizes(geno, net.kind, dataset, data_dir)
    in_channels = in_channels or sizes.get("in_channels")
    input_size = input_size or sizes.get("input_size")
    classes = classes or sizes.get("classes")
    vocab = vocab or sizes.get("vocab")
    skeleton = {"channels": channels, "layers": layers, "embedding": embedding, "hidden": hidden}
    net = apply_overrides(net, **skeleton)
    data = {"in_channels": in_channels, "input_size": input_size, "classes": classes, "vocab": vocab}
    if net.kind == "cnn" and vocab is not None:
        raise UsageError("--vocab applies to recurrent skeletons only")
    if net.kind == "rnn" and any(data[k] is not None for k in ("in_channels", "input_size", "classes")):
        raise UsageError("--in-channels, --input-size and --classes apply to CNN skeletons only")
    shape = data_shape(net, in_channels=in_channels, input_size=input_size, classes=classes, ntokens=vocab)
    seed_everything(seed)
    model = build(geno, net, shape, auxiliary=True)
    try:
        summary = summarize(model, geno, net, shape)
    except (RuntimeError, MemoryError) as err:
        from genolang.errors import is_out_of_memory
        from genolang.nets.compile import SIZE_FIX
        from genolang.nets.size import TooLarge

        if not is_out_of_memory(err):
            raise
        raise TooLarge(f"genotype '{geno.name}' on network '{net.name}' for {shape.describe()}: out of memory "
                       f"while counting multiply-adds; {SIZE_FIX}") from None
    overrides = {k: v for k, v in {**skeleton, **data}.items() if v is not None}
    report: dict[str, Any] = {**summary.to_dict(), "genotype_path": geno.path, "network_path": net.path,
                              "overrides": overrides, "seed": seed, "checkpoint": None, "export": None}
    if output:
        save_model(output, model, geno, net, shape,
                   extra={"overrides": overrides, "seed": seed, "source": {"genotype": geno.path, "network": net.path}})
        report["checkpoint"] = output
    if export_fmt and target is not None:
        exported = export_model(model, shape, export_fmt, target)
        report["export"] = {"format": exported.format, "path": exported.path, "max_abs_diff": exported.max_abs_diff,
                            "inputs": [list(s) for s in exported.inputs]}
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
        return
    click.echo(format_summary(summary) if origin is None else
               format_summary(summary).replace("\n", f" ({origin})\n", 1))
    if output:
        click.echo(f"wrote {output} (weights, genotype and skeleton specs, data shape)")
    if report["export"]:
        e = report["export"]
        click.echo(f"wrote {e['path']} ({e['format']}; outputs within {e['max_abs_diff']:.2g} of PyTorch)")
