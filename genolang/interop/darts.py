"""The original DARTS genotype format, as printed in its logs and kept in its
``genotypes.py``::

    Genotype(normal=[('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[...], reduce_concat=range(2, 6))
    Genotype(recurrent=[('sigmoid', 0), ...], concat=range(1, 9))

The text is parsed with Python's ``ast`` module and walked by hand: nothing is ever
evaluated, and anything but lists of (str, int) pairs, int lists and ``range(a, b)``
is rejected with the line and column of the offending part."""

from __future__ import annotations

import ast as pyast
import dataclasses
from dataclasses import dataclass
from typing import Any

from genolang.errors import Diagnostic, Span, SpecError
from genolang.parse import ast as A
from genolang.spec.checked import GenotypeSpec

CNN_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
RNN_FIELDS = ("recurrent", "concat")
CNN_INPUTS = 2
MAX_NODES = 10_000


@dataclass(frozen=True)
class DartsGenotype:
    """The fields of a DARTS ``Genotype(...)`` in plain Python values."""

    fields: dict[str, list[Any]]  # (op, input) pairs or node numbers, by DARTS field name
    # where each part was written: (field, index of its pair or None for the whole field) -> span
    spans: dict[tuple[str, int | None], Span] = dataclasses.field(default_factory=dict)

    @property
    def recurrent(self) -> bool:
        return "recurrent" in self.fields


class _Reader:
    def __init__(self, text: str, path: str) -> None:
        self.text, self.path = text, path

    def span(self, node: pyast.AST | None) -> Span | None:
        if node is None or not hasattr(node, "lineno"):
            return None
        end_col = (getattr(node, "end_col_offset", None) or node.col_offset + 1) + 1  # type: ignore[attr-defined]
        return Span(node.lineno, node.col_offset + 1, getattr(node, "end_lineno", node.lineno) or node.lineno,  # type: ignore[attr-defined]
                    end_col)

    def fail(self, node: pyast.AST | None, message: str, hint: str | None = None) -> SpecError:
        return SpecError((Diagnostic(self.path, self.span(node), message, hint),), {self.path: self.text})

    def pairs(self, node: pyast.expr, field: str) -> list[tuple[str, int]]:
        if not isinstance(node, (pyast.List, pyast.Tuple)):
            raise self.fail(node, f"'{field}' must be a list of (op, input) pairs")
        out = []
        for item in node.elts:
            if not (isinstance(item, pyast.Tuple) and len(item.elts) == 2):
                raise self.fail(item, f"each entry of '{field}' must be a pair like ('sep_conv_3x3', 0)")
            op, idx = item.elts
            if not (isinstance(op, pyast.Constant) and isinstance(op.value, str)):
                raise self.fail(op, "an op must be a quoted name like 'sep_conv_3x3'")
            if not (isinstance(idx, pyast.Constant) and type(idx.value) is int and idx.value >= 0):
                raise self.fail(idx, "an input must be a node number (0, 1, 2, ...)")
            out.append((op.value, idx.value))
        return out

    def ints(self, node: pyast.expr, field: str) -> list[int]:
        if isinstance(node, pyast.Call) and isinstance(node.func, pyast.Name) and node.func.id == "range":
            if node.keywords or not 1 <= len(node.args) <= 2:
                raise self.fail(node, f"'{field}' must be range(a, b)")
            bounds = [self._int(a, field) for a in node.args]
            start, stop = (0, bounds[0]) if len(bounds) == 1 else (bounds[0], bounds[1])
            if stop - start > MAX_NODES:  # never build a huge list from a hostile range
                raise self.fail(node, f"'{field}' spans {stop - start} nodes; a genotype has at most {MAX_NODES}")
            return list(range(start, stop))
        if isinstance(node, (pyast.List, pyast.Tuple)):
            return [self._int(e, field) for e in node.elts]
        raise self.fail(node, f"'{field}' must be a list of node numbers or range(a, b)")

    def _int(self, node: pyast.expr, field: str) -> int:
        if isinstance(node, pyast.Constant) and type(node.value) is int:
            return node.value
        raise self.fail(node, f"'{field}' holds node numbers only")


