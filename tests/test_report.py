"""Search-run plots (``genolang plot``) and the HTML report (``genolang report``): from a
tiny real search run and from hand-written run folders (recurrent runs, changed and
unchanged genotypes, every kind of broken file), and the report loaded in headless
Chromium: every image decodes and is laid out, nothing outside the page is loaded, and
the console stays quiet."""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from _cli import assert_torch_free
from _specs import named_space
from genolang.cli import COMMANDS, main
from genolang.draw import graphviz
from genolang.errors import UsageError
from genolang.ir.lower import lower_space

try:
    import matplotlib  # noqa: F401

    HAVE_MATPLOTLIB = True
except ImportError:
    HAVE_MATPLOTLIB = False

needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB,
                                      reason="matplotlib is not installed (pip install matplotlib)")
needs_graphviz = pytest.mark.skipif(graphviz() is None,
                                    reason="Graphviz 'dot' is not installed (apt-get install graphviz)")
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = ("alphas.png", "trajectory-normal.png", "trajectory-reduce.png", "curves.png")

TINY_SKELETON = """genolang 1

# the smallest search network that still has both cell types: 3 cells of 4 channels
network tiny_search {
    stem = cifar
    stem_multiplier = 1
    channels = 4
    layers = 3
    reduce_at = 1/3, 2/3
    input_size = 8
}
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), \
        result.exception
    return result.exit_code, result.stdout, result.stderr


# ---- run folders ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real search: darts_cnn on digits, 2 epochs of 1 step on a 3-cell skeleton."""
    if "search" not in COMMANDS or importlib.util.find_spec("genolang.search.entry") is None:
        pytest.skip("'genolang search' is not in this tree")
    folder = tmp_path_factory.mktemp("search")
    skeleton = folder / "tiny_search.geno"
    skeleton.write_text(TINY_SKELETON, encoding="utf-8")
    run_dir = folder / "run"
    code, _, err = run("search", "darts_cnn", "--network", str(skeleton), "--dataset", "digits", "--epochs", "2",
                       "--limit", "1", "--batch-size", "8", "--device", "cpu", "--run-dir", str(run_dir), "-q")
    assert code == 0, err
    for name in ("run.json", "metrics.jsonl", "alphas.jsonl", "epoch-001.geno", "epoch-002.geno", "genotype.geno"):
        assert (run_dir / name).is_file(), name
    return run_dir


NORMAL = {  # DARTS_V2's normal cell, then one edge changed, then the same with terms reordered
    1: ["sep_conv_3x3(c0) + sep_conv_3x3(c1)", "sep_conv_3x3(c0) + sep_conv_3x3(c1)",
        "sep_conv_3x3(c1) + skip_connect(c0)", "skip_connect(c0) + dil_conv_3x3(n2)"],
    2: ["sep_conv_3x3(c0) + sep_conv_3x3(c1)", "sep_conv_3x3(c0) + sep_conv_3x3(c1)",
        "sep_conv_3x3(c1) + skip_connect(c0)", "skip_connect(c0) + sep_conv_3x3(n2)"],
    3: ["sep_conv_3x3(c1) + sep_conv_3x3(c0)", "sep_conv_3x3(c0) + sep_conv_3x3(c1)",
        "skip_connect(c0) + sep_conv_3x3(c1)", "skip_connect(c0) + sep_conv_3x3(n2)"],
}
REDUCE = ["max_pool_3x3(c0) + max_pool_3x3(c1)", "skip_connect(n2) + max_pool_3x3(c1)",
          "max_pool_3x3(c0) + skip_connect(n2)", "skip_connect(n2) + max_pool_3x3(c1)"]
RNN = ["sigmoid(s0)", "relu(n1)", "relu(n1)", "identity(n1)", "tanh(n2)", "sigmoid(n5)", "tanh(n3)", "relu(n5)"]


