"""Plots of a search run as PNGs (matplotlib, Agg; no torch, no pyplot state):

* ``alphas.png``: a heatmap of the final softmax alphas per cell type (rows: edges such
  as ``n3<-c1``, columns: ops, every square annotated); the ops the found genotype kept
  are boxed;
* ``trajectory-CELL.png``: each edge's op weights over the epochs, a small panel per
  edge, a line per op, one legend;
* ``curves.png``: loss, accuracy (perplexity for recurrent runs) and learning rate
  per epoch, training and validation, and how decided the alphas were after each epoch.

Every scale of softmax weights is absolute and shows uniform (1/K for K ops): the
heatmap's colours run from 0 through white at 1/K to the larger of 2/K and the largest
weight, and the trajectories' axes start at 0 with a line at 1/K. A search whose alphas
barely moved looks pale, as it should; the numbers on the squares tell the weights
apart."""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genolang.errors import InputError, MissingTool, UsageError
from genolang.fsio import write_bytes
from genolang.report.run import DecisivenessSeries, SearchRun, decisiveness_series
from genolang.spec.checked import GenotypeSpec

INSTALL_HINT = "pip install matplotlib (or pip install 'genolang[plot]')"
DPI = 100
KEPT_COLOR = "#d62728"


@dataclass(frozen=True)
class Plot:
    """One rendered picture: a file name, a caption and the PNG bytes."""

    name: str
    title: str
    png: bytes


class MatplotlibMissing(MissingTool):
    """matplotlib is not installed."""


def _matplotlib() -> Any:
    """The Figure class of matplotlib (no pyplot, so no backend or global state)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MatplotlibMissing(f"plots need matplotlib, which is not installed: {INSTALL_HINT}") from None
    return Figure


def kept_ops(genotype: GenotypeSpec | None) -> dict[str, dict[str, set[str]]]:
    """cell -> edge name (``n3<-c1``) -> the ops the genotype keeps on it."""
    out: dict[str, dict[str, set[str]]] = {}
    if genotype is None:
        return out
    for cell in genotype.cells:
        table = out.setdefault(cell.name, {})
        for node in cell.nodes:
            for op, src in node.edges:
                table.setdefault(f"{node.name}<-{src}", set()).add(op)
    return out


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _file_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "cell"


def _op_colors(ops: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(ops) <= 10 else "tab20"]
    colors: dict[str, Any] = {}
    i = 0
    for op in ops:
        if op == "none":
            colors[op] = "0.55"
        else:
            colors[op] = cmap(i % cmap.N)
            i += 1
    return colors


def _digits(spread: float) -> int:
    """Decimals that tell the weights of a table apart: 3, or up to 5 for a narrow spread
    (early in a search every weight is near 1/ops)."""
    if spread <= 0:
        return 3
    return max(3, min(5, math.ceil(-math.log10(spread)) + 1))


def alpha_heatmap(run: SearchRun, genotype: GenotypeSpec | None = None) -> Plot:
    """The final softmax alphas of every cell type, one annotated heatmap each."""
    epoch = run.alphas[-1].epoch
    return Plot("alphas.png", f"Softmax alphas after epoch {epoch}", _png(heatmap_figure(run, genotype)))


def heatmap_figure(run: SearchRun, genotype: GenotypeSpec | None = None) -> Any:
    """The figure of ``alpha_heatmap`` (ops outside an edge's own set shown as '-')."""
    Figure = _matplotlib()
    from matplotlib.patches import Rectangle

    tables = list(run.final_alphas.values())
    kept = kept_ops(genotype)
    n_ops = max(len(t.ops) for t in tables)
    n_edges = max(len(t.edges) for t in tables)
    width = len(tables) * (1.6 + 0.62 * n_ops) + 0.8
    height = 2.2 + 0.3 * n_edges
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, len(tables), squeeze=False)[0]
    epoch = run.alphas[-1].epoch
    lows, highs = [], []
    top = max(w for t in tables for row in t.weights for w in row)  # one scale for every cell
    for ax, table in zip(axes, tables):
        # an op outside its edge's own set is left blank (NaN), not drawn as a weight of 0
        data = [[w if op in table.row_ops(r) else math.nan for op, w in zip(table.ops, row)]
                for r, row in enumerate(table.weights)]
        flat = [x for row in data for x in row if not math.isnan(x)]
        lo, hi = min(flat), max(flat)
        lows.append(lo)
        highs.append(hi)
        norm, uniform = weight_norm(len(table.ops), top)
        image = ax.imshow(data, cmap=WEIGHT_CMAP, norm=norm, aspect="auto")
        ax.set_xticks(range(len(table.ops)), labels=list(table.ops), rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(table.edges)), labels=list(table.edge_names), fontsize=8)
        ax.set_title(f"cell {table.cell}", fontsize=10)
        ax.set_xlabel(f"weights {lo:.3f} to {hi:.3f} (uniform {uniform:.3f})", fontsize=8)
        digits = _digits(hi - lo)
        for r, row in enumerate(data):
            for c, w in enumerate(row):
                if math.isnan(w):
                    ax.text(c, r, "-", ha="center", va="center", fontsize=6.5, color="gray")
                    continue
                ax.text(c, r, f"{w:.{digits}f}", ha="center", va="center", fontsize=6.5,
                        color="white" if abs(float(norm(w)) - 0.5) > 0.35 else "black")
        cell_kept = kept.get(table.cell, {})
        for r, edge in enumerate(table.edge_names):
            for op in cell_kept.get(edge, ()):
                if op in table.ops:
                    c = table.ops.index(op)
                    ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor=KEPT_COLOR, lw=2))
        bar = fig.colorbar(image, ax=ax, shrink=0.8, label="softmax weight (absolute)")
        bar.set_ticks(sorted({0.0, uniform, float(norm.vmax)}))
        bar.set_ticklabels([f"{t:.3g}" if t != uniform else f"uniform {t:.3g}" for t in sorted({0.0, uniform,
                                                                                             float(norm.vmax)})])
    note = "; boxed: kept in the found genotype" if kept else ""
    k = max(len(t.ops) for t in tables)
    fig.suptitle(f"{run.title}: softmax alphas after epoch {epoch} (all weights {min(lows):.3f} to "
                 f"{max(highs):.3f}; uniform 1/{k} = {1 / k:.3f}; white = uniform){note}", fontsize=10)
    return fig


