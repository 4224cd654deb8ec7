"""The DARTS genotype format: every shipped genotype exports and imports back to the
same genotype; the importer reads DARTS's own spellings and rejects anything else
with a located error, evaluating nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SPECS
from genolang.errors import SpecError
from genolang.interop import FORMATS
from genolang.interop.darts import darts_to_tree, read_darts, tree_to_darts
from genolang.parse.ast import SpecFile
from genolang.parse.printer import format_spec
from genolang.spec.check import load, load_text
from genolang.spec.checked import GenotypeSpec

SPACES = {"darts_v1": None, "darts_v2": None, "nasnet_a": "nasnet", "amoebanet_a": "amoebanet",
          "darts_rnn_v1": None, "darts_rnn_v2": None, "enas": "enas_rnn"}


def genotype(name: str) -> GenotypeSpec:
    return load(str(SPECS / "genotypes" / f"{name}.geno")).genotypes[name]


def import_text(text: str, name: str = "imported", space: str | None = None) -> GenotypeSpec:
    tree = darts_to_tree(read_darts(text), name, space)
    return load_text(format_spec(SpecFile((tree,))), "<import>").genotypes[name]


@pytest.mark.parametrize("name", sorted(SPACES))
def test_round_trip_of_shipped_genotypes(name: str) -> None:
    original = genotype(name)
    exported = tree_to_darts(original)
    back = import_text(exported, name, SPACES[name])
    assert back.cells == original.cells
    assert back.space.name == original.space.name
    assert tree_to_darts(back) == exported
    # the registry's reader and writer do the same
    fmt = FORMATS["darts"]
    assert fmt.write(original) == exported
    assert fmt.read(exported, "<x>", name, SPACES[name]) == darts_to_tree(read_darts(exported), name, SPACES[name])


def test_the_importer_needs_the_right_space() -> None:
    with pytest.raises(SpecError) as info:
        import_text(tree_to_darts(genotype("nasnet_a")), "n")  # darts_cnn has 4 nodes, no sep_conv_7x7
    messages = [d.message for d in info.value.diagnostics]
    assert "cell 'normal' has 5 nodes; space 'darts_cnn' declares 4" in messages
    assert any("op 'sep_conv_7x7' is not in space 'darts_cnn'" in m for m in messages)


DARTS_V2_SOURCE = """Genotype(
    normal=[
        ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1),
        ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2),
    ],
    normal_concat=[2, 3, 4, 5],
    reduce=[
        ('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1),
        ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1),
    ],
    reduce_concat=range(2, 6),
)"""


def test_reads_darts_source_spellings() -> None:
    v2 = genotype("darts_v2")
    assert import_text(DARTS_V2_SOURCE).cells == v2.cells
    # positional fields, tuples instead of lists, a module prefix, surrounding blank lines
    positional = ("\n\n  genotypes.Genotype([('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
                  "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
                  "('dil_conv_3x3', 2)], range(2, 6), (('max_pool_3x3', 0), ('max_pool_3x3', 1), "
                  "('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), "
                  "('skip_connect', 2), ('max_pool_3x3', 1)), (2, 3, 4, 5))\n\n")
    assert import_text(positional).cells == v2.cells
    # keywords in another order, mixed with positional
    fields = read_darts(tree_to_darts(v2)).fields
    mixed = (f"Genotype({fields['normal']!r}, reduce_concat=[2, 3, 4, 5], reduce={fields['reduce']!r}, "
             f"normal_concat=range(2, 6))")
    assert import_text(mixed).cells == v2.cells


def test_reads_recurrent_spellings() -> None:
    v2 = genotype("darts_rnn_v2")
    pairs = ("[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), ('sigmoid', 5), ('tanh', 3), "
             "('relu', 5)]")
    for text in (f"Genotype(recurrent={pairs}, concat=range(1, 9))", f"Genotype({pairs}, range(1, 9))",
                 f"Genotype({pairs}, concat=[1, 2, 3, 4, 5, 6, 7, 8])", f"Genotype({pairs}, concat=range(1, 9))",
                 f"Genotype(concat=range(1, 9), recurrent={pairs})"):
        assert read_darts(text).recurrent
        assert import_text(text).cells == v2.cells
    assert read_darts("Genotype(recurrent=[('relu', 0)], concat=range(2))").fields["concat"] == [0, 1]


MALFORMED = [
    ("empty", "   ", "empty input", None),
    ("not-a-call", "[('sep_conv_3x3', 0)]", "expected Genotype(...)", (1, 1)),
    ("wrong-function", "Genome(normal=[], normal_concat=[], reduce=[], reduce_concat=[])",
     "expected Genotype(...), got Genome(...)", (1, 1)),
    ("import", "__import__('os')", "expected Genotype(...), got __import__(...)", (1, 1)),
    ("import-in-field", "Genotype(recurrent=__import__('os').system('true'), concat=[1])",
     "'recurrent' must be a list of (op, input) pairs", (1, 20)),
    ("call-as-op", "Genotype(recurrent=[(print('x'), 0)], concat=[1])", "an op must be a quoted name", (1, 22)),
    ("non-int-input", "Genotype(recurrent=[('relu', 'a')], concat=[1])", "an input must be a node number", (1, 30)),
    ("float-input", "Genotype(recurrent=[('relu', 1.0)], concat=[1])", "an input must be a node number", (1, 30)),
    ("bool-input", "Genotype(recurrent=[('relu', True)], concat=[1])", "an input must be a node number", (1, 30)),
    ("negative-input", "Genotype(recurrent=[('relu', -1)], concat=[1])", "an input must be a node number", (1, 30)),
    ("triple", "Genotype(recurrent=[('relu', 0, 1)], concat=[1])", "must be a pair like", (1, 21)),
    ("missing-fields", "Genotype(normal=[('skip_connect', 0)], normal_concat=[2])",
     "missing fields: reduce, reduce_concat", (1, 1)),
    ("missing-field", "Genotype(recurrent=[('relu', 0)])", "missing field: concat", (1, 1)),
    ("unknown-field", "Genotype(recurrent=[('relu', 0)], concat=[1], extra=[1])",
     "unknown field 'extra'; expected recurrent, concat", (1, 53)),
    ("too-many-positional", "Genotype([], [], [], [], [])",
     "too many fields; a genotype has normal, normal_concat, reduce, reduce_concat", (1, 26)),
    ("cnn-missing-positional", "Genotype([], [], [])", "missing field: reduce_concat", (1, 1)),
    ("duplicate-field", "Genotype([('relu', 0)], [1], recurrent=[])", "field 'recurrent' is given twice", (1, 40)),
    ("concat-expression", "Genotype(recurrent=[('relu', 0)], concat=list(range(1, 2)))",
     "'concat' must be a list of node numbers or range(a, b)", (1, 42)),
    ("concat-computed", "Genotype(recurrent=[('relu', 0)], concat=[1 + 1])", "'concat' holds node numbers only",
     (1, 43)),
    ("range-keywords", "Genotype(recurrent=[('relu', 0)], concat=range(1, stop=3))", "'concat' must be range(a, b)",
     (1, 42)),
    ("huge-range", "Genotype(recurrent=[('relu', 0)], concat=range(0, 10**40))", "'concat' holds node numbers only",
     (1, 51)),
    ("hostile-range", "Genotype(recurrent=[('relu', 0)], concat=range(0, 100000000000000000000000000000))",
     "'concat' spans 100000000000000000000000000000 nodes", (1, 42)),
    ("syntax-error", "Genotype(normal=[('sep_conv_3x3', 0)", "not a DARTS genotype: '[' was never closed", (1, 17)),
    ("lambda", "(lambda: 0)()", "expected Genotype(...)", (1, 1)),
]


@pytest.mark.parametrize("text,message,where", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_inputs_are_rejected(text: str, message: str, where: tuple[int, int] | None) -> None:
    with pytest.raises(SpecError) as info:
        read_darts(text, "g.txt")
    diag = info.value.diagnostics[0]
    assert message in diag.message
    if where is None:
        assert diag.span is None
    else:
        assert diag.span is not None and (diag.span.line, diag.span.column) == where
        assert f"g.txt:{where[0]}:{where[1]}:" in info.value.render()


def test_nothing_is_ever_evaluated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "evaluated"
    hostile = [
        f"__import__('pathlib').Path({str(marker)!r}).touch()",
        f"Genotype(recurrent=[(__import__('pathlib').Path({str(marker)!r}).touch(), 0)], concat=[1])",
        f"Genotype(recurrent=[('relu', 0)], concat=range(__import__('pathlib').Path({str(marker)!r}).touch()))",
        f"Genotype(recurrent=[('relu', 0)], concat=[1])[__import__('pathlib').Path({str(marker)!r}).touch()]",
    ]
    import builtins

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    for text in hostile:
        with pytest.raises(SpecError):
            read_darts(text)
    assert not marker.exists()


def test_export_refuses_cells_the_format_cannot_hold(tmp_path: Path) -> None:
    text = """genolang 1
