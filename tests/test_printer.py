"""Properties of the canonical printer: random genotypes of the DARTS CNN and
recurrent spaces print, parse back to the same tree, check, and format idempotently;
comments survive formatting; a one-op change is a one-line diff."""

from __future__ import annotations

import difflib
import re
from dataclasses import replace
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SPEC_FILES
from genolang.parse import ast as A
from genolang.parse.parser import parse
from genolang.parse.printer import format_spec, format_value
from genolang.spec.check import load_text

CNN_OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
           "dil_conv_3x3", "dil_conv_5x5")
RNN_OPS = ("none", "tanh", "relu", "sigmoid", "identity")

Cell = tuple[str, list[tuple[str, list[tuple[str, str]]]], str, list[str]]


@st.composite
def cnn_cell(draw: st.DrawFn, name: str) -> Cell:
    nodes = []
    earlier = ["c0", "c1"]
    for k in range(2, 6):
        terms = [(draw(st.sampled_from(CNN_OPS)), draw(st.sampled_from(earlier))) for _ in range(2)]
        nodes.append((f"n{k}", terms))
        earlier.append(f"n{k}")
    return (name, nodes, "concat", ["n2", "n3", "n4", "n5"])


@st.composite
def cnn_genotype(draw: st.DrawFn) -> A.Genotype:
    name = draw(st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
        lambda s: s not in {"out", "cell", "derive", "space", "genotype", "network", "genolang"}))
    return A.make_genotype(name, "darts_cnn", [draw(cnn_cell("normal")), draw(cnn_cell("reduce"))])


@st.composite
def rnn_genotype(draw: st.DrawFn) -> A.Genotype:
    nodes = []
    earlier = ["s0"]
    for k in range(1, 9):
        nodes.append((f"n{k}", [(draw(st.sampled_from(RNN_OPS)), draw(st.sampled_from(earlier)))]))
        earlier.append(f"n{k}")
    geno = A.make_genotype("rnn_geno", "darts_rnn", [("recurrent", nodes, "mean", [f"n{k}" for k in range(1, 9)])])
    if draw(st.booleans()):  # out = mean(n1..n8) instead of listing the nodes
        cell = geno.cells[0]
        out = A.Output(A.Name("mean"), (A.Range(A.Name("n1"), A.Name("n8")),))
        geno = replace(geno, cells=(replace(cell, output=out, outputs=(out,)),))
    return geno


def _edges(geno: A.Genotype) -> dict[str, list[list[tuple[str, str]]]]:
    return {c.name.text: [[(t.op.text, t.input.text) for t in n.terms] for n in c.nodes] for c in geno.cells}


def _roundtrip(geno: A.Genotype) -> str:
    text = format_spec(A.SpecFile((geno,)))
    spec = parse(text, "<printed>")
    assert spec.decls == (geno,)
    assert format_spec(spec) == text  # idempotent
    result = load_text(text, "<printed>")
    assert result.errors == []
    checked = result.genotypes[geno.name.text]
    assert {c.name: [list(n.edges) for n in c.nodes] for c in checked.cells} == _edges(geno)
    return text


@settings(max_examples=60, deadline=None)
@given(cnn_genotype())
def test_cnn_genotypes_round_trip(geno: A.Genotype) -> None:
    text = _roundtrip(geno)
    assert text.startswith("genolang 1\n\ngenotype ")
    assert text.count("\n") == 18  # version, blank, header, 2 x (cell, 4 nodes, out, close), close
    assert "    normal {\n        n2 = " in text


@settings(max_examples=60, deadline=None)
@given(rnn_genotype())
def test_rnn_genotypes_round_trip(geno: A.Genotype) -> None:
    text = _roundtrip(geno)
    assert ("out = mean(n1..n8)" in text) != ("out = mean(n1, n2, n3, n4, n5, n6, n7, n8)" in text)


# ---- comments ------------------------------------------------------------------------

comment_text = st.text(st.characters(blacklist_characters="\n", blacklist_categories=["Cs"]), max_size=30)


