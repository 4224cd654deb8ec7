"""What a run saves so that it can continue bit for bit: every rank's random state
next to the weights and optimizers, written by rank 0 atomically after every epoch.

Search and training checkpoints differ in what else they hold; both keep the random
state in one *section* (``rng_section``): ``rng`` (rank 0's generators), ``rng_ranks``
(every rank's, under torchrun) and ``world_size``, restored by ``restore_rng``."""

from __future__ import annotations

from typing import Any

from genolang.errors import UsageError, plural
from genolang.run import dist
from genolang.run.folder import RunDir
from genolang.run.runtime import rng_state, set_rng_state
from genolang.tensorio import save_state


def rng_section(world: dist.World = dist.SINGLE) -> dict[str, Any]:
    """Every rank's random state (a collective: every rank calls it)."""
    ranks = dist.gather_objects(rng_state(), world)
    section: dict[str, Any] = {"rng": ranks[0], "world_size": world.size}
    if world.distributed:
        section["rng_ranks"] = ranks
    return section


def restore_rng(section: dict[str, Any], where: str, world: dist.World = dist.SINGLE) -> None:
    """Set this rank's generators from a section written by as many ranks."""
    written = int(section.get("world_size", 1))
    if written != world.size:
        raise UsageError(
            f"{where} was written by {plural(written, 'process', 'processes')}; resume it with the same number of "
            f"processes (now {world.size})"
        )
    set_rng_state(section["rng_ranks"][world.rank] if world.distributed else section["rng"])


def save_run_state(run: RunDir, state: dict[str, Any], world: dist.World = dist.SINGLE) -> None:
    """Rank 0 writes ``state`` as the run's checkpoint (atomically); every rank waits."""
    if world.is_main:
        run.ensure()
        save_state(run.checkpoint, state)
    dist.barrier(world)


def claim(run: RunDir, resume: bool, command: str, world: dist.World = dist.SINGLE) -> None:
    """Refuse what would lose or mix runs: a new run in a folder holding a checkpoint,
    ``--resume`` where there is none, a folder genolang did not make (see
    ``RunDir.claim``); rank 0 then marks the folder as this run's."""
    if resume and not run.has_checkpoint():
        raise UsageError(f"--resume: {run.path} holds no checkpoint ({run.checkpoint.name}); run without "
                         f"--resume to start a {command} there")
    if not resume and run.has_checkpoint():
        raise UsageError(f"{run.path} already holds a {command} run ({run.checkpoint.name}); pass --resume to "
                         "continue it or choose another --run-dir")
    run.claim(command, resume, write=world.is_main)


def differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The settings that differ between two recipes, as ``name: then -> now``."""
    return [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
            if saved.get(k) != now.get(k)]


def refuse_changes(where: str, changes: list[str]) -> None:
    """The resume check for options: a run continues with the settings it started with."""
    if changes:
        raise UsageError(f"--resume: {where} was started with other settings ({'; '.join(changes)}); resume with "
                         "the options it was started with (leave them out to reuse the stored ones) or start a "
                         "new --run-dir")
