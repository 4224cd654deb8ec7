"""Syntax tree to canonical text.

One property or node per line, four-space indents, one blank line between
declarations, source order kept, comments put back where they were (a comment on its
own line stays before the item that follows it; a comment at the end of a line stays
at the end of that item's line), single blank lines inside blocks kept. Printing the
parse of printed text gives the same text back."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from typing import NamedTuple, TypeVar, cast

from genolang.errors import Span
from genolang.parse import ast as A

INDENT = "    "
T = TypeVar("T")


def format_value(value: A.ValueData) -> str:
    """A property value as canonical text."""
    if isinstance(value, (A.Kernel, A.Text)):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if isinstance(value, float):
        # keep the '.0': '16.0' and '16' mean different things to the checker (a whole
        # number is required in some places), so formatting must not turn one into the other
        return repr(value)
    return str(value)


def format_prop(prop: A.Prop) -> str:
    head = prop.key.text if prop.qualifier is None else f"{prop.key.text} {prop.qualifier.text}"
    return f"{head} = " + ", ".join(format_value(v.value) for v in prop.values)


def format_edge(edge: A.EdgeDecl) -> str:
    return f"edge {edge.src.text} -> {edge.dst.text} = " + ", ".join(op.text for op in edge.ops)


def format_term(term: A.Term) -> str:
    return f"{term.op.text}({term.input.text})"


def format_node(node: A.Node) -> str:
    return f"{node.name.text} = " + " + ".join(format_term(t) for t in node.terms)


def format_ref(ref: A.Name | A.Range) -> str:
    if isinstance(ref, A.Range):
        return f"{ref.start.text}..{ref.end.text}"
    return ref.text


def format_output(out: A.Output) -> str:
    return f"out = {out.reducer.text}(" + ", ".join(format_ref(r) for r in out.refs) + ")"


def format_op_arg(arg: A.OpArg) -> str:
    text = format_value(arg.value.value)
    return text if arg.key is None else f"{arg.key.text}={text}"


def format_op_expr(expr: A.OpExpr, inside: str = "") -> str:
    """An op body as canonical text; ``inside`` says what contains it (``sequence``,
    ``repeat``, ``strided``) so parentheses are written exactly where they are needed."""
    if isinstance(expr, A.OpCall):
        return expr.name.text + (f"({', '.join(format_op_arg(a) for a in expr.args)})" if expr.args else "")
    if isinstance(expr, A.OpRepeat):
        text = f"{format_value(expr.times.value)} * {format_op_expr(expr.body, 'repeat')}"
        return f"({text})" if inside == "repeat" else text
    if isinstance(expr, A.OpSequence):
        text = " > ".join(format_op_expr(p, "sequence") for p in expr.parts)
        return f"({text})" if inside in ("sequence", "repeat") else text
    text = f"{format_op_expr(expr.strided, 'strided')} if strided else {format_op_expr(expr.plain, 'strided')}"
    return f"({text})" if inside else text


def format_op(decl: A.OpDecl) -> str:
    family = (f" for {decl.param.text} in " + ", ".join(format_value(v.value) for v in decl.values)
              if decl.param is not None else "")
    return f"op {decl.name.text}{family} = {format_op_expr(decl.body)}"


class _Placed(NamedTuple):
    """A comment of the source (one with a span)."""

    text: str
    span: Span


class _Emitter:
    """Writes lines and threads the file's comments in by source position."""

    def __init__(self, comments: Iterable[A.Comment]) -> None:
        self.comments = sorted((_Placed(c.text, c.span) for c in comments if c.span is not None),
                               key=lambda c: c.span)
        self.used = [False] * len(self.comments)
        self.lines: list[str] = []
        self.last_source_line = 0  # source line of the last thing written

    # -- comments ----------------------------------------------------------------
    def _take(self, pred: Callable[[Span], bool]) -> list[_Placed]:
        taken = []
        for i, c in enumerate(self.comments):
            if not self.used[i] and pred(c.span):
                self.used[i] = True
                taken.append(c)
        return taken

    def _blank_if_gap(self, line: int | None) -> None:
        if line is None or not self.lines or self.lines[-1] == "" or self.lines[-1].endswith("{"):
            return
        if self.last_source_line and line > self.last_source_line + 1:
            self.lines.append("")

    def leading(self, span: Span | None, depth: int) -> None:
        """Comments before ``span`` on lines of their own, then the item's own gap."""
        if span is None:
            return
        for c in self._take(lambda s: s.line < span.line):
            self._blank_if_gap(c.span.line)
            self.lines.append(INDENT * depth + c.text.rstrip())
            self.last_source_line = c.span.line
        self._blank_if_gap(span.line)

    def trailing(self, first: int, last: int) -> None:
        """Comments on source lines ``first..last`` go to the end of the last line written."""
        taken = self._take(lambda s: first <= s.line <= last)
        if taken:
            self.lines[-1] += "  " + " ".join(c.text.rstrip() for c in taken)

    def line(self, text: str, depth: int, span: Span | None, next_span: Span | None = None) -> None:
        """One item on one line; a comment ending its last source line is kept unless a
        sibling follows on that same line (then the comment belongs to the sibling)."""
        self.leading(span, depth)
        self.lines.append(INDENT * depth + text)
        if span is not None:
            last = span.end_line
            if next_span is not None and next_span.line == last:
                last -= 1
            self.trailing(span.line, last)
            self.last_source_line = span.end_line

    def open_block(self, header: str, depth: int, span: Span | None, first_child: Span | None) -> None:
        self.leading(span, depth)
        self.lines.append(INDENT * depth + header + " {")
        if span is not None:
            if first_child is None or first_child.line > span.line:
                self.trailing(span.line, span.line)
            self.last_source_line = span.line

    def close_block(self, depth: int, span: Span | None) -> None:
        if span is not None:
            for c in self._take(lambda s: s.line < span.end_line):
                self._blank_if_gap(c.span.line)
                self.lines.append(INDENT * (depth + 1) + c.text.rstrip())
                self.last_source_line = c.span.line
        self.lines.append(INDENT * depth + "}")
        if span is not None:
            self.trailing(span.end_line, span.end_line)
            self.last_source_line = span.end_line

    def rest(self) -> None:
        for c in self._take(lambda s: True):
            self._blank_if_gap(c.span.line)
            self.lines.append(c.text.rstrip())
            self.last_source_line = c.span.line