@st.composite
def with_comment_lines(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A canonical spec with comment lines inserted at random line boundaries."""
    base = draw(st.one_of(
        st.sampled_from(SPEC_FILES).map(lambda p: p.read_text(encoding="utf-8")),
        cnn_genotype().map(lambda g: format_spec(A.SpecFile((g,)))),
    ))
    lines = base.splitlines()
    inserts = draw(st.lists(st.tuples(st.integers(0, len(lines)), comment_text), max_size=6))
    # insert from the bottom so earlier indices stay valid; equal indices keep draw order
    out = list(lines)
    for index, text in sorted(inserts, key=lambda x: x[0], reverse=True):
        out.insert(index, "   # " + text)
    expected = [line.strip() for line in out if line.strip().startswith("#")]
    return "\n".join(out) + "\n", expected


def _comments_of(text: str) -> list[str]:
    return [c.text.rstrip() for c in parse(text).comments]


@settings(max_examples=80, deadline=None)
@given(with_comment_lines())
def test_comment_lines_survive_formatting(case: tuple[str, list[str]]) -> None:
    text, expected = case
    spec = parse(text)
    formatted = format_spec(spec)
    assert _comments_of(formatted) == [c.rstrip() for c in expected]
    assert parse(formatted).decls == spec.decls
    assert format_spec(parse(formatted)) == formatted


@st.composite
def with_trailing_comments(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A canonical spec with comments at the end of random lines."""
    base = draw(st.sampled_from(SPEC_FILES).map(lambda p: p.read_text(encoding="utf-8")))
    lines = base.splitlines()
    chosen = draw(st.sets(st.integers(0, len(lines) - 1), max_size=5))
    texts = []
    for i in sorted(chosen):
        c = "# " + draw(comment_text)
        lines[i] = lines[i] + "  " + c
        if not lines[i].lstrip().startswith("#"):
            texts.append(c)
    return "\n".join(lines) + "\n", texts


@settings(max_examples=60, deadline=None)
@given(with_trailing_comments())
def test_trailing_comments_survive_formatting(case: tuple[str, list[str]]) -> None:
    text, added = case
    formatted = format_spec(parse(text))
    comments = _comments_of(formatted)
    for c in added:
        assert c.rstrip() in comments
    assert len(comments) == len(_comments_of(text))
    assert format_spec(parse(formatted)) == formatted


def test_comment_positions_are_kept() -> None:
    text = (
        "# header\n"
        "genolang 1  # version\n"
        "\n"
        "# before the genotype\n"
        "genotype g : darts_rnn {  # opening\n"
        "  recurrent {\n"
        "    # about n1\n"
        "    n1 = relu(s0)  # trailing n1\n"
        "    n2 = relu(n1); n3 = relu(n2)  # belongs to n3\n"
        "    n4 = relu(n3)\n"
        "\n"
        "    n5 = relu(n4) n6 = relu(n5) n7 = relu(n6) n8 = relu(n7)\n"
        "    out = mean(n1..n8)\n"
        "    # last in the cell\n"
        "  }\n"
        "}  # closing\n"
        "# footer\n"
    )
    expected = (
        "# header\n"
        "genolang 1  # version\n"
        "\n"
        "# before the genotype\n"
        "genotype g : darts_rnn {  # opening\n"
        "    recurrent {\n"
        "        # about n1\n"
        "        n1 = relu(s0)  # trailing n1\n"
        "        n2 = relu(n1)\n"
        "        n3 = relu(n2)  # belongs to n3\n"
        "        n4 = relu(n3)\n"
        "\n"
        "        n5 = relu(n4)\n"
        "        n6 = relu(n5)\n"
        "        n7 = relu(n6)\n"
        "        n8 = relu(n7)\n"
        "        out = mean(n1..n8)\n"
        "        # last in the cell\n"
        "    }\n"
        "}  # closing\n"
        "# footer\n"
    )
    formatted = format_spec(parse(text))
    assert formatted == expected
    assert format_spec(parse(formatted)) == formatted
    assert load_text(formatted).genotypes["g"].cells[0].output == tuple(f"n{k}" for k in range(1, 9))


# ---- one-op change, one-line diff --------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(cnn_genotype(), st.data())
def test_one_op_change_is_a_one_line_diff(geno: A.Genotype, data: st.DataObject) -> None:
    ci = data.draw(st.integers(0, len(geno.cells) - 1))
    cell = geno.cells[ci]
    ni = data.draw(st.integers(0, len(cell.nodes) - 1))
    node = cell.nodes[ni]
    ti = data.draw(st.integers(0, len(node.terms) - 1))
    term = node.terms[ti]
    new_op = data.draw(st.sampled_from([op for op in CNN_OPS if op != term.op.text]))
    terms = list(node.terms)
    terms[ti] = replace(term, op=A.Name(new_op))
    nodes = list(cell.nodes)
    nodes[ni] = replace(node, terms=tuple(terms))
    cells = list(geno.cells)
    cells[ci] = replace(cell, nodes=tuple(nodes))
    changed = replace(geno, cells=tuple(cells))

    before = format_spec(A.SpecFile((geno,))).splitlines()
    after = format_spec(A.SpecFile((changed,))).splitlines()
    assert len(before) == len(after)
    diff = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert len(diff) == 1
    assert after[diff[0]].strip().startswith(f"{node.name.text} = ")
    assert f"{new_op}({term.input.text})" in after[diff[0]]
    unified = [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
               if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]
    assert len(unified) == 2


# ---- values ---------------------------------------------------------------------------

def test_values_format_canonically() -> None:
    assert format_value(3) == "3"
    assert format_value(-3) == "-3"
    assert format_value(0.4) == "0.4"
    assert format_value(16.0) == "16.0"  # not '16': that would change what the checker sees
    assert format_value(Fraction(2, 4)) == "1/2"
    assert format_value("none") == "none"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(
    st.integers(-10**6, 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.fractions(max_denominator=50).filter(lambda f: f.denominator != 1),
    st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(
        lambda s: s not in {"out", "cell", "derive", "space", "genotype", "network", "genolang"}),
), min_size=1, max_size=4))
def test_property_values_round_trip(values: list[int | float | Fraction | str]) -> None:
    prop = A.Prop(A.Name("x"), tuple(A.Value(v) for v in values))
    text = format_spec(A.SpecFile((A.Network(A.Name("n"), (prop,)),)))
    network = parse(text).decls[0]
    assert isinstance(network, A.Network)
    parsed = network.props[0].values
    assert [v.value for v in parsed] == values
    assert [type(v.value) for v in parsed] == [type(v) for v in values]
    assert format_spec(parse(text)) == text