WEIGHT_CMAP = "RdBu_r"  # blue below uniform, white at uniform, red above


def weight_norm(ops: int, highest: float) -> tuple[Any, float]:
    """The colour scale of softmax weights of ``ops`` ops: absolute, 0 to the larger of
    2/ops and ``highest``, centred (white) at uniform 1/ops; and that uniform weight."""
    from matplotlib.colors import TwoSlopeNorm

    uniform = 1.0 / ops
    return TwoSlopeNorm(vmin=0.0, vcenter=uniform, vmax=max(2 * uniform, highest)), uniform


def alpha_trajectory(run: SearchRun, cell: str, genotype: GenotypeSpec | None = None) -> Plot:
    """Every edge's op weights of ``cell`` over the epochs: a panel per edge."""
    return Plot(f"trajectory-{_file_part(cell)}.png", f"Cell {cell}: op weights per edge over the epochs",
                _png(trajectory_figure(run, cell, genotype)))


def trajectory_figure(run: SearchRun, cell: str, genotype: GenotypeSpec | None = None) -> Any:
    """The figure of ``alpha_trajectory``."""
    Figure = _matplotlib()
    from matplotlib.ticker import MaxNLocator

    traj = run.trajectory(cell)
    kept = kept_ops(genotype).get(cell, {})
    n = len(traj.edges)
    cols = min(n, 6 if n > 20 else 5 if n > 8 else 4)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(2.6 * cols, 1.9 * rows + 1.0), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    colors = _op_colors(traj.ops)
    marker = "o" if len(traj.epochs) <= 25 else None
    handles: dict[str, Any] = {}
    uniform = 1.0 / len(traj.ops)
    top = max([2 * uniform] + [w for epoch in traj.weights for row in epoch for w in row])
    for i, edge in enumerate(traj.edges):
        ax = axes[i // cols][i % cols]
        ax.axhline(1.0 / len(traj.edge_ops(i)), color="0.35", lw=0.8, linestyle=":", zorder=0)  # this edge's uniform
        for j, op in enumerate(traj.ops):
            if op not in traj.edge_ops(i):
                continue
            (line,) = ax.plot(traj.epochs, traj.series(i, j), color=colors[op], lw=1.2, marker=marker,
                              markersize=2.5, linestyle="--" if op == "none" else "-", label=op)
            handles.setdefault(op, line)
        chosen = sorted(kept.get(edge, ()))
        ax.set_title(edge + (f"  [{', '.join(chosen)}]" if chosen else ""), fontsize=8,
                     color=KEPT_COLOR if chosen else "black")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    axes[0][0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set_ylim(0.0, top * 1.05)  # shared by every panel: absolute, from 0
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize=8)
    for row in axes:
        row[0].set_ylabel("softmax weight", fontsize=8)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=min(len(handles), 8),
               fontsize=8, frameon=False)
    note = " (in red: edges the found genotype keeps, with their ops)" if kept else ""
    own = len({len(traj.edge_ops(i)) for i in range(n)}) > 1 or len(traj.edge_ops(0)) != len(traj.ops)
    dotted = "uniform over each edge's own ops" if own else f"uniform 1/{len(traj.ops)} = {uniform:.3f}"
    fig.suptitle(f"{run.title}: cell {cell}, op weights per edge over the epochs; dotted: {dotted}{note}",
                 fontsize=10)
    return fig