def _span_of(item: object) -> Span | None:
    return getattr(item, "span", None)


def _with_next(items: Iterable[T]) -> Iterator[tuple[T, Span | None]]:
    """Pairs each item with the span of the one after it."""
    items = list(items)
    for i, item in enumerate(items):
        yield item, (_span_of(items[i + 1]) if i + 1 < len(items) else None)


def _emit_props_block(em: _Emitter, header: str, props: tuple[A.Prop, ...], depth: int, span: Span | None) -> None:
    em.open_block(header, depth, span, _span_of(props[0]) if props else None)
    for prop, nxt in _with_next(props):
        em.line(format_prop(prop), depth + 1, prop.span, nxt)
    em.close_block(depth, span)


def _emit_cell(em: _Emitter, cell: A.CellDecl, depth: int) -> None:
    items = cell.ordered_items()
    em.open_block(f"cell {cell.name.text}", depth, cell.span, _span_of(items[0]) if items else None)
    for item, nxt in _with_next(items):
        text = format_prop(item) if isinstance(item, A.Prop) else format_edge(item)
        em.line(text, depth + 1, item.span, nxt)
    em.close_block(depth, cell.span)


def _emit_space(em: _Emitter, space: A.Space) -> None:
    items = space.ordered_items()
    em.open_block(f"space {space.name.text}", 0, space.span, _span_of(items[0]) if items else None)
    for item, nxt in _with_next(items):
        if isinstance(item, A.Prop):
            em.line(format_prop(item), 1, item.span, nxt)
        elif isinstance(item, A.CellDecl):
            _emit_cell(em, item, 1)
        else:
            _emit_props_block(em, "derive", item.props, 1, item.span)
    em.close_block(0, space.span)


