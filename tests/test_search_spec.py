"""A search as a spec: the ``search`` declaration parses, prints and checks (errors at
their line and column), command-line flags override its values, every run writes its
effective recipe (``recipe.geno``) whose hash is in the found genotype's header and
run.json and which runs again to the same result; the shipped recipes are the papers'."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from _search_util import write_tiny_cnn
from conftest import SPECS
from genolang.cli import main
from genolang.errors import SpecError
from genolang.parse.parser import parse
from genolang.parse.printer import format_spec
from genolang.search.method import PRESETS
from genolang.search.recipe import SearchConfig, resolve_recipe
from genolang.search.recipe_spec import effective_search, method_diagnostics, search_config
from genolang.spec.check import load, load_text
from genolang.spec.checked import SearchSpec
from genolang.spec.syntax import search_tree, spec_text

pytestmark = pytest.mark.usefixtures("one_thread")

RECIPE = """genolang 1

# a recipe
search quick : darts_cnn {
    network = cifar_search  # the skeleton
    dataset = "fashion-mnist"
    data_dir = "data/fm"
    method = darts_pt
    transforms = none
    epochs = 3; seed = 7
    lr = 0.05
    augment = false
    perturbation.interval = 2
    perturbation.lr_factor = 0.5
}
"""


def checked(text: str, path: str = "quick.geno") -> SearchSpec:
    search = load_text(text, path).single("search")
    assert isinstance(search, SearchSpec)
    return search


def test_a_search_parses_prints_and_checks(tmp_path: Path) -> None:
    path = str(tmp_path / "quick.geno")
    printed = format_spec(parse(RECIPE, path))
    assert "    epochs = 3\n    seed = 7\n" in printed and "network = cifar_search  # the skeleton" in printed
    assert format_spec(parse(printed, path)) == printed  # canonical
    assert parse(printed, path) == parse(RECIPE, path)
    search = checked(RECIPE, path)
    assert (search.name, search.space.name, search.network, search.dataset) == ("quick", "darts_cnn",
                                                                               "cifar_search", "fashion-mnist")
    assert search.data_dir == str(tmp_path / "data" / "fm")  # relative to the file's folder
    assert (search.epochs, search.seed, search.lr, search.augment, search.transforms) == (3, 7, 0.05, False, ())
    assert search.settings == (("perturbation.interval", 2), ("perturbation.lr_factor", 0.5))
    # the model back to syntax and checked again: the same search
    again = checked(spec_text(search_tree(search)), path)
    assert again == search
    assert method_diagnostics(search) == []


def test_search_errors_name_their_line_and_column(tmp_path: Path) -> None:
    bad = RECIPE.replace("epochs = 3; seed = 7", "epohcs = 3; seed = -1").replace(
        "network = cifar_search", "network = ptb_search").replace('"fashion-mnist"', "ptb").replace(
        "perturbation.lr_factor = 0.5", "perturbation.interval = 3")
    with pytest.raises(SpecError) as err:
        load_text(bad, str(tmp_path / "bad.geno"))
    text = err.value.render()
    for line, col, message in [(5, 15, ("network 'ptb_search' is a recurrent skeleton, but space 'darts_cnn' is a "
                                       "CNN space")),
                               (6, 15, "data set 'ptb' is text data"),
                               (10, 5, "unknown property 'epohcs' in search 'quick'; did you mean 'epochs'?"),
                               (10, 24, "'seed' must be at least 0, got -1"),
                               (14, 5, "'perturbation.interval' is set twice")]:
        assert f"bad.geno:{line}:{col}: error: {message}" in text, text
    assert text.count("error:") == 5
    # what only the search knows: methods, components and their parameters
    wrong = checked(RECIPE.replace("method = darts_pt", "method = darts_pt\n    selection = magnitud").replace(
        "perturbation.interval = 2", "perturbation.intervall = 2"))
    problems = {(d.span.line, d.span.column, d.message) for d in method_diagnostics(wrong) if d.span is not None}
    assert (9, 17, "no selection named 'magnitud'; did you mean 'magnitude'?") in problems
    assert any(line == 14 and "no parameter 'intervall'" in m for line, _, m in problems), problems
    result = CliRunner().invoke(main, ["search", str(_write(tmp_path, "m.geno", RECIPE.replace(
        "method = darts_pt", "method = dartz")))])
    assert result.exit_code == 1 and "m.geno:8:14: error: no search method named 'dartz'" in result.output
    assert "Traceback" not in result.output
    # a second order for a method without architecture steps, at the order's line
    no_arch = checked(RECIPE.replace("method = darts_pt", "method = random_ws\n    order = 2").replace(
        "    perturbation.interval = 2\n    perturbation.lr_factor = 0.5\n", ""))
    problems = {(d.span.line, d.span.column, d.message) for d in method_diagnostics(no_arch) if d.span is not None}
    assert any(line == 9 and "method 'random_ws' takes none" in m for line, _, m in problems), problems


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_flags_override_the_declaration() -> None:
    search = checked(RECIPE)
    config = search_config(search, SearchConfig(space="quick.geno", epochs=5, params=(("perturbation.interval", 4),)))
    assert (config.space, config.epochs, config.seed, config.method, config.network) == ("darts_cnn", 5, 7,
                                                                                         "darts_pt", "cifar_search")
    assert dict(config.params) == {"perturbation.interval": 4, "perturbation.lr_factor": 0.5}
    assert config.relative_to == "quick.geno" and config.recipe_name == "quick"
    # another method replaces the declaration's with what belongs to it
    other = search_config(search, SearchConfig(space="quick.geno", method="random_ws"))
    assert other.method == "random_ws" and other.params == () and other.transforms is None
    assert other.epochs == 3
    recipe = resolve_recipe(other, "cnn")
    assert recipe.method_spec().name == "random_ws" and recipe.lr == 0.05


def test_the_digits_recipe_is_the_default_search() -> None:
    shipped = checked((SPECS / "searches" / "digits.geno").read_text(), str(SPECS / "searches" / "digits.geno"))
    from_file = resolve_recipe(search_config(shipped, SearchConfig(space="x")), "cnn")
    default = resolve_recipe(SearchConfig(space=str(SPECS / "spaces" / "darts_cnn.geno")), "cnn")
    assert from_file == default


def test_the_shipped_recipes_are_the_papers() -> None:
    def recipe(name: str):  # type: ignore[no-untyped-def]
        path = SPECS / "searches" / f"{name}.geno"
        return resolve_recipe(search_config(checked(path.read_text(), str(path)), SearchConfig(space="x")), "cnn")

    first, second = recipe("darts_cifar10_first_order"), recipe("darts_cifar10_second_order")
    assert dataclasses.replace(first, order=2) == second and second.hessian == "fd"
    assert (first.network, first.dataset, first.epochs, first.batch_size, first.seed, first.lr, first.lr_min,
            first.arch_lr, first.arch_betas, first.arch_weight_decay) == ("cifar_search", "cifar10", 50, 64, 2,
                                                                          0.025, 0.001, 3e-4, (0.5, 0.999), 1e-3)
    pt = recipe("darts_pt_cifar10")
    assert dict(pt.method_spec().selection.params) == {"interval": 5, "lr_factor": 0.1}
    if "pc_darts" in PRESETS:  # the PC-DARTS method comes with its own branch
        pc = recipe("pc_darts_cifar10")
        assert (pc.batch_size, pc.lr, pc.lr_min, pc.arch_lr, pc.epochs) == (256, 0.1, 0.0, 6e-4, 50)
        assert pc.method_spec().warmup == pytest.approx(0.3)
    # every shipped recipe's effective declaration prints and checks
    for name in ("digits", "darts_cifar10_first_order", "darts_pt_cifar10"):
        effective = effective_search(recipe(name), checked((SPECS / "searches" / f"{name}.geno").read_text()).space,
                                     name)
        assert checked(spec_text(search_tree(effective))).given() == effective.given()


def test_a_run_writes_its_recipe_which_runs_again_to_the_same_genotype(tmp_path: Path) -> None:
    net = write_tiny_cnn(tmp_path)
    recipe = _write(tmp_path, "tiny.geno", f"""genolang 1

