"""Text to syntax tree. Syntax errors become a ``SpecError`` that points at the
offending token and says what was expected there."""

from __future__ import annotations

import math
import re
import threading
from fractions import Fraction
from functools import lru_cache
from typing import Any, TypeAlias, cast

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from genolang import resources
from genolang.errors import Diagnostic, Span, SpecError
from genolang.parse import ast as A

_comments: list[Token] = []
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = resources.grammar_path().read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _comments.append},
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
    return A.Name(str(tok), _tok_span(tok))


MAX_NUMBER_CHARS = 100


class _BadNumber(Exception):
    """A number token that cannot become a value (too long, or out of float range)."""

    def __init__(self, tok: Token, message: str) -> None:
        super().__init__(message)
        self.tok, self.message = tok, message


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
        return A.Value(str(children[0]), _tok_span(children[0]))

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
        return A.CellDecl(_name(children[0]), tuple(children[1:]), _meta_span(meta))

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


def _syntax_diagnostic(err: UnexpectedInput, text: str, path: str) -> Diagnostic:
    if isinstance(err, UnexpectedCharacters):
        pos = cast(int, err.pos_in_stream)  # the lexer's position (lark's class attribute says None)
        ch = text[pos] if pos < len(text) else ""
        hint = "names use ASCII letters, digits and '_'; comments start with '#'"
        return Diagnostic(path, Span.point(err.line, err.column), f"unexpected character {ch!r}", hint)
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
        return Diagnostic(path, span, message, _hint_for(tok, set(err.expected), _previous_token(err)))
    line = getattr(err, "line", 1) or 1
    col = getattr(err, "column", 1) or 1
    return Diagnostic(path, Span.point(line, col), "syntax error")


def _join(items: list[str]) -> str:
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return "one of " + ", ".join(items)


_KEYWORDS = {"OUT", "CELL", "DERIVE", "SPACE", "GENOTYPE", "NETWORK", "GENOLANG", "OP", "SEARCH"}


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
        try:
            version, vspan, decls = _ToAst().transform(_lark().parse(text))
        except UnexpectedInput as err:
            raise SpecError((_syntax_diagnostic(err, text, path),), {path: text}) from None
        except VisitError as err:
            if not isinstance(err.orig_exc, _BadNumber):
                raise
            bad = err.orig_exc
            hint = f"write numbers of at most {MAX_NUMBER_CHARS} characters that fit a float"
            diag = Diagnostic(path, _tok_span(bad.tok), bad.message, hint)
            raise SpecError((diag,), {path: text}) from None
        except RecursionError:  # pragma: no cover - the grammar is not recursive
            raise SpecError((Diagnostic(path, None, "spec is nested too deeply"),), {path: text}) from None
        comments = tuple(A.Comment(str(t), _tok_span(t)) for t in _comments)
        _comments.clear()
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


def read_text(path: str) -> str:
    """Read a spec file as UTF-8 text, with a clear error when that is impossible."""
    from genolang.errors import UsageError

    try:
        with open(path, encoding="utf-8-sig") as fh:  # a BOM (Windows editors) is not part of the spec
            return fh.read()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a spec file") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({err.strerror})") from None
