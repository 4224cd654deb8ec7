"""``run_training``: the library entry point of ``genolang train``. It joins the process
group and picks the device once, loads the genotype and skeleton (with overrides),
names the run folder, resolves the recipe (the stored one when resuming, with the
options given on top; else the data set's and skeleton's defaults), adds TensorBoard
logging when installed, and runs the loop for the data's kind.

The library never prints: it reports through ``progress`` callbacks."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genolang.data.registry import dataset_kind
from genolang.errors import UsageError
from genolang.fsio import check_folder
from genolang.nets.compile import apply_overrides, check_pair
from genolang.run import dist
from genolang.run.folder import RunDir, unused
from genolang.run.progress import Progress, ProgressFn, TensorBoardLog, emit
from genolang.run.state import claim
from genolang.spec.checked import GenotypeSpec, NetworkSpec
from genolang.spec.lookup import load_named
from genolang.train import train
from genolang.train.images import TrainResult
from genolang.train.recipe import default_recipe
from genolang.train.state import read_training, stored_recipe


@dataclass(frozen=True)
class TrainConfig:
    """What a user asks for. ``options`` are recipe fields given explicitly (the rest
    come from the defaults, or from the checkpoint when resuming); ``overrides`` change
    the skeleton (channels, layers, embedding, hidden)."""

    genotype: str
    network: str
    dataset: str
    data_dir: str | None = None
    download: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    device: str = "auto"
    workers: int = 0
    threads: int | None = None
    tensorboard: bool = True


def default_run_dir(geno: GenotypeSpec, network: NetworkSpec, dataset: str) -> Path:
    """``runs/GENOTYPE-NETWORK-DATASET-TIME`` under the current folder (``-2`` ... added
    when that folder exists)."""
    return unused(Path("runs") / f"{geno.name}-{network.name}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}")


def run_training(config: TrainConfig, *, run_dir: str | Path | None = None, resume: bool = False,
                 progress: ProgressFn | None = None) -> TrainResult:
    """Retrain ``config.genotype`` on ``config.network`` in ``run_dir`` (default
    ``default_run_dir``); with ``resume``, continue the run there bit for bit."""
    if resume and run_dir is None:
        raise UsageError("--resume needs --run-dir (the folder of the run to continue)")
    dataset_kind(config.dataset)
    if run_dir is not None:
        check_folder(run_dir)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    world, device = dist.join(config.device)
    try:
        geno = load_named("genotype", config.genotype)
        network = load_named("network", config.network)
        check_pair(geno, network)
        network = apply_overrides(network, **config.overrides)
        folder = Path(run_dir) if run_dir is not None else Path(str(dist.broadcast_object(
            str(default_run_dir(geno, network, config.dataset)), world)))  # rank 0's clock names it for every rank
        run = RunDir(folder)
        claim(run, resume, "training", world)
        explicit = {k: v for k, v in config.options.items() if v is not None}
        if resume:
            recipe = stored_recipe(read_training(run)).replace(**explicit)
        else:
            recipe = default_recipe(config.dataset, network).replace(**explicit)
        if recipe.dataset != config.dataset:
            recipe = recipe.replace(dataset=config.dataset)  # the resume check reports the mismatch
        callbacks: list[ProgressFn] = [progress] if progress is not None and world.is_main else []
        emit(callbacks, Progress("note", message=f"training {geno.name} on {network.name} with {config.dataset} "
                                                 f"in {folder}"))
        tb = TensorBoardLog.create(run.ensure().path / "tb") if config.tensorboard and world.is_main and \
            TensorBoardLog.available() else None
        if tb is not None:
            callbacks.append(tb)
        try:
            return train(geno, network, recipe, folder, data_dir=config.data_dir, download=config.download,
                         device=device, world=world, workers=config.workers, resume=resume, callbacks=callbacks)
        finally:
            if tb is not None:
                tb.close()
    finally:
        dist.shutdown()