search tiny : darts_cnn {{
    network = "{net.name}"
    epochs = 1
    batch_size = 8
    limit = 1
    seed = 3
}}
""")
    run = CliRunner().invoke(main, ["search", str(recipe), "--run-dir", str(tmp_path / "a"), "--out",
                                    str(tmp_path / "a.geno"), "--arch-lr", "0.01", "-q"])
    assert run.exit_code == 0, run.output
    written = tmp_path / "a" / "recipe.geno"
    text = written.read_text()
    assert "network tiny_search {" in text  # the skeleton, which does not resolve from the run folder, written in
    assert "    arch_lr = 0.01\n" in text and "    seed = 3\n" in text and "    method = darts\n" in text
    digest = json.loads((tmp_path / "a" / "run.json").read_text())["recipe_hash"]
    assert f"# recipe hash: {digest}" in text
    assert f"# recipe: {digest} " in (tmp_path / "a.geno").read_text()
    hashed = CliRunner().invoke(main, ["hash", "--full", str(written)])
    assert hashed.output.startswith(f"{digest}  search tiny ")
    assert load(str(written)).searches["tiny"].arch_lr == 0.01
    again = CliRunner().invoke(main, ["search", str(written), "--run-dir", str(tmp_path / "b"), "--out",
                                      str(tmp_path / "b.geno"), "-q"])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "b" / "run.json").read_text())["recipe_hash"] == digest
    body = [(tmp_path / f"{n}.geno").read_text().split(f"genotype {n} :", 1)[1] for n in ("a", "b")]
    assert body[0] == body[1]