def read_darts(text: str, path: str = "<darts>") -> DartsGenotype:
    """Parse a DARTS ``Genotype(...)`` without evaluating it."""
    reader = _Reader(text, path)
    stripped = text.strip()
    if not stripped:
        raise reader.fail(None, "empty input: expected Genotype(normal=[...], ...) or Genotype(recurrent=[...], ...)")
    if len(stripped) > 1_000_000:
        raise reader.fail(None, "input is too large for a genotype")
    try:
        tree = pyast.parse(stripped, mode="eval")
    except SyntaxError as err:
        span = Span.point(err.lineno or 1, err.offset or 1)
        hint = "expected Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)"
        raise SpecError((Diagnostic(path, span, f"not a DARTS genotype: {err.msg}", hint),),
                        {path: stripped}) from None
    except (RecursionError, MemoryError, ValueError):
        raise reader.fail(None, "not a DARTS genotype: the text cannot be read") from None
    reader.text = stripped
    call = tree.body
    if not (isinstance(call, pyast.Call) and isinstance(call.func, (pyast.Name, pyast.Attribute))):
        raise reader.fail(call, "expected Genotype(...)")
    func = call.func.id if isinstance(call.func, pyast.Name) else call.func.attr
    if func != "Genotype":
        raise reader.fail(call.func, f"expected Genotype(...), got {func}(...)")
    given: dict[str, pyast.expr] = {}
    names = [kw.arg for kw in call.keywords]
    # 'recurrent' and 'concat' are the recurrent genotype's fields; without keywords, it has two
    recurrent = bool({"recurrent", "concat"} & set(names)) or (not names and len(call.args) == 2)
    order = RNN_FIELDS if recurrent else CNN_FIELDS
    if len(call.args) > len(order):
        raise reader.fail(call.args[len(order)], f"too many fields; a genotype has {', '.join(order)}")
    for field, arg in zip(order, call.args):
        given[field] = arg
    for kw in call.keywords:
        if kw.arg is None or kw.arg not in order:  # None: a **mapping
            raise reader.fail(kw.value, f"unknown field '{kw.arg}'; expected {', '.join(order)}")
        if kw.arg in given:
            raise reader.fail(kw.value, f"field '{kw.arg}' is given twice")
        given[kw.arg] = kw.value
    missing = [f for f in order if f not in given]
    if missing:
        raise reader.fail(call, f"missing field{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    fields: dict[str, list[Any]] = {}
    spans: dict[tuple[str, int | None], Span] = {}
    for name in order:
        node = given[name]
        fields[name] = reader.ints(node, name) if "concat" in name else reader.pairs(node, name)
        whole = reader.span(node)
        if whole is not None:
            spans[(name, None)] = whole
        for i, item in enumerate(getattr(node, "elts", ())):
            item_span = reader.span(item)
            if item_span is not None:
                spans[(name, i)] = item_span
    return DartsGenotype(fields, spans)


def source_map(geno: DartsGenotype) -> dict[tuple[str, str], Span]:
    """Where the parts of ``darts_to_tree``'s genotype were written in the DARTS text:
    (cell, node name) -> the span of its pairs, (cell, 'NODE#J') -> its J-th pair,
    (cell, 'out') -> the concat field, (cell, '') -> the cell's whole list."""
    out: dict[tuple[str, str], Span] = {}

    def join(a: Span | None, b: Span | None) -> Span | None:
        if a is None or b is None:
            return a or b
        return Span(a.line, a.column, b.end_line, b.end_column)

    cells = (
        [("recurrent", "concat", 1)]
        if geno.recurrent
        else [("normal", "normal_concat", 2), ("reduce", "reduce_concat", 2)]
    )
    for cell, concat, per_node in cells:
        pairs = geno.fields[cell]
        for k in range(0, len(pairs), per_node):
            node = f"n{k // per_node + (1 if geno.recurrent else CNN_INPUTS)}"
            span = join(geno.spans.get((cell, k)), geno.spans.get((cell, k + per_node - 1)))
            if span is not None:
                out[(cell, node)] = span
            for j in range(per_node):
                term = geno.spans.get((cell, k + j))
                if term is not None:
                    out[(cell, f"{node}#{j}")] = term
        for key, field_name in (("out", concat), ("", cell)):
            whole = geno.spans.get((field_name, None))
            if whole is not None:
                out[(cell, key)] = whole
    return out


def _cnn_name(index: int) -> str:
    return f"c{index}" if index < CNN_INPUTS else f"n{index}"


def _rnn_name(index: int) -> str:
    return "s0" if index == 0 else f"n{index}"


def darts_to_tree(geno: DartsGenotype, name: str, space: str | None = None) -> A.Genotype:
    """A genotype tree from DARTS fields: CNN nodes take two pairs each (DARTS numbering:
    inputs 0 and 1 are c0 and c1, node k is n{k}); recurrent nodes one pair each
    (0 is s0). Checking against the space happens when the tree is loaded."""
    if geno.recurrent:
        nodes = [(f"n{i + 1}", [(op, _rnn_name(k))]) for i, (op, k) in enumerate(geno.fields["recurrent"])]
        cells = [("recurrent", nodes, "mean", [_rnn_name(k) for k in geno.fields["concat"]])]
        return A.make_genotype(name, space or "darts_rnn", cells)
    cells = []
    for cell in ("normal", "reduce"):
        pairs = geno.fields[cell]
        nodes = [(f"n{CNN_INPUTS + i // 2}", [(op, _cnn_name(k)) for op, k in pairs[i:i + 2]])
                 for i in range(0, len(pairs), 2)]
        cells.append((cell, nodes, "concat", [_cnn_name(k) for k in geno.fields[f"{cell}_concat"]]))
    return A.make_genotype(name, space or "darts_cnn", cells)


def tree_to_darts(geno: GenotypeSpec) -> str:
    """A checked genotype in DARTS's ``Genotype(...)`` form (node numbers as DARTS counts)."""
    def pairs(cell_name: str) -> str:
        cell = geno.cell(cell_name)
        return "[" + ", ".join(f"('{op}', {cell.index_of(src)})" for n in cell.nodes for op, src in n.edges) + "]"

    def concat(cell_name: str) -> str:
        cell = geno.cell(cell_name)
        return "[" + ", ".join(str(cell.index_of(n)) for n in cell.output) + "]"

    names = [c.name for c in geno.cells]
    if geno.kind == "rnn":
        if len(names) != 1:
            raise SpecError((Diagnostic(geno.path, None, "a DARTS recurrent genotype has exactly one cell"),))
        return f"Genotype(recurrent={pairs(names[0])}, concat={concat(names[0])})"
    if sorted(names) != ["normal", "reduce"]:
        raise SpecError((Diagnostic(geno.path, None, f"the DARTS format holds a 'normal' and a 'reduce' cell; "
                                    f"'{geno.name}' has {', '.join(names)}"),))
    for cell in geno.cells:
        if cell.shape.inputs != CNN_INPUTS:
            raise SpecError((Diagnostic(geno.path, None, f"the DARTS format has 2 cell inputs; cell '{cell.name}' "
                                        f"has {cell.shape.inputs}"),))
    return (f"Genotype(normal={pairs('normal')}, normal_concat={concat('normal')}, "
            f"reduce={pairs('reduce')}, reduce_concat={concat('reduce')})")
