"""A search run as one self-contained HTML5 page: the found genotype's text and cell
diagrams, the alpha plots and the curves, a table of the metrics, the genotype after
every epoch with its semantic diff to the one before, and the run's provenance.

Pictures are ``data:`` URIs (Graphviz SVG for the cells, matplotlib PNG for the plots);
the page has no scripts and its Content-Security-Policy forbids loading anything else,
so it reads the same offline, attached to a mail or years later. Without Graphviz the
cells are shown as DOT text, without matplotlib the plots are left out, each with a
note saying what to install."""

from __future__ import annotations

import base64
import html
import json
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genolang import __version__
from genolang.draw import dot_document, graphviz, render
from genolang.errors import UsageError
from genolang.fsio import write_text
from genolang.ir.lower import lower_genotype
from genolang.parse import ast as A
from genolang.parse.printer import format_spec
from genolang.report.run import (
    METRICS,
    DecisivenessSeries,
    SearchRun,
    decisiveness_series,
    final_decisiveness,
    load_run,
)
from genolang.spec.check import Checked, load
from genolang.spec.checked import GenotypeSpec
from genolang.vcs.canon import genotype_hash, short
from genolang.vcs.diff import diff_genotypes

# Nothing but inline styles and data: images may load; scripts are not allowed at all.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 0 1.5em 3em; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { margin-bottom: 0.3em; }
pre, code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.85em; }
pre { background: #f6f7f9; border: 1px solid #e1e4e8; border-radius: 4px; padding: 0.7em 0.9em;
      overflow-x: auto; white-space: pre; }
