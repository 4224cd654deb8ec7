"""Model checkpoints that reload with no other file.

A checkpoint holds the state dict and one self-contained spec text: the canonical
printing of the genotype's space, the genotype and the (effective) skeleton, so the
genotype resolves its space inside the checkpoint and never through the search path.
It also holds the data shape the model was built for and free-form ``extra``
metadata (overrides, provenance). Loading re-parses and re-checks the spec text,
rebuilds the model and loads the weights strictly, with ``weights_only=True``.

Training checkpoints are the same dict with a ``train`` entry added (optimizer, epoch,
RNG states, recipe), so ``load_model`` reads both."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from genolang.errors import GenolangError, InputError
from genolang.nets.compile import DataShape, build, check_pair
from genolang.spec.checked import GenotypeSpec, NetworkSpec
from genolang.spec.syntax import genotype_text, network_text, read_bundle, spec_bundle
from genolang.tensorio import read_state, save_state

MODEL_FIX = ("write it again ('genolang compile GENOTYPE --network NET -o FILE', or train again) or restore it "
             "from a backup")

FORMAT = "genolang-model"
VERSION = 1


# ---- save and load ---------------------------------------------------------------------

def model_record(model: nn.Module, geno: GenotypeSpec, network: NetworkSpec, shape: DataShape,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint dict of a model (without writing it)."""
    auxiliary = getattr(model, "auxiliary", None) is not None
    return {
        "format": FORMAT,
        "version": VERSION,
        "genotype": geno.name,
        "network": network.name,
        "spec": spec_bundle(geno, network),  # what load_model reads: space + genotype + skeleton
        "genotype_spec": genotype_text(geno),  # the same, one declaration each, for people and tools
        "network_spec": network_text(network),
        "data_shape": shape.to_dict(),
        "auxiliary": auxiliary,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }


def save_model(path: str | os.PathLike[str], model: nn.Module, geno: GenotypeSpec, network: NetworkSpec,
               data_shape: DataShape, extra: dict[str, Any] | None = None) -> None:
    """Write a model checkpoint atomically."""
    save_state(path, model_record(model, geno, network, data_shape, extra))


def restore(state: dict[str, Any], where: str) -> tuple[nn.Module, GenotypeSpec, NetworkSpec, DataShape]:
    """Rebuild the model of a checkpoint dict and load its weights."""
    if state.get("format") != FORMAT or not isinstance(state.get("spec"), str) or "state_dict" not in state:
        raise InputError(f"{where}: not a genolang model checkpoint (format {state.get('format')!r}); "
                         "use a file written by 'genolang compile -o' or 'genolang train'")
    version = state.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(f"{where}: not a genolang model checkpoint (version {version!r})")
    if version > VERSION:
        raise InputError(f"{where}: checkpoint version {version} is newer than this genolang understands "
                         f"({VERSION}); upgrade genolang")
    try:
        geno, network = read_bundle(state["spec"], f"{where}:spec")
    except GenolangError as err:
        raise InputError(f"{where}: the spec stored in the checkpoint does not check:\n{err.render()}") from None
    check_pair(geno, network)
    try:
        shape = DataShape.from_dict(dict(state.get("data_shape") or {}))
    except (TypeError, ValueError):
        raise InputError(f"{where}: its data shape is not readable ({state.get('data_shape')!r:.200})") from None
    if shape.kind != network.kind:
        raise InputError(f"{where}: its data shape ({shape.kind}) does not fit its network ({network.kind})")
    model = build(geno, network, shape, auxiliary=bool(state.get("auxiliary", False)))
    weights = state["state_dict"]
    if not isinstance(weights, dict):
        raise InputError(f"{where}: its weights are not a state dict; {MODEL_FIX}")
    try:
        model.load_state_dict(weights, strict=True)
    except (RuntimeError, TypeError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{where}: the weights do not fit the stored genotype and skeleton ({first[:300]})") from None
    return model, geno, network, shape


def load_model(path: str | os.PathLike[str],
               map_location: str | torch.device = "cpu") -> tuple[nn.Module, GenotypeSpec, NetworkSpec, dict[str, Any]]:
    """Reload a model checkpoint: ``(model, genotype, skeleton, meta)`` where ``meta``
    holds ``data_shape`` (a ``DataShape``), ``extra``, ``auxiliary``, ``verified``
    (False for a file from before digests, loaded unchecked) and, for a training
    checkpoint, ``epoch``."""
    loaded = read_state(path, map_location=map_location, fix=MODEL_FIX)
    state = loaded.state
    model, geno, network, shape = restore(state, str(path))
    meta: dict[str, Any] = {
        "data_shape": shape,
        "extra": state.get("extra", {}),
        "auxiliary": bool(state.get("auxiliary", False)),
        "spec": state["spec"],
        "verified": loaded.verified,
    }
    if isinstance(state.get("train"), dict):
        meta["epoch"] = state["train"].get("epoch")
    return model, geno, network, meta
