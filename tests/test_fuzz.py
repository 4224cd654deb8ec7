"""Fuzzing the front end: whatever text comes in, parsing and checking raise nothing
but ``GenolangError``, the error renders, its locations lie inside the text, and the
CLI never shows a traceback."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SPEC_FILES
from genolang.cli import main
from genolang.errors import GenolangError, SpecError
from genolang.parse.parser import parse
from genolang.parse.printer import format_spec
from genolang.spec.check import check, load_text

SOURCES = [p.read_text(encoding="utf-8") for p in SPEC_FILES]
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[-+]?\d+(?:\.\d*)?|\s+|.", re.S)
NON_ASCII = st.sampled_from(["é", "ß", "λ", "中", "\u2028", "\u00a0", "\ufeff", "💥", "\x00", "\x0c", "\r", "\t",
                             "#", "{", "}", "..", "/0", "1e999", "9" * 120])
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated_spec(draw: st.DrawFn) -> str:
    """A shipped spec with a few token-level mutations."""
    tokens = TOKEN.findall(draw(st.sampled_from(SOURCES)))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "truncate", "insert", "replace"]))
        i = draw(st.integers(0, len(tokens) - 1))
        if kind == "delete":
            del tokens[i]
        elif kind == "duplicate":
            tokens.insert(i, tokens[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == "truncate":
            text = "".join(tokens)
            cut = draw(st.integers(0, len(text)))
            tokens = TOKEN.findall(text[:cut]) or [""]
        elif kind == "insert":
            text = "".join(tokens)
            at = draw(st.integers(0, len(text)))
            tokens = TOKEN.findall(text[:at] + draw(NON_ASCII) + text[at:]) or [""]
        else:  # replace a token by another token of any spec
            tokens[i] = draw(st.sampled_from(TOKEN.findall(draw(st.sampled_from(SOURCES)))))
        if not tokens:
            tokens = [""]
    return "".join(tokens)


def _front_end(text: str) -> None:
    """Parse and check; a ``GenolangError`` must render and point inside the text."""
    path = "fuzz.geno"
    try:
        result = check(parse(text, path), text)
    except GenolangError as err:
        _assert_renders(err, text, path)
        return
    try:
        result.raise_errors()
    except SpecError as err:
        _assert_renders(err, text, path)
        return
    # a clean file formats idempotently and still checks
    formatted = format_spec(result.file)
    assert format_spec(parse(formatted)) == formatted
    load_text(formatted, path)


def _assert_renders(err: GenolangError, text: str, path: str) -> None:
    rendered = err.render()
    assert isinstance(rendered, str)
    assert rendered
    if isinstance(err, SpecError):
        assert err.diagnostics
        lines = text.count("\n") + 1
        for d in err.diagnostics:
            if d.path == path and d.span is not None:
                assert 1 <= d.span.line <= lines, (d, lines)
                assert d.span.column >= 1
                assert f"{path}:{d.span.line}:{d.span.column}" in rendered


@SETTINGS
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    _front_end(text)


@SETTINGS
@given(st.lists(st.sampled_from(list("{}()=+,;:.#/-") + [" ", "\n", "\t", "genolang", "1", "2/3", "space",
                                                          "genotype", "network", "cell", "derive", "out", "n2",
                                                          "n3", "c0", "s0", "concat", "mean", "ops", "nodes", "keep",
                                                          "x", "darts_cnn", "darts_rnn", "sep_conv_3x3", "relu",
                                                          "é"]), max_size=60))
def test_random_token_soup(tokens: list[str]) -> None:
    _front_end("".join(tokens))


@SETTINGS
@given(mutated_spec())
def test_mutated_specs(text: str) -> None:
    _front_end(text)


CLI_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _run_cli(text: str) -> None:
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.geno"
        data = text.encode("utf-8", "surrogatepass")
        path.write_bytes(data)
        for args in (["check", str(path)], ["fmt", "--check", str(path)]):
            result = runner.invoke(main, args)
            output = result.output + (result.stderr if result.stderr_bytes else "")  # None: click < 8.2 mixed it in
            assert "Traceback" not in output, output
            assert result.exit_code in (0, 1), (args, result.exit_code, output, result.exception)
            assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
            if result.exit_code == 1 and args[0] == "check":
                assert "error" in output
        assert path.read_bytes() == data  # fmt --check changes nothing


@CLI_SETTINGS
@given(mutated_spec())
def test_cli_on_mutated_specs(text: str) -> None:
    _run_cli(text)


@CLI_SETTINGS
@given(st.text(max_size=100))
def test_cli_on_random_text(text: str) -> None:
    _run_cli(text)


def test_known_nasty_inputs() -> None:
    for text in ["", "\n", "genolang", "genolang 1", "genolang 2", "genolang 1.0\n", "space", "space s {",
                 "}", "{", "#", "# only a comment", "\ufeffgenolang 1\n", "network n { x = 1e999 }",
                 "network n { x = " + "9" * 5000 + " }", "network n { reduce_at = 1/0 }",
                 "network n { stem = cifar; reduce_at = 1.5/3 }", "genotype g : g {}",
                 "space s { ops = none }", "genotype g : darts_cnn { normal { out = concat(n2..n2) } }",
                 "genotype g : darts_rnn { recurrent { out = mean(n8..n1) } }", "\x00", "a" * 10000]:
        _front_end(text)
        _run_cli(text)
