"""A search run folder, read without torch: what ``genolang search --run-dir`` writes.

    run.json         provenance: space, skeleton, data set, recipe, status
    metrics.jsonl    one JSON object per finished epoch: epoch, train_loss, train_acc,
                     valid_loss, valid_acc (recurrent: train_ppl, valid_ppl), lr, seconds
    alphas.jsonl     per epoch {"epoch": e, "cells": {cell: {"edges": ["n2<-c0", ...],
                     "ops": [...], "softmax": [[...], ...]}}}
    epoch-NNN.geno   the genotype derived after each epoch
    genotype.geno    the found genotype (when the search finished)

Every problem with these files is an ``InputError`` that names the file (and line) and
says what was expected (a path that is no folder at all is a ``UsageError``)."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genolang.errors import GenolangError, InputError, UsageError
from genolang.fsio import read_regular
from genolang.ir.alphas import CellAlphas
from genolang.ir.decisive import Decisiveness, decisiveness, edge_entropy
from genolang.spec.checked import GenotypeSpec

RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
ALPHAS = "alphas.jsonl"
GENOTYPE = "genotype.geno"
EPOCH_FILE = re.compile(r"^epoch-(\d+)\.geno$")
LAYOUT = (f"a search run folder, as 'genolang search --run-dir DIR' writes it ({RUN_JSON}, {METRICS}, {ALPHAS}, "
          "epoch-NNN.geno)")
METRIC_ORDER = ("epoch", "train_loss", "train_acc", "train_ppl", "valid_loss", "valid_acc", "valid_ppl", "lr",
                "seconds")


@dataclass(frozen=True)
class EpochAlphas:
    """The softmax alphas of every cell type after one epoch."""

    epoch: int
    cells: Mapping[str, CellAlphas]


@dataclass(frozen=True)
class Trajectory:
    """One cell type's alphas over the epochs: ``weights[t][edge][op]`` after ``epochs[t]``."""

    cell: str
    epochs: tuple[int, ...]
    edges: tuple[str, ...]
    ops: tuple[str, ...]
    weights: tuple[tuple[tuple[float, ...], ...], ...]
    allowed: tuple[tuple[str, ...], ...] = ()  # per edge, the ops it chooses from (empty: all)

    def series(self, edge: int, op: int) -> list[float]:
        """The weight of ``ops[op]`` on ``edges[edge]`` at every recorded epoch."""
        return [w[edge][op] for w in self.weights]

    def edge_ops(self, edge: int) -> tuple[str, ...]:
        """The ops ``edges[edge]`` chooses from."""
        return self.allowed[edge] if self.allowed else self.ops


@dataclass(frozen=True)
class SearchRun:
    """The files of one search run, checked."""

    path: Path
    provenance: Mapping[str, Any]
    metrics: tuple[Mapping[str, float], ...]
    alphas: tuple[EpochAlphas, ...]
    epoch_files: tuple[tuple[int, Path], ...]
    genotype_file: Path | None

    @property
    def kind(self) -> str:
        """'rnn' for a recurrent search (perplexities), else 'cnn'."""
        recipe = self.provenance.get("recipe")
        if isinstance(recipe, Mapping) and recipe.get("kind") in ("cnn", "rnn"):
            return str(recipe["kind"])
        return "rnn" if any("valid_ppl" in m or "train_ppl" in m for m in self.metrics) else "cnn"

    @property
    def final_alphas(self) -> Mapping[str, CellAlphas]:
        return self.alphas[-1].cells

    @property
    def finished(self) -> bool:
        return self.provenance.get("status") == "done"

    @property
    def title(self) -> str:
        """``darts_cnn on digits`` or the folder name."""
        space = self.provenance.get("space_name") or self.provenance.get("space")
        dataset = self.provenance.get("dataset")
        if space and dataset:
            return f"{space} on {dataset}"
        return self.path.name

    def metric_names(self) -> list[str]:
        """The metrics recorded, known ones first in a fixed order."""
        seen: list[str] = []
        for m in self.metrics:
            seen += [k for k in m if k not in seen]
        return [k for k in METRIC_ORDER if k in seen] + sorted(k for k in seen if k not in METRIC_ORDER)

    def trajectory(self, cell: str) -> Trajectory:
        """The alphas of ``cell`` over the epochs that recorded it."""
        records = [(r.epoch, r.cells[cell]) for r in self.alphas if cell in r.cells]
        if not records:
            raise InputError(f"{self.path / ALPHAS}: no alphas of cell '{cell}'; cells: "
                             f"{', '.join(self.final_alphas)}")
        _, last = records[-1]  # read_alphas checked that every epoch has the same edges and ops
        return Trajectory(cell, tuple(e for e, _ in records), last.edge_names, last.ops,
                          tuple(t.weights for _, t in records), last.allowed)


