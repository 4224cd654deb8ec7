"""Operations as data: the primitives an op body composes, the checked op (``OpDef``),
its instantiation at a stride (``layers``), and the facts the passes read off that
structure (does it start with a ReLU, end with a batch norm, have weights, draw random
numbers; which ops share a structure).

An op is declared once, in a spec file (``op NAME = BODY``; the shipped ones are in
``specs/ops/``), or comes from a Python plugin (an entry point of the group
``genolang.ops``, whose structure genolang cannot see). Torch-free: ``genolang.ops.build``
turns an ``OpDef`` into a module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property

# ---- primitives -----------------------------------------------------------------------

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "silu", "identity")
CONVS = ("conv", "dwconv")
POOLS = ("max_pool", "avg_pool")
PRIMITIVES = (*ACTIVATIONS, *CONVS, "bn", *POOLS, "zero", "noise", "factorized_reduce")

PRIMITIVE_HELP = {
    "relu": "max(x, 0)", "sigmoid": "1 / (1 + exp(-x))", "tanh": "tanh(x)", "gelu": "GELU (exact)",
    "silu": "x * sigmoid(x)", "identity": "x",
    "conv": "conv(K | HxW [, stride | stride_h | stride_w] [, dilation=D] [, groups=G] [, width=F]): "
            "'same' padding, no bias, F*C output channels",
    "dwconv": "dwconv(K | HxW [, stride...] [, dilation=D] [, width=M]): depthwise, M output channels per input",
    "bn": "bn, or bn(search): batch norm (affine in fixed networks); bn(search) only in supernets",
    "max_pool": "max_pool(K [, stride]): padding K//2",
    "avg_pool": "avg_pool(K [, stride] [, count_pad]): padding K//2, excluded from the count unless count_pad",
    "zero": "zero [(stride)]: zeros (of the strided shape)",
    "noise": "noise [(stride)] [(std=S, mean=M)]: Gaussian noise of the (strided) input's shape",
    "factorized_reduce": "ReLU, two stride-2 1x1 convs (the second on the input shifted by a pixel) to C/2 each, "
                         "concatenated, BN: halves the map",
}


@dataclass(frozen=True)
class Layer:
    """One primitive with its arguments. ``stride`` says which axes the op's stride
    applies to in this layer: ``""`` (none), ``"hw"`` (both), ``"h"`` or ``"w"``."""

    prim: str
    kernel: tuple[int, int] = (1, 1)
    stride: str = ""
    dilation: int = 1
    groups: int = 1  # 0: depthwise
    width: int = 1  # conv: output channels = width * C; dwconv: output = width * input
    search_only: bool = False  # bn(search)
    count_pad: bool = False  # avg_pool
    std: float = 1.0  # noise
    mean: float = 0.0  # noise

    @property
    def padding(self) -> tuple[int, int]:
        """'same' padding (odd kernels): dilation * (k - 1) / 2 per axis."""
        return (self.dilation * (self.kernel[0] - 1) // 2, self.dilation * (self.kernel[1] - 1) // 2)


@dataclass(frozen=True)
class Seq:
    """Parts applied one after the other."""

    parts: tuple[Body, ...]


@dataclass(frozen=True)
class Repeat:
    """``times`` copies of ``body`` in sequence; the op's stride applies to the first."""

    times: int
    body: Body


@dataclass(frozen=True)
class ByStride:
    """``strided`` when the op runs at a stride above 1, else ``plain``."""

    strided: Body
    plain: Body


Body = Layer | Seq | Repeat | ByStride


def layer_count(body: Body, cap: int = 1 << 20) -> int:
    """How many layers ``body`` runs at most (the larger branch of a stride choice),
    without expanding it: repeats multiply, shared parts (an op used twice) are counted
    once per use but computed once, and the count stops growing past ``cap`` (so an
    op built by doubling another 60 times costs 60 steps, not 2**60)."""
    memo: dict[int, int] = {}

    def count(b: Body) -> int:
        key = id(b)
        if key in memo:
            return memo[key]
        if isinstance(b, Layer):
            n = 1
        elif isinstance(b, Seq):
            n = min(sum(count(p) for p in b.parts), cap + 1)
        elif isinstance(b, Repeat):
            n = min(b.times * count(b.body), cap + 1)
        else:
            n = max(count(b.strided), count(b.plain))
        memo[key] = n
        return n

    return count(body)


