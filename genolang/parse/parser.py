"""Text to syntax tree. Syntax errors become a ``SpecError`` that points at the
offending token and says what was expected there."""

from __future__ import annotations

import math
import re
import sys
import threading
from fractions import Fraction
from functools import lru_cache
from typing import Any, TypeAlias, cast

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from genolang import resources
from genolang.errors import Diagnostic, Span, SpecError, describe_char, is_hidden
from genolang.parse import ast as A

_comments: list[Token] = []
_numbers: list[Token] = []
_lock = threading.Lock()

# The largest spec file genolang reads (shipped specs are a few KiB, a search's genotype
# file with its alpha table about 10 KiB; parsing runs at roughly 100 KiB a second);
# larger files are refused before parsing.
MAX_SPEC_BYTES = 256 << 10
MAX_NAME_CHARS = 100


def _seen_number(tok: Token) -> Token:
    _numbers.append(tok)
    return tok


@lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = resources.grammar_path().read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _comments.append, "NUMBER": _seen_number},
    )


def _tok_span(tok: Token) -> Span:
    # lark types a token's position optional (for tokens made in code); lexed tokens have one
    line, column = tok.line or 1, tok.column or 1
    return Span(line, column, tok.end_line or line, tok.end_column or column + len(tok))


def _meta_span(meta: Any) -> Span | None:
    if getattr(meta, "empty", True):
        return None
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _name(tok: Token) -> A.Name:
    if len(tok) > MAX_NAME_CHARS:
        raise _BadNumber(tok, f"name is too long ({len(tok):,} characters)",
                         f"names have at most {MAX_NAME_CHARS} characters")
    return A.Name(str(tok), _tok_span(tok))


MAX_NUMBER_CHARS = 100


