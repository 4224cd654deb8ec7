"""Checked specs back to syntax: the one place where model objects (``genolang.spec.
checked``) become syntax trees (``genolang.parse.ast``) for the printer, and the one
self-contained spec text (space, genotype, skeleton) that model checkpoints store.

Nothing here parses text except ``read_bundle``, which reads a stored bundle back.
Torch-free."""

from __future__ import annotations

from typing import cast

from genolang import resources
from genolang.errors import UsageError
from genolang.parse import ast as A
from genolang.parse.printer import compose_file, format_decl
from genolang.spec.check import load_text
from genolang.spec.checked import GenotypeSpec, NetworkSpec, SearchSpec, SpaceSpec, same_content
from genolang.spec.ops import Body, Layer, OpDef, Repeat, Seq
from genolang.spec.resolve import Library
from genolang.spec.validate import CNN_FIELDS, RNN_FIELDS


def _prop(key: str, *values: A.ValueData, qualifier: str | None = None) -> A.Prop:
    return A.Prop(A.Name(key), tuple(A.Value(v) for v in values),
                  A.Name(qualifier) if qualifier else None)


def space_tree(space: SpaceSpec, name: str | None = None, canonical: bool = False) -> A.Space:
    """The syntax tree of a checked space, every cell property written out, then the
    edges with their own ops (alpha-row order, ops in the space's order); ``name``
    replaces its name. ``canonical`` (for hashing) also spells out an empty exclude list
    and sorts the caps by op; otherwise the caps keep their order and ``exclude =
    nothing`` is written only where it differs from the default."""
    cells = tuple(
        A.CellDecl(A.Name(c.name), (
            _prop("inputs", c.inputs), _prop("nodes", c.nodes), _prop("keep", "all" if c.keeps_all else c.keep),
            _prop("output", c.reducer), _prop("stride", c.stride),
        ), edges=tuple(A.EdgeDecl(A.Name(src), A.Name(dst), tuple(A.Name(op) for op in ops))
                       for src, dst, ops in c.edge_sets))
        for c in space.cells
    )
    rule = space.derive
    if rule.exclude:
        dprops = [_prop("exclude", *rule.exclude)]
    else:  # an empty exclude list must be spelt out when the space has 'none' (excluded by default)
        dprops = [_prop("exclude", "nothing")] if canonical or "none" in space.ops else []
    dprops.append(_prop("distinct", "true" if rule.distinct else "false"))
    caps = sorted(rule.caps) if canonical else list(rule.caps)
    dprops += [_prop("cap", limit, qualifier=op) for op, limit in caps]
    return A.Space(A.Name(name or space.name), (_prop("ops", *space.ops),), cells, A.Derive(tuple(dprops)))


def _layer_call(layer: Layer) -> A.OpCall:
    args: list[A.OpArg] = []
    if layer.prim in ("conv", "dwconv", "max_pool", "avg_pool"):
        h, w = layer.kernel
        args.append(A.OpArg(A.Value(h if h == w else A.Kernel(h, w))))
    if layer.stride:
        args.append(A.OpArg(A.Value({"hw": "stride", "h": "stride_h", "w": "stride_w"}[layer.stride])))
    if layer.dilation != 1:
        args.append(A.OpArg(A.Value(layer.dilation), A.Name("dilation")))
    if layer.prim == "conv" and layer.groups != 1:
        args.append(A.OpArg(A.Value(layer.groups), A.Name("groups")))
    if layer.width != 1:
        args.append(A.OpArg(A.Value(layer.width), A.Name("width")))
    if layer.search_only:
        args.append(A.OpArg(A.Value("search")))
    if layer.count_pad:
        args.append(A.OpArg(A.Value("count_pad")))
    if layer.prim == "noise":
        if layer.std != 1.0:
            args.append(A.OpArg(A.Value(layer.std), A.Name("std")))
        if layer.mean != 0.0:
            args.append(A.OpArg(A.Value(layer.mean), A.Name("mean")))
    return A.OpCall(A.Name(layer.prim), tuple(args))


def op_body_tree(body: Body) -> A.OpExpr:
    """The syntax of an op body (ops it referred to appear inlined)."""
    if isinstance(body, Layer):
        return _layer_call(body)
    if isinstance(body, Seq):
        return A.OpSequence(tuple(op_body_tree(p) for p in body.parts))
    if isinstance(body, Repeat):
        return A.OpRepeat(A.Value(body.times), op_body_tree(body.body))
    return A.OpStrided(op_body_tree(body.strided), op_body_tree(body.plain))