# ---- instantiation --------------------------------------------------------------------

@dataclass(frozen=True)
class Placed:
    """A layer as it runs at one stride: its stride per axis (rows, columns)."""

    layer: Layer
    stride: tuple[int, int] = (1, 1)


@dataclass(frozen=True)
class Group:
    """Layers (or groups) in sequence, as a module nests them."""

    parts: tuple[Unit, ...]


Unit = Placed | Group


def _place(layer: Layer, stride: int) -> Placed:
    if layer.prim == "factorized_reduce":
        return Placed(layer, (2, 2))
    s = (stride if "h" in layer.stride else 1, stride if "w" in layer.stride else 1)
    return Placed(layer, s)


def instantiate(body: Body, stride: int, search: bool) -> Unit:
    """The layers ``body`` runs at ``stride`` in a supernet (``search``) or a fixed
    network, nested as written: a repeat and a sequence of several parts are groups
    (the op's stride applies to a repeat's first copy); a one-part group is its part;
    ``bn(search)`` is left out of fixed networks."""
    if isinstance(body, Layer):
        return Group(()) if body.search_only and not search else _place(body, stride)
    if isinstance(body, ByStride):
        return instantiate(body.strided if stride > 1 else body.plain, stride, search)
    if isinstance(body, Repeat):
        parts = [instantiate(body.body, stride if i == 0 else 1, search) for i in range(body.times)]
    else:
        parts = [instantiate(p, stride, search) for p in body.parts]
    kept = tuple(p for p in parts if not (isinstance(p, Placed) and p.layer.search_only and not search)
                 and not (isinstance(p, Group) and not p.parts))
    return kept[0] if len(kept) == 1 and isinstance(body, Seq) else Group(kept)


def leaves(unit: Unit) -> Iterator[Placed]:
    if isinstance(unit, Placed):
        yield unit
    else:
        for part in unit.parts:
            yield from leaves(part)


# ---- checked ops ----------------------------------------------------------------------

@dataclass(frozen=True)
class OpFacts:
    """What an op does at one stride, in a supernet or a fixed network, read off its
    structure (``OpDef.facts``)."""

    layers: tuple[Placed, ...]
    starts_with_relu: bool
    ends_with_bn: bool
    has_weights: bool
    random: bool
    elementwise: bool
    groupable: bool = False  # convs the passes can run as one grouped call for several edges
    shareable: bool = False  # no weights, no randomness: one result can serve several edges

    @property
    def structure(self) -> tuple[object, ...]:
        """A key equal for ops that compute the same way with different weights."""
        return tuple(self.layers)

    @property
    def kernel_free(self) -> tuple[object, ...] | None:
        """For an op made of [ReLU, depthwise conv, 1x1 conv, BN] blocks (the op's stride
        on the first depthwise conv only; square odd depthwise kernels): its structure
        as it runs (each layer's placed stride), the depthwise kernel sizes left out: a key
        equal for ops that differ only in those (``sep_conv_3x3`` and ``sep_conv_5x5``,
        written as blocks or flat): zero-padded to the largest, their kernels run as one
        grouped call (``merge_kernels``). None for any other op."""
        if not self.layers or len(self.layers) % 4:
            return None
        key: list[object] = []
        for i in range(0, len(self.layers), 4):
            relu, dw, pw, bn = self.layers[i:i + 4]
            k = dw.layer.kernel
            if (relu.layer.prim != "relu" or bn.layer.prim != "bn" or dw.layer.prim != "dwconv"
                    or dw.layer.width != 1 or k[0] != k[1] or k[0] % 2 == 0 or dw.stride[0] != dw.stride[1]
                    or (i > 0 and dw.stride != (1, 1)) or pw.layer.prim != "conv" or pw.layer.kernel != (1, 1)
                    or pw.layer.groups != 1 or pw.stride != (1, 1)):
                return None
            # as each layer runs: its placed stride (a repeat's later copies have none), not the text's
            key += [Placed(replace(p.layer, stride="", kernel=(0, 0) if p is dw else p.layer.kernel), p.stride)
                    for p in (relu, dw, pw, bn)]
        return tuple(key)