class _BadNumber(Exception):
    """A token that cannot become a value (a number too long or out of float range, a
    name too long)."""

    def __init__(self, tok: Token, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.tok, self.message = tok, message
        self.hint = hint or f"write numbers of at most {MAX_NUMBER_CHARS} characters that fit a float"


def _number(tok: Token) -> int | float:
    text = str(tok)
    if len(text) > MAX_NUMBER_CHARS:
        raise _BadNumber(tok, f"number is too long ({len(text)} characters)")
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    value = float(text)
    if math.isinf(value):
        raise _BadNumber(tok, f"number {text} is out of range")
    return value


_Parsed: TypeAlias = "tuple[int, Span | None, tuple[A.Decl, ...]]"  # (version, its span, declarations)


@v_args(meta=True)
class _ToAst(Transformer[Token, _Parsed]):
    """Builds the frozen AST bottom-up from lark's parse tree."""

    def start(self, meta: Any, children: list[Any]) -> _Parsed:
        version, vspan = A.FORMAT_VERSION, None
        decls = []
        for child in children:
            if isinstance(child, tuple) and child and child[0] == "version":
                version, vspan = child[1], child[2]
            elif child is not None:
                decls.append(child)
        return version, vspan, tuple(decls)

    def version(self, meta: Any, children: list[Token]) -> tuple[str, Any, Span]:
        tok = children[0]
        value = _number(tok)
        return ("version", value, _tok_span(tok))

    # -- values and properties ---------------------------------------------------
    def number(self, meta: Any, children: list[Token]) -> A.Value:
        return A.Value(_number(children[0]), _tok_span(children[0]))

    def fraction(self, meta: Any, children: list[Token]) -> A.Value:
        num, den = (_number(t) for t in children)
        start, end = _tok_span(children[0]), _tok_span(children[1])
        span = Span(start.line, start.column, end.end_line, end.end_column)
        if isinstance(num, int) and isinstance(den, int) and den != 0:
            return A.Value(Fraction(num, den), span)
        return A.Value(f"{children[0]}/{children[1]}", span)  # rejected by the checker

    def word(self, meta: Any, children: list[Token]) -> A.Value:
        return A.Value(_name(children[0]).text, _tok_span(children[0]))

    def text(self, meta: Any, children: list[Token]) -> A.Value:
        return A.Value(A.Text(str(children[0])[1:-1]), _tok_span(children[0]))

    def prop(self, meta: Any, children: list[Any]) -> A.Prop:
        key, qualifier, *values = children
        return A.Prop(
            _name(key),
            tuple(v for v in values if v is not None),
            _name(qualifier) if qualifier is not None else None,
            _meta_span(meta),
        )

    # -- spaces ------------------------------------------------------------------
    def cell(self, meta: Any, children: list[Any]) -> A.CellDecl:
        name, *items = children
        props = tuple(i for i in items if isinstance(i, A.Prop))
        edges = tuple(i for i in items if isinstance(i, A.EdgeDecl))
        return A.CellDecl(_name(name), props, _meta_span(meta), edges, tuple(items))

    def edge(self, meta: Any, children: list[Token]) -> A.EdgeDecl:
        src, dst, *ops = children
        return A.EdgeDecl(_name(src), _name(dst), tuple(_name(op) for op in ops), _meta_span(meta))

    def derive(self, meta: Any, children: list[Any]) -> A.Derive:
        return A.Derive(tuple(children), _meta_span(meta))

    def space(self, meta: Any, children: list[Any]) -> A.Space:
        name, *items = children
        props = tuple(i for i in items if isinstance(i, A.Prop))
        cells = tuple(i for i in items if isinstance(i, A.CellDecl))
        derives = [i for i in items if isinstance(i, A.Derive)]
        return A.Space(
            _name(name), props, cells, derives[0] if derives else None, _meta_span(meta), tuple(items)
        )

    # -- genotypes ---------------------------------------------------------------
    def term(self, meta: Any, children: list[Token]) -> A.Term:
        return A.Term(_name(children[0]), _name(children[1]), _meta_span(meta))

    def node(self, meta: Any, children: list[Any]) -> A.Node:
        return A.Node(_name(children[0]), tuple(children[1:]), _meta_span(meta))

    def range(self, meta: Any, children: list[Token]) -> A.Range:
        return A.Range(_name(children[0]), _name(children[1]), _meta_span(meta))

    def output(self, meta: Any, children: list[Any]) -> A.Output:
        reducer, *refs = children
        named = tuple(_name(r) if isinstance(r, Token) else r for r in refs if r is not None)
        return A.Output(_name(reducer), named, _meta_span(meta))

    def geno_cell(self, meta: Any, children: list[Any]) -> A.GenoCell:
        name, *stmts = children
        nodes = tuple(s for s in stmts if isinstance(s, A.Node))
        outputs = tuple(s for s in stmts if isinstance(s, A.Output))
        return A.GenoCell(_name(name), nodes, outputs[0] if outputs else None, _meta_span(meta), outputs)

    def genotype(self, meta: Any, children: list[Any]) -> A.Genotype:
        name, space, *cells = children
        return A.Genotype(_name(name), _name(space), tuple(cells), _meta_span(meta))

    # -- networks ----------------------------------------------------------------
    def network(self, meta: Any, children: list[Any]) -> A.Network:
        return A.Network(_name(children[0]), tuple(children[1:]), _meta_span(meta))

    # -- searches ----------------------------------------------------------------
    def setting(self, meta: Any, children: list[Any]) -> A.Setting:
        component, param, value = children
        return A.Setting(_name(component), _name(param), value, _meta_span(meta))

    def search(self, meta: Any, children: list[Any]) -> A.Search:
        name, space, *items = children
        props = tuple(i for i in items if isinstance(i, A.Prop))
        settings = tuple(i for i in items if isinstance(i, A.Setting))
        return A.Search(_name(name), _name(space), props, settings, _meta_span(meta), tuple(items))

    # -- operations --------------------------------------------------------------
    def kernel(self, meta: Any, children: list[Token]) -> A.Value:
        tok = children[0]
        if len(str(tok)) > MAX_NUMBER_CHARS:
            raise _BadNumber(tok, f"kernel size is too long ({len(str(tok))} characters)")
        height, width = (int(p) for p in str(tok).split("x"))
        return A.Value(A.Kernel(height, width), _tok_span(tok))

    def op_positional(self, meta: Any, children: list[Any]) -> A.OpArg:
        return A.OpArg(children[0], None, _meta_span(meta))

    def op_keyword(self, meta: Any, children: list[Any]) -> A.OpArg:
        return A.OpArg(children[1], _name(children[0]), _meta_span(meta))

    def op_call(self, meta: Any, children: list[Any]) -> A.OpCall:
        name, *args = children
        return A.OpCall(_name(name), tuple(a for a in args if a is not None), _meta_span(meta))

    def op_sequence(self, meta: Any, children: list[Any]) -> A.OpSequence:
        return A.OpSequence(tuple(children), _meta_span(meta))

    def op_repeat(self, meta: Any, children: list[Any]) -> A.OpRepeat:
        times, body = children
        return A.OpRepeat(A.Value(_number(times), _tok_span(times)), body, _meta_span(meta))

    def op_strided(self, meta: Any, children: list[Any]) -> A.OpStrided:
        return A.OpStrided(children[0], children[1], _meta_span(meta))

    def op_family(self, meta: Any, children: list[Any]) -> tuple[A.Name, tuple[A.Value, ...]]:
        param, *values = children
        return _name(param), tuple(values)

    def op_decl(self, meta: Any, children: list[Any]) -> A.OpDecl:
        name, family, body = children
        param, values = family if family is not None else (None, ())
        return A.OpDecl(_name(name), body, param, values, _meta_span(meta))


_TERMINAL_WORDS = {"NAME": "a name", "NUMBER": "a number", "$END": "the end of the file"}


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        term = _lark().get_terminal(name)
    except KeyError:
        return name.lower()
    if term.pattern.type == "str":
        return f"'{term.pattern.value}'"
    return name.lower()


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "NAME":
        return f"name '{tok}'"
    if tok.type == "NUMBER":
        return f"number {tok}"
    return f"'{tok}'"


def _unclosed_brace(text: str, upto: int) -> tuple[int, int] | None:
    """Line and column of the last '{' not closed before offset ``upto``."""
    stack: list[tuple[int, int]] = []
    line, col = 1, 1
    in_comment = False
    for ch in text[:upto]:
        if ch == "\n":
            line, col, in_comment = line + 1, 1, False
            continue
        if not in_comment:
            if ch == "#":
                in_comment = True
            elif ch == "{":
                stack.append((line, col))
            elif ch == "}" and stack:
                stack.pop()
        col += 1
    return stack[-1] if stack else None


def _word_at(text: str, pos: int) -> tuple[int, int]:
    """The run of letters, digits, '_' and invisible characters around offset ``pos``."""
    def part(ch: str) -> bool:
        return ch.isalnum() or ch == "_" or (is_hidden(ch) and ch not in "\n\r\t\f ")

    start = pos
    while start > 0 and part(text[start - 1]) and pos - start < MAX_NAME_CHARS:
        start -= 1
    end = pos
    while end < len(text) and part(text[end]) and end - pos < MAX_NAME_CHARS:
        end += 1
    return start, end


def _foreign_word(text: str, pos: int, path: str) -> Diagnostic | None:
    """A word at ``pos`` holding a character that is not ASCII (a Cyrillic 'а' in
    'spаce', a zero-width space): name the code point and what it looks like."""
    start, end = _word_at(text, pos)
    if start == end:
        return None
    word = text[start:end]
    odd = next((c for c in word if not c.isascii() or is_hidden(c)), None)
    if odd is None:
        return None
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    where = text.index(odd, start) - start
    ascii_word = "".join(_ascii_for(c) for c in word)
    shown = "".join(f"<U+{ord(c):04X}>" if is_hidden(c) else c for c in word)
    fix = (f"retype it as '{ascii_word}'" if ascii_word and ascii_word != word and ascii_word.isascii()
           else "names use ASCII letters, digits and '_'; delete or retype that character")
    message = (f"'{shown}' contains {describe_char(odd)}" if len(word) > 1
               else f"unexpected character {describe_char(odd)}")
    span = Span(line, column + where, line, column + where + 1) if len(word) > 1 else Span.point(line, column)
    return Diagnostic(path, span, message, fix)


def _ascii_for(ch: str) -> str:
    if ch.isascii() and not is_hidden(ch):
        return ch
    if is_hidden(ch):
        return ""
    looks = describe_char(ch).partition(", which looks like '")[2]
    return looks[:-1] if looks and looks[:-1].isascii() else ch


def _missing_value(err: UnexpectedToken, text: str, path: str) -> Diagnostic | None:
    """A property whose '=' has no value on its line (``ops =`` then a newline): the
    parser reads on into the next line and fails there; report it at the '='."""
    prev = _previous_token(err)
    if prev is not None and prev.type == "EQUAL" and err.token.type in ("RBRACE", "$END", "SEMICOLON"):
        key = _last_key(err)
        return Diagnostic(path, _tok_span(prev), f"'{key}' has no value" if key else "a property has no value",
                          f"write '{key or 'key'} = <value>' or remove the line")
    stack = list(getattr(err.interactive_parser.parser_state, "value_stack", []) or [])
    tail = stack[-3:]
    if (len(tail) == 3 and all(isinstance(t, Token) for t in tail) and tail[1].type == "EQUAL"
            and tail[0].type == "NAME" and (tail[2].line or 0) > (tail[1].line or 0)
            and (err.token.line or 0) >= (tail[2].line or 0)):
        return Diagnostic(path, _tok_span(tail[1]), f"'{tail[0]}' has no value",
                          f"write '{tail[0]} = <value>' on one line, or remove the line (the parser read "
                          f"'{tail[2]}' from line {tail[2].line} as its value)")
    props = [t for t in _trees(stack) if getattr(t, "data", None) == "prop"]
    if not props:
        return None
    prop = max(props, key=lambda t: t.meta.line if not t.meta.empty else 0)
    key, qualifier, *values = prop.children
    if len(values) != 1 or not values[0].children or not isinstance(values[0].children[0], Token):
        return None
    value = values[0].children[0]
    if (value.line or 0) <= (key.line or 0) or (err.token.line or 0) < (value.line or 0):
        return None
    after = qualifier if isinstance(qualifier, Token) else key
    eq = text.find("=", after.end_pos, value.start_pos)
    if eq < 0:
        return None
    line = text.count("\n", 0, eq) + 1
    column = eq - (text.rfind("\n", 0, eq) + 1) + 1
    return Diagnostic(path, Span.point(line, column), f"'{key}' has no value",
                      f"write '{key} = <value>' on one line, or remove the line (the parser read '{value}' from "
                      f"line {value.line} as its value)")


def _trees(stack: Any) -> list[Any]:
    out = []
    for item in stack or ():
        if hasattr(item, "children"):
            out.append(item)
            out.extend(_trees(item.children))
    return out


def _last_key(err: UnexpectedToken) -> str | None:
    stack = getattr(err.interactive_parser.parser_state, "value_stack", [])
    names = [v for v in stack if isinstance(v, Token) and v.type == "NAME"]
    return str(names[-1]) if names else None


def _syntax_diagnostic(err: UnexpectedInput, text: str, path: str) -> Diagnostic:
    if isinstance(err, UnexpectedCharacters):
        at = cast(int, err.pos_in_stream)  # the lexer's position (lark's class attribute says None)
        foreign = _foreign_word(text, at, path) if at < len(text) else None
        if foreign is not None:
            return foreign
        ch = text[at] if at < len(text) else ""
        hint: str | None = "names use ASCII letters, digits and '_'; comments start with '#'"
        what = f"{ch!r} ({describe_char(ch)})" if ch and (not ch.isascii() or is_hidden(ch)) else repr(ch)
        return Diagnostic(path, Span.point(err.line, err.column), f"unexpected character {what}", hint)
    if isinstance(err, UnexpectedToken) and err.token.type != "$END":
        pos = err.token.end_pos if err.token.end_pos is not None else 0
        if pos < len(text) and (not text[pos].isascii() or is_hidden(text[pos])) and text[pos] not in "\n\r\t\f":
            foreign = _foreign_word(text, pos, path)
            if foreign is not None:
                return foreign
    if isinstance(err, UnexpectedToken) and not _in_edge(err):
        missing = _missing_value(err, text, path)
        if missing is not None:
            return missing
    if isinstance(err, (UnexpectedToken, UnexpectedEOF)):
        tok = err.token if isinstance(err, UnexpectedToken) else Token("$END", "")
        expected = sorted(
            {_describe_terminal(t) for t in err.expected if not t.startswith("__") or t == "$END"}
        )
        at_end = tok.type == "$END"
        if at_end:
            # just after the last non-blank line; lines end at '\n' only, as lark counts them
            lines = text.split("\n")
            while len(lines) > 1 and not lines[-1].strip():
                lines.pop()
            line = len(lines)
            span = Span.point(line, len(lines[-1].rstrip()) + 1)
            opened = _unclosed_brace(text, len(text))
            if opened is not None:
                hint = f"the '{{' at line {opened[0]}, column {opened[1]} is never closed; add '}}'"
            else:
                hint = f"the file ends too early; expected {_join(expected)}"
            return Diagnostic(path, span, "unexpected end of file", hint)
        assert isinstance(err, UnexpectedToken)  # an UnexpectedEOF is at the end
        keyword = _misused_keyword(err)
        if keyword is not None:
            hint = ("'out = reducer(...)' is the cell's output; name intermediate nodes n2, n3, ... (n1, n2, ... "
                    "in a recurrent cell)" if keyword.type == "OUT" else "rename it")
            return Diagnostic(path, _tok_span(keyword), f"'{keyword}' is a keyword and cannot be used as a name", hint)
        span = _tok_span(tok)
        message = f"unexpected {_describe_token(tok)}; expected {_join(expected)}"
        hint = EDGE_HINT if _in_edge(err) else _hint_for(tok, set(err.expected), _previous_token(err))
        return Diagnostic(path, span, message, hint)
    line = getattr(err, "line", 1) or 1
    col = getattr(err, "column", 1) or 1
    return Diagnostic(path, Span.point(line, col), "syntax error")


def _join(items: list[str]) -> str:
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return "one of " + ", ".join(items)


_KEYWORDS = {"OUT", "CELL", "DERIVE", "SPACE", "GENOTYPE", "NETWORK", "GENOLANG", "OP", "EDGE", "SEARCH"}


def _misused_keyword(err: UnexpectedToken) -> Token | None:
    """The keyword the author meant as a name, when that explains the error: a property
    named after a keyword (``cell = 2``: the keyword, then '='), or a node named ``out``
    (``out = op(c0) + op(c1)``: an output line, then '+')."""
    prev = _previous_token(err)
    tok = err.token
    if prev is not None and prev.type in _KEYWORDS and tok.type == "EQUAL":
        return prev
    if tok.type == "PLUS" and getattr(err, "interactive_parser", None) is not None:
        stack = err.interactive_parser.parser_state.value_stack
        outs = [v for v in stack if isinstance(v, Token) and v.type == "OUT"]
        if outs:
            return outs[-1]
    return None


EDGE_HINT = ("write an edge of a cell as 'edge c0 -> n2 = skip_connect, sep_conv_3x3': where it comes from, "
             "'->', the node it feeds, '=' and at least one op")


def _in_edge(err: UnexpectedToken) -> bool:
    """Whether the parser was inside an ``edge ...`` line of a cell."""
    parser = getattr(err, "interactive_parser", None)
    if parser is None:
        return False
    return any(isinstance(v, Token) and v.type == "EDGE" for v in parser.parser_state.value_stack)


def _previous_token(err: UnexpectedToken) -> Token | None:
    history = [t for t in getattr(err, "token_history", None) or () if isinstance(t, Token)]
    return history[-1] if history else None


def _hint_for(tok: Token, expected: set[str], prev: Token | None = None) -> str | None:
    if tok.type == "EQUAL" and prev is not None and prev.type == "NAME" and "COMMA" in expected:
        return (f"'{prev}' was read as the value of the property before it: "
                f"is a value missing before '{prev}'?")
    if tok.type == "RBRACE" and "NAME" in expected:
        return "a property needs a value after '='" if "NUMBER" in expected else None
    if tok.type == "NAME" and "EQUAL" in expected:
        return "write a property as 'key = value' and a node as 'n2 = op(c0) + op(c1)'"
    if "LPAR" in expected and tok.type != "LPAR":
        return "write each input of a node as 'op(input)', for example 'sep_conv_3x3(c0)'"
    if tok.type == "COMMA" and "PLUS" in expected:
        return "the inputs of a node are summed: join them with '+', not ','"
    if tok.type == "NAME" and {"SPACE", "GENOTYPE", "NETWORK"} & expected:
        return "a file holds 'space', 'genotype', 'network', 'op' and 'search' declarations"
    if tok.type in {"OUT", "CELL", "DERIVE", "SPACE", "GENOTYPE", "NETWORK", "GENOLANG", "SEARCH"}:
        return f"'{tok}' is a keyword and cannot be used as a name"
    return None


def parse(text: str, path: str = "<spec>") -> A.SpecFile:
    """Parse spec text into a ``SpecFile``; raises ``SpecError`` on a syntax error."""
    with _lock:
        _comments.clear()
        _numbers.clear()
        try:
            try:
                tree = _lark().parse(text)
            except UnexpectedInput as err:
                bad = _glued_numbers(text, path, before=_error_offset(err, text))
                raise SpecError(bad[:1] or (_syntax_diagnostic(err, text, path),), {path: text}) from None
            bad = _glued_numbers(text, path)
            if bad:
                raise SpecError(bad, {path: text})
            version, vspan, decls = _ToAst().transform(tree)
        except VisitError as err:
            if not isinstance(err.orig_exc, _BadNumber):
                raise
            bad_tok = err.orig_exc
            diag = Diagnostic(path, _tok_span(bad_tok.tok), bad_tok.message, bad_tok.hint)
            raise SpecError((diag,), {path: text}) from None
        except RecursionError:  # pragma: no cover - the grammar is not recursive
            raise SpecError((Diagnostic(path, None, "spec is nested too deeply"),), {path: text}) from None
        finally:
            found_comments = list(_comments)
            _comments.clear()
            _numbers.clear()
        comments = tuple(A.Comment(str(t), _tok_span(t)) for t in found_comments)
    if version == A.FORMAT_VERSION:
        version = A.FORMAT_VERSION  # 'genolang 1.0' is version 1, printed as 'genolang 1'
    else:
        diag = Diagnostic(
            path,
            vspan,
            f"unsupported format version {version}",
            f"this genolang reads 'genolang {A.FORMAT_VERSION}' files; upgrade genolang or fix the version line",
        )
        raise SpecError((diag,), {path: text})
    return A.SpecFile(decls, version, comments, path, vspan)


_GLUED = re.compile(r"[A-Za-z0-9_.]+")


def _error_offset(err: UnexpectedInput, text: str) -> int:
    tok = getattr(err, "token", None)
    if isinstance(tok, Token) and tok.start_pos is not None:
        return int(tok.start_pos)
    pos = getattr(err, "pos_in_stream", None)
    return int(pos) if isinstance(pos, int) else len(text)


def _glued_numbers(text: str, path: str, before: int | None = None) -> tuple[Diagnostic, ...]:
    """Numbers the lexer split off a longer word (``0x2`` is ``0`` and then ``x2``,
    ``1_000`` is ``1`` and ``_000``): genolang numbers are decimal, and a value that
    runs on into letters is not one. Only tokens lexed before offset ``before``."""
    out = []
    for tok in _numbers:
        end = tok.end_pos
        if end is None or end >= len(text) or (before is not None and (tok.start_pos or 0) > before):
            continue
        nxt = text[end]
        if not (nxt.isascii() and (nxt.isalnum() or nxt == "_")):
            continue
        word = tok + _GLUED.match(text, end).group(0)  # type: ignore[union-attr]
        line, column = tok.line or 1, tok.column or 1
        span = Span(line, column, line, column + len(word))
        hint = ("genolang reads decimal numbers only (no 0x, 0o, 0b or '_' separators): write "
                f"{_decimal(word)}" if _decimal(word) else
                "write a number alone (e.g. 2 or 0.5) or a name that starts with a letter")
        out.append(Diagnostic(path, span, f"'{word}' is not a number", hint))
    return tuple(out)


def _decimal(word: str) -> str | None:
    """``0x2`` -> ``2``, ``1_000`` -> ``1000``: the decimal a Python-style literal means."""
    try:
        value = int(word, 0)
    except ValueError:
        return None
    return str(value) if len(word) <= MAX_NUMBER_CHARS else None


def read_text(path: str) -> str:
    """Read a spec file (or standard input for ``-``) as UTF-8 text. A path that is not
    a regular file, a file larger than ``MAX_SPEC_BYTES`` and bytes that are not UTF-8
    are clear errors; a leading BOM is dropped."""
    from genolang.fsio import read_regular

    if path == "-":
        data = sys.stdin.buffer.read(MAX_SPEC_BYTES + 1)
        label = STDIN
    else:
        data = read_regular(path, MAX_SPEC_BYTES, "spec file")
        label = path
    if len(data) > MAX_SPEC_BYTES:
        diag = Diagnostic(label, None, f"spec file is larger than {MAX_SPEC_BYTES // 1024} KiB",
                          "spec files hold declarations of a few KiB; is this the right file?")
        raise SpecError((diag,), {})
    if data.startswith(b"\xef\xbb\xbf"):  # a BOM (Windows editors) is not part of the spec
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        line_start = data.rfind(b"\n", 0, err.start) + 1
        column = len(data[line_start:err.start].decode("utf-8", errors="replace")) + 1
        shown = data.decode("utf-8", errors="replace")
        diag = Diagnostic(label, Span.point(line, column), f"not UTF-8 text: byte 0x{data[err.start]:02x} "
                          f"({err.reason})", "save the file as UTF-8")
        raise SpecError((diag,), {label: shown}) from None


STDIN = "<stdin>"  # the label of standard input in messages
