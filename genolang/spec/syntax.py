"""Checked specs back to text: the syntax trees of a checked space and skeleton, and
one self-contained spec text (space, genotype, skeleton) that checks on its own with no
search path. Checkpoints store it; overrides are re-checked through it. Torch-free."""

from __future__ import annotations

from genolang.spec.check import load_text
from genolang.errors import GenolangError, UsageError
from genolang.spec.checked import GenotypeSpec, NetworkSpec, SpaceSpec
from genolang.parse import ast as A
from genolang.parse.printer import format_spec
from genolang.spec.resolve import Library


def _prop(key: str, *values: object) -> A.Prop:
    return A.Prop(A.Name(key), tuple(A.Value(v) for v in values))  # type: ignore[arg-type]


def space_tree(space: SpaceSpec) -> A.Space:
    """The syntax tree of a checked space (every cell property written out)."""
    cells = tuple(
        A.CellDecl(A.Name(c.name), (
            _prop("inputs", c.inputs), _prop("nodes", c.nodes),
            _prop("keep", "all" if getattr(c, "keeps_all", False) else c.keep),
            _prop("output", c.reducer), _prop("stride", c.stride),
        ))
        for c in space.cells
    )
    rule = space.derive
    # an empty exclude list must be spelt out when the space has 'none' (it is excluded by default)
    dprops = ([_prop("exclude", *rule.exclude)] if rule.exclude else
              [_prop("exclude", "nothing")] if "none" in space.ops else [])
    dprops.append(_prop("distinct", "true" if rule.distinct else "false"))
    dprops.extend(A.Prop(A.Name("cap"), (A.Value(limit),), qualifier=A.Name(op)) for op, limit in rule.caps)
    return A.Space(A.Name(space.name), (_prop("ops", *space.ops),), cells, A.Derive(tuple(dprops)))


_CNN_FIELDS = ("stem_multiplier", "channels", "layers", "reduce_at", "auxiliary", "auxiliary_weight", "drop_path",
               "label_smoothing", "input_size", "in_channels", "classes")
_RNN_FIELDS = ("embedding", "hidden", "dropout", "dropout_h", "dropout_x", "dropout_i", "dropout_e", "tied", "vocab")


def network_tree(network: NetworkSpec) -> A.Network:
    """The syntax tree of a checked skeleton, every field of its kind written out."""
    props = [_prop("stem", network.stem)]
    for key in (_CNN_FIELDS if network.kind == "cnn" else _RNN_FIELDS):
        value = getattr(network, key)
        if key == "reduce_at":
            props.append(_prop(key, *value) if value else _prop(key, "none"))
        elif key == "tied":
            props.append(_prop(key, "true" if value else "false"))
        elif value is not None:
            props.append(_prop(key, float(value) if isinstance(value, float) else value))
    return A.Network(A.Name(network.name), tuple(props))


def spec_bundle(geno: GenotypeSpec, network: NetworkSpec) -> str:
    """One canonical spec text holding the space, the genotype and the skeleton."""
    tree = A.SpecFile((space_tree(geno.space), A.genotype_tree(geno), network_tree(network)))
    return format_spec(tree, header_comments=[f"genotype {geno.name} ({geno.path}) on network {network.name} "
                                              f"({network.path}), as compiled by genolang"])


def read_bundle(text: str, where: str = "<checkpoint>") -> tuple[GenotypeSpec, NetworkSpec]:
    """Parse and check a ``spec_bundle`` text on its own (no search path)."""
    checked = load_text(text, where, Library([], []))
    if len(checked.genotypes) != 1 or len(checked.networks) != 1:
        raise UsageError(f"{where}: the stored spec text must hold one genotype and one network")
    geno = next(iter(checked.genotypes.values()))
    network = next(iter(checked.networks.values()))
    return geno, network


def same_specs(a: tuple[GenotypeSpec, NetworkSpec], b: tuple[GenotypeSpec, NetworkSpec]) -> bool:
    """Whether two (genotype, skeleton) pairs compile to the same network (paths and
    comments aside): their canonical bundles agree after the provenance line."""
    def body(pair: tuple[GenotypeSpec, NetworkSpec]) -> str:
        return spec_bundle(*pair).split("\n", 1)[1]

    return body(a) == body(b)


def genotype_text(geno: GenotypeSpec) -> str:
    """The canonical text of one genotype (its space by name)."""
    return format_spec(A.SpecFile((A.genotype_tree(geno),)))


def network_text(network: NetworkSpec) -> str:
    """The canonical text of one skeleton."""
    return format_spec(A.SpecFile((network_tree(network),)))


def read_network_text(text: str, where: str, path: str | None = None) -> NetworkSpec:
    """Check a ``network_text``; its errors become one ``UsageError`` naming ``where``.
    The result keeps ``path`` (the file the skeleton came from) when given."""
    import dataclasses

    try:
        checked = load_text(text, where, Library([], []))
    except GenolangError as err:
        messages = "; ".join(d.message for d in getattr(err, "diagnostics", ())) or str(err)
        raise UsageError(f"{where}: {messages}") from None
    (network,) = checked.networks.values()
    return dataclasses.replace(network, path=path) if path is not None else network
