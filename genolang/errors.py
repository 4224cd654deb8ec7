"""User-facing errors: a diagnostic names a file, line and column, shows the line with
a caret, and says how to fix it. Every error the CLI reports is a ``GenolangError``;
anything else escaping is a bug.

Exit statuses, deliberately:

* ``UsageError`` (2, click's convention for usage errors): how a command was called:
  an option's value, options that contradict each other, a path on the command line
  that does not exist or is of the wrong kind, a destination that cannot be written or
  that already holds a file. The fix is on the command line.
* ``SpecError`` (1): diagnostics in spec files. The fix is in the file.
* ``InputError`` (1): the content of another input is wrong: a damaged or foreign
  checkpoint, a run folder whose files do not parse, malformed data files.
* ``MissingTool`` (1): an optional package or program is not installed.
* every other ``GenolangError`` (1): the command was right but the work cannot be
  done (a genotype that does not fit a skeleton, a model too large to build, a
  diverged run).

Rendering is bounded whatever the input: at most ``MAX_SHOWN_PER_FILE`` diagnostics of
a file are shown (then "... and N more errors"), a source line is cut to a window
around the caret, messages are clipped, and characters a terminal would hide or
reorder (zero-width, bidirectional, control) are shown as ``<U+200B>``."""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MAX_SHOWN_PER_FILE = 20  # diagnostics shown per file; the rest are counted
LINE_WINDOW = 120  # a source line longer than this is shown as a window around the caret
MAX_MESSAGE_CHARS = 1000  # a message or hint longer than this is clipped


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 epoch``, ``2 epochs`` (``many`` for irregular plurals)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters with the count of the rest."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


# ---- characters a reader cannot see for what they are ------------------------------------

