"""Name resolution: a genotype finds its space in its own file, its folder,
GENOLANG_PATH and the shipped library, in that order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import REPO, SPECS, write_spec
from genolang.errors import SpecError
from genolang.spec.check import load, load_text
from genolang.spec.resolve import Library

V2 = (SPECS / "genotypes" / "darts_v2.geno").read_text(encoding="utf-8")

SMALL_SPACE = """\
genolang 1

space {name} {{
    ops = skip_connect, sep_conv_3x3, max_pool_3x3
    cell normal {{
        inputs = 2
        nodes = 2
        keep = 2
    }}
    cell reduce {{
        inputs = 2
        nodes = 2
        keep = 2
        stride = 2
    }}
}}
"""

SMALL_GENO = """\
genolang 1

genotype {name} : {space} {{
    normal {{
        n2 = sep_conv_3x3(c0) + skip_connect(c1)
        n3 = sep_conv_3x3(n2) + max_pool_3x3(c0)
        out = concat(n2, n3)
    }}
    reduce {{
        n2 = max_pool_3x3(c0) + max_pool_3x3(c1)
        n3 = skip_connect(n2) + sep_conv_3x3(c1)
        out = concat(n2, n3)
    }}
}}
"""


def _outside(tmp_path: Path) -> None:
    assert REPO.resolve() not in tmp_path.resolve().parents


def test_genotype_outside_the_checkout_uses_the_shipped_space(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _outside(tmp_path)
    path = write_spec(tmp_path, V2.replace("darts_v2", "mine"), "mine.geno")
    monkeypatch.chdir(tmp_path)
    result = load(str(path))
    geno = result.genotypes["mine"]
    assert geno.space.name == "darts_cnn"
    assert Path(geno.space.path).resolve() == (SPECS / "spaces" / "darts_cnn.geno").resolve()
    assert geno.path == str(path)


def test_space_named_after_its_file_in_the_same_folder(tmp_path: Path) -> None:
    write_spec(tmp_path, SMALL_SPACE.format(name="myspace"), "myspace.geno")
    path = write_spec(tmp_path, SMALL_GENO.format(name="g", space="myspace"), "g.geno")
    geno = load(str(path)).genotypes["g"]
    assert geno.space.name == "myspace"
    assert geno.space.ops == ("skip_connect", "sep_conv_3x3", "max_pool_3x3")
    assert Path(geno.space.path).name == "myspace.geno"


def test_space_in_a_differently_named_file_of_the_folder(tmp_path: Path) -> None:
    write_spec(tmp_path, SMALL_SPACE.format(name="tiny"), "spaces_i_like.geno")
    path = write_spec(tmp_path, SMALL_GENO.format(name="g", space="tiny"), "g.geno")
    geno = load(str(path)).genotypes["g"]
    assert geno.space.name == "tiny"
    assert Path(geno.space.path).name == "spaces_i_like.geno"


def test_genolang_path_is_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib_a, lib_b, work = tmp_path / "a", tmp_path / "b", tmp_path / "work"
    write_spec(lib_a, "genolang 1\n# nothing here\n", "empty.geno")
    write_spec(lib_b, SMALL_SPACE.format(name="remote"), "remote.geno")
    path = write_spec(work, SMALL_GENO.format(name="g", space="remote"), "g.geno")
    with pytest.raises(SpecError) as info:
        load(str(path))
    assert "unknown space 'remote'" in info.value.render()
    monkeypatch.setenv("GENOLANG_PATH", os.pathsep.join([str(lib_a), str(lib_b)]))
    geno = load(str(path)).genotypes["g"]
    assert Path(geno.space.path).resolve() == (lib_b / "remote.geno").resolve()


def test_genolang_path_shadows_the_shipped_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_spec(tmp_path / "lib", SMALL_SPACE.format(name="darts_cnn"), "darts_cnn.geno")
    path = write_spec(tmp_path / "work", SMALL_GENO.format(name="g", space="darts_cnn"), "g.geno")
    monkeypatch.setenv("GENOLANG_PATH", str(tmp_path / "lib"))
    assert load(str(path)).genotypes["g"].space.ops == ("skip_connect", "sep_conv_3x3", "max_pool_3x3")


def test_the_folder_shadows_genolang_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_spec(tmp_path / "lib", SMALL_SPACE.format(name="s").replace("max_pool_3x3", "avg_pool_3x3"), "s.geno")
    write_spec(tmp_path / "work", SMALL_SPACE.format(name="s"), "s.geno")
    path = write_spec(tmp_path / "work", SMALL_GENO.format(name="g", space="s"), "g.geno")
    monkeypatch.setenv("GENOLANG_PATH", str(tmp_path / "lib"))
    space = load(str(path)).genotypes["g"].space
    assert "max_pool_3x3" in space.ops
    assert Path(space.path).resolve() == (tmp_path / "work" / "s.geno").resolve()


def test_the_files_own_space_wins(tmp_path: Path) -> None:
    # a local 'darts_cnn' without dil_conv_3x3 shadows the shipped one
    local = SMALL_SPACE.format(name="darts_cnn").replace("nodes = 2", "nodes = 4")
    write_spec(tmp_path, SMALL_SPACE.format(name="darts_cnn"), "darts_cnn.geno")  # the folder loses too
    body = V2.split("\n", 1)[1]
    path = write_spec(tmp_path, local + body, "both.geno")
    with pytest.raises(SpecError) as info:
        load(str(path))
    messages = [d.message for d in info.value.diagnostics]
    assert messages == ["op 'dil_conv_3x3' is not in space 'darts_cnn'; did you mean 'sep_conv_3x3'?"]
    assert all(d.path == str(path) for d in info.value.diagnostics)
    # and without the offending op it checks, against the file's own space
    fixed = write_spec(tmp_path, (local + body).replace("dil_conv_3x3(n2)", "sep_conv_3x3(n2)"), "fixed.geno")
    result = load(str(fixed))
    assert result.genotypes["darts_v2"].space is result.spaces["darts_cnn"]
    assert result.spaces["darts_cnn"].path == str(fixed)


def test_a_broken_neighbour_does_not_hide_the_rest(tmp_path: Path) -> None:
    write_spec(tmp_path, "space broken {", "broken.geno")
    write_spec(tmp_path, SMALL_SPACE.format(name="good"), "z_good.geno")
    path = write_spec(tmp_path, SMALL_GENO.format(name="g", space="good"), "g.geno")
    assert load(str(path)).genotypes["g"].space.name == "good"


def test_a_broken_file_named_after_the_space_is_reported(tmp_path: Path) -> None:
    write_spec(tmp_path, SMALL_SPACE.format(name="bad").replace("nodes = 2", "nodes = = 2", 1), "bad.geno")
    path = write_spec(tmp_path, SMALL_GENO.format(name="g", space="bad"), "g.geno")
    with pytest.raises(SpecError) as info:
        load(str(path))
    rendered = info.value.render()
    assert f"{path}:3:14: error: space 'bad' is defined in a file with errors" in rendered
    assert "bad.geno:7:17: error: unexpected '='" in rendered  # the broken file's own error, with its source
    assert " 7 |         nodes = = 2" in rendered


def test_a_space_with_semantic_errors_in_another_file(tmp_path: Path) -> None:
    write_spec(tmp_path, SMALL_SPACE.format(name="bad").replace("keep = 2\n        stride", "keep = 0\n        stride"),
               "bad.geno")
    path = write_spec(tmp_path, SMALL_GENO.format(name="g", space="bad"), "g.geno")
    with pytest.raises(SpecError) as info:
        load(str(path))
    diags = info.value.diagnostics
    assert [d.path for d in diags] == [str(path), str(tmp_path / "bad.geno")]
    assert "space 'bad'" in diags[0].message and "has errors" in diags[0].message
    span = diags[1].span
    assert span is not None and (span.line, span.column) == (13, 16)
    assert "'keep' must be positive, got 0" in info.value.render()


def test_unknown_space_suggests_a_local_name(tmp_path: Path) -> None:
    write_spec(tmp_path, SMALL_SPACE.format(name="myspace"), "myspace.geno")
    path = write_spec(tmp_path, SMALL_GENO.format(name="g", space="mysapce"), "g.geno")
    with pytest.raises(SpecError) as info:
        load(str(path))
    assert "unknown space 'mysapce'; did you mean 'myspace'?" in info.value.render()


def test_text_without_a_path_sees_only_the_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_spec(tmp_path, SMALL_SPACE.format(name="myspace"), "myspace.geno")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError):
        load_text(SMALL_GENO.format(name="g", space="myspace"))
    assert load_text(SMALL_GENO.format(name="g", space="myspace"),
                     library=Library([tmp_path])).genotypes["g"].space.name == "myspace"


def test_library_lists_names_along_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_spec(tmp_path, SMALL_SPACE.format(name="myspace"), "myspace.geno")
    monkeypatch.setenv("GENOLANG_PATH", str(tmp_path))
    lib = Library.for_file(None)
    assert tmp_path.resolve() in lib.search_path
    spaces = lib.names("space")
    assert {"myspace", "darts_cnn", "darts_rnn", "nasnet", "amoebanet", "enas_rnn"} <= set(spaces)
    assert {"darts_v1", "darts_v2", "enas"} <= set(lib.names("genotype"))
    found = lib.find("space", "myspace")
    assert found is not None and Path(found.file.path).resolve() == (tmp_path / "myspace.geno").resolve()
    assert lib.find("network", "cifar") is not None
    assert lib.find("space", "cifar") is None  # a network of that name is no space


# ---- the documented order, ambiguity, comments, unreadable files (issue 15) ----------------

def _local_darts_cnn(ops: str) -> str:
    return SMALL_SPACE.format(name="darts_cnn").replace("skip_connect, sep_conv_3x3, max_pool_3x3", ops)


def test_a_local_space_in_any_file_of_the_folder_beats_the_shipped_one(tmp_path: Path) -> None:
    """The folder comes before the shipped library, whatever the file is called."""
    write_spec(tmp_path, _local_darts_cnn("skip_connect, sep_conv_3x3, max_pool_3x3"), "variants.geno")
    geno = write_spec(tmp_path, SMALL_GENO.format(name="g", space="darts_cnn"), "g.geno")
    space = load(str(geno)).genotypes["g"].space
    assert Path(space.path).name == "variants.geno" and space.ops == ("skip_connect", "sep_conv_3x3", "max_pool_3x3")


def test_two_files_of_a_folder_declaring_a_name_differently_is_an_ambiguity(tmp_path: Path) -> None:
    write_spec(tmp_path, SMALL_SPACE.format(name="mine"), "a.geno")
    write_spec(tmp_path, SMALL_SPACE.format(name="mine").replace("max_pool_3x3", "avg_pool_3x3"), "b.geno")
    geno = write_spec(tmp_path, SMALL_GENO.format(name="g", space="mine"), "g.geno")
    with pytest.raises(SpecError) as info:
        load(str(geno))
    rendered = info.value.render()
    assert "space 'mine' is ambiguous" in rendered
    assert f"{tmp_path / 'a.geno'}:3" in rendered and f"{tmp_path / 'b.geno'}:3" in rendered
    # the same declaration in two files (a copy) is no ambiguity
    write_spec(tmp_path, SMALL_SPACE.format(name="mine"), "b.geno")
    assert load(str(geno)).genotypes["g"].space.name == "mine"


def test_names_in_comments_are_not_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from genolang.cli import main

    write_spec(tmp_path, "genolang 1\n# a network for tests; runs in one network on CPUs\n"
                         "network real { stem = cifar }\n", "nets.geno")
    monkeypatch.chdir(tmp_path)
    listed = CliRunner().invoke(main, ["list", "networks"]).stdout.split()
    assert "real" in listed and not {"for", "in", "on"} & set(listed)
    lib = Library.for_file(str(tmp_path / "x.geno"))
    assert lib.find("network", "for") is None and "for" not in lib.names("network")


def test_an_unreadable_file_named_after_the_space_is_reported_as_such(tmp_path: Path) -> None:
    (tmp_path / "broken.geno").write_bytes(b"genolang 1\nspace broken {\n    ops = \xff\n}\n")
    geno = write_spec(tmp_path, SMALL_GENO.format(name="g", space="broken"), "g.geno")
    with pytest.raises(SpecError) as info:
        load(str(geno))
    rendered = info.value.render()
    assert "unknown space" not in rendered
    assert "space 'broken' is defined in a file with errors" in rendered
    assert f"{tmp_path / 'broken.geno'}:3:11: error: not UTF-8 text: byte 0xff" in rendered


def test_errors_name_the_file_the_space_resolved_to(tmp_path: Path) -> None:
    _outside(tmp_path)
    path = write_spec(tmp_path, V2.replace("dil_conv_3x3(n2)", "sep_conv_7x7(n2)"), "v2.geno")
    with pytest.raises(SpecError) as info:
        load(str(path))
    rendered = info.value.render()
    assert "op 'sep_conv_7x7' is not in space 'darts_cnn'" in rendered
    assert f"note: space 'darts_cnn' is the one declared at {SPECS / 'spaces' / 'darts_cnn.geno'}:" in rendered


def test_genolang_path_comes_after_the_folder_and_before_the_library(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    lib = tmp_path / "lib"
    work = tmp_path / "work"
    write_spec(lib, _local_darts_cnn("skip_connect, sep_conv_3x3, avg_pool_3x3"), "spaces.geno")
    geno = write_spec(work, SMALL_GENO.format(name="g", space="darts_cnn").replace("max_pool_3x3", "avg_pool_3x3"),
                      "g.geno")
    monkeypatch.setenv("GENOLANG_PATH", str(lib))
    assert Path(load(str(geno)).genotypes["g"].space.path).parent == lib
    write_spec(work, _local_darts_cnn("skip_connect, sep_conv_3x3, avg_pool_3x3, none"), "local.geno")
    assert Path(load(str(geno)).genotypes["g"].space.path).parent == work
