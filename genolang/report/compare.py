"""The picture of a comparison (``genolang compare``): every genotype's per-seed scores as
points, their mean and standard deviation as a bar, the best first, and a mark on the
genotypes the best beats beyond the seed noise. Read from ``compare.json`` (no torch;
matplotlib, as ``genolang.report.plots``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genolang.fsio import write_bytes
from genolang.report.plots import KEPT_COLOR, Plot, _matplotlib, _png

PLOT_NAME = "compare.png"


def compare_figure(data: Mapping[str, Any]) -> Any:
    """The figure of a compare.json's results."""
    Figure = _matplotlib()
    rows = list(data["rows"])
    accuracy = data.get("metric") == "test_acc"
    scale = 100.0 if accuracy else 1.0
    beaten = {t["other"] for t in data.get("tests", []) if t.get("significant")}
    fig = Figure(figsize=(max(6.5, 0.75 * len(rows) + 2.5), 4.8), layout="constrained")
    ax = fig.subplots()
    for i, row in enumerate(rows):
        scores = [s * scale for s in row["scores"]]
        n = len(scores)
        offsets = [(k - (n - 1) / 2) * 0.08 for k in range(n)]
        color = KEPT_COLOR if i == 0 else "#1f77b4"
        ax.scatter([i + o for o in offsets], scores, s=22, color=color, zorder=3,
                   label="one seed" if i == 0 else None)
        ax.errorbar([i + 0.3], [row["mean"] * scale], yerr=[row["std"] * scale], fmt="_", markersize=14,
                    color="black", capsize=3, zorder=2, label="mean ± std" if i == 0 else None)
        if row["label"] in beaten:
            ax.annotate("*", (i, max(scores)), textcoords="offset points", xytext=(0, 4), ha="center",
                        fontsize=14, color="black")
    ax.set_xticks(range(len(rows)), labels=[r["label"] for r in rows], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (%)" if accuracy else "test perplexity")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    seeds = ", ".join(str(s) for s in data.get("seeds", []))
    fig.suptitle(f"{data.get('dataset')} on {data.get('network')}, seeds {seeds}: one point per seed\n"
                 f"red: the best ({rows[0]['label']}); *: the best is better beyond the seed noise\n"
                 f"{data.get('test')}, level {data.get('alpha')}", fontsize=8)
    return fig


def compare_plot(data: Mapping[str, Any]) -> Plot:
    return Plot(PLOT_NAME, "Per-seed results of the comparison", _png(compare_figure(data)))


def write_compare_plot(data: Mapping[str, Any], folder: str | os.PathLike[str]) -> Path:
    """Write ``compare.png`` into ``folder`` (atomically); returns its path."""
    path = Path(folder) / PLOT_NAME
    write_bytes(path, compare_plot(data).png)
    return path