def _emit_genotype(em: _Emitter, geno: A.Genotype) -> None:
    first = _span_of(geno.cells[0]) if geno.cells else None
    em.open_block(f"genotype {geno.name.text} : {geno.space.text}", 0, geno.span, first)
    for cell in geno.cells:
        stmts: list[A.Node | A.Output] = list(cell.nodes)
        stmts.extend(cell.outputs or ((cell.output,) if cell.output is not None else ()))
        if all(s.span is not None for s in stmts):
            stmts.sort(key=lambda s: cast(Span, s.span))  # every span is set (just checked)
        em.open_block(cell.name.text, 1, cell.span, _span_of(stmts[0]) if stmts else None)
        for stmt, nxt in _with_next(stmts):
            text = format_node(stmt) if isinstance(stmt, A.Node) else format_output(stmt)
            em.line(text, 2, stmt.span, nxt)
        em.close_block(1, cell.span)
    em.close_block(0, geno.span)


def _emit_network(em: _Emitter, net: A.Network) -> None:
    _emit_props_block(em, f"network {net.name.text}", net.props, 0, net.span)


def format_setting(setting: A.Setting) -> str:
    return f"{setting.component.text}.{setting.param.text} = {format_value(setting.value.value)}"


def _emit_search(em: _Emitter, search: A.Search) -> None:
    items = search.ordered_items()
    em.open_block(f"search {search.name.text} : {search.space.text}", 0, search.span,
                  _span_of(items[0]) if items else None)
    for item, nxt in _with_next(items):
        text = format_prop(item) if isinstance(item, A.Prop) else format_setting(item)
        em.line(text, 1, item.span, nxt)
    em.close_block(0, search.span)


def _emit_decl(em: _Emitter, decl: A.Decl) -> None:
    if isinstance(decl, A.OpDecl):
        em.line(format_op(decl), 0, decl.span)
    elif isinstance(decl, A.Space):
        _emit_space(em, decl)
    elif isinstance(decl, A.Genotype):
        _emit_genotype(em, decl)
    elif isinstance(decl, A.Search):
        _emit_search(em, decl)
    else:
        _emit_network(em, decl)


def _header(header_comments: Iterable[str]) -> list[str]:
    return [("# " + text).rstrip() if text else "#" for text in header_comments]


def format_spec(spec: A.SpecFile, header_comments: Iterable[str] = ()) -> str:
    """The canonical text of a spec file. ``header_comments`` (without '#') are written
    first, as when ``genolang search`` records a run's provenance."""
    em = _Emitter(spec.comments)
    em.lines.extend(_header(header_comments))
    em.leading(spec.version_span, 0)
    em.lines.append(f"genolang {spec.version}")
    if spec.version_span is not None:
        em.trailing(spec.version_span.line, spec.version_span.line)
        em.last_source_line = spec.version_span.line
    previous: A.Decl | None = None
    for decl in spec.decls:
        # one blank line between declarations; consecutive one-line op declarations stay together
        together = isinstance(decl, A.OpDecl) and isinstance(previous, A.OpDecl)
        if em.lines and em.lines[-1] != "" and not together:
            em.lines.append("")
        _emit_decl(em, decl)
        previous = decl
    em.rest()
    while em.lines and em.lines[-1] == "":
        em.lines.pop()
    return "\n".join(em.lines) + "\n"


def format_decl(decl: A.Decl) -> str:
    """The canonical text of one declaration built in code (no comments, no version
    line, no final newline): what ``format_spec`` writes for it."""
    em = _Emitter(())
    _emit_decl(em, decl)
    return "\n".join(em.lines)


def compose_file(declarations: Iterable[str], header_comments: Iterable[str] = ()) -> str:
    """A spec file of declarations already formatted with ``format_decl``: the same text
    as ``format_spec`` of their trees, without formatting any of them again."""
    lines = [*_header(header_comments), f"genolang {A.FORMAT_VERSION}"]
    for text in declarations:
        lines += ["", text]
    return "\n".join(lines) + "\n"
