"""An error corpus: malformed specs, each with the message it must produce and the
exact line and column the diagnostic points at. Also: every error of a file is
reported, and a rendered error shows ``path:line:col``, the line and a caret."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from genolang.errors import Diagnostic, SpecError, did_you_mean, suggest
from genolang.parse.parser import parse
from genolang.spec.check import check, load_text

GENO = """\
genolang 1
genotype g : darts_cnn {
    normal {
        n2 = sep_conv_3x3(c0) + sep_conv_3x3(c1)
        n3 = sep_conv_3x3(c0) + sep_conv_3x3(c1)
        n4 = sep_conv_3x3(c1) + skip_connect(c0)
        n5 = skip_connect(c0) + dil_conv_3x3(n2)
        out = concat(n2, n3, n4, n5)
    }
    reduce {
        n2 = max_pool_3x3(c0) + max_pool_3x3(c1)
        n3 = skip_connect(n2) + max_pool_3x3(c1)
        n4 = max_pool_3x3(c0) + skip_connect(n2)
        n5 = skip_connect(n2) + max_pool_3x3(c1)
        out = concat(n2, n3, n4, n5)
    }
}
"""

RNN = """\
genolang 1
genotype r : darts_rnn {
    recurrent {
        n1 = sigmoid(s0)
        n2 = relu(n1)
        n3 = relu(n1)
        n4 = identity(n1)
        n5 = tanh(n2)
        n6 = sigmoid(n5)
        n7 = tanh(n3)
        n8 = relu(n5)
        out = mean(n1..n8)
    }
}
"""

SPACE = """\
genolang 1
space s {
    ops = none, skip_connect, sep_conv_3x3
    cell normal {
        inputs = 2
        nodes = 4
        keep = 2
        output = concat
    }
    cell reduce {
        inputs = 2
        nodes = 4
        keep = 2
        output = concat
        stride = 2
    }
    derive {
        exclude = none
    }
}
"""

NET = """\
genolang 1
network n {
    stem = cifar
    channels = 16
    layers = 8
    reduce_at = 1/3, 2/3
    auxiliary = 2/3
}
"""

PTB = """\
genolang 1
network p {
    stem = embedding
    embedding = 300
    hidden = 300
    tied = true
}
"""


def edit(base: str, line: int, old: str, new: str) -> str:
    """``base`` with ``old`` replaced by ``new`` on 1-based ``line`` (which must hold it)."""
    lines = base.split("\n")
    assert old in lines[line - 1], (old, lines[line - 1])
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    return "\n".join(lines)


def drop(base: str, *numbers: int) -> str:
    return "\n".join(line for i, line in enumerate(base.split("\n"), 1) if i not in numbers)


def on_line_8(edge: str) -> str:
    """``SPACE`` with ``edge`` (an edge line of its normal cell) at the end of line 8."""
    return edit(SPACE, 8, "output = concat", "output = concat; " + edge)


class Case(NamedTuple):
    id: str
    text: str
    message: str  # a substring of the diagnostic's message
    line: int
    column: int
    first: bool = True  # the diagnostic is the file's first one (else: some diagnostic)
    hint: str | None = None  # a substring of its hint


CASES = [
    # ---- syntax ----------------------------------------------------------------------
    Case(
        "unclosed-brace-eof",
        drop(GENO, 17),
        "unexpected end of file",
        16,
        6,
        hint="the '{' at line 2, column 24 is never closed; add '}'",
    ),
    Case("unclosed-brace-space", "space s {\n    ops = none\n\n", "unexpected end of file", 2, 15),
    Case(
        "non-ascii-char",
        edit(GENO, 4, "sep_conv_3x3(c0)", "sep_conv_3×3(c0)"),
        "unexpected character '×' (U+00D7 MULTIPLICATION SIGN, which looks like 'x')",
        4,
        24,
    ),
    Case(
        "non-ascii-name",
        edit(NET, 3, "cifar", "cifär"),
        "'cifär' contains U+00E4 LATIN SMALL LETTER A WITH DIAERESIS",
        3,
        15,
    ),
    Case(
        "comma-instead-of-plus", edit(GENO, 4, " + ", ", "), "unexpected ','", 4, 30, hint="join them with '+', not ','"
    ),
    Case("missing-equals", edit(GENO, 5, "n3 = ", "n3 "), "unexpected name 'sep_conv_3x3'; expected '='", 5, 12),
    # 'channels = layers', then '=': reported at the '=' without a value, not at the line after
    Case(
        "missing-value",
        edit(NET, 4, "16", ""),
        "'channels' has no value",
        4,
        14,
        hint="the parser read 'layers' from line 5 as its value",
    ),
    Case("missing-value-at-end", edit(NET, 7, "2/3", ""), "'auxiliary' has no value", 7, 15),
    Case("missing-paren", edit(GENO, 6, "sep_conv_3x3(c1)", "sep_conv_3x3"), "unexpected '+'; expected '('", 6, 27),
    Case(
        "keyword-as-property", edit(SPACE, 3, "ops", "cell"), "'cell' is a keyword and cannot be used as a name", 3, 5
    ),
    Case(
        "keyword-out-as-node",
        edit(GENO, 7, "n5 =", "out ="),
        "'out' is a keyword and cannot be used as a name",
        7,
        9,
        hint="'out = reducer(...)' is the cell's output",
    ),
    Case("unsupported-version", edit(GENO, 1, "1", "2"), "unsupported format version 2", 1, 10),
    Case("number-too-long", edit(NET, 4, "16", "1" * 150), "number is too long (150 characters)", 4, 16),
    Case("stray-brace", GENO + "}\n", "unexpected '}'", 18, 1),
    # ---- genotypes -----------------------------------------------------------------
    Case(
        "unknown-op",
        edit(GENO, 4, "sep_conv_3x3(c0)", "sep_cnv_3x3(c0)"),
        "unknown op 'sep_cnv_3x3'; did you mean 'sep_conv_3x3'?",
        4,
        14,
    ),
    Case(
        "op-not-in-space",
        edit(GENO, 4, "sep_conv_3x3(c0)", "sep_conv_7x7(c0)"),
        "op 'sep_conv_7x7' is not in space 'darts_cnn'",
        4,
        14,
    ),
    Case("undefined-node", edit(GENO, 5, "sep_conv_3x3(c1)", "sep_conv_3x3(n9)"), "undefined node 'n9'", 5, 46),
    Case(
        "undefined-node-suggestion",
        edit(GENO, 7, "dil_conv_3x3(n2)", "dil_conv_3x3(c11)"),
        "undefined node 'c11'; did you mean 'c1'?",
        7,
        46,
    ),
    Case(
        "later-node",
        edit(GENO, 5, "sep_conv_3x3(c0)", "sep_conv_3x3(n4)"),
        "node 'n3' reads 'n4', which is defined later",
        5,
        27,
    ),
    Case("reads-itself", edit(GENO, 6, "skip_connect(c0)", "skip_connect(n4)"), "node 'n4' reads itself", 6, 46),
    Case(
        "duplicate-node",
        edit(GENO, 5, "n3 =", "n2 ="),
        "node 'n2' is defined twice in cell 'normal'",
        5,
        9,
        first=False,
    ),
    Case("input-redefined", edit(GENO, 4, "n2 =", "c1 ="), "'c1' is an input of cell 'normal'", 4, 9, first=False),
    Case(
        "wrong-input-count",
        edit(GENO, 6, " + skip_connect(c0)", ""),
        "node 'n4' has 1 input; space 'darts_cnn' keeps 2 per node",
        6,
        9,
    ),
    Case(
        "recurrent-two-inputs",
        edit(RNN, 5, "relu(n1)", "relu(n1) + tanh(s0)"),
        "recurrent node 'n2' has 2 inputs; a recurrent node reads exactly one earlier node",
        5,
        25,
    ),
    Case("output-unknown-node", edit(GENO, 8, "n5)", "n6)"), "output lists unknown node 'n6'", 8, 34),
    Case("output-lists-input", edit(GENO, 15, "concat(n2", "concat(c0, n2"), "output lists input 'c0'", 15, 22),
    Case(
        "output-wrong-reducer",
        edit(GENO, 8, "concat", "mean"),
        "cell 'normal' combines its nodes with 'concat', not 'mean'",
        8,
        15,
    ),
    Case("output-twice-listed", edit(GENO, 8, "n5)", "n5, n2)"), "output lists 'n2' more than once", 8, 9),
    Case("output-range-backwards", edit(RNN, 12, "n1..n8", "n8..n1"), "range 'n8..n1' runs backwards", 12, 20),
    Case("missing-output", drop(GENO, 8), "cell 'normal' has no output", 3, 5),
    Case(
        "two-outputs",
        edit(GENO, 8, "out = concat(n2, n3, n4, n5)", "out = concat(n2, n3, n4, n5) out = concat(n2)"),
        "cell 'normal' has more than one output",
        8,
        38,
    ),
    Case(
        "too-few-nodes",
        drop(edit(GENO, 8, ", n5", ""), 7),
        "cell 'normal' has 3 nodes; space 'darts_cnn' declares 4",
        3,
        5,
    ),
    Case(
        "missing-cell",
        drop(GENO, 10, 11, 12, 13, 14, 15, 16),
        "genotype 'g' lacks cell 'reduce' of space 'darts_cnn'",
        2,
        10,
    ),
    Case(
        "unknown-cell",
        edit(GENO, 10, "reduce", "reduc"),
        "space 'darts_cnn' has no cell 'reduc'; did you mean 'reduce'?",
        10,
        5,
        first=False,
    ),
    Case(
        "duplicate-cell-in-genotype",
        edit(GENO, 10, "reduce", "normal"),
        "cell 'normal' appears twice in genotype 'g'",
        10,
        5,
        first=False,
    ),
    Case(
        "unknown-space",
        edit(GENO, 2, "darts_cnn", "darts_cn"),
        "unknown space 'darts_cn'; did you mean 'darts_cnn'?",
        2,
        14,
    ),
    Case(
        "local-space-with-errors",
        SPACE.replace("nodes = 4", "nodes = 0", 1) + GENO.split("\n", 1)[1].replace("darts_cnn", "s"),
        "space 's' has errors",
        21,
        14,
        first=False,
    ),
    # ---- spaces ----------------------------------------------------------------------
    Case("zero-nodes", edit(SPACE, 6, "4", "0"), "'nodes' must be positive, got 0", 6, 17),
    Case("bad-stride", edit(SPACE, 15, "2", "3"), "'stride' must be 1 or 2, got '3'", 15, 18),
    Case(
        "duplicate-cell-in-space",
        edit(SPACE, 10, "reduce", "normal"),
        "cell 'normal' is declared twice in space 's'",
        10,
        10,
    ),
    Case(
        "space-unknown-op",
        edit(SPACE, 3, "skip_connect", "skip_conect"),
        "unknown op 'skip_conect'; did you mean 'skip_connect'?",
        3,
        17,
    ),
    Case("space-op-twice", edit(SPACE, 3, "sep_conv_3x3", "skip_connect"), "op 'skip_connect' is listed twice", 3, 31),
    Case("space-mixed-domains", edit(SPACE, 3, "sep_conv_3x3", "tanh"), "op 'tanh' cannot run at stride 2", 3, 31),
    Case(
        "space-unknown-cell-property",
        edit(SPACE, 7, "keep", "kep"),
        "unknown property 'kep' in cell 'normal'; did you mean 'keep'?",
        7,
        9,
    ),
    Case("space-exclude-unknown", edit(SPACE, 18, "none", "nne"), "cannot exclude 'nne'", 18, 19),
    Case("space-keep-over-inputs", edit(SPACE, 7, "2", "3"), "keeps 3 distinct inputs per node", 4, 5),
    Case("space-no-ops", drop(SPACE, 3), "space 's' has no 'ops'", 2, 7),
    Case("space-too-many-nodes", edit(SPACE, 6, "4", "30000000"), "'nodes' must be at most 32, got 30000000", 6, 17),
    Case("space-too-many-inputs", edit(SPACE, 5, "2", "100"), "'inputs' must be at most 64, got 100", 5, 18),
    # ---- edges with their own ops ------------------------------------------------------
    Case("edge-no-arrow", on_line_8("edge c0 n2 = none"), "unexpected name 'n2'; expected '->'", 8, 34,
         hint="write an edge of a cell as 'edge c0 -> n2 = skip_connect, sep_conv_3x3'"),
    Case("edge-no-op", on_line_8("edge c0 -> n2 ="), "unexpected '}'; expected a name", 9, 5,
         hint="'=' and at least one op"),
    Case("edge-unknown-node", on_line_8("edge c0 -> n7 = none"), "edge c0 -> n7: cell 'normal' has no node 'n7'",
         8, 37, hint="the nodes of cell 'normal' are: c0, c1, n2, n3, n4, n5"),
    Case("edge-into-input", on_line_8("edge n2 -> c1 = none"), "'c1' is an input of cell 'normal'; no edge leads "
         "into an input", 8, 37),
    Case("edge-backwards", on_line_8("edge n4 -> n3 = none"), "edge n4 -> n3: there is no such edge", 8, 31,
         hint="did you mean 'edge n3 -> n4'?"),
    Case("edge-twice", on_line_8("edge c0 -> n3 = none; edge c0 -> n3 = skip_connect"),
         "edge c0 -> n3 is listed twice in cell 'normal' (first at line 8)", 8, 48),
    Case("edge-op-not-in-space", on_line_8("edge c0 -> n3 = sep_conv_5x5"),
         "edge c0 -> n3: op 'sep_conv_5x5' is not one of the ops of space 's'", 8, 42,
         hint="add 'sep_conv_5x5' to 'ops' first"),
    Case("edge-unknown-op", on_line_8("edge c0 -> n3 = sep_cnv_3x3"),
         "edge c0 -> n3: unknown op 'sep_cnv_3x3'; did you mean 'sep_conv_3x3'?", 8, 42),
    Case("edge-op-twice", on_line_8("edge c0 -> n3 = none, none"), "op 'none' is listed twice on edge c0 -> n3",
         8, 48),
    Case("edge-underivable", on_line_8("edge c0 -> n2 = none"), "node 'n2' of cell 'normal' cannot keep 2 inputs: "
         "the derive rule excludes every op of edge c0 -> n2 (none)", 8, 26),
    Case("genotype-op-off-its-edge", on_line_8("edge c0 -> n2 = skip_connect") + GENO.split("\n", 1)[1]
         .replace("darts_cnn", "s"), "op 'sep_conv_3x3' is not on edge c0 -> n2 of cell 'normal': space 's' lets that "
         "edge choose from skip_connect only", 23, 14, hint="'edge c0 -> n2 = skip_connect'"),
    # ---- networks --------------------------------------------------------------------
    Case("negative-channels", edit(NET, 4, "16", "-16"), "'channels' must be positive, got -16", 4, 16),
    Case("float-channels", edit(NET, 4, "16", "16.0"), "'channels' must be a whole number, got '16.0'", 4, 16),
    Case(
        "unknown-property",
        edit(NET, 4, "channels", "chanels"),
        "unknown property 'chanels' in network 'n'; did you mean 'channels'?",
        4,
        5,
    ),
    Case(
        "duplicate-property",
        edit(NET, 5, "layers = 8", "layers = 8; layers = 9"),
        "'layers' is set twice in network 'n' (first set at line 5)",
        5,
        17,
    ),
    Case("fraction-zero-denominator", edit(NET, 6, "2/3", "2/0"), "'reduce_at' has a zero denominator: '2/0'", 6, 22),
    Case("fraction-not-whole", edit(NET, 6, "2/3", "1.5/3"), "'reduce_at' fraction must be of whole numbers", 6, 22),
    Case("fraction-out-of-range", edit(NET, 7, "2/3", "4/3"), "'auxiliary' fraction must be between 0 and 1", 7, 17),
    Case(
        "reduction-beyond-layers",
        edit(NET, 6, "1/3, 2/3", "2, 9"),
        "reduction at cell 9, but network 'n' has 8 cells",
        6,
        20,
    ),
    Case("too-many-layers", edit(NET, 5, "8", "100000"), "'layers' must be at most 10000, got 100000", 5, 14),
    Case("auxiliary-beyond-layers", edit(NET, 7, "2/3", "8"), "auxiliary head after cell 8", 7, 17),
    Case(
        "bad-stem",
        edit(NET, 3, "cifar", "cifra"),
        "'stem' must be one of cifar, imagenet, embedding; got 'cifra'; did you mean 'cifar'?",
        3,
        12,
    ),
    Case("missing-stem", drop(NET, 3), "network 'n' has no 'stem'", 2, 9),
    Case(
        "cnn-property-on-rnn",
        edit(PTB, 5, "hidden", "channels"),
        "'channels' does not apply to a recurrent network",
        5,
        5,
    ),
    Case(
        "tied-embedding-hidden",
        edit(PTB, 5, "300", "400"),
        "a tied decoder needs embedding == hidden, got 300 and 400",
        5,
        5,
    ),
    Case(
        "duplicate-declaration",
        NET + NET.split("\n", 1)[1],
        "network 'n' is declared twice in this file (first declared at line 2)",
        9,
        9,
    ),
    Case("bad-bool", edit(PTB, 6, "true", "yes"), "'tied' must be one of true, false; got 'yes'", 6, 12),
]


def diagnostics(text: str, path: str = "case.geno") -> tuple[list[Diagnostic], str]:
    """The errors of ``text`` (syntax or semantic) and their rendering."""
    try:
        result = check(parse(text, path), text)
    except SpecError as err:
        return list(err.diagnostics), err.render()
    errors = result.errors
    rendered = SpecError(tuple(errors), {path: text, **result.sources}).render() if errors else ""
    return errors, rendered


def test_the_corpus_is_large_and_distinct() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({c.text for c in CASES}) == len(CASES)
    # the templates themselves are sound
    for base in (GENO, RNN, SPACE, NET, PTB):
        assert diagnostics(base)[0] == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_error_corpus(case: Case) -> None:
    diags, rendered = diagnostics(case.text)
    assert diags, "expected an error"
    if case.first:
        diag = diags[0]
        assert case.message in diag.message, [d.message for d in diags]
    else:
        matching = [d for d in diags if case.message in d.message]
        assert matching, [d.message for d in diags]
        diag = matching[0]
    assert diag.span is not None
    assert (diag.span.line, diag.span.column) == (case.line, case.column), diag.message
    assert diag.severity == "error"
    if case.hint is not None:
        assert diag.hint is not None and case.hint in diag.hint, diag.hint
    assert f"case.geno:{case.line}:{case.column}: error: {diag.message}" in rendered
    with pytest.raises(SpecError):
        load_text(case.text, "case.geno")


def test_all_errors_of_a_file_are_reported() -> None:
    text = edit(edit(edit(GENO, 4, "sep_conv_3x3(c0)", "sep_cnv_3x3(c0)"), 12, "skip_connect(n2)", "skip_connect(n7)"),
                15, "n5)", "n5, c1)")
    diags, rendered = diagnostics(text)
    errors = [d for d in diags if d.severity == "error"]
    assert [(d.span.line, d.span.column) for d in errors if d.span] == [(4, 14), (12, 27), (15, 38)]
    assert [d.message.split(";")[0] for d in errors] == [
        "unknown op 'sep_cnv_3x3'", "undefined node 'n7'", "output lists input 'c1'"]
    # then a note naming the file the space resolved to
    (note,) = [d for d in diags if d.severity == "note"]
    assert note.message.startswith("space 'darts_cnn' is the one declared at ") and "darts_cnn.geno:" in note.message
    assert rendered.endswith("\n3 errors")
    with pytest.raises(SpecError) as info:
        load_text(text, "case.geno")
    assert len([d for d in info.value.diagnostics if d.severity == "error"]) == 3


def test_errors_across_declarations_are_all_reported() -> None:
    text = (edit(SPACE, 6, "4", "0") + edit(NET, 4, "channels", "chanels").split("\n", 1)[1]
            + edit(PTB, 6, "true", "maybe").split("\n", 1)[1])
    diags, rendered = diagnostics(text)
    assert len(diags) == 3
    assert [d.span.line for d in diags if d.span] == [6, 23, 32]
    assert rendered.endswith("3 errors")


def test_rendered_error_has_location_line_and_caret() -> None:
    text = edit(GENO, 4, "sep_conv_3x3(c0)", "sep_cnv_3x3(c0)")
    with pytest.raises(SpecError) as info:
        load_text(text, "specs/my.geno")
    rendered = info.value.render()
    lines = rendered.splitlines()
    assert lines[0] == "specs/my.geno:4:14: error: unknown op 'sep_cnv_3x3'; did you mean 'sep_conv_3x3'?"
    assert lines[1] == " 4 |         n2 = sep_cnv_3x3(c0) + sep_conv_3x3(c1)"
    assert lines[2] == "   |              ^~~~~~~~~~~"
    assert lines[3].startswith("  hint: the space's ops are: none, max_pool_3x3")
    assert str(info.value) == rendered


def test_rendered_eof_error_points_after_the_last_line() -> None:
    with pytest.raises(SpecError) as info:
        load_text("space s {\n    ops = none  \n\n\n", "x.geno")
    lines = info.value.render().splitlines()
    assert lines[0] == "x.geno:2:15: error: unexpected end of file"
    assert lines[1] == " 2 |     ops = none  "
    assert lines[2] == "   |               ^"
    assert lines[3] == "  hint: the '{' at line 1, column 9 is never closed; add '}'"


def test_render_counts_lines_like_the_parser() -> None:
    # '\u2028' and '\f' are not line breaks for the parser, so not for the renderer either
    text = "# a\u2028b\x0cc\nnetwork n { stem = cifar; chanels = 3 }\n"
    diags, rendered = diagnostics(text)
    span = diags[0].span
    assert span is not None and (span.line, span.column) == (2, 27)
    assert " 2 | network n { stem = cifar; chanels = 3 }" in rendered.splitlines()


def test_warning_for_unused_node_is_not_an_error() -> None:
    text = edit(GENO, 8, ", n5", "")
    result = check(parse(text, "w.geno"), text)
    assert result.errors == []
    (warning,) = result.warnings
    assert warning.span is not None and (warning.span.line, warning.span.column, warning.severity) == (7, 9, "warning")
    assert "node 'n5' is never used" in result.render_warnings()
    assert load_text(text, "w.geno").genotypes["g"].cell("normal").output == ("n2", "n3", "n4")


def test_suggestions() -> None:
    assert suggest("sep_cnv_3x3", ["sep_conv_3x3", "sep_conv_5x5", "skip_connect"]) == "sep_conv_3x3"
    assert suggest("zzz", ["sep_conv_3x3"]) is None
    assert did_you_mean("normla", ["normal", "reduce"]) == "; did you mean 'normal'?"
    assert did_you_mean("qqq", ["normal"]) == ""


BIG_SPACE = """genolang 1
space big { ops = skip_connect; cell normal { nodes = 30 } }
genotype g : big { normal { n2 = skip_connect(c0) + skip_connect(c1) } }
"""


def test_hints_for_big_cells_stay_short() -> None:
    diags, rendered = diagnostics(BIG_SPACE)
    hints = {d.message.split(";")[0]: d.hint for d in diags}
    assert hints["cell 'normal' has 1 node"] == ("define exactly 30 nodes "
                                                 "(n2, n3, n4, n5, n6, n7, n8, n9, n10, n11, ..., n31)")
    assert hints["cell 'normal' has no output"] == "add 'out = concat(n2)'"
    many = BIG_SPACE.replace("skip_connect(c1) }", "skip_connect(c1)\n" + "\n".join(
        f"n{k} = skip_connect(n{k - 1}) + skip_connect(c0)" for k in range(3, 32)) + " }")
    diags, _ = diagnostics(many)
    assert [d.hint for d in diags] == ["add 'out = concat(n2..n31)'"]
    assert len(rendered) < 2000


# ---- messages that say what is wrong (issue 15) --------------------------------------------

def test_a_hexadecimal_number_is_not_a_number() -> None:
    diags, rendered = diagnostics(edit(SPACE, 7, "keep = 2", "keep = 0x2"))
    assert diags[0].message == "'0x2' is not a number"
    assert (diags[0].span.line, diags[0].span.column) == (7, 16)  # type: ignore[union-attr]
    assert "must be positive" not in rendered and "write 2" in rendered


def test_an_empty_value_is_reported_at_its_own_line() -> None:
    diags, _ = diagnostics(edit(SPACE, 3, "ops = none, skip_connect, sep_conv_3x3", "ops ="))
    assert diags[0].message == "'ops' has no value"
    assert (diags[0].span.line, diags[0].span.column) == (3, 9)  # type: ignore[union-attr]


def test_a_confusable_letter_in_a_keyword_is_named() -> None:
    diags, rendered = diagnostics(SPACE.replace("space s", "sp\u0430ce s"))
    assert diags[0].message == "'sp\u0430ce' contains U+0430 CYRILLIC SMALL LETTER A, which looks like 'a'"
    assert diags[0].hint == "retype it as 'space'"
    diags, rendered = diagnostics(GENO.replace("sep_conv_3x3(c0) + sep_conv_3x3(c1)\n        n3",
                                               "sep_conv_3x3(c0) + sep_conv_3x3(c1)\u200b\n        n3", 1))
    assert "U+200B ZERO WIDTH SPACE" in diags[0].message and "<U+200B>" in rendered


def test_bidirectional_marks_are_shown_not_obeyed() -> None:
    text = GENO.replace("n2 = sep_conv_3x3(c0)", "n2 = sep_cnv_3x3(c0)", 1).replace(
        "    normal {", "    normal { # \u202e reversed", 1)
    _, rendered = diagnostics(text)
    assert "\u202e" not in rendered


def test_a_genotype_named_as_a_space_says_it_is_a_genotype() -> None:
    text = GENO + "genotype h : g {\n    normal {\n        out = concat(n2)\n    }\n}\n"
    diags, _ = diagnostics(text)
    assert any(d.message == "'g' is a genotype of this file (line 2), not a space" for d in diags), diags
    diags, _ = diagnostics("genolang 1\ngenotype h : darts_v2 {}\n")
    assert diags[0].message.startswith("'darts_v2' is a genotype (") and "darts_v2.geno" in diags[0].message