@dataclass(frozen=True)
class OpDef:
    """A checked op: its name and body, or (``plugin``) the entry point whose factory
    builds it. ``origin`` says where it was declared (a file, the shipped library, a
    plugin's distribution) and takes no part in equality."""

    name: str
    body: Body | None
    plugin: str | None = None
    origin: str = field(default="", compare=False)
    line: int | None = field(default=None, compare=False)

    @property
    def is_plugin(self) -> bool:
        return self.body is None

    def unit(self, stride: int = 1, search: bool = True) -> Unit:
        assert self.body is not None, f"op {self.name} is a plugin: genolang cannot see its structure"
        return instantiate(self.body, stride, search)

    def facts(self, stride: int = 1, search: bool = True) -> OpFacts:
        return self._facts[(stride, search)]

    @cached_property
    def _facts(self) -> dict[tuple[int, bool], OpFacts]:
        return {(s, search): self._compute(s, search) for s in (1, 2) for search in (True, False)}

    def _compute(self, stride: int, search: bool) -> OpFacts:
        if self.body is None:  # a plugin: nothing can be assumed but that it has weights
            return OpFacts((), False, False, True, True, False)
        layers = tuple(leaves(self.unit(stride, search)))
        prims = [p.layer.prim for p in layers]
        first = prims[0] if prims else "identity"
        last = prims[-1] if prims else "identity"
        has_weights = any(p in (*CONVS, "factorized_reduce") for p in prims) or (not search and "bn" in prims)
        random = "noise" in prims
        return OpFacts(
            layers,
            starts_with_relu=first in ("relu", "factorized_reduce"),
            ends_with_bn=last in ("bn", "factorized_reduce"),
            has_weights=has_weights,
            random=random,
            elementwise=all(p in ACTIVATIONS for p in prims),
            groupable=_groupable(prims),
            shareable=not has_weights and not random and bool(prims) and any(
                p not in ("identity", "zero") for p in prims) and (
                "bn" not in prims or (len(prims) == 2 and prims[0] in POOLS and prims[1] == "bn")),
        )

    @property
    def is_zero(self) -> bool:
        """``none``: zeros whatever the input (a search-only op)."""
        if self.body is None:
            return False
        prims = [p.layer.prim for p in leaves(self.unit(1))]
        return bool(prims) and all(p == "zero" for p in prims)

    @property
    def elementwise(self) -> bool:
        """Only activations (and zeros): usable as a recurrent node's activation."""
        if self.body is None:
            return False
        prims = [p.layer.prim for s in (1, 2) for p in leaves(self.unit(s))]
        return all(p in (*ACTIVATIONS, "zero") for p in prims)

    def has_weights(self, stride: int = 1) -> bool:
        """Whether the op has weights at ``stride`` in a supernet (convs)."""
        return self.facts(stride).has_weights

    @property
    def parametric(self) -> bool:
        """Whether the op has weights at some stride (in a fixed network)."""
        return any(self.facts(s, False).has_weights for s in (1, 2))

    def starts_with_relu(self, stride: int = 1) -> bool:
        return self.facts(stride).starts_with_relu

    def ends_with_bn(self, stride: int = 1, search: bool = True) -> bool:
        return self.facts(stride, search).ends_with_bn

    @property
    def kind(self) -> str:
        """``elementwise`` (an activation), ``zero``, ``plugin`` or ``cnn``."""
        if self.body is None:
            return "plugin"
        if self.is_zero:
            return "zero"
        return "elementwise" if self.elementwise else "cnn"


def _groupable(prims: list[str]) -> bool:
    """A stack of convs (with activations, batch norms and pools between them, only
    activations before the first conv): E edges' copies run as grouped calls."""
    if not any(p in CONVS for p in prims):
        return False
    first = next(i for i, p in enumerate(prims) if p in CONVS)
    return all(p in ACTIVATIONS for p in prims[:first]) and all(
        p in (*ACTIVATIONS, *CONVS, "bn", *POOLS) for p in prims[first:])


def same_structure(a: OpDef, b: OpDef, stride: int) -> bool:
    """Whether two ops compute alike at ``stride`` (in a supernet), weights aside."""
    return not a.is_plugin and not b.is_plugin and a.facts(stride).structure == b.facts(stride).structure
