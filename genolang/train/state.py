"""The state of a training run on disk: the per-epoch checkpoint (a model checkpoint,
``genolang.nets.checkpoint``, with a ``train`` entry: epoch, recipe, optimizer, loop
state and the random-state section of ``genolang.run.state``) and the checks made
before resuming one."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from genolang.errors import GenolangError, InputError, UsageError
from genolang.nets.checkpoint import model_record
from genolang.nets.compile import DataShape
from genolang.run import dist
from genolang.run.folder import RunDir
from genolang.run.state import claim, refuse_changes, rng_section, save_run_state
from genolang.spec.checked import GenotypeSpec, NetworkSpec
from genolang.spec.syntax import read_bundle, same_specs, spec_bundle
from genolang.tensorio import load_state
from genolang.train.recipe import Recipe, recipe_diff, recipe_from_dict

MODEL = "model.pt"
RESULT = "result.json"
SPEC = "spec.geno"


def save_training(run: RunDir, model: nn.Module, geno: GenotypeSpec, network: NetworkSpec, shape: DataShape,
                  recipe: Recipe, epoch: int, optimizer: torch.optim.Optimizer, loop: dict[str, Any],
                  extra: dict[str, Any] | None = None, world: dist.World = dist.SINGLE) -> None:
    """Write ``run/checkpoint.pt`` atomically after ``epoch`` completed epochs. Under
    torchrun every rank calls this (its random state is gathered) and rank 0 writes."""
    section = rng_section(world)
    record: dict[str, Any] = {}
    if world.is_main:
        record = model_record(model, geno, network, shape, extra={"dataset": recipe.dataset, **(extra or {})})
        record["train"] = {"epoch": epoch, "recipe": recipe.to_dict(), "optimizer": optimizer.state_dict(),
                           "loop": loop, **section}
    save_run_state(run, record, world)


def read_training(run: RunDir) -> dict[str, Any]:
    """The run's checkpoint dict (a training checkpoint, or a clear error)."""
    state = load_state(run.checkpoint, fix="start the training again in a new --run-dir or restore the file from a "
                                           "backup")
    if not isinstance(state.get("train"), dict):
        raise InputError(f"{run.checkpoint}: a model checkpoint without training state cannot be resumed; "
                         "choose another --run-dir")
    return state


def stored_recipe(state: dict[str, Any]) -> Recipe:
    """The recipe a checkpointed run was started with."""
    return recipe_from_dict(dict(state["train"]["recipe"]))


def check_resumable(state: dict[str, Any], where: str, geno: GenotypeSpec, network: NetworkSpec,
                    recipe: Recipe) -> None:
    """A clear error when the checkpoint belongs to another genotype, skeleton, data set
    or recipe than the one asked for."""
    try:
        stored = read_bundle(state["spec"], f"{where}:spec")
    except GenolangError as err:
        raise InputError(f"{where}: the spec stored in the checkpoint does not check:\n{err.render()}") from None
    if not same_specs(stored, (geno, network)):
        raise UsageError(
            f"{where} was written for genotype '{stored[0].name}' on network '{stored[1].name}', but this command asks "
            f"for genotype '{geno.name}' on network '{network.name}' (or they differ in content); resume with the "
            "same GENOTYPE and --network, or choose another --run-dir")
    old = stored_recipe(state)
    if old.dataset != recipe.dataset:
        raise UsageError(f"{where} was trained on {old.dataset}, not {recipe.dataset}; resume with "
                         f"--dataset {old.dataset} or choose another --run-dir")
    refuse_changes(where, recipe_diff(old, recipe))


def start_run(run: RunDir, geno: GenotypeSpec, network: NetworkSpec, recipe: Recipe,
              resume: bool, world: dist.World = dist.SINGLE) -> dict[str, Any] | None:
    """Prepare the run folder: refuse to overwrite a run unless resuming, check a
    resumed checkpoint against what is asked for, and record the spec and recipe
    (rank 0 only). Returns the checkpoint to resume from (None for a fresh run)."""
    claim(run, resume, "training", world)
    state = read_training(run) if resume else None
    if state is not None:
        check_resumable(state, str(run.checkpoint), geno, network, recipe)
    dist.barrier(world)  # every rank has looked for a checkpoint before rank 0 writes anything
    if world.is_main:
        run.ensure()
        if state is None:
            run.write_jsonl("metrics.jsonl", [])
        run.write_text(SPEC, spec_bundle(geno, network))
        run.write_json("recipe.json", recipe.to_dict())
    return state
