"""The state of one search run: its specs and recipe, its run folder (checkpoint,
per-epoch genotypes, metrics and alpha logs, ``run.json``) and the checks before a
resume. The image and text drivers (``search.images``, ``search.text``) share it."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import torch

from genolang import __version__
from genolang.errors import SpecError, UsageError
from genolang.fsio import write_text
from genolang.ir.alphas import CellAlphas
from genolang.ir.decisive import Decisiveness, decisiveness
from genolang.ir.derive import changed_edges
from genolang.run import dist
from genolang.run.folder import RUN_JSON, RunDir
from genolang.run.progress import Progress, ProgressFn
from genolang.run.state import claim, differences, refuse_changes, restore_rng, rng_section, save_run_state
from genolang.search.architect import Architect
from genolang.search.method import DARTS, Method
from genolang.search.output import GenotypeFile, declaration, display_path, genotype_name, header, sha256_file
from genolang.search.recipe import Recipe, SearchConfig, resolve_recipe
from genolang.spec.check import load_text
from genolang.spec.checked import GenotypeSpec, NetworkSpec, SpaceSpec, same_content
from genolang.spec.lookup import load_named_source
from genolang.tensorio import load_state
from genolang.vcs import genotype_hash

FORMAT = "genolang-search/1"
ALPHAS_LOG = "alphas.jsonl"
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
    decisiveness: Decisiveness


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SearchRun:
    """Specs, recipe, device and process group, and run folder of one search."""

    def __init__(self, config: SearchConfig, run_dir: Path, resume: bool, progress: ProgressFn | None,
                 world: dist.World, device: torch.device, method: Method = DARTS) -> None:
        self.config = config
        self.method = method
        self.world, self.device = world, device
        self.progress: ProgressFn = (progress or (lambda p: None)) if world.is_main else (lambda p: None)
        self.run = RunDir(run_dir)
        space, self.space_text = load_named_source("space", config.space)
        assert isinstance(space, SpaceSpec)
        self.space = space
        self.kind = space.kind
        claim(self.run, resume, "search")
        self.saved: dict[str, Any] | None = None
        if resume:
            self.saved = load_state(self.run.checkpoint)
            if self.saved.get("format") != FORMAT:
                raise UsageError(f"{self.run.checkpoint}: not a search checkpoint (format "
                                 f"{self.saved.get('format')!r}, expected {FORMAT!r}); resume it with the command "
                                 "that wrote it")
            try:
                saved_recipe = Recipe.from_json(self.saved["recipe"])
            except (KeyError, TypeError, ValueError) as err:
                raise UsageError(f"{self.run.checkpoint}: incomplete checkpoint ({err}); start a new run") from None
            self.recipe = resolve_recipe(config, self.kind, saved_recipe)
            refuse_changes(str(self.run.checkpoint), differences(saved_recipe.to_json(), self.recipe.to_json()))
            if not same_content(self._saved_spec("space", self.space.path, "space"), self.space):
                raise UsageError(f"--resume: space '{self.space.name}' ({self.space.path}) changed since the "
                                 "checkpoint was written; restore it or start a new --run-dir")
        else:
            self.recipe = resolve_recipe(config, self.kind)
        network, self.network_text = load_named_source("network", self.recipe.network, self.space.path)
        assert isinstance(network, NetworkSpec)
        if network.kind != self.kind:
            want = "'stem = embedding' (e.g. ptb_search)" if self.kind == "rnn" else "a CNN stem (e.g. small_search)"
            raise UsageError(f"network '{network.name}' ({network.path}) is a "
                             f"{'recurrent' if network.kind == 'rnn' else 'CNN'} skeleton, but space "
                             f"'{self.space.name}' is {'recurrent' if self.kind == 'rnn' else 'a CNN space'}; "
                             f"use a skeleton with {want}")
        self.network = network
        if self.saved is not None:
            if int(self.saved.get("world_size", 1)) != world.size:
                raise UsageError(f"--resume: {self.run.checkpoint} was written by {self.saved.get('world_size', 1)} "
                                 f"process(es); resume it with the same number of processes (now {world.size})")
            if not same_content(self._saved_spec("network", self.network.path, "skeleton"), self.network):
                raise UsageError(f"--resume: skeleton '{self.network.name}' ({self.network.path}) changed since "
                                 "the checkpoint was written; restore it or start a new --run-dir")
        # steps between progress reports and NaN checks: each waits for a GPU to finish
        self.sync_every = 1 if device.type == "cpu" else 20
        self.previous: GenotypeSpec | None = None
        self._files: dict[Path, GenotypeFile] = {}
        self.space_sha256 = sha256_file(self.space.path)

    def _saved_spec(self, kind: str, path: str, what: str) -> Any:
        """The space or skeleton whose text the checkpoint keeps, checked as if at
        ``path``, the current file's (for its relative names)."""
        assert self.saved is not None
        try:
            return load_text(str(self.saved[f"{kind}_text"]), path).single(kind)
        except (KeyError, SpecError):
            raise UsageError(f"{self.run.checkpoint}: its copy of the {what} does not check; start a new run") from None

    # -- run folder --------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        return {
            "space": display_path(self.space.path), "space_name": self.space.name,
            "space_sha256": self.space_sha256,
            "network": self.network.name, "network_path": display_path(self.network.path),
            "dataset": self.recipe.dataset, "order": self.recipe.order, "seed": self.recipe.seed,
            "epochs": self.recipe.epochs, "recipe": self.recipe.to_json(), "method": self.method.name,
            "device": str(self.device), "torch": torch.__version__, "genolang": __version__,
            "world_size": self.world.size,
        }

    def write_run_json(self, **extra: Any) -> None:
        if not self.world.is_main:
            return
        data: dict[str, Any] = {}
        if (self.run.path / RUN_JSON).is_file():
            try:
                data = dict(self.run.read_json(RUN_JSON))
            except UsageError:
                data = {}
        data.update(self.provenance())
        data.update(extra)
        self.run.write_json(RUN_JSON, data)

    def start(self, model: Any, epochs_done: int, steps: int) -> None:
        """Record the start (a fresh run's ``run.json``) and report it."""
        if epochs_done == 0:
            self.write_run_json(started=now(), status="running")
        self.previous = self.method.select(self.space, model, "previous")
        weights = sum(p.numel() for p in model.weight_parameters())
        self.progress(Progress("start", epochs_done, self.recipe.epochs, 0, steps, message=f"{weights:,} weights"))

    def file_for(self, folder: Path) -> GenotypeFile:
        key = folder.resolve()
        if key not in self._files:
            self._files[key] = GenotypeFile(self.space, key)
        return self._files[key]

    def changes(self, model: Any) -> dict[str, int]:
        """Per cell, how many terms the current alphas' genotype changed since the last epoch."""
        return changed_edges(self.previous, self.method.select(self.space, model, "current"))

    def save(self, epoch: int, model: torch.nn.Module, weight_opt: torch.optim.Optimizer, architect: Architect,
             scheduler: Any, sampler: torch.Generator | None) -> None:
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
            raise UsageError(f"{where}: does not match this search ({first[:300]}); resume with the space, "
                             "skeleton and data it was made with, or start a new --run-dir") from None
        if not 0 <= epoch <= self.recipe.epochs:
            raise UsageError(f"{where}: records epoch {epoch} of a {self.recipe.epochs}-epoch search")
        if self.world.is_main:
            for name in ("metrics.jsonl", ALPHAS_LOG):
                self.run.truncate_jsonl(name, epoch)
        dist.barrier(self.world)
        return epoch

    def log_epoch(self, epoch: int, model: Any, metrics: dict[str, Any]) -> dict[str, int]:
        """Write epoch-NNN.geno, the metrics and the alphas of a finished epoch (before
        its checkpoint: a resume cuts the logs back to the checkpoint's epoch); returns
        the changes of the genotype since the last epoch."""
        alphas = model.cell_alphas()
        geno = self.method.select(self.space, model, f"epoch_{epoch:03d}")
        changes = changed_edges(self.previous, geno)
        self.previous = geno
        if self.world.is_main:
            name = f"epoch-{epoch:03d}.geno"
            lines = header(f"genolang search: genotype derived after epoch {epoch} of {self.recipe.epochs}",
                           self.provenance(), metrics, alphas, decisiveness(alphas, geno))
            self.run.write_text(name, self.file_for(self.run.path).text(geno, lines))
            self.run.log_metrics(metrics)
            self.run.append_jsonl(ALPHAS_LOG, {"epoch": epoch, "cells": {c: a.to_json() for c, a in alphas.items()}})
        return changes

    def finish(self, out: Path | None, model: Any, metrics: Mapping[str, Any]) -> SearchResult:
        """Write the found genotype (run_dir/genotype.geno and ``out``) and report the end."""
        alphas = model.cell_alphas()
        geno = self.method.select(self.space, model, genotype_name(out))
        order = "first" if self.recipe.order == 1 else "second"
        decisive = decisiveness(alphas, geno)
        lines = header(f"Found by 'genolang search' (DARTS, {order} order).", self.provenance(), metrics, alphas,
                       decisive)
        decl, digest = declaration(geno), genotype_hash(geno)
        run_file = self.file_for(self.run.path)
        text = run_file.compose(decl, lines, digest)
        if self.world.is_main:
            self.run.write_text(GENOTYPE, text)
        if out is not None:
            out_file = self.file_for(out.parent)
            if out_file.embed_space != run_file.embed_space:
                text = out_file.compose(decl, lines, digest)
            if self.world.is_main:
                write_text(out, text)
        self.write_run_json(status="done", finished=now(), final=dict(metrics),
                            out=str(out) if out is not None else None, decisiveness=decisive.to_json())
        result = SearchResult(geno, text, decl, out, self.run.path, metrics, alphas, decisive)
        self.progress(Progress("done", self.recipe.epochs, self.recipe.epochs, metrics=metrics,
                               message=str(result.out or result.run_dir)))
        return result
