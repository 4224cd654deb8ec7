"""Positions in converter input: errors in a foreign genotype string point at the
line and column of the offending character, like errors in a spec file."""

from __future__ import annotations

import ast as pyast
from dataclasses import dataclass

from genolang.errors import Diagnostic, Span, SpecError


@dataclass(frozen=True)
class Source:
    """Converter input text and the label its errors carry (a file name or ``<text>``)."""

    text: str
    label: str

    def span(self, offset: int, width: int = 1) -> Span:
        """The span of ``width`` characters from ``offset`` (0-based) in ``text``."""
        offset = max(0, min(offset, len(self.text)))
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return Span.point(line, column, width)

    def error(self, offset: int | None, message: str, hint: str | None = None, width: int = 1) -> SpecError:
        """A ``SpecError`` at ``offset`` (no position when None)."""
        span = None if offset is None else self.span(offset, width)
        return SpecError((Diagnostic(self.label, span, message, hint),), {self.label: self.text})

    def stripped(self) -> tuple[str, int]:
        """The text without surrounding white space, and the offset where it starts."""
        body = self.text.strip()
        return body, (self.text.find(body) if body else 0)

    def offset_of(self, node: pyast.expr, start: int) -> tuple[int, int]:
        """Offset and width in ``text`` of a Python syntax node parsed from the text at
        ``start`` (``ast`` columns count from the start of the parsed string)."""
        lines = self.text[start:].split("\n")
        line = node.lineno
        text = lines[line - 1].encode("utf-8")

        def chars(byte_col: int) -> int:  # ``ast`` counts columns in UTF-8 bytes
            return len(text[:byte_col].decode("utf-8", "ignore"))

        col = chars(node.col_offset)
        offset = start + sum(len(s) + 1 for s in lines[:line - 1]) + col
        end_line = getattr(node, "end_lineno", None) or line
        end_col = getattr(node, "end_col_offset", None)
        width = (chars(end_col) - col) if end_line == line and end_col is not None else 1
        return offset, max(width, 1)