# ---- reading ----------------------------------------------------------------------------

def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


MAX_RUN_FILE = 512 << 20  # a run's logs: far more than a search of thousands of epochs writes


def _read_text(path: Path, what: str) -> str:
    if not path.exists() and not path.is_symlink():
        raise InputError(f"{path}: missing; expected {what} (is {path.parent} {LAYOUT}?)")
    try:
        data = read_regular(path, MAX_RUN_FILE)
    except UsageError as err:
        raise InputError(f"{err}; expected {what}") from None
    if len(data) > MAX_RUN_FILE:
        raise InputError(f"{path}: larger than {MAX_RUN_FILE >> 20} MiB; expected {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: cannot be read as UTF-8 text ({err.reason} at byte {err.start}); "
                         f"expected {what}") from None


def _jsonl(path: Path, what: str) -> list[tuple[int, Any]]:
    """(line number, value) of every non-blank line."""
    out = []
    for number, line in enumerate(_read_text(path, what).splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((number, json.loads(line)))
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{number}: not JSON ({err.msg} at column {err.colno}); expected {what}") from None
    if not out:
        raise InputError(f"{path}: empty; expected {what} (has an epoch of the search finished?)")
    return out


def _epoch(value: Any, where: str, what: str) -> int:
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected a JSON object ({what}), not {type(value).__name__}")
    epoch = value.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise InputError(f"{where}: expected an 'epoch' that is a whole number >= 0, not {epoch!r}")
    return epoch


def _last_per_epoch(records: list[tuple[int, Any]]) -> list[Any]:
    """Records sorted by epoch; where a resumed run wrote an epoch twice, the last one."""
    by_epoch: dict[int, Any] = {}
    for epoch, value in records:
        by_epoch[epoch] = value
    return [by_epoch[e] for e in sorted(by_epoch)]


def read_provenance(path: Path) -> dict[str, Any]:
    """run.json as a dict."""
    what = "the run's provenance as one JSON object"
    text = _read_text(path, what)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: not JSON ({err.msg}); expected {what}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected {what}, not a JSON {type(data).__name__}")
    return data


def read_metrics(path: Path) -> tuple[dict[str, float], ...]:
    """metrics.jsonl: one object of numbers per epoch, sorted by epoch."""
    what = "one JSON object of numbers per epoch (epoch, train_loss, valid_loss, ...)"
    records = []
    for number, value in _jsonl(path, what):
        where = f"{path}:{number}"
        epoch = _epoch(value, where, what)
        for key, v in value.items():
            if v is not None and not _number(v):
                raise InputError(f"{where}: '{key}' should be a number, not {v!r}")
        records.append((epoch, {k: (math.nan if v is None else float(v)) if k != "epoch" else epoch
                                for k, v in value.items()}))
    return tuple(_last_per_epoch(records))


def _cell_alphas(cell: Any, table: Any, where: str) -> CellAlphas:
    shape = 'expected {"edges": ["n2<-c0", ...], "ops": [...], "softmax": [[...], ...]}'
    if not isinstance(cell, str) or not isinstance(table, dict):
        raise InputError(f"{where}: cell '{cell}': {shape}")
    edges, ops, rows = table.get("edges"), table.get("ops"), table.get("softmax")
    if not (isinstance(edges, list) and all(isinstance(e, str) and "<-" in e for e in edges)):
        raise InputError(f"{where}: cell '{cell}': 'edges' should be a list of names such as \"n2<-c0\"; {shape}")
    if not (isinstance(ops, list) and ops and all(isinstance(o, str) for o in ops)):
        raise InputError(f"{where}: cell '{cell}': 'ops' should be a list of op names; {shape}")
    if not (isinstance(rows, list) and all(isinstance(r, list) and all(_number(x) for x in r) for r in rows)):
        raise InputError(f"{where}: cell '{cell}': 'softmax' should be a list of rows of numbers; {shape}")
    allowed = table.get("allowed")
    if allowed is not None and not (isinstance(allowed, list) and all(
            isinstance(r, list) and all(isinstance(o, str) for o in r) for r in allowed)):
        raise InputError(f"{where}: cell '{cell}': 'allowed' should be a list, per edge, of the op names it "
                         f"chooses from; {shape}")
    try:
        return CellAlphas.from_json(cell, table)
    except ValueError as err:
        raise InputError(f"{where}: {err} (one row per edge, one column per op)") from None


def read_alphas(path: Path) -> tuple[EpochAlphas, ...]:
    """alphas.jsonl: every cell's softmax alphas per epoch, sorted by epoch."""
    what = 'one JSON object per epoch: {"epoch": E, "cells": {CELL: {"edges": [...], "ops": [...], "softmax": [...]}}}'
    records = []
    first: EpochAlphas | None = None
    for number, value in _jsonl(path, what):
        where = f"{path}:{number}"
        epoch = _epoch(value, where, what)
        cells = value.get("cells")
        if not isinstance(cells, dict) or not cells:
            raise InputError(f"{where}: expected 'cells', an object with the alphas of each cell type")
        record = EpochAlphas(epoch, {c: _cell_alphas(c, t, where) for c, t in cells.items()})
        if first is None:
            first = record
        elif list(record.cells) != list(first.cells):
            raise InputError(f"{where}: cells {', '.join(record.cells)} at epoch {epoch}, but "
                             f"{', '.join(first.cells)} at epoch {first.epoch}; expected one space for the whole run")
        else:
            for name, table in record.cells.items():
                then = first.cells[name]
                if table.edge_names != then.edge_names or table.ops != then.ops or table.allowed != then.allowed:
                    raise InputError(f"{where}: cell '{name}' has other edges or ops at epoch {epoch} than at epoch "
                                     f"{first.epoch}; expected one space for the whole run")
        records.append((epoch, record))
    return tuple(_last_per_epoch(records))


def load_run(path: str | os.PathLike[str]) -> SearchRun:
    """Read and check a search run folder."""
    root = Path(path)
    if not root.exists():
        raise UsageError(f"{root}: no such folder; expected {LAYOUT}")
    if not root.is_dir():
        raise UsageError(f"{root}: a file, not a folder; expected {LAYOUT}")
    provenance = read_provenance(root / RUN_JSON)
    metrics = read_metrics(root / METRICS)
    alphas = read_alphas(root / ALPHAS)
    epochs = sorted((int(m.group(1)), p) for p in root.iterdir()
                    if (m := EPOCH_FILE.match(p.name)) and p.is_file())
    final: Path | None
    if (root / GENOTYPE).is_file():
        final = root / GENOTYPE
    else:
        out = provenance.get("out")
        final = Path(out) if isinstance(out, str) and Path(out).is_file() else None
    return SearchRun(root, provenance, metrics, alphas, tuple(epochs), final)


def load_genotype(path: str | os.PathLike[str]) -> GenotypeSpec:
    """The one genotype of a spec file (a run's epoch-NNN.geno or genotype.geno)."""
    from genolang.spec.check import load

    return load(str(path)).single("genotype")


# ---- decisiveness ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DecisivenessSeries:
    """How far the alphas had moved from uniform after each epoch (``genolang.ir.
    decisive``): the edge entropy of every recorded epoch, and the kept ops' weight over
    uniform of the epochs whose genotype file (epoch-NNN.geno) could be read."""

    ops: int
    epochs: tuple[int, ...]
    entropy: tuple[float, ...]
    kept_epochs: tuple[int, ...]
    kept_over_uniform: tuple[float, ...]


def decisiveness_series(run: SearchRun, genotypes: Mapping[int, GenotypeSpec] | None = None) -> DecisivenessSeries:
    """The decisiveness of every epoch of ``run``; ``genotypes`` (epoch -> genotype)
    spares reading the epoch files again when the caller has them."""
    if genotypes is None:
        loaded: dict[int, GenotypeSpec] = {}
        for epoch, path in run.epoch_files:
            try:
                loaded[epoch] = load_genotype(path)
            except GenolangError:
                continue  # a broken epoch file: that epoch shows no kept-ops figure
        genotypes = loaded
    kept_epochs, kept = [], []
    for record in run.alphas:
        geno = genotypes.get(record.epoch)
        if geno is None:
            continue
        try:
            kept.append(decisiveness(record.cells, geno).kept_over_uniform)
        except ValueError:
            continue  # the genotype is not of these alphas' space
        kept_epochs.append(record.epoch)
    ops = max(len(t.ops) for t in run.final_alphas.values())
    return DecisivenessSeries(ops, tuple(r.epoch for r in run.alphas), tuple(edge_entropy(r.cells) for r in run.alphas),
                              tuple(kept_epochs), tuple(kept))


def final_decisiveness(run: SearchRun, genotype: GenotypeSpec | None) -> Decisiveness | None:
    """The decisiveness of the run's last alphas and ``genotype`` (None when they do not
    belong together or there is no genotype)."""
    if genotype is None:
        return None
    try:
        return decisiveness(run.final_alphas, genotype)
    except ValueError:
        return None
