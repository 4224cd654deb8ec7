"""The state of a training run on disk: the per-epoch checkpoint (a model checkpoint
with a ``train`` entry: epoch, optimizer, RNG states, recipe and loop state), the
checks made before resuming, and the errors a run can stop with."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from genolang.nets.checkpoint import model_record
from genolang.spec.syntax import read_bundle, same_specs, spec_bundle
from genolang.nets.compile import DataShape

from genolang.errors import GenolangError, UsageError
from genolang.spec.checked import GenotypeSpec, NetworkSpec
from genolang.run.folder import RunDir, load_checkpoint, save_checkpoint
from genolang.run import dist
from genolang.run.runtime import rng_state, set_rng_state
from genolang.train.recipe import Recipe, recipe_diff, recipe_from_dict

MODEL = "model.pt"
RESULT = "result.json"
SPEC = "spec.geno"


class TrainingDiverged(GenolangError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    @classmethod
    def at(cls, value: float, where: str, epoch: int, run: RunDir) -> "TrainingDiverged":
        """The error for a loss of ``value`` seen ``where`` (e.g. 'by epoch 3, step 40')
        during 0-based ``epoch``: what was kept and what to try."""
        kept = (f"The last good checkpoint ({run.checkpoint}, after epoch {epoch}) is kept. " if epoch > 0
                else "No epoch had finished, so there is no checkpoint. ")
        return cls(f"the training loss became {value} {where}; stopped. {kept}Lower --lr or --grad-clip and "
                   "start again.")


def save_training(run: RunDir, model: nn.Module, geno: GenotypeSpec, network: NetworkSpec, shape: DataShape,
                  recipe: Recipe, epoch: int, optimizer: torch.optim.Optimizer, loop: dict[str, Any],
                  extra: dict[str, Any] | None = None, world: dist.World = dist.SINGLE) -> None:
    """Write ``run/checkpoint.pt`` atomically after ``epoch`` completed epochs. Under
    torchrun every rank calls this (its random state is gathered) and rank 0 writes."""
    ranks_rng = dist.gather_objects(rng_state(), world)
    if world.is_main:
        record = model_record(model, geno, network, shape, extra={"dataset": recipe.dataset, **(extra or {})})
        record["train"] = {
            "epoch": epoch,
            "recipe": recipe.to_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": ranks_rng[0],
            "loop": loop,
            "world_size": world.size,
        }
        if world.distributed:
            record["train"]["rng_ranks"] = ranks_rng
        save_checkpoint(run.checkpoint, record)
    dist.barrier(world)


def restore_rng(state: dict[str, Any], where: str, world: dist.World = dist.SINGLE) -> None:
    """Set this rank's random state from a training checkpoint written by as many ranks."""
    train = state["train"]
    if int(train.get("world_size", 1)) != world.size:
        raise UsageError(f"{where} was written by {train.get('world_size', 1)} process(es); resume it with the same "
                         f"number of processes (now {world.size})")
    set_rng_state(train["rng_ranks"][world.rank] if world.distributed else train["rng"])


def read_training(run: RunDir) -> dict[str, Any] | None:
    """The run's checkpoint dict, or None when it has none yet."""
    if not run.checkpoint.is_file():
        return None
    state = load_checkpoint(run.checkpoint)
    if not isinstance(state.get("train"), dict):
        raise UsageError(f"{run.checkpoint}: a model checkpoint without training state cannot be resumed; "
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
        raise UsageError(f"{where}: the spec stored in the checkpoint does not check:\n{err.render()}") from None
    if not same_specs(stored, (geno, network)):
        raise UsageError(
            f"{where} was written for genotype '{stored[0].name}' on network '{stored[1].name}', but this command asks "
            f"for genotype '{geno.name}' on network '{network.name}' (or they differ in content); resume with the "
            "same GENOTYPE and --network, or choose another --run-dir")
    old = stored_recipe(state)
    if old.dataset != recipe.dataset:
        raise UsageError(f"{where} was trained on {old.dataset}, not {recipe.dataset}; resume with "
                         f"--dataset {old.dataset} or choose another --run-dir")
    changes = recipe_diff(old, recipe)
    if changes:
        raise UsageError(f"{where} was started with other settings ({'; '.join(changes)}); resume with the "
                         "options it was started with (omit them to reuse the stored ones) or choose another --run-dir")


def start_run(run: RunDir, geno: GenotypeSpec, network: NetworkSpec, recipe: Recipe,
              resume: bool, world: dist.World = dist.SINGLE) -> dict[str, Any] | None:
    """Prepare the run folder: refuse to overwrite a run unless resuming, check a
    resumed checkpoint against what is asked for, and record the spec and recipe
    (rank 0 only). Returns the checkpoint to resume from (None for a fresh run)."""
    if world.is_main:
        run.ensure()
    state = read_training(run)
    if state is not None and not resume:
        raise UsageError(f"{run.path} already holds a run ({run.checkpoint.name}); pass --resume to continue it "
                         "or choose another --run-dir")
    if state is not None:
        check_resumable(state, str(run.checkpoint), geno, network, recipe)
    dist.barrier(world)  # every rank has looked for a checkpoint before rank 0 writes anything
    if world.is_main:
        if state is None:
            run.write_jsonl("metrics.jsonl", [])
        run.write_text(SPEC, spec_bundle(geno, network))
        run.write_json("recipe.json", recipe.to_dict())
    return state