def _series(metrics: Sequence[Mapping[str, float]], key: str, scale: float = 1.0) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for m in metrics:
        if key in m:
            xs.append(int(m["epoch"]))
            ys.append(float(m[key]) * scale)
    return xs, ys


def curves(run: SearchRun, decisive: DecisivenessSeries | None = None) -> Plot:
    """Loss, accuracy (or perplexity), learning rate and decisiveness per epoch."""
    score = "perplexity" if run.kind == "rnn" else "accuracy"
    return Plot("curves.png", f"Loss, {score}, learning rate and decisiveness per epoch",
                _png(curves_figure(run, decisive)))


def curves_figure(run: SearchRun, decisive: DecisivenessSeries | None = None) -> Any:
    """The figure of ``curves``; ``decisive`` adds the panels of the kept ops' weight
    over uniform and the edge entropy (each with its uniform value marked)."""
    Figure = _matplotlib()
    from matplotlib.ticker import MaxNLocator

    recurrent = run.kind == "rnn"
    score, label = ("ppl", "perplexity") if recurrent else ("acc", "accuracy (%)")
    panels = [("loss", [("train_loss", "train"), ("valid_loss", "valid")], 1.0),
              (label, [(f"train_{score}", "train"), (f"valid_{score}", "valid")], 1.0 if recurrent else 100.0),
              ("learning rate", [("lr", "lr")], 1.0)]
    names = set(run.metric_names())
    panels = [p for p in panels if any(key in names for key, _ in p[1])]
    if not panels:
        raise InputError(f"{run.path / 'metrics.jsonl'}: no train_loss, valid_loss, accuracy, perplexity or lr "
                         "to plot")
    cols = max(len(panels), 2)
    rows = 1 if decisive is None else 2  # the decisiveness panels in a second row
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows), layout="constrained")
    grid = fig.subplots(rows, cols, squeeze=False)
    axes = grid[0]
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    marker = "o" if len(run.metrics) <= 40 else None
    if decisive is not None:
        _decisiveness_panels(grid[1][0], grid[1][1], decisive, marker)
        for ax in grid[1][2:]:
            ax.set_visible(False)
    for ax, (ylabel, series, scale) in zip(axes, panels):
        for key, name in series:
            xs, ys = _series(run.metrics, key, scale)
            if xs:
                ax.plot(xs, ys, marker=marker, markersize=3, label=name,
                        linestyle="--" if name == "valid" else "-")
        if ylabel == "perplexity" and all(y > 0 for key, _ in series for y in _series(run.metrics, key)[1]):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    what = "training and validation" if decisive is None else "training, validation and decisiveness"
    fig.suptitle(f"{run.title}: {what} per epoch", fontsize=10)
    return fig


def _decisiveness_panels(kept_ax: Any, entropy_ax: Any, d: DecisivenessSeries, marker: str | None) -> None:
    """Kept ops' weight over uniform (1 = coin toss, K = certain) and the mean
    normalised edge entropy (1 = uniform, 0 = one op per edge), on absolute axes."""
    from matplotlib.ticker import MaxNLocator

    kept_ax.axhline(1.0, color="0.35", lw=0.8, linestyle=":", label="uniform (1)")
    if d.kept_epochs:
        kept_ax.plot(d.kept_epochs, d.kept_over_uniform, marker=marker, markersize=3, color=KEPT_COLOR,
                     label="kept ops")
    top = max([2.0, *d.kept_over_uniform])
    kept_ax.set_ylim(0.0, min(d.ops * 1.02, top * 1.1))
    kept_ax.set_ylabel(f"kept ops' weight / uniform (max {d.ops})")
    entropy_ax.axhline(1.0, color="0.35", lw=0.8, linestyle=":", label="uniform (1)")
    entropy_ax.plot(d.epochs, d.entropy, marker=marker, markersize=3, label="edges")
    entropy_ax.set_ylim(0.0, 1.05)
    entropy_ax.set_ylabel("edge entropy / log K")
    for ax in (kept_ax, entropy_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def render_plots(run: SearchRun, genotype: GenotypeSpec | None = None,
                 decisive: DecisivenessSeries | None = None) -> list[Plot]:
    """Every plot of a run: the alpha heatmap, a trajectory per cell type, the curves
    (with ``decisive``, or the decisiveness read from the run's epoch files)."""
    _matplotlib()
    plots = [alpha_heatmap(run, genotype)]
    plots += [alpha_trajectory(run, cell, genotype) for cell in run.final_alphas]
    plots.append(curves(run, decisive if decisive is not None else decisiveness_series(run)))
    return plots


def write_plots(run: SearchRun, outdir: str | os.PathLike[str], genotype: GenotypeSpec | None = None) -> list[Path]:
    """Write every plot of ``run`` into ``outdir`` (atomically); returns the paths."""
    folder = Path(outdir)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: a file, not a folder; -o names the folder the PNGs go to")
    written = []
    for plot in render_plots(run, genotype):
        path = folder / plot.name
        write_bytes(path, plot.png)
        written.append(path)
    return written