space one { ops = skip_connect, sep_conv_3x3; cell single { nodes = 2 } }
genotype g : one {
    single {
        n2 = skip_connect(c0) + sep_conv_3x3(c1)
        n3 = skip_connect(n2) + sep_conv_3x3(c1)
        out = concat(n2, n3)
    }
}
"""
    geno = load_text(text).genotypes["g"]
    with pytest.raises(SpecError, match="holds a 'normal' and a 'reduce' cell; 'g' has single"):
        tree_to_darts(geno)


# ---- fuzzing the importer ------------------------------------------------------------

EXPORTS = [tree_to_darts(genotype(name)) for name in sorted(SPACES)]
PY_TOKEN = re.compile(r"\w+|\s+|.")


@st.composite
def mutated_export(draw: st.DrawFn) -> str:
    tokens = PY_TOKEN.findall(draw(st.sampled_from(EXPORTS)))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(tokens) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "replace", "insert"]))
        if kind == "delete":
            del tokens[i]
        elif kind == "duplicate":
            tokens.insert(i, tokens[i])
        elif kind == "replace":
            tokens[i] = draw(st.sampled_from(["0", "99", "-1", "'x'", "range", "(", ")", "[", "]", ",", "Genotype",
                                              "concat", "10**9", "None", "**", "é", "lambda: 0"]))
        else:
            tokens.insert(i, draw(st.text(max_size=3)))
        tokens = tokens or [""]
    return "".join(tokens)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated_export(), st.text(max_size=100)), st.sampled_from([None, "nasnet", "amoebanet", "enas_rnn"]))
def test_importer_raises_only_spec_errors(text: str, space: str | None) -> None:
    try:
        tree = darts_to_tree(read_darts(text, "g.txt"), "g", space)
        load_text(format_spec(SpecFile((tree,))), "<import>")
    except SpecError as err:
        assert err.render()


def test_import_errors_point_into_the_imported_text(tmp_path: Path) -> None:
    """An error found checking an imported genotype is shown at the pair of the user's
    DARTS text it comes from, not at a line of the spec text made from it."""
    from click.testing import CliRunner

    from genolang.cli import main

    text = (
        "Genotype(\n    normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1),\n"
        "            ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_9x9', 2)],\n"
        "    normal_concat=[2, 3, 4, 5],\n"
        "    reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1),\n"
        "            ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 7)],\n"
        "    reduce_concat=[2, 3, 4, 5])\n"
    )
    source = tmp_path / "genotype.txt"
    source.write_text(text)
    result = CliRunner().invoke(main, ["import", "--from", "darts", str(source)])
    assert result.exit_code == 1
    assert f"{source}:3:76: error: unknown op 'dil_conv_9x9'" in result.stderr
    assert " 3 |             ('sep_conv_3x3', 1), ('skip_connect', 0)" in result.stderr
    assert f"{source}:6:76: error: undefined node 'n7'" in result.stderr
    assert "<import>" not in result.stderr