def op_tree(op: OpDef) -> A.OpDecl:
    """The declaration of a checked op (not of a plugin's)."""
    assert op.body is not None, f"op {op.name} comes from a plugin and has no declaration"
    return A.OpDecl(A.Name(op.name), op_body_tree(op.body))


def genotype_tree(geno: GenotypeSpec, name: str | None = None) -> A.Genotype:
    """The syntax tree of a genotype (its space by name); ``name`` replaces its name."""
    cells = [
        (c.name, [(n.name, list(n.edges)) for n in c.nodes], c.shape.reducer, list(c.output))
        for c in geno.cells
    ]
    return A.make_genotype(name or geno.name, geno.space.name, cells)


def network_tree(network: NetworkSpec) -> A.Network:
    """The syntax tree of a checked skeleton, every field of its kind written out."""
    props = [_prop("stem", network.stem)]
    for key in (CNN_FIELDS if network.kind == "cnn" else RNN_FIELDS):
        value = getattr(network, key)
        if key == "reduce_at":
            props.append(_prop(key, *value) if value else _prop(key, "none"))
        elif key == "tied":
            props.append(_prop(key, "true" if value else "false"))
        elif value is not None:
            props.append(_prop(key, float(value) if isinstance(value, float) else value))
    return A.Network(A.Name(network.name), tuple(props))


def search_value(key: str, value: object) -> tuple[A.ValueData, ...]:
    """A search field's value as property values: names as words, paths and names
    that are not words (``fashion-mnist``) quoted, lists spread, booleans as words."""
    import re

    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, tuple):
        return tuple(cast("A.ValueData", v) for v in value) if value else ("none",)
    if isinstance(value, str):
        word = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value) is not None and key != "data_dir"
        return (value if word and not (key == "network" and "/" in value) else A.Text(value),)
    return (cast("A.ValueData", value),)


def search_tree(search: SearchSpec, name: str | None = None) -> A.Search:
    """The syntax tree of a checked search: its fields in canonical order, then its
    settings in order; ``name`` replaces its name."""
    props = tuple(_prop(key, *search_value(key, value)) for key, value in search.given().items())
    settings = tuple(A.Setting(A.Name(k.partition(".")[0]), A.Name(k.partition(".")[2]),
                               A.Value("true" if v is True else "false" if v is False else v))
                     for k, v in search.settings)
    return A.Search(A.Name(name or search.name), A.Name(search.space.name), props, settings)


def spec_text(*decls: A.Decl, header: list[str] | None = None) -> str:
    """A spec file holding ``decls`` (built in code), each formatted once."""
    return compose_file([format_decl(d) for d in decls], header or ())


def spec_bundle(geno: GenotypeSpec, network: NetworkSpec) -> str:
    """One canonical spec text holding the space's ops (but plugins', which resolve by
    name), the space, the genotype and the skeleton: it checks with no search path."""
    ops = [op_tree(op) for op in geno.space.op_defs if not op.is_plugin]
    return spec_text(*ops, space_tree(geno.space), genotype_tree(geno), network_tree(network),
                     header=[(f"genotype {geno.name} ({geno.path}) on network {network.name} ({network.path}), "
                              "as compiled by genolang")])


def read_bundle(text: str, where: str = "<checkpoint>") -> tuple[GenotypeSpec, NetworkSpec]:
    """Parse and check a ``spec_bundle`` text on its own: names resolve in the text itself,
    then (for bundles written before ops were declared in text, which hold none) among
    the shipped ops and the installed plugins; never along the caller's search path."""
    checked = load_text(text, where, Library([], [resources.specs_dir()]))
    if len(checked.genotypes) != 1 or len(checked.networks) != 1:
        raise UsageError(f"{where}: the stored spec text must hold one genotype and one network")
    geno = next(iter(checked.genotypes.values()))
    network = next(iter(checked.networks.values()))
    return geno, network


def same_specs(a: tuple[GenotypeSpec, NetworkSpec], b: tuple[GenotypeSpec, NetworkSpec]) -> bool:
    """Whether two (genotype, skeleton) pairs compile to the same network: equal models,
    where each came from aside."""
    return same_content(a[0], b[0]) and same_content(a[1], b[1])


def genotype_text(geno: GenotypeSpec) -> str:
    """The canonical text of one genotype (its space by name)."""
    return spec_text(genotype_tree(geno))


def network_text(network: NetworkSpec) -> str:
    """The canonical text of one skeleton."""
    return spec_text(network_tree(network))