img { max-width: 100%; height: auto; }
figure { margin: 1em 0; }
figcaption { color: #555; font-size: 0.9em; }
.cells { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.cells figure { flex: 1 1 420px; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #dde; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f0f2f5; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; }
dl.summary dt { font-weight: 600; }
dl.summary dd { margin: 0; }
.note { background: #fff8e1; border-left: 4px solid #f0c040; padding: 0.4em 0.8em; }
.same { color: #555; }
.del { color: #b31d28; background: #ffeef0; }
.ins { color: #22863a; background: #e6ffed; }
.hunk { color: #6f42c1; }
.meta { color: #555; }
nav ul { columns: 2; }
footer { margin-top: 3em; color: #777; font-size: 0.85em; }
"""

SCORE_LABELS = {"valid_acc": "valid accuracy", "valid_ppl": "valid perplexity"}


@dataclass
class Report:
    """The page and what it had to leave out."""

    html: str
    notes: list[str] = field(default_factory=list)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _png_size(png: bytes) -> tuple[int, int] | None:
    if png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) >= 24:
        return struct.unpack(">II", png[16:24])
    return None


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _img(mime: str, data: bytes, alt: str) -> str:
    size = _png_size(data) if mime == "image/png" else None
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    return f'<img src="{data_uri(mime, data)}" alt="{_e(alt)}"{dims}>'


def _fmt_metric(key: str, value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return _e(value)
    if key == "epoch":
        return str(int(value))
    if value != value:  # NaN
        return "nan"
    if key.endswith("_acc"):
        return f"{100 * value:.2f}%"
    if key.endswith("_ppl"):
        return f"{value:.2f}"
    if key == "lr":
        return f"{value:.4g}"
    if key == "seconds":
        return f"{value:.1f}"
    return f"{value:.4f}"


def _score(metrics: Mapping[str, Any]) -> str:
    for key, label in SCORE_LABELS.items():
        if key in metrics:
            return f"{label} {_fmt_metric(key, metrics[key])}"
    return ""


# ---- genotypes -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Geno:
    path: Path
    checked: Checked
    spec: GenotypeSpec

    @property
    def block(self) -> str:
        """The genotype declaration alone, canonically printed (no header, no space copy)."""
        decl = self.checked.file.find(self.spec.name)
        assert isinstance(decl, A.Genotype)
        return format_spec(A.SpecFile((decl,))).split("\n", 1)[1].strip() + "\n"


def _load_geno(path: Path) -> _Geno:
    checked = load(str(path))
    return _Geno(path, checked, checked.single("genotype"))


def _diff_html(text: str) -> str:
    out = []
    for line in text.rstrip("\n").splitlines():
        cls = ("meta" if line.startswith(("--- ", "+++ ")) else "del" if line.startswith("-")
               else "ins" if line.startswith("+") else "hunk" if line.startswith(("@@", "!")) else "")
        out.append(f'<span class="{cls}">{_e(line)}</span>' if cls else _e(line))
    return "<pre>" + "\n".join(out) + "</pre>"


# ---- sections ----------------------------------------------------------------------------

def _summary(run: SearchRun, final: _Geno | None) -> str:
    p = run.provenance
    last = run.metrics[-1]
    epochs_total = p.get("epochs")
    rows: list[tuple[str, str]] = [
        ("space", f"{p.get('space_name', '?')} ({p.get('space', '?')})"),
        ("skeleton", f"{p.get('network', '?')}" + (f" ({p['network_path']})" if p.get("network_path") else "")),
        ("data set", str(p.get("dataset", "?"))),
        ("order", str(p.get("order", "?"))),
        ("epochs", f"{last['epoch']}" + (f" of {epochs_total}" if epochs_total is not None else "")),
        ("status", str(p.get("status", "unknown"))),
    ]
    score = _score(last)
    if score:
        loss = _fmt_metric("valid_loss", last.get("valid_loss", float("nan")))
        rows.append(("final score", f"{score} (loss {loss})"))
    decisive = final_decisiveness(run, final.spec if final is not None else None)
    if decisive is not None:
        rows.append(("decisiveness", decisive.summary()))
    if final is not None:
        rows.append(("genotype hash", short(genotype_hash(final.spec))))
    rows.append(("run folder", str(run.path)))
    items = "\n".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    return f'<dl class="summary">\n{items}\n</dl>'


def _genotype_section(run: SearchRun, final: _Geno | None, last_epoch: tuple[int, _Geno] | None) -> str:
    parts = ['<section id="genotype">', "<h2>Found genotype</h2>"]
    if final is None:
        if last_epoch is None:
            parts.append('<p class="note">No genotype has been written yet.</p></section>')
            return "\n".join(parts)
        parts.append(f'<p class="note">The search has not finished (status '
                     f'{_e(run.provenance.get("status", "unknown"))}): this is the genotype after epoch '
                     f"{last_epoch[0]}, {_e(last_epoch[1].path.name)}.</p>")
        shown = last_epoch[1]
    else:
        shown = final
        where = f"<code>{_e(final.path)}</code>"
        if last_epoch is not None:
            same = diff_genotypes(last_epoch[1].spec, final.spec).equivalent
            where += (f", the genotype derived after the last epoch ({last_epoch[0]})" if same
                      else f"; it differs from the genotype after epoch {last_epoch[0]}")
        parts.append(f"<p>{where}:</p>")
    parts.append(f"<pre>{_e(shown.block)}</pre>")
    parts.append(f"<details><summary>the whole file, with the header <code>genolang search</code> wrote "
                 f"(provenance and final alphas)</summary><pre>{_e(shown.path.read_text(encoding='utf-8'))}</pre>"
                 "</details>")
    parts.append("</section>")
    return "\n".join(parts)


def _cells_section(geno: _Geno | None, notes: list[str]) -> str:
    parts = ['<section id="cells">', "<h2>Cell diagrams</h2>"]
    if geno is None:
        parts.append('<p class="note">No genotype to draw.</p></section>')
        return "\n".join(parts)
    cells = lower_genotype(geno.spec)
    dots = [(name, dot_document([(f"{geno.spec.name}.{name}", ir)])) for name, ir in cells.items()]
    problem = None if graphviz() is not None else "Graphviz's 'dot' program is not installed"
    figures = []
    for name, dot in dots:
        if problem is None:
            try:
                svg = render(dot, "svg")
                figures.append(f"<figure>{_img('image/svg+xml', svg, f'cell {name} of {geno.spec.name}')}"
                               f"<figcaption>cell {_e(name)}</figcaption></figure>")
                continue
            except UsageError as err:
                problem = str(err)
        figures.append(f"<figure><pre>{_e(dot)}</pre><figcaption>cell {_e(name)} as Graphviz DOT "
                       "text</figcaption></figure>")
    if problem is not None:
        note = (f"{problem}, so the cells are shown as DOT text; install Graphviz (Debian/Ubuntu: "
                "'apt-get install graphviz') and write the report again.")
        notes.append(note)
        parts.append(f'<p class="note">{_e(note)}</p>')
    parts.append('<div class="cells">' + "\n".join(figures) + "</div>")
    parts.append("</section>")
    return "\n".join(parts)


def _plots(run: SearchRun, geno: _Geno | None, notes: list[str], decisive: DecisivenessSeries) -> tuple[str, str]:
    """The alphas section and the picture of the curves."""
    from genolang.report.plots import MatplotlibMissing, render_plots

    try:
        plots = render_plots(run, geno.spec if geno is not None else None, decisive)
    except MatplotlibMissing as err:
        note = f"The plots are left out: {err}"
        notes.append(note)
        return (f'<section id="alphas"><h2>Architecture weights</h2><p class="note">{_e(note)}</p></section>',
                f'<p class="note">{_e(note)}</p>')
    figures = {p.name: f"<figure>{_img('image/png', p.png, p.title)}<figcaption>{_e(p.title)}</figcaption></figure>"
               for p in plots}
    k = decisive.ops
    alphas = ['<section id="alphas">', "<h2>Architecture weights</h2>",
              ("<p>The softmax of each edge's alphas over the candidate ops. Boxed (heatmap) and red "
              "(trajectories): the edges and ops the found genotype keeps.</p>"),
              (f"<p>Every scale is absolute and marks uniform, 1/{k} = {1 / k:.3f}: the heatmap's colours run from 0 "
              f"(blue) through white at uniform to red at the larger of 2/{k} and the largest weight, and the "
              "trajectories' axes start at 0 with a dotted line at uniform, so alphas that barely moved look pale "
              "and flat. The decisiveness in the summary (and, per epoch, beside the curves) is the mean weight of "
              f"the kept ops over uniform (1: a coin toss; {k}: every kept op holds its whole edge) and the mean "
              "entropy of the edges over log K (1: uniform; 0: one op per edge).</p>")]
    alphas += [html_ for name, html_ in figures.items() if name != "curves.png"]
    alphas.append("</section>")
    return "\n".join(alphas), figures.get("curves.png", "")


def _metrics_table(run: SearchRun) -> str:
    keys = run.metric_names()
    head = "".join(f"<th>{_e(k)}</th>" for k in keys)
    rows = []
    for m in run.metrics:
        cells = "".join(f'<td class="num">{_fmt_metric(k, m[k]) if k in m else ""}</td>' for k in keys)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def _epochs_section(run: SearchRun, epochs: list[tuple[int, _Geno]], decisive: DecisivenessSeries) -> str:
    parts = ['<section id="epochs">', "<h2>Genotype after each epoch</h2>"]
    if not epochs:
        parts.append('<p class="note">The run folder holds no epoch-NNN.geno files.</p></section>')
        return "\n".join(parts)
    parts.append("<p>The genotype derived from the alphas after every epoch, and how it differs from the one "
                 "before (a semantic diff: renumbered nodes and reordered terms are no change).</p>")
    metrics = {int(m["epoch"]): m for m in run.metrics}
    kept = dict(zip(decisive.kept_epochs, decisive.kept_over_uniform))
    entropy = dict(zip(decisive.epochs, decisive.entropy))
    previous: tuple[int, _Geno] | None = None
    for epoch, geno in epochs:
        m = metrics.get(epoch, {})
        facts = [f"<code>{_e(geno.path.name)}</code>", f"hash {short(genotype_hash(geno.spec))}"]
        if _score(m):
            facts.append(_e(_score(m)))
        if epoch in kept:
            facts.append(f"kept ops {kept[epoch]:.2f}x uniform, edge entropy {entropy[epoch]:.4f}")
        parts.append(f'<article id="epoch-{epoch}">')
        parts.append(f"<h3>Epoch {epoch}</h3>")
        parts.append(f'<p class="meta">{"; ".join(facts)}</p>')
        if previous is None:
            parts.append(f"<pre>{_e(geno.block)}</pre>")
        else:
            diff = diff_genotypes(previous[1].spec, geno.spec)
            if diff.equivalent:
                how = "; ".join(f"cell {c.name}: {c.how_equivalent()}" for c in diff.cells if c.status == "equivalent")
                parts.append(f'<p class="same">No change since epoch {previous[0]}'
                             + (f" (the same architecture written differently: {_e(how)})" if how else "") + ".</p>")
            else:
                changed = sum(1 for c in diff.cells if not c.same)
                parts.append(f"<p>Changed since epoch {previous[0]}: {changed} cell{'s' if changed != 1 else ''}.</p>")
                parts.append(_diff_html(diff.render(f"epoch {previous[0]}", f"epoch {epoch}")))
                parts.append(f"<details><summary>genotype after epoch {epoch}</summary>"
                             f"<pre>{_e(geno.block)}</pre></details>")
        parts.append("</article>")
        previous = (epoch, geno)
    parts.append("</section>")
    return "\n".join(parts)


def _provenance_section(run: SearchRun) -> str:
    rows = []
    for key in sorted(run.provenance):
        value = run.provenance[key]
        if isinstance(value, (dict, list)):
            shown = f"<pre>{_e(json.dumps(value, indent=2, sort_keys=True))}</pre>"
        else:
            shown = f"<code>{_e(json.dumps(value) if not isinstance(value, str) else value)}</code>"
        rows.append(f"<tr><th>{_e(key)}</th><td>{shown}</td></tr>")
    files = sorted(p for p in run.path.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix != ".html")
    listing = "".join(f"<tr><td><code>{_e(p.name)}</code></td><td class=\"num\">{p.stat().st_size:,}</td></tr>"
                      for p in files)
    return "\n".join([
        '<section id="provenance">', "<h2>Provenance</h2>",
        f"<p>From <code>{_e(run.path / 'run.json')}</code>:</p>",
        "<table>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>",
        "<h3>Files in the run folder</h3>",
        f"<table>\n<thead><tr><th>file</th><th>bytes</th></tr></thead>\n<tbody>\n{listing}\n</tbody>\n</table>",
        "</section>"])


def _nav(entries: Iterable[tuple[str, str]]) -> str:
    items = "".join(f'<li><a href="#{anchor}">{_e(label)}</a></li>' for anchor, label in entries)
    return f"<nav><ul>{items}</ul></nav>"


# ---- the page ----------------------------------------------------------------------------

def build_report(run: SearchRun) -> Report:
    """The HTML page of a search run."""
    notes: list[str] = []
    epochs = [(e, _load_geno(p)) for e, p in run.epoch_files]
    final = _load_geno(run.genotype_file) if run.genotype_file is not None else None
    last_epoch = epochs[-1] if epochs else None
    shown = final if final is not None else (last_epoch[1] if last_epoch else None)
    name = shown.spec.name if shown is not None else run.path.name
    title = f"genolang search report: {name} ({run.title})"
    decisive = decisiveness_series(run, {e: g.spec for e, g in epochs})
    alphas, curves = _plots(run, shown, notes, decisive)
    body = [
        "<header>", f"<h1>{_e(title)}</h1>", _summary(run, shown), "</header>",
        _nav([("genotype", "Found genotype"), ("cells", "Cell diagrams"), ("alphas", "Architecture weights"),
              ("curves", "Training curves"), ("epochs", "Genotype after each epoch"), ("provenance", "Provenance")]),
        "<main>",
        _genotype_section(run, final, last_epoch),
        _cells_section(shown, notes),
        alphas,
        '<section id="curves">', "<h2>Training curves</h2>", curves,
        f"<p>Per epoch, from <code>{_e(METRICS)}</code>:</p>", _metrics_table(run), "</section>",
        _epochs_section(run, epochs, decisive),
        _provenance_section(run),
        "</main>",
        f"<footer>Written by genolang {_e(__version__)} (<code>genolang report</code>).</footer>",
    ]
    page = "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="genolang report">',
        f"<title>{_e(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        *body,
        "</body>",
        "</html>",
        "",
    ])
    return Report(page, notes)


def write_report(run_dir: str | os.PathLike[str], output: str | os.PathLike[str] | None = None) -> tuple[Path, Report]:
    """Read ``run_dir``, build its report and write it atomically to ``output``
    (default ``run_dir/report.html``)."""
    run = load_run(run_dir)
    target = Path(output) if output is not None else run.path / "report.html"
    if target.is_dir():
        raise UsageError(f"{target}: a folder; -o names the HTML file to write, such as report.html")
    report = build_report(run)
    write_text(target, report.html)
    return target, report