# Letters of other scripts that look like ASCII ones (the common cases of Unicode's
# confusables list); NFKC folds the rest (fullwidth, mathematical and ligature forms).
_LOOKALIKES = {
    **dict(zip("аеорсухіјѕԁһԛԝӏвкмнт", "aeopcyxijsdhqwlbkmht")),  # Cyrillic small
    **dict(zip("АВЕКМНОРСТХУІЈЅ", "ABEKMHOPCTXYIJS")),  # Cyrillic capital
    **dict(zip("αονρτιкυΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "aovptikuABEZHIKMNOPTYX")),  # Greek
    "\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u037e": ";", "\u00a0": " ",
    "\u2024": ".", "\u2025": "..", "\u00d7": "x", "\uff1d": "=", "\u0131": "i", "\u0251": "a", "\u0261": "g",
}


def is_hidden(ch: str) -> bool:
    """A character a terminal shows as nothing, as a space or reorders text around:
    controls (tab aside), format characters (zero-width, bidirectional marks, BOM),
    line and paragraph separators and non-ASCII spaces."""
    if ch == "\t":
        return False
    category = unicodedata.category(ch)
    return category in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn") or (category == "Zs" and ch != " ")


def describe_char(ch: str) -> str:
    """``U+0430 CYRILLIC SMALL LETTER A, which looks like 'a'``, ``U+200B ZERO WIDTH
    SPACE, which is invisible``."""
    name = unicodedata.name(ch, "") or ("a control character" if unicodedata.category(ch) == "Cc"
                                        else "an unassigned or private code point")
    text = f"U+{ord(ch):04X} {name}"
    looks = _LOOKALIKES.get(ch)
    if looks is None:
        folded = unicodedata.normalize("NFKC", ch)
        if folded != ch and folded.isascii() and folded.isprintable() and folded.strip():
            looks = folded
    if looks is not None and looks.strip():
        return f"{text}, which looks like '{looks}'"
    if looks is not None or is_hidden(ch):
        return f"{text}, which is invisible or looks like a space"
    return text


def _shown(ch: str) -> str:
    """How a source character is shown in a rendered line."""
    if ch == "\t":
        return " "
    if is_hidden(ch):
        return f"<U+{ord(ch):04X}>"
    return ch


def _columns(text: str) -> int:
    """Terminal columns of shown text (East Asian wide characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


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


def source_line(source: str, number: int) -> str | None:
    """Line ``number`` (1-based) as the parser counts lines (only '\\n' ends one), or
    None past the end. Does not split the whole text."""
    start = 0
    for _ in range(number - 1):
        start = source.find("\n", start)
        if start < 0:
            return None
        start += 1
    if start >= len(source) and number > 1:
        return None
    end = source.find("\n", start)
    return source[start:] if end < 0 else source[start:end]


def _caret_lines(text: str, start: int, width: int) -> tuple[str, str]:
    """The shown line and its caret line for characters ``[start, start + width)`` of
    ``text``, cut to a window of about ``LINE_WINDOW`` columns around the caret."""
    start = min(max(start, 0), len(text))
    width = max(width, 1)
    end = min(start + width, len(text))
    if len(text) <= LINE_WINDOW:
        lo, hi = 0, len(text)  # a line of ordinary length is shown whole
    else:
        lo = max(0, start - LINE_WINDOW // 3)
        hi = min(len(text), max(end, start + 1) + LINE_WINDOW // 2)
        if hi - lo > LINE_WINDOW * 2:  # a very wide span: its start is what matters
            hi = lo + LINE_WINDOW * 2
    head = "..." if lo > 0 else ""
    tail = "..." if hi < len(text) else ""
    before = head + "".join(_shown(c) for c in text[lo:start])
    marked = "".join(_shown(c) for c in text[start:min(end, hi)])
    after = "".join(_shown(c) for c in text[min(end, hi):hi]) + tail
    caret_width = max(_columns(marked), 1)
    caret = " " * _columns(before) + "^" + "~" * (caret_width - 1)
    return before + marked + after, caret


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
        span (a window of it when long), then the hint."""
        lines = [f"{self.location()}: {self.severity}: {clip(self.message)}"]
        if self.span is not None and source is not None:
            text = source_line(source, self.span.line)
            number = str(self.span.line)
            pad = " " * len(number)
            if text is not None:
                text = text.rstrip("\r")
                start = max(self.span.column - 1, 0)
                if self.span.end_line == self.span.line:
                    width = max(self.span.end_column - self.span.column, 1)
                else:
                    width = max(len(text) - start, 1)
                shown, caret = _caret_lines(text, start, width)
                lines.append(f" {number} | {shown}")
                lines.append(f" {pad} | {caret}")
            elif source_line(source, self.span.line - 1) is not None:
                lines.append(f" {number} | ")
                lines.append(f" {pad} | ^")
        if self.hint:
            lines.append(f"  hint: {clip(self.hint)}")
        return "\n".join(lines)


def render_diagnostics(diagnostics: Sequence[Diagnostic], sources: dict[str, str],
                       limit: int = MAX_SHOWN_PER_FILE) -> list[str]:
    """Rendered diagnostics, at most ``limit`` per file, each file's rest counted in
    one line: ``bad.geno: ... and 4,980 more errors``."""
    shown: dict[str, int] = {}
    hidden: dict[str, dict[str, int]] = {}
    parts = []
    for d in diagnostics:
        if shown.get(d.path, 0) < limit:
            shown[d.path] = shown.get(d.path, 0) + 1
            parts.append(d.render(sources.get(d.path)))
        else:
            counts = hidden.setdefault(d.path, {})
            counts[d.severity] = counts.get(d.severity, 0) + 1
    for path, counts in hidden.items():
        rest = " and ".join(f"{n:,} more {severity if n == 1 else severity + 's'}" for severity, n in counts.items())
        parts.append(f"{path}: ... and {rest} (the first {limit} are shown; fix those and check again)")
    return parts


class GenolangError(Exception):
    """Base of every error genolang reports to a user: the CLI prints ``render()`` (no
    traceback) and exits with ``exit_code``."""

    exit_code = 1

    def render(self) -> str:
        return f"error: {clip(str(self), 4 * MAX_MESSAGE_CHARS)}"


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
        parts = render_diagnostics(self.diagnostics, self.sources)
        n = sum(1 for d in self.diagnostics if d.severity == "error")
        if n > 1:
            parts.append(plural(n, "error"))
        return "\n".join(parts)


class UsageError(GenolangError):
    """How a command was called: an option's value, contradicting options, a path that
    does not exist or is of the wrong kind, a destination that cannot be written or is
    taken. Exit status 2, as click's own usage errors. The message says the fix."""

    exit_code = 2


class InputError(GenolangError):
    """An input other than a spec whose content is wrong: a damaged or foreign
    checkpoint, a run folder's files, malformed data. Exit status 1; the message names
    the file and what to do."""


class MissingTool(GenolangError):
    """An optional package or program the command needs is not installed (exit 1: the
    command is right, the environment lacks something); the message says how to
    install it."""


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The nearest candidate to a misspelt name, or None when nothing is close."""
    if len(name) > 100:
        return None
    pool = sorted(set(candidates))
    matches = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Sequence[str] | Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` or the empty string."""
    best = suggest(name, candidates)
    return f"; did you mean '{best}'?" if best else ""


def is_out_of_memory(err: BaseException) -> bool:
    """Whether an error says an allocation failed (torch's allocators say so in a
    ``RuntimeError``; oneDNN as a primitive it could not create)."""
    text = str(err).lower()
    return isinstance(err, MemoryError) or any(
        words in text for words in ("out of memory", "can't allocate memory", "not enough memory",
                                    "failed to allocate", "could not create a primitive"))