def _cnn_genotype(name: str, epoch: int) -> str:
    def cell(title: str, terms: list[str]) -> str:
        nodes = "".join(f"        n{i} = {t}\n" for i, t in enumerate(terms, 2))
        return f"    {title} {{\n{nodes}        out = concat(n2, n3, n4, n5)\n    }}\n"

    return (f"genolang 1\n\n# written by hand for the report tests\ngenotype {name} : darts_cnn {{\n"
            + cell("normal", NORMAL[epoch]) + cell("reduce", REDUCE) + "}\n")


def _rnn_genotype(name: str) -> str:
    nodes = "".join(f"        n{i} = {t}\n" for i, t in enumerate(RNN, 1))
    return (f"genolang 1\n\ngenotype {name} : darts_rnn {{\n    recurrent {{\n{nodes}"
            f"        out = mean(n1, n2, n3, n4, n5, n6, n7, n8)\n    }}\n}}\n")


def _alphas(space_name: str, epoch: int, rng: random.Random) -> dict[str, Any]:
    space = named_space(space_name)
    cells = {}
    for name, ir in lower_space(space).items():
        edges = [f"{e.dst}<-{e.src}" for e in ir.edges() if e.dst != "out"]
        rows = []
        for _ in edges:
            raw = [rng.random() ** (1 + epoch) for _ in space.ops]
            rows.append([x / sum(raw) for x in raw])
        cells[name] = {"edges": edges, "ops": list(space.ops), "softmax": rows}
    return {"epoch": epoch, "cells": cells}


def make_fake_run(folder: Path, kind: str = "cnn", epochs: int = 3, finished: bool = True) -> Path:
    """A run folder as 'genolang search --run-dir' writes it, by hand."""
    folder.mkdir(parents=True, exist_ok=True)
    space = "darts_cnn" if kind == "cnn" else "darts_rnn"
    rng = random.Random(0)
    provenance = {"space": f"specs/spaces/{space}.geno", "space_name": space, "space_sha256": "0" * 64,
                  "network": "small_search" if kind == "cnn" else "ptb_search",
                  "dataset": "digits" if kind == "cnn" else "ptb", "order": 1, "seed": 0, "epochs": epochs,
                  "recipe": {"kind": kind, "epochs": epochs}, "status": "done" if finished else "running",
                  "note": "<b>escaped</b> & kept"}
    (folder / "run.json").write_text(json.dumps(provenance, indent=2), encoding="utf-8")
    metrics, alphas = [], []
    for e in range(1, epochs + 1):
        if kind == "cnn":
            metrics.append({"epoch": e, "train_loss": 2.3 / e, "train_acc": 0.2 * e, "valid_loss": 2.4 / e,
                            "valid_acc": 0.18 * e, "lr": 0.025 / e, "seconds": 1.5})
        else:
            metrics.append({"epoch": e, "train_loss": 6.0 / e, "train_ppl": 400.0 / e, "valid_loss": 6.2 / e,
                            "valid_ppl": 500.0 / e, "lr": 20.0, "seconds": 3.0})
        alphas.append(_alphas(space, e, rng))
        text = _cnn_genotype(f"epoch_{e:03d}", min(e, 3)) if kind == "cnn" else _rnn_genotype(f"epoch_{e:03d}")
        (folder / f"epoch-{e:03d}.geno").write_text(text, encoding="utf-8")
    (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics), encoding="utf-8")
    (folder / "alphas.jsonl").write_text("".join(json.dumps(a) + "\n" for a in alphas), encoding="utf-8")
    if finished:
        text = _cnn_genotype("found", min(epochs, 3)) if kind == "cnn" else _rnn_genotype("found")
        (folder / "genotype.geno").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    return make_fake_run(tmp_path / "run")


# ---- checks on files --------------------------------------------------------------------

