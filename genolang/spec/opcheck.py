"""Checking op declarations: an ``op`` tree (``genolang.parse.ast.OpDecl``) becomes
checked ops (``genolang.spec.ops.OpDef``), one per member of a family, or every problem
is reported at its line and column: unknown primitives or ops (with the nearest name),
arguments a primitive does not take, kernels that cannot be 'same'-padded, a stride
that cannot apply, an op that does not keep its C channels or does not divide the map
by its stride, recursion, a name declared twice. Torch-free."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from genolang.errors import Diagnostic, Span, SpecError, did_you_mean
from genolang.parse import ast as A
from genolang.parse.printer import format_value
from genolang.spec.ops import (
    ACTIVATIONS,
    CONVS,
    POOLS,
    PRIMITIVE_HELP,
    PRIMITIVES,
    Body,
    ByStride,
    Layer,
    OpDef,
    Repeat,
    Seq,
    layer_count,
    leaves,
)
from genolang.spec.plugins import plugin_ops
from genolang.spec.resolve import Library

MAX_KERNEL = 31
MAX_REPEAT = 16
MAX_WIDTH = 64
MAX_DILATION = 16
MAX_FAMILY = 64
MAX_OP_LAYERS = 256  # layers one op may expand to (DARTS's largest, sep_conv_5x5, has 8)


class Reporter(Protocol):
    def error(self, span: Span | None, message: str, hint: str | None = None) -> None: ...


# An op named in a body (and the ops being checked, for cycles): the checked op, or None.
OpLookup = Callable[[str, tuple[str, ...]], "OpDef | _Broken | None"]


def family_names(decl: A.OpDecl) -> list[str]:
    """The names an op declaration declares (one per value of a family)."""
    if decl.param is None:
        return [decl.name.text]
    return [decl.name.text.replace(decl.param.text, format_value(v.value)) for v in decl.values]


@dataclass
class _Context:
    rep: Reporter
    lookup: OpLookup
    origin: str
    stack: tuple[str, ...]  # the ops being checked, outermost first (recursion)
    param: str | None = None
    value: A.Value | None = None


def check_op_decl(decl: A.OpDecl, rep: Reporter, lookup: OpLookup, origin: str,
                  stack: tuple[str, ...] = ()) -> list[OpDef]:
    """The checked ops a declaration declares ([] after reporting why not)."""
    names = family_names(decl)
    if decl.param is not None:
        if decl.param.text not in decl.name.text:
            rep.error(decl.param.span, f"the parameter '{decl.param.text}' does not occur in the op's name "
                      f"'{decl.name.text}'", f"name the family after it, e.g. 'op my_op_{decl.param.text} for "
                      f"{decl.param.text} in ...'")
            return []
        if len(decl.values) > MAX_FAMILY:
            rep.error(decl.values[MAX_FAMILY].span, f"a family declares at most {MAX_FAMILY} ops",
                      "split it, or list fewer values")
            return []
        seen: dict[str, A.Value] = {}
        for value, name in zip(decl.values, names):
            if isinstance(value.value, (float, str)) or isinstance(value.value, bool):
                rep.error(value.span, f"a family value must be a whole number or a kernel size such as 1x7, "
                          f"got '{format_value(value.value)}'")
                return []
            if name in seen:
                rep.error(value.span, f"'{format_value(value.value)}' is listed twice in the family of "
                          f"'{decl.name.text}'", "list each value once")
                return []
            seen[name] = value
    out = []
    for i, name in enumerate(names):
        member = decl.values[i] if decl.param is not None else None
        ctx = _Context(rep, lookup, origin, (*stack, name), decl.param.text if decl.param else None, member)
        body = _expr(decl.body, ctx)
        if body is None:
            continue
        # an op named after a primitive is that primitive, at no stride or at the op's
        # (RobustDARTS's 'op noise = noise(stride)')
        if name in PRIMITIVES and body not in (Layer(name), Layer(name, stride="hw")):
            rep.error(decl.name.span, f"op '{name}' is named after the primitive '{name}' but computes something "
                      "else", f"give it another name, or write 'op {name} = {name}' (or '{name}(stride)')")
            continue
        layers = layer_count(body, MAX_OP_LAYERS)
        if layers > MAX_OP_LAYERS:
            rep.error(decl.name.span, f"op '{name}' expands to more than {MAX_OP_LAYERS} layers (repeats multiply, "
                      "also through the ops it uses)", "use fewer or smaller repeats")
            continue
        op = OpDef(name, body, origin=origin, line=decl.name.span.line if decl.name.span else None)
        if _check_shape(op, decl, rep):
            out.append(op)
    return out


def _expr(expr: A.OpExpr, ctx: _Context) -> Body | None:
    if isinstance(expr, A.OpCall):
        return _call(expr, ctx)
    if isinstance(expr, A.OpSequence):
        parts = [_expr(p, ctx) for p in expr.parts]
        bodies = [p for p in parts if p is not None]
        return None if len(bodies) < len(parts) else Seq(tuple(bodies))
    if isinstance(expr, A.OpRepeat):
        times = expr.times.value
        if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= MAX_REPEAT:
            ctx.rep.error(expr.times.span, f"a repeat count must be a whole number from 1 to {MAX_REPEAT}, "
                          f"got {format_value(times)}", "write e.g. '2 * (relu > conv(3) > bn)'")
            return None
        body = _expr(expr.body, ctx)
        return None if body is None else Repeat(times, body)
    strided, plain = _expr(expr.strided, ctx), _expr(expr.plain, ctx)
    return None if strided is None or plain is None else ByStride(strided, plain)


def _call(call: A.OpCall, ctx: _Context) -> Body | None:
    name = call.name.text
    if name in PRIMITIVES:
        return _primitive(call, ctx)
    if name in ctx.stack:
        cycle = " -> ".join([*ctx.stack[ctx.stack.index(name):], name])
        ctx.rep.error(call.name.span, f"op '{name}' refers to itself ({cycle})",
                      "an op is built from primitives and other ops, without cycles")
        return None
    found = ctx.lookup(name, ctx.stack)
    if isinstance(found, _Broken):
        ctx.rep.error(call.name.span, f"op '{name}' has errors (see where it is declared)", "fix that declaration")
        return None
    if found is None:
        ctx.rep.error(call.name.span, f"unknown primitive or op '{name}'{did_you_mean(name, PRIMITIVES)}",
                      "primitives: " + ", ".join(PRIMITIVES) + "; or an op declared in this file, its folder, "
                      "GENOLANG_PATH or the shipped library")
        return None
    if call.args:
        ctx.rep.error(call.args[0].span, f"op '{name}' takes no arguments (it runs at its op's stride)",
                      f"write '{name}'")
        return None
    if found.body is None:
        ctx.rep.error(call.name.span, f"op '{name}' comes from a Python plugin and cannot be part of another op",
                      "use it on its own in a space's ops")
        return None
    return found.body


def _arg_value(arg: A.OpArg, ctx: _Context) -> A.ValueData:
    """An argument's value, the family parameter replaced by this member's value."""
    value = arg.value.value
    if ctx.param is not None and value == ctx.param and ctx.value is not None:
        return ctx.value.value
    return value


_FLAGS = {
    "conv": {"stride", "stride_h", "stride_w"}, "dwconv": {"stride", "stride_h", "stride_w"},
    "max_pool": {"stride"}, "avg_pool": {"stride", "count_pad"}, "zero": {"stride"}, "noise": {"stride"},
    "bn": {"search"},
}
_KEYWORDS = {"conv": {"dilation", "groups", "width"}, "dwconv": {"dilation", "width"}, "noise": {"std", "mean"}}
_NEEDS_KERNEL = {*CONVS, *POOLS}


def _primitive(call: A.OpCall, ctx: _Context) -> Layer | None:
    prim = call.name.text
    rep = ctx.rep
    flags: set[str] = set()
    kw: dict[str, tuple[A.ValueData, Span | None]] = {}
    kernel: tuple[int, int] | None = None
    ok = True
    for arg in call.args:
        value = _arg_value(arg, ctx)
        if arg.key is not None:
            key = arg.key.text
            allowed = _KEYWORDS.get(prim, set())
            if key not in allowed:
                rep.error(arg.key.span, f"{prim} takes no argument '{key}'{did_you_mean(key, allowed)}",
                          PRIMITIVE_HELP[prim])
                ok = False
            elif key in kw:
                rep.error(arg.key.span, f"'{key}' is given twice", "give it once")
                ok = False
            else:
                kw[key] = (value, arg.value.span)
            continue
        if isinstance(value, str):
            allowed = _FLAGS.get(prim, set())
            if value not in allowed:
                hint = PRIMITIVE_HELP[prim]
                if value.startswith("stride") and prim in ("factorized_reduce", *ACTIVATIONS):
                    hint = (f"{prim} cannot stride" + ("; 'factorized_reduce' always halves the map" if
                            prim == "factorized_reduce" else "; put the stride on a conv or pool, or write "
                            "'a if strided else b'"))
                rep.error(arg.value.span, f"{prim} takes no argument '{value}'{did_you_mean(value, allowed)}", hint)
                ok = False
            elif value in flags or (value.startswith("stride") and any(f.startswith("stride") for f in flags)):
                rep.error(arg.value.span, f"'{value}' repeats or contradicts an argument before it",
                          "give the stride once: stride (both axes), stride_h (rows) or stride_w (columns)")
                ok = False
            else:
                flags.add(value)
            continue
        if prim in _NEEDS_KERNEL and kernel is None:
            kernel = _kernel(value, arg.value.span, prim, rep)
            ok = ok and kernel is not None
            continue
        rep.error(arg.value.span, f"{prim} takes no value '{format_value(value)}' here",
                  PRIMITIVE_HELP[prim])
        ok = False
    if prim in _NEEDS_KERNEL and kernel is None and ok:
        rep.error(call.span, f"{prim} needs a kernel size", PRIMITIVE_HELP[prim])
        return None
    if not ok:
        return None
    layer = Layer(prim, kernel or (1, 1), stride=_axes(flags))
    fields: dict[str, int | float] = {}
    for key, (value, span) in kw.items():
        checked = _keyword(prim, key, value, span, rep)
        if checked is None:
            return None
        fields[key] = checked
    return Layer(layer.prim, layer.kernel, layer.stride, dilation=int(fields.get("dilation", 1)),
                 groups=0 if prim == "dwconv" else int(fields.get("groups", 1)),
                 width=int(fields.get("width", 1)), search_only="search" in flags,
                 count_pad="count_pad" in flags, std=float(fields.get("std", 1.0)),
                 mean=float(fields.get("mean", 0.0)))


def _axes(flags: set[str]) -> str:
    if "stride" in flags:
        return "hw"
    if "stride_h" in flags:
        return "h"
    if "stride_w" in flags:
        return "w"
    return ""


def _kernel(value: A.ValueData, span: Span | None, prim: str, rep: Reporter) -> tuple[int, int] | None:
    if isinstance(value, A.Kernel):
        kernel = (value.height, value.width)
    elif isinstance(value, int) and not isinstance(value, bool):
        kernel = (value, value)
    else:
        rep.error(span, f"{prim}'s kernel must be a whole number or HxW, got '{format_value(value)}'",
                  PRIMITIVE_HELP[prim])
        return None
    if any(k < 1 or k > MAX_KERNEL or k % 2 == 0 for k in kernel):
        rep.error(span, f"a kernel side must be odd, from 1 to {MAX_KERNEL} (for 'same' padding), got "
                  f"{kernel[0]}x{kernel[1]}", "use 1, 3, 5, 7, ...")
        return None
    return kernel


def _keyword(prim: str, key: str, value: A.ValueData, span: Span | None, rep: Reporter) -> int | float | None:
    if key in ("std", "mean"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            rep.error(span, f"'{key}' must be a number, got '{format_value(value)}'")
            return None
        if key == "std" and not value > 0:
            rep.error(span, f"'std' must be positive, got {value}")
            return None
        return float(value)
    bounds = {"dilation": MAX_DILATION, "groups": MAX_WIDTH * 1024, "width": MAX_WIDTH}[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bounds:
        rep.error(span, f"'{key}' must be a whole number from 1 to {bounds}, got '{format_value(value)}'")
        return None
    return value


# ---- what an op must do ------------------------------------------------------------------

def supported_strides(op: OpDef) -> tuple[tuple[int, ...], dict[int, str]]:
    """The strides (1, 2) at which ``op`` keeps C channels and divides the map exactly by
    the stride, and for the others, why not."""
    if op.body is None:  # a plugin promises both
        return (1, 2), {}
    ok: list[int] = []
    why: dict[int, str] = {}
    for stride in (1, 2):
        reason = _shape_problem(op, stride)
        if reason is None:
            ok.append(stride)
        else:
            why[stride] = reason
    return tuple(ok), why


def _shape_problem(op: OpDef, stride: int) -> str | None:
    width = 1  # channels, as a multiple of C
    h = w = 1  # how much the map shrinks per axis
    for placed in leaves(op.unit(stride, search=True)):
        layer = placed.layer
        if layer.prim == "conv":  # numeric groups must divide the channels: checked when built, once C is known
            width = layer.width
        elif layer.prim == "dwconv":
            width *= layer.width
        elif layer.prim == "factorized_reduce":
            width = 1
        h *= placed.stride[0]
        w *= placed.stride[1]
    if width != 1:
        return f"it ends with {width}C channels instead of C (end with a conv of width 1)"
    if (h, w) != (stride, stride):
        if stride == 1:
            return f"it shrinks the map by {h}x{w} where the op's stride is 1"
        if (h, w) == (1, 1):
            return ("it does not divide the map by the stride: nothing in it strides (mark the layer that "
                    "strides with 'stride', or write 'a if strided else b')")
        return f"it divides the map by {h}x{w}, not by the stride {stride}x{stride} (mark exactly one layer per axis)"
    return None


def _check_shape(op: OpDef, decl: A.OpDecl, rep: Reporter) -> bool:
    strides, why = supported_strides(op)
    if not strides:
        rep.error(decl.name.span, f"op '{op.name}' fits no stride: at stride 1 {why[1]}; at stride 2 {why[2]}",
                  "an op maps C channels to C channels and divides the map by its stride (1 or 2)")
        return False
    return True


# ---- resolution ---------------------------------------------------------------------------

class _Broken:
    """A declared op whose declaration has errors (reported where it is declared)."""

    def __repr__(self) -> str:
        return "BROKEN"


BROKEN = _Broken()

# What ``Library.op_cache`` holds for a name: the checked op, BROKEN, or None (unknown).
CachedOp = OpDef | _Broken | None


class OpResolver:
    """Resolves the op names of one file: its own declarations (checked on first use),
    then the search path (``Library.find_op``: the file's folder, GENOLANG_PATH, the
    shipped library), then the installed plugins. ``get`` returns the checked op,
    ``BROKEN`` for a declaration with errors (reported where it is), or None if unknown.
    Errors in library files that declare a wanted op are kept in ``library_errors``."""

    def __init__(self, spec: A.SpecFile | None, path: str, rep: Reporter, library: Library) -> None:
        self.path = path
        self.rep = rep
        self.library = library
        self.local: dict[str, A.OpDecl] = {}
        if spec is not None:
            for decl in spec.decls:
                if isinstance(decl, A.OpDecl):
                    for name in family_names(decl):
                        self.local.setdefault(name, decl)
        self.checked: dict[str, OpDef | _Broken] = {}
        self.library_errors: list[SpecError] = []

    def check_local(self, decl: A.OpDecl, stack: tuple[str, ...] = ()) -> list[OpDef]:
        """Check one of this file's declarations (once); ``stack``: the ops whose
        checking asked for it (a cycle through them is reported)."""
        names = family_names(decl)
        if not all(n in self.checked for n in names):
            for name in names:
                self.checked.setdefault(name, BROKEN)  # while checking: a cycle finds it broken, never loops
            for op in check_op_decl(decl, self.rep, self.get, self.path, stack):
                self.checked[op.name] = op
        return [found for n in names if isinstance(found := self.checked[n], OpDef)]

    def get(self, name: str, stack: tuple[str, ...] = ()) -> OpDef | _Broken | None:
        if name in self.local:
            if name not in self.checked:
                self.check_local(self.local[name], stack)
            return self.checked[name]
        return library_op(self.library, name, self.library_errors)

    def known_names(self) -> list[str]:
        """Every op name this file can use (for "did you mean")."""
        return sorted({*self.local, *self.library.op_names(), *plugin_ops()})


def library_op(library: Library, name: str, errors: list[SpecError] | None = None) -> OpDef | _Broken | None:
    """An op found along ``library``'s search path or among the plugins, checked in the
    context of the file declaring it (cached on the library); the errors of the file
    declaring it go to ``errors``."""
    cache = library.op_cache
    if name in cache:
        return cache[name]
    cache[name] = BROKEN  # while checking it: a cycle through the library is an error, never a hang
    try:
        found = library.find_op(name)
    except SpecError as err:
        if errors is not None:
            errors.append(err)
        return BROKEN
    result: OpDef | _Broken | None
    if found is None:
        result = plugin_ops().get(name)
    else:
        assert isinstance(found.decl, A.OpDecl)
        rep = _ListReport(found.file.path)
        resolver = OpResolver(found.file, found.file.path, rep, Library.for_file(found.file.path))
        resolver.library.op_cache = cache  # one cache for the ops of one search path
        resolver.check_local(found.decl)
        result = resolver.checked.get(name, BROKEN)
        if rep.items and errors is not None:
            errors.append(SpecError(tuple(rep.items), {found.file.path: found.source}))
        if errors is not None:
            errors.extend(resolver.library_errors)
    cache[name] = result
    return result


class _ListReport:
    """Collects the diagnostics of a library file's op declarations."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[Diagnostic] = []

    def error(self, span: Span | None, message: str, hint: str | None = None) -> None:
        self.items.append(Diagnostic(self.path, span, message, hint))
