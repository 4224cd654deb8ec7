"""The state of one search run: its specs and recipe, its run folder (checkpoint,
per-epoch genotypes, metrics and alpha logs, ``run.json``) and the checks before a
resume. The image and text drivers (``search.images``, ``search.text``) share it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from genolang import __version__
from genolang.errors import GenolangError, InputError, SpecError, UsageError, plural
from genolang.fsio import check_destination, write_text
from genolang.ir.alphas import CellAlphas
from genolang.ir.decisive import Decisiveness, decisiveness
from genolang.ir.derive import changed_edges, derive_genotype
from genolang.run import dist
from genolang.run.folder import RUN_JSON, RunDir
from genolang.run.progress import Progress, ProgressFn
from genolang.run.state import claim, differences, refuse_changes, restore_rng, rng_section, save_run_state
from genolang.search.architect import Architect
from genolang.search.method import MethodRun, SelectionContext
from genolang.search.output import (
    HASH_SLOT,
    GenotypeFile,
    declaration,
    display_path,
    genotype_name,
    header,
    sha256_file,
)
from genolang.search.recipe import Recipe, SearchConfig, resolve_recipe
from genolang.search.recipe_spec import RECIPE, recipe_file
from genolang.spec.check import load_text
from genolang.spec.checked import GenotypeSpec, NetworkSpec, SpaceSpec, same_content
from genolang.spec.lookup import load_named_source
from genolang.tensorio import read_state
from genolang.vcs import genotype_hash

# 2: the supernet's stem BN is affine (as the paper's code); /1 checkpoints lack its
# weight and bias, and resuming them would mix two supernets: refused (see SearchRun)
FORMAT = "genolang-search/2"
OLD_FORMATS = {"genolang-search/1": "the supernet's stem batch norm had no affine parameters then (the paper's "
                                    "code has them)"}
RESUME_FIX = ("start the search again in a new --run-dir (its epoch-NNN.geno files stay as they are) or restore "
              "the file from a backup")
ALPHAS_LOG = "alphas.jsonl"
SELECTION_LOG = "selection.jsonl"  # a selection's decisions (DARTS-PT) or ranked samples (random search)
GENOTYPE = "genotype.geno"


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """What a finished search produced: the genotype, its file's text, the declaration
    alone (as the CLI prints it), where it was written, the last epoch's metrics and how
    far its alphas moved from uniform."""

    genotype: GenotypeSpec
    text: str
    declaration: str
    out: Path | None
    run_dir: Path
    metrics: Mapping[str, Any]
    alphas: Mapping[str, CellAlphas]
    out_error: str | None = None  # why ``out`` could not be written (the genotype is in the run folder)
    decisiveness: Decisiveness | None = None  # None when the alphas and the genotype cannot be compared

    @property
    def kept(self) -> Path:
        """The file that holds the genotype for sure: ``out`` or the run folder's copy."""
        return self.out if self.out is not None else self.run_dir / GENOTYPE


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SearchRun:
    """Specs, recipe, device and process group, and run folder of one search."""

    def __init__(self, config: SearchConfig, run_dir: Path, resume: bool, progress: ProgressFn | None,
                 world: dist.World, device: torch.device, replace_out: bool = False) -> None:
        self.config = config
        self.replace_out = replace_out
        self.world, self.device = world, device
        self.progress: ProgressFn = (progress or (lambda p: None)) if world.is_main else (lambda p: None)
        self.run = RunDir(run_dir)
        space, self.space_text = load_named_source("space", config.space, config.relative_to)
        assert isinstance(space, SpaceSpec)
        self.space = space
        self.kind = space.kind
        claim(self.run, resume, "search", world)
        self.saved: dict[str, Any] | None = None
        if resume:
            loaded = read_state(self.run.checkpoint, fix=RESUME_FIX)
            self.saved = loaded.state
            if not loaded.verified:
                self.progress(Progress("note", message=f"note: {self.run.checkpoint} was written by a genolang "
                                       "without checksums; it was loaded unverified"))
            if self.saved.get("format") in OLD_FORMATS:
                raise InputError(f"{self.run.checkpoint}: written by an older genolang (format "
                                 f"{self.saved.get('format')!r}; {OLD_FORMATS[self.saved['format']]}), which this "
                                 f"version cannot continue bit-exactly; start the search again in a new --run-dir, "
                                 "or finish this one with the genolang that wrote it")
            if self.saved.get("format") != FORMAT:
                raise InputError(f"{self.run.checkpoint}: not a search checkpoint (format "
                                 f"{self.saved.get('format')!r}, expected {FORMAT!r}); resume it with the command "
                                 "that wrote it")
            try:
                saved_recipe = Recipe.from_json(self.saved["recipe"])
            except (KeyError, TypeError, ValueError) as err:
                raise InputError(f"{self.run.checkpoint}: incomplete checkpoint ({err}); start a new run") from None
            self.recipe = resolve_recipe(config, self.kind, saved_recipe)
            refuse_changes(str(self.run.checkpoint), differences(saved_recipe.to_json(), self.recipe.to_json()))
            if not same_content(self._saved_spec("space", self.space.path, "space"), self.space):
                raise UsageError(f"--resume: space '{self.space.name}' ({self.space.path}) changed since the "
                                 "checkpoint was written; restore it or start a new --run-dir")
        else:
            self.recipe = resolve_recipe(config, self.kind)
        network, self.network_text = load_named_source("network", self.recipe.network,
                                                       config.relative_to or self.space.path)
        assert isinstance(network, NetworkSpec)
        if network.kind != self.kind:
            want = "'stem = embedding' (e.g. ptb_search)" if self.kind == "rnn" else "a CNN stem (e.g. small_search)"
            raise UsageError(f"network '{network.name}' ({network.path}) is a "
                             f"{'recurrent' if network.kind == 'rnn' else 'CNN'} skeleton, but space "
                             f"'{self.space.name}' is {'recurrent' if self.kind == 'rnn' else 'a CNN space'}; "
                             f"use a skeleton with {want}")
        self.network = network
        self.method = MethodRun(self.recipe.method_spec(), self.recipe.epochs)
        # what the alpha tables of the genotype files show (FairDARTS's: sigmoid)
        self.weights_name = str(getattr(self.method.relaxation, "selection_name", "softmax"))
        if self.saved is not None:
            if int(self.saved.get("world_size", 1)) != world.size:
                written = int(self.saved.get("world_size", 1))
                raise UsageError(f"--resume: {self.run.checkpoint} was written by "
                                 f"{plural(written, 'process', 'processes')}; resume it with the same number of "
                                 f"processes (now {world.size})")
            if not same_content(self._saved_spec("network", self.network.path, "skeleton"), self.network):
                raise UsageError(f"--resume: skeleton '{self.network.name}' ({self.network.path}) changed since "
                                 "the checkpoint was written; restore it or start a new --run-dir")
        # steps between progress reports and NaN checks: each waits for a GPU to finish
        self.sync_every = 1 if device.type == "cpu" else 20
        self.previous: GenotypeSpec | None = None
        self._files: dict[Path, GenotypeFile] = {}
        self.space_sha256 = sha256_file(self.space.path)
        # the effective recipe as a search declaration (recipe.geno) and its canonical hash
        name = config.recipe_name or genotype_name(f"{self.space.name}_{self.recipe.dataset}.geno", "search")
        self.recipe_text, self.recipe_hash = recipe_file(self.recipe, self.space, self.network, name, self.run.path)

    def _saved_spec(self, kind: str, path: str, what: str) -> Any:
        """The space or skeleton whose text the checkpoint keeps, checked as if at
        ``path``, the current file's (for its relative names)."""
        assert self.saved is not None
        try:
            return load_text(str(self.saved[f"{kind}_text"]), path).single(kind)
        except (KeyError, SpecError):
            raise InputError(f"{self.run.checkpoint}: its copy of the {what} does not check; start a new run") from None

    # -- run folder --------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        return {
            "space": display_path(self.space.path), "space_name": self.space.name,
            "space_sha256": self.space_sha256,
            "network": self.network.name, "network_path": display_path(self.network.path),
            "dataset": self.recipe.dataset, "order": self.recipe.order, "seed": self.recipe.seed,
            "epochs": self.recipe.epochs, "recipe": self.recipe.to_json(), "method": self.method.spec.name,
            "device": str(self.device), "torch": torch.__version__, "genolang": __version__,
            "world_size": self.world.size, "recipe_hash": self.recipe_hash,
        }

    def write_run_json(self, **extra: Any) -> None:
        if not self.world.is_main:
            return
        data: dict[str, Any] = {}
        if (self.run.path / RUN_JSON).is_file():
            try:
                data = dict(self.run.read_json(RUN_JSON))
            except (InputError, TypeError, ValueError):
                data = {}
        data.update(self.provenance())
        data.update(extra)
        self.run.write_json(RUN_JSON, data)

    def start(self, model: Any, epochs_done: int, steps: int) -> None:
        """Record the start (a fresh run's ``run.json``) and report it."""
        if self.world.is_main:
            self.run.write_text(RECIPE, self.recipe_text)
        if epochs_done == 0:
            self.write_run_json(started=now(), status="running")
        self.previous = self.derive(model, "previous")
        weights = sum(p.numel() for p in model.weight_parameters())
        self.progress(Progress("start", epochs_done, self.recipe.epochs, 0, steps, message=f"{weights:,} weights"))

    def file_for(self, folder: Path) -> GenotypeFile:
        key = folder.resolve()
        if key not in self._files:
            self._files[key] = GenotypeFile(self.space, key, own_folder=key == self.run.path.resolve())
        return self._files[key]

    def derive(self, model: Any, name: str) -> GenotypeSpec:
        """The genotype the current alphas select by magnitude (what the progress
        reports and the epoch files show, whatever the method's final selection)."""
        return derive_genotype(self.space, model.cell_alphas(), name)

    def changes(self, model: Any) -> dict[str, int]:
        """Per cell, how many terms the current alphas' genotype changed since the last epoch."""
        return changed_edges(self.previous, self.derive(model, "current"))

    def save(self, epoch: int, model: torch.nn.Module, weight_opt: torch.optim.Optimizer, architect: Architect,
             scheduler: Any, sampler: torch.Generator | None, selection: Mapping[str, Any] | None = None) -> None:
        """The checkpoint after ``epoch``; ``selection``: the state of a selection that
        runs epochs of its own after the search's (DARTS-PT), so a resume continues it."""
        state = {
            "format": FORMAT, "epoch": epoch, "recipe": self.recipe.to_json(),
            "space_text": self.space_text, "space_path": self.space.path,
            "network_text": self.network_text, "network_path": self.network.path,
            "model": model.state_dict(), "weight_optimizer": weight_opt.state_dict(),
            "arch_optimizer": architect.optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "sampler": sampler.get_state() if sampler is not None else None,
            **rng_section(self.world),  # a collective: every rank takes part
        }
        if selection is not None:
            state["selection"] = dict(selection)
        save_run_state(self.run, state, self.world)

    def restore(self, model: torch.nn.Module, weight_opt: torch.optim.Optimizer, architect: Architect,
                scheduler: Any, sampler: torch.Generator | None) -> int:
        """Load the checkpoint into the fresh objects; returns the epochs done (0 for a
        fresh run)."""
        if self.saved is None:
            return 0
        s = self.saved
        where = self.run.checkpoint
        try:
            model.load_state_dict(s["model"])
            weight_opt.load_state_dict(s["weight_optimizer"])
            architect.optimizer.load_state_dict(s["arch_optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(s["scheduler"])
            if sampler is not None:
                sampler.set_state(s["sampler"])
            restore_rng(s, str(where), self.world)
            epoch = int(s["epoch"])
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"{where}: does not match this search ({first[:300]}); resume with the space, "
                             "skeleton and data it was made with, or start a new --run-dir") from None
        if epoch < 0 or (epoch > self.recipe.epochs and "selection" not in s):
            raise InputError(f"{where}: records epoch {epoch} of a {plural(self.recipe.epochs, 'epoch')} search")
        if self.world.is_main:
            for name in ("metrics.jsonl", ALPHAS_LOG, SELECTION_LOG):
                self.run.truncate_jsonl(name, epoch)
        dist.barrier(self.world)
        return epoch

    def saved_selection(self) -> dict[str, Any] | None:
        """The selection's state in the checkpoint resumed from (None when the run
        resumes during the search, or starts)."""
        if self.saved is None or "selection" not in self.saved:
            return None
        return dict(self.saved["selection"])

    def log_epoch(self, epoch: int, model: Any, metrics: dict[str, Any], selection: bool = False) -> dict[str, int]:
        """Write epoch-NNN.geno, the metrics and the alphas of a finished epoch (before
        its checkpoint: a resume cuts the logs back to the checkpoint's epoch); returns
        the changes of the genotype since the last epoch. ``selection``: an epoch a
        selection runs after the search (its genotype shows the decisions so far)."""
        alphas = model.cell_alphas()
        geno = self.derive(model, f"epoch_{epoch:03d}")
        changes = changed_edges(self.previous, geno)
        self.previous = geno
        if self.world.is_main:
            name = f"epoch-{epoch:03d}.geno"
            title = (f"genolang search: genotype derived after epoch {epoch} (the selection's epoch "
                     f"{epoch - self.recipe.epochs}, after the search's {self.recipe.epochs}; decided edges as "
                     f"decided so far)" if selection else
                     f"genolang search: genotype derived after epoch {epoch} of {self.recipe.epochs}")
            lines = header(title, self.provenance(), metrics, alphas, self.weights_name, _decisiveness(alphas, geno))
            self.run.write_text(name, self.file_for(self.run.path).text(geno, lines))
            self.run.log_metrics(metrics)
            self.run.append_jsonl(ALPHAS_LOG, {"epoch": epoch, "cells": {c: a.to_json() for c, a in alphas.items()}})
        return changes

    def finish(self, out: Path | None, model: Any, metrics: Mapping[str, Any],
               context: SelectionContext | None = None) -> SearchResult:
        """Select the found genotype by the method's selection and write it
        (run_dir/genotype.geno first, then ``out``) and report the end. ``out`` is not
        written when it cannot be, or when a file appeared there during the search and
        ``replace_out`` is off: the result then says why (``out_error``) and the genotype
        is in the run folder, never lost."""
        name = genotype_name(out)
        context = context or SelectionContext(self.space, model, name, metrics=metrics)
        context.name = name
        context.note = lambda message: self.progress(Progress("note", message=message))
        context.record = self._record_selection
        geno = self.method.select(context)
        if context.metrics is not None:
            metrics = context.metrics
        alphas = model.cell_alphas()
        order = "first" if self.recipe.order == 1 else "second"
        title = (f"Found by 'genolang search' (DARTS, {order} order)." if self.method.spec.name == "darts"
                 else f"Found by 'genolang search' ({self.method.spec.describe()}; {order} order).")
        decisive = _decisiveness(alphas, geno)
        lines = header(title, self.provenance(), metrics, alphas, self.weights_name, decisive)
        lines[1:1] = list(getattr(self.method.selection, "notes", ()))  # what the selection says of its choice
        if context.summary:
            at = lines.index(HASH_SLOT)
            lines[at:at] = context.summary
        decl, digest = declaration(geno), genotype_hash(geno)
        run_file = self.file_for(self.run.path)
        text = run_file.compose(decl, lines, digest)
        if self.world.is_main:
            self.run.write_text(GENOTYPE, text)
        out_error = None
        if out is not None:
            out_file = self.file_for(out.parent)
            if out_file.embed_space != run_file.embed_space:
                text = out_file.compose(decl, lines, digest)
            if self.world.is_main:
                try:
                    check_destination(out, replace=self.replace_out, flag="--force")
                    write_text(out, text)
                except GenolangError as err:
                    out_error = str(err)
            if out_error is not None:
                out = None
        self.write_run_json(status="done", finished=now(), final=dict(metrics),
                            out=str(out) if out is not None else None, out_error=out_error,
                            decisiveness=decisive.to_json() if decisive is not None else None)
        result = SearchResult(geno, text, decl, out, self.run.path, metrics, alphas, out_error, decisive)
        self.progress(Progress("done", self.recipe.epochs, self.recipe.epochs, metrics=metrics,
                               message=str(result.out or result.run_dir)))
        return result

    def _record_selection(self, entry: dict[str, Any]) -> None:
        if self.world.is_main:
            self.run.append_jsonl(SELECTION_LOG, entry)


def _decisiveness(alphas: Mapping[str, CellAlphas], geno: GenotypeSpec) -> Decisiveness | None:
    """How far the alphas moved from uniform, next to the genotype they gave; None when
    the genotype keeps what the tables do not have (a selection's own choice)."""
    try:
        return decisiveness(alphas, geno)
    except ValueError:
        return None