def assert_png(path_or_bytes: Path | bytes, min_bytes: int = 5_000) -> None:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    assert data[:8] == PNG_MAGIC, "not a PNG"
    assert len(data) >= min_bytes, f"a suspiciously small PNG ({len(data)} bytes)"
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        return
    import io

    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        assert image.width >= 300 and image.height >= 200
        extrema = image.convert("L").getextrema()
        assert extrema[1] - extrema[0] > 100, "a blank picture"


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Structure(HTMLParser):
    """Checks that every element is closed in order and collects the img sources."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.ids: list[str] = []
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "img":
            self.images.append(a)
        for name in ("src", "href", "srcset", "action", "data", "poster"):
            if a.get(name) is not None:
                self.links.append(str(a[name]))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
        else:
            self.stack.pop()


def check_page(page: str) -> _Structure:
    """The report is one valid, self-contained HTML5 document."""
    parsed = _Structure()
    parsed.feed(page)
    parsed.close()
    assert parsed.doctype.lower() == "doctype html"
    assert not parsed.problems, parsed.problems[:5]
    assert not parsed.stack, f"unclosed: {parsed.stack}"
    assert len(parsed.ids) == len(set(parsed.ids)), "duplicate ids"
    assert '<html lang="en">' in page and '<meta charset="utf-8">' in page
    for ref in parsed.links:
        assert ref.startswith(("data:", "#")), f"points outside the page: {ref[:80]}"
    lowered = page.lower()
    for needle in ("http://", "https://", "<script", "<link", "<iframe", "<object", "<embed", "url(", "@import"):
        assert needle not in lowered, needle
    for image in parsed.images:
        src = str(image.get("src"))
        head, _, payload = src.partition(",")
        data = base64.b64decode(payload, validate=True)
        if head == "data:image/png;base64":
            assert_png(data, 2_000)
        else:
            assert head == "data:image/svg+xml;base64", head
            assert b"<svg" in data and b"</svg>" in data
        assert image.get("alt")
    return parsed


# ---- plots ------------------------------------------------------------------------------

@needs_matplotlib
@pytest.mark.slow
def test_plot_a_real_search_run(real_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "plots"
    code, _, err = run("plot", str(real_run), "-o", str(out))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(PLOTS)
    for name in PLOTS:
        assert_png(out / name)
        assert f"wrote {out / name}" in err


@needs_matplotlib
def test_plot_figures(fake_run: Path) -> None:
    from genolang.report.plots import curves_figure, heatmap_figure, trajectory_figure
    from genolang.report.run import decisiveness_series, load_genotype, load_run

    r = load_run(fake_run)
    geno = load_genotype(fake_run / "genotype.geno")
    heat = heatmap_figure(r, geno)
    axes = [ax for ax in heat.axes if ax.get_title().startswith("cell ")]
    assert [ax.get_title() for ax in axes] == ["cell normal", "cell reduce"]
    normal = axes[0]
    assert [t.get_text() for t in normal.get_yticklabels()][:3] == ["n2<-c0", "n2<-c1", "n3<-c0"]
    assert normal.get_xticklabels()[0].get_text() == "none"
    assert len(normal.texts) == 14 * 8  # every square annotated
    assert len(normal.patches) == 8  # the kept ops: 4 nodes x 2 inputs
    # an absolute colour scale: 0 to at least 2/8, white at uniform 1/8
    norm = normal.images[0].norm
    assert (norm.vmin, norm.vcenter) == (0.0, 0.125) and norm.vmax >= 0.25
    assert normal.get_xlabel().endswith("(uniform 0.125)")
    traj = trajectory_figure(r, "normal", geno)
    visible = [ax for ax in traj.axes if ax.get_visible()]
    # a line per op and a dotted one at uniform, on an axis from 0
    assert len(visible) == 14 and all(len(ax.lines) == 9 for ax in visible)
    assert all(list(ax.lines[0].get_ydata()) == [0.125, 0.125] and ax.get_ylim()[0] == 0.0 for ax in visible)
    assert len(traj.legends) == 1 and len(traj.legends[0].get_texts()) == 8
    assert "n5<-n2  [sep_conv_3x3]" in [ax.get_title() for ax in visible]
    lines = curves_figure(r).axes
    assert [ax.get_ylabel() for ax in lines] == ["loss", "accuracy (%)", "learning rate"]
    assert list(lines[1].lines[1].get_ydata()) == pytest.approx([18.0, 36.0, 54.0])
    # with the decisiveness of each epoch: kept ops over uniform and the edge entropy, uniform marked
    series = decisiveness_series(r)
    assert series.epochs == series.kept_epochs == (1, 2, 3) and series.ops == 8
    panels = [ax for ax in curves_figure(r, series).axes if ax.get_visible()]
    assert [ax.get_ylabel() for ax in panels][3:] == ["kept ops' weight / uniform (max 8)", "edge entropy / log K"]
    kept, entropy = panels[3], panels[4]
    assert list(kept.lines[1].get_ydata()) == pytest.approx(list(series.kept_over_uniform))
    assert list(kept.lines[0].get_ydata()) == [1.0, 1.0] and kept.get_ylim()[0] == 0.0
    assert all(0.0 <= h <= 1.0 for h in entropy.lines[1].get_ydata()) and entropy.get_ylim() == (0.0, 1.05)


@needs_matplotlib
def test_plot_a_recurrent_run_shows_perplexity(tmp_path: Path) -> None:
    from genolang.report.plots import curves_figure, trajectory_figure
    from genolang.report.run import load_run

    folder = make_fake_run(tmp_path / "rnn", kind="rnn", epochs=4)
    r = load_run(folder)
    assert r.kind == "rnn"
    axes = curves_figure(r).axes
    assert axes[1].get_ylabel() == "perplexity" and axes[1].get_yscale() == "log"
    assert sorted(line.get_label() for line in axes[1].lines) == ["train", "valid"]
    traj = trajectory_figure(r, "recurrent")
    assert len([ax for ax in traj.axes if ax.get_visible()]) == 36  # 1 + 2 + ... + 8 edges
    code, _, err = run("plot", str(folder))  # default: RUN_DIR/plots
    assert code == 0, err
    written = sorted(p.name for p in (folder / "plots").iterdir())
    assert written == ["alphas.png", "curves.png", "trajectory-recurrent.png"]


def test_plot_without_matplotlib_is_a_clear_error(fake_run: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    code, _, err = run("plot", str(fake_run), "-o", str(tmp_path / "p"))
    assert code == 1
    assert "pip install matplotlib" in err and "Traceback" not in err
    assert not (tmp_path / "p").exists()


# ---- the report ---------------------------------------------------------------------------

def _report(run_dir: Path, tmp_path: Path) -> tuple[str, str]:
    out = tmp_path / "report.html"
    code, _, err = run("report", str(run_dir), "-o", str(out))
    assert code == 0, err
    assert f"wrote {out}" in err
    return out.read_text(encoding="utf-8"), err


@pytest.fixture(scope="module")
def real_report(real_run: Path) -> tuple[Path, str, str]:
    """The report of the real run (default place: RUN_DIR/report.html), its text and stderr."""
    code, _, err = run("report", str(real_run))
    assert code == 0, err
    path = real_run / "report.html"
    assert f"wrote {path}" in err
    return path, path.read_text(encoding="utf-8"), err


@needs_matplotlib
@needs_graphviz
@pytest.mark.slow
def test_report_of_a_real_search_run(real_run: Path, real_report: tuple[Path, str, str]) -> None:
    _, page, err = real_report
    assert "note:" not in err
    parsed = check_page(page)
    kinds = [str(i["src"]).split(";")[0] for i in parsed.images]
    assert kinds.count("data:image/svg+xml") == 2 and kinds.count("data:image/png") == 4
    found = (real_run / "genotype.geno").read_text(encoding="utf-8")
    assert html.escape(found, quote=True) in page  # the whole file, escaped
    block = found[found.index("genotype found"):]
    assert html.escape(block.strip(), quote=True) in page
    for section in ("genotype", "cells", "alphas", "curves", "epochs", "provenance"):
        assert f'<section id="{section}">' in page and f'href="#{section}"' in page
    assert '<article id="epoch-1">' in page and '<article id="epoch-2">' in page
    provenance = json.loads((real_run / "run.json").read_text(encoding="utf-8"))
    assert provenance["space_sha256"] in page
    assert "valid accuracy" in page
    # the decisiveness search wrote into run.json and the genotype's header is the summary's
    decisive = provenance["decisiveness"]
    assert f"kept ops at {decisive['kept_over_uniform']:.2f}x uniform" in page
    assert f"edge entropy {decisive['entropy']:.4f}" in page and "decisiveness: kept ops at" in found


@needs_matplotlib
def test_report_shows_each_epoch_and_its_diff(fake_run: Path, tmp_path: Path) -> None:
    page, _ = _report(fake_run, tmp_path)
    check_page(page)
    epochs = page[page.index('<section id="epochs">'):page.index('<section id="provenance">')]
    one = epochs[epochs.index('id="epoch-1"'):epochs.index('id="epoch-2"')]
    two = epochs[epochs.index('id="epoch-2"'):epochs.index('id="epoch-3"')]
    three = epochs[epochs.index('id="epoch-3"'):]
    assert "n5 = skip_connect(c0) + dil_conv_3x3(n2)" in one
    assert "cell normal: node n5: dil_conv_3x3(n2) -&gt; sep_conv_3x3(n2)" in two
    assert '<span class="del">-   n5 = skip_connect(c0) + dil_conv_3x3(n2)</span>' in two
    assert '<span class="ins">+   n5 = skip_connect(c0) + sep_conv_3x3(n2)</span>' in two
    assert "reduce" not in two.split("summary:")[1].split("</pre>")[0]  # only the cell that changed
    assert ("No change since epoch 2 (the same architecture written differently: cell normal: node order, "
            "term order or output order differ).") in three  # terms reordered only
    assert "the genotype derived after the last epoch (3)" in page
    assert "&lt;b&gt;escaped&lt;/b&gt; &amp; kept" in page and "<b>escaped</b>" not in page
    assert "valid accuracy 54.00%" in page
    # the decisiveness of the found genotype (computed: this hand-made run.json has none), per epoch too
    from genolang.ir.decisive import decisiveness
    from genolang.report.run import load_genotype, load_run

    run_ = load_run(fake_run)
    figure = decisiveness(run_.final_alphas, load_genotype(fake_run / "genotype.geno"))
    assert f"<dt>decisiveness</dt><dd>{html.escape(figure.summary())}</dd>" in page
    assert f"kept ops {figure.kept_over_uniform:.2f}x uniform" in three
    assert "Every scale is absolute and marks uniform, 1/8 = 0.125" in page


@needs_matplotlib
def test_report_of_a_recurrent_run(tmp_path: Path) -> None:
    folder = make_fake_run(tmp_path / "rnn", kind="rnn", epochs=2)
    page, _ = _report(folder, tmp_path)
    check_page(page)
    assert "valid perplexity 250.00" in page and "perplexity" in page
    assert "n8 = relu(n5)" in page


@needs_matplotlib
def test_report_of_an_unfinished_run(tmp_path: Path) -> None:
    folder = make_fake_run(tmp_path / "run", epochs=2, finished=False)
    page, _ = _report(folder, tmp_path)
    check_page(page)
    assert "The search has not finished (status running): this is the genotype after epoch 2" in page


def test_report_degrades_without_matplotlib_or_graphviz(fake_run: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import genolang.report.page as page_module

    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(page_module, "graphviz", lambda: None)
    page, err = _report(fake_run, tmp_path)
    parsed = check_page(page)
    assert parsed.images == []
    assert "note: The plots are left out" in err and "pip install matplotlib" in err
    assert "note: Graphviz's 'dot' program is not installed" in err and "apt-get install graphviz" in err
    assert "digraph genolang {" in page and "found.normal" in page  # the cells as DOT text
    assert "n5 = skip_connect(c0) + sep_conv_3x3(n2)" in page


def test_report_is_written_atomically(fake_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import genolang.report.page as page_module

    out = tmp_path / "report.html"
    out.write_text("old report", encoding="utf-8")

    def broken(run: Any) -> Any:
        raise UsageError("boom")

    monkeypatch.setattr(page_module, "build_report", broken)
    code, _, err = run("report", str(fake_run), "-o", str(out))
    assert code == 2 and "error: boom" in err
    assert out.read_text(encoding="utf-8") == "old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "run"]


def test_plot_and_report_do_not_import_torch(fake_run: Path, tmp_path: Path) -> None:
    argv = [["report", str(fake_run), "-o", str(tmp_path / "r.html")]]
    if HAVE_MATPLOTLIB:
        argv.append(["plot", str(fake_run), "-o", str(tmp_path / "plots")])
    assert_torch_free(argv, tmp_path)


# ---- broken run folders --------------------------------------------------------------------

def _rewrite(name: str, text: str) -> Callable[[Path], str]:
    def change(folder: Path) -> str:
        (folder / name).write_text(text, encoding="utf-8")
        return name
    return change


def _remove(name: str) -> Callable[[Path], str]:
    def change(folder: Path) -> str:
        (folder / name).unlink()
        return name
    return change


def _edit_jsonl(name: str, edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], str]:
    def change(folder: Path) -> str:
        lines = (folder / name).read_text(encoding="utf-8").splitlines()
        record = json.loads(lines[1])
        lines[1] = json.dumps(edit(record))
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        return f"{name}:2"
    return change


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda r: {**r, key: value}


def _set_cell(key: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def edit(r: dict[str, Any]) -> dict[str, Any]:
        r["cells"]["normal"][key] = value(r["cells"]["normal"][key]) if callable(value) else value
        return r
    return edit


BROKEN = {
    "no run.json": (_remove("run.json"), "run.json: missing; expected the run's provenance"),
    "run.json not JSON": (_rewrite("run.json", "{status: done"), "run.json:1: not JSON"),
    "run.json a list": (_rewrite("run.json", "[1, 2]"),
                        "run.json: expected the run's provenance as one JSON object, not a JSON list"),
    "no metrics": (_remove("metrics.jsonl"), "metrics.jsonl: missing; expected one JSON object of numbers per epoch"),
    "empty metrics": (_rewrite("metrics.jsonl", "\n"), "metrics.jsonl: empty; expected one JSON object"),
    "metrics not JSON": (_edit_jsonl("metrics.jsonl", lambda r: "x"), "expected a JSON object"),
    "metrics half a line": (_rewrite("metrics.jsonl", '{"epoch": 1, "train_loss": 2.3}\n{"epoch": 2, "tra'),
                            "metrics.jsonl:2: not JSON"),
    "metrics without epoch": (_edit_jsonl("metrics.jsonl", lambda r: {k: v for k, v in r.items() if k != "epoch"}),
                              "expected an 'epoch' that is a whole number >= 0, not None"),
    "metric not a number": (_edit_jsonl("metrics.jsonl", _set("valid_acc", "high")),
                            "'valid_acc' should be a number, not 'high'"),
    "no alphas": (_remove("alphas.jsonl"), "alphas.jsonl: missing; expected one JSON object per epoch"),
    "alphas without cells": (_edit_jsonl("alphas.jsonl", _set("cells", {})), "expected 'cells', an object"),
    "alphas short row": (_edit_jsonl("alphas.jsonl", _set_cell("softmax", lambda rows: [rows[0][:3]] + rows[1:])),
                         "cell normal: a row of 3 weights for 8 ops"),
    "alphas missing row": (_edit_jsonl("alphas.jsonl", _set_cell("softmax", lambda rows: rows[1:])),
                           "cell normal: 13 rows of weights for 14 edges"),
    "alphas bad edge": (_edit_jsonl("alphas.jsonl", _set_cell("edges", lambda e: ["n2 from c0"] + e[1:])),
                        "cell 'normal': 'edges' should be a list of names such as \"n2<-c0\""),
    "alphas text weights": (_edit_jsonl("alphas.jsonl", _set_cell("softmax", lambda rows: [["a"] * 8] + rows[1:])),
                            "'softmax' should be a list of rows of numbers"),
    "alphas other ops later": (_edit_jsonl("alphas.jsonl", _set_cell("ops", lambda ops: ops[::-1])),
                               "cell 'normal' has other edges or ops at epoch 2 than at epoch 1"),
    "alphas other cells later": (_edit_jsonl("alphas.jsonl",
                                             lambda r: {**r, "cells": {"normal": r["cells"]["normal"]}}),
                                 "cells normal at epoch 2, but normal, reduce at epoch 1"),
}


@pytest.mark.parametrize("command", ["plot", "report"])
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_run_folders_are_clear_errors(case: str, command: str, fake_run: Path, tmp_path: Path) -> None:
    change, message = BROKEN[case]
    where = change(fake_run)
    out = tmp_path / ("plots" if command == "plot" else "report.html")
    code, stdout, err = run(command, str(fake_run), "-o", str(out))
    assert code == 1, (stdout, err)
    assert err.startswith(f"error: {fake_run / where.split(':')[0]}") and where in err, err
    assert message in err
    assert "Traceback" not in err
    assert not out.exists() or command == "plot"


@pytest.mark.parametrize("command", ["plot", "report"])
def test_not_a_run_folder(command: str, tmp_path: Path) -> None:
    code, _, err = run(command, str(tmp_path / "nowhere"))
    assert code == 2 and "nowhere: no such folder; expected a search run folder" in err
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    code, _, err = run(command, str(a_file))
    assert code == 2 and "file.txt: a file, not a folder" in err
    code, _, err = run(command, str(tmp_path))
    assert code == 1 and "run.json: missing" in err and "genolang search --run-dir" in err


def test_broken_genotype_file_is_reported_at_its_line(fake_run: Path, tmp_path: Path) -> None:
    path = fake_run / "epoch-002.geno"
    path.write_text(path.read_text(encoding="utf-8").replace("sep_conv_3x3(n2)", "sep_conv_3x4(n2)"),
                    encoding="utf-8")
    code, _, err = run("report", str(fake_run), "-o", str(tmp_path / "r.html"))
    assert code == 1 and "Traceback" not in err
    assert f"{path}:9:33: error: unknown op 'sep_conv_3x4'" in err


def test_output_paths_are_checked(fake_run: Path, tmp_path: Path) -> None:
    code, _, _ = run("report", str(fake_run), "-o", str(tmp_path))
    assert code != 0
    a_file = tmp_path / "taken"
    a_file.write_text("x", encoding="utf-8")
    code, _, _ = run("plot", str(fake_run), "-o", str(a_file))
    assert code != 0


def test_resumed_run_keeps_the_last_record_of_an_epoch(fake_run: Path) -> None:
    from genolang.report.run import load_run

    with (fake_run / "metrics.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"epoch": 2, "valid_acc": 0.99}) + "\n")
    r = load_run(fake_run)
    assert [m["epoch"] for m in r.metrics] == [1, 2, 3]
    assert r.metrics[1]["valid_acc"] == 0.99


# ---- in a browser --------------------------------------------------------------------------

PROBE = """<script>
window.__errors = [];
document.addEventListener("securitypolicyviolation",
  e => window.__errors.push("blocked " + e.blockedURI + " (" + e.violatedDirective + ")"));