# ---- any layout ---------------------------------------------------------------------

# kernels (1x7) and arrows (->) are one token each: a layout may not split them
LAYOUT_TOKEN = re.compile(r"#[^\n]*|\d+x\d+|[A-Za-z_][A-Za-z0-9_]*|[-+]?\d+(?:\.\d*)?(?:/\d+)?|\.\.|->|\S")


@st.composite
def relaid_spec(draw: st.DrawFn) -> tuple[str, str, bool]:
    """A shipped spec with its tokens laid out anew: spaces, tabs, newlines (and, when
    ``comments``, blank lines and new end-of-line comments) between any two tokens;
    without comments the file's own comments are dropped too. Returns (original,
    relaid, comments)."""
    original = draw(st.sampled_from(SPEC_FILES)).read_text(encoding="utf-8")
    comments = draw(st.booleans())
    # (blank lines are layout the printer keeps, so only the commented variant gets them)
    seps = [" ", " ", "  ", "\n", "\t"] + (["\n\n", "  # note {i}\n"] if comments else [])
    out = []
    for i, tok in enumerate(LAYOUT_TOKEN.findall(original)):
        if tok.startswith("#"):
            if comments:
                out += [tok, "\n"]
            continue
        out += [tok, draw(st.sampled_from(seps)).format(i=i)]
    return original, "".join(out), comments


@settings(max_examples=80, deadline=None)
@given(relaid_spec())
def test_any_layout_formats_to_the_same_tree_keeping_comments_in_order(case: tuple[str, str, bool]) -> None:
    original, text, comments = case
    spec = parse(text)
    assert spec.decls == parse(original).decls
    formatted = format_spec(spec)
    assert format_spec(parse(formatted)) == formatted
    assert parse(formatted).decls == spec.decls
    pos = 0
    for comment in spec.comments:
        found = formatted.find(comment.text.rstrip(), pos)
        assert found >= 0, (comment.text, formatted)
        pos = found + len(comment.text.rstrip())
    if not comments:
        # without comments, every layout of a spec has one canonical text
        assert not spec.comments
        assert formatted == format_spec(replace(parse(original), comments=()))
