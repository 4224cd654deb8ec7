"""User-facing errors: a diagnostic names a file, line and column, shows the line with
a caret, and says how to fix it. Every error the CLI reports is a ``GenolangError``;
anything else escaping is a bug."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Span:
    """A region of source text; lines and columns are 1-based, ``end_column`` exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int

    @staticmethod
    def point(line: int, column: int, width: int = 1) -> Span:
        return Span(line, column, line, column + max(width, 1))


@dataclass(frozen=True)
class Diagnostic:
    """One problem in one file."""

    path: str
    span: Span | None
    message: str
    hint: str | None = None
    severity: str = "error"

    def location(self) -> str:
        if self.span is None:
            return self.path
        return f"{self.path}:{self.span.line}:{self.span.column}"

    def render(self, source: str | None = None) -> str:
        """``path:line:col: error: message``, then the source line with a caret under the
        span, then the hint."""
        lines = [f"{self.location()}: {self.severity}: {self.message}"]
        if self.span is not None and source is not None:
            # Lines as the parser counts them: only '\n' ends a line (``splitlines`` would
            # also split at '\f', '\x1c', '\u2028' ... and show the wrong line).
            src_lines = source.split("\n")
            if src_lines and src_lines[-1] == "":
                src_lines.pop()
            if 1 <= self.span.line <= len(src_lines):
                text = src_lines[self.span.line - 1].rstrip("\r").replace("\t", " ")
                number = str(self.span.line)
                pad = " " * len(number)
                start = max(self.span.column - 1, 0)
                if self.span.end_line == self.span.line:
                    width = max(self.span.end_column - self.span.column, 1)
                else:
                    width = max(len(text) - start, 1)
                caret = " " * min(start, len(text)) + "^" + "~" * (width - 1)
                lines.append(f" {number} | {text}")
                lines.append(f" {pad} | {caret}")
            elif self.span.line == len(src_lines) + 1:
                lines.append(f" {self.span.line} | ")
                lines.append(f" {' ' * len(str(self.span.line))} | ^")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class GenolangError(Exception):
    """Base of every error genolang reports to a user (exit status 1, no traceback)."""

    def render(self) -> str:
        return f"error: {self}"


@dataclass
class SpecError(GenolangError):
    """One or more diagnostics in spec files, with the sources needed to render them."""

    diagnostics: tuple[Diagnostic, ...]
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.diagnostics[0].message if self.diagnostics else "spec error")

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        parts = [d.render(self.sources.get(d.path)) for d in self.diagnostics]
        n = len(self.diagnostics)
        if n > 1:
            parts.append(f"{n} errors")
        return "\n".join(parts)


class UsageError(GenolangError):
    """A problem with how a command was called or with a file that is not a spec
    (missing data, unreadable checkpoint); carries a fix in its message."""


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The nearest candidate to a misspelt name, or None when nothing is close."""
    pool = sorted(set(candidates))
    matches = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Sequence[str] | Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` or the empty string."""
    best = suggest(name, candidates)
    return f"; did you mean '{best}'?" if best else ""