window.addEventListener("error",
  e => window.__errors.push("error " + (e.message || (e.target && (e.target.currentSrc || e.target.tagName)))), true);
window.addEventListener("load", () => {
  const images = Array.from(document.images).map(img => {
    const box = img.getBoundingClientRect();
    return {alt: img.alt, complete: img.complete, natural: [img.naturalWidth, img.naturalHeight],
            shown: [Math.round(box.width), Math.round(box.height)], scheme: img.src.split(",")[0]};
  });
  const out = document.createElement("pre");
  out.id = "probe-result";
  out.textContent = JSON.stringify({title: document.title, images: images, errors: window.__errors,
                                    height: document.documentElement.scrollHeight});
  document.body.appendChild(out);
});
</script>"""


def _chromium(args: list[str], profile: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-extensions", "--no-default-browser-check", f"--user-data-dir={profile}",
               "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def _console(stderr: str) -> list[str]:
    """Console messages Chromium logged for the page (``INFO:CONSOLE:LINE] "..."``, at any
    level: the report runs no script, so any message is a blocked load or another fault)."""
    return [line for line in stderr.splitlines() if re.search(r":CONSOLE[:(\]]", line)]


@needs_chromium
@needs_matplotlib
@needs_graphviz
@pytest.mark.slow
def test_report_renders_in_chromium(real_report: tuple[Path, str, str], tmp_path: Path) -> None:
    report, page, _ = real_report
    # 1. the page as written: a screenshot that is not blank, and a quiet console
    shot = tmp_path / "shot.png"
    done = _chromium(["--hide-scrollbars", "--window-size=1280,2400", f"--screenshot={shot}", report.as_uri()],
                     tmp_path / "profile1")
    assert shot.is_file(), done.stderr[-3000:]
    assert_png(shot, 20_000)
    assert _console(done.stderr) == [], _console(done.stderr)
    # 2. the page with a probe script (allowed by a test-only policy): every image decoded
    # and laid out, no load errors, nothing blocked by the report's own policy
    assert page.count("Content-Security-Policy") == 1
    probed = page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    probed = probed.replace("</title>", "</title>\n" + PROBE, 1)
    harness = tmp_path / "probe.html"
    harness.write_text(probed, encoding="utf-8")
    done = _chromium(["--virtual-time-budget=10000", "--dump-dom", harness.as_uri()], tmp_path / "profile2")
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', done.stdout, re.S)
    assert found, (done.stdout[-2000:], done.stderr[-3000:])
    result = json.loads(html.unescape(found.group(1)))
    assert result["errors"] == []
    assert result["title"].startswith("genolang search report: found")
    assert len(result["images"]) == 6
    for image in result["images"]:
        assert image["complete"], image
        assert min(image["natural"]) > 20, image
        assert min(image["shown"]) > 20, image
    assert result["height"] > 2000
    assert _console(done.stderr) == [], _console(done.stderr)


@needs_chromium
def test_chromium_probe_catches_a_broken_page(tmp_path: Path) -> None:
    """The browser check is not vacuous: an outside image and a broken one are caught."""
    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:\">"
            "<title>t</title></head><body><img src=\"http://example.invalid/a.png\" alt=\"a\">"
            "<img src=\"data:image/png;base64,AAAA\" alt=\"b\"></body></html>")
    path = tmp_path / "bad.html"
    path.write_text(page, encoding="utf-8")
    done = _chromium(["--screenshot=" + str(tmp_path / "s.png"), "--window-size=400,300", path.as_uri()],
                     tmp_path / "p1")
    assert any("example.invalid" in line for line in _console(done.stderr)), done.stderr[-2000:]
    probed = page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    probed = probed.replace("</title>", "</title>" + PROBE, 1)
    path.write_text(probed, encoding="utf-8")
    done = _chromium(["--virtual-time-budget=5000", "--dump-dom", path.as_uri()], tmp_path / "p2")
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stderr[-2000:]
    result = json.loads(html.unescape(found.group(1)))
    assert any("example.invalid" in e for e in result["errors"])
    assert [i["natural"] for i in result["images"]] == [[0, 0], [0, 0]]
